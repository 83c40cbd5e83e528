//! The passphrase prompt at a real terminal (a pty through `script(1)`): a wrong
//! passphrase fails cleanly, the first version of a project asks twice, an empty answer
//! says so, and Ctrl-C or a termination signal leaves the terminal as it was (echo on,
//! checked with `stty -a` on the same pty after the command has died).

#![allow(clippy::unwrap_used)]

use envsync_tests::proxy::{Proxy, Upstream};
use envsync_tests::{Dev, PASS, Server};

/// The `stty -a` flags that a prompt turns off, all back on.
#[track_caller]
fn terminal_restored(output: &str) {
    let stty = output
        .rsplit_once("stty:")
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no stty output: {output}"));
    let flags: Vec<&str> = stty.split_whitespace().collect();
    for flag in ["echo", "icanon", "isig", "iexten"] {
        assert!(
            flags.contains(&flag) && !flags.contains(&format!("-{flag}").as_str()),
            "{flag} is not back on: {stty}"
        );
    }
}

/// A project with version 1 on main (pushed with `ENVSYNC_PASS`), and a teammate's
/// clone that has no `ENVSYNC_PASS`: every passphrase it needs is typed.
fn teammate(server: &Server, project: &str) -> (Dev, Dev) {
    let alice = Dev::new(server, project);
    alice.write_env("API_KEY=prompt-secret-value\n");
    alice.envsync(&["push"]).ok();
    let mut bob = Dev::clone_of(&alice, server, "bob@example.com");
    bob.pass = None;
    (alice, bob)
}

#[test]
fn a_wrong_passphrase_typed_at_the_prompt_fails_cleanly() {
    let server = Server::start();
    let (_alice, bob) = teammate(&server, "prompt-wrong");
    let mut pty = bob.pty("git envsync pull; echo \"exit=$?\"; echo stty:; stty -a");
    pty.expect("envsync passphrase: ");
    pty.type_line("not-the-passphrase-4711");
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=1"), "{out}");
    assert!(
        out.contains("error: cannot decrypt: wrong passphrase"),
        "{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
    assert!(!out.contains("not-the-passphrase-4711"), "echoed: {out}");
    assert!(!out.contains("prompt-secret-value"), "{out}");
    assert_eq!(bob.read_env(), None, "nothing may be written");
    terminal_restored(&out);
}

#[test]
fn the_right_passphrase_typed_at_the_prompt_pulls_without_echo() {
    let server = Server::start();
    let (_alice, bob) = teammate(&server, "prompt-right");
    let mut pty = bob.pty("git envsync pull; echo \"exit=$?\"; echo stty:; stty -a");
    pty.expect("envsync passphrase: ");
    pty.type_line(PASS);
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=0"), "{out}");
    assert!(!out.contains(PASS), "echoed: {out}");
    assert_eq!(bob.read_env().unwrap(), b"API_KEY=prompt-secret-value\n");
    terminal_restored(&out);
}

#[test]
fn the_first_push_of_a_project_asks_twice_and_refuses_a_mismatch() {
    let server = Server::start();
    let mut dev = Dev::new(&server, "prompt-first");
    dev.pass = None;
    dev.write_env("TOKEN=first-version\n");
    let mut pty = dev.pty(
        "git envsync push; echo \"exit=$?\"; git envsync push; echo \"exit=$?\"; echo stty:; stty -a",
    );
    pty.expect("envsync passphrase: ");
    pty.type_line(PASS);
    pty.expect("repeat the passphrase");
    pty.type_line("correct horse battery stapler");
    let refused = pty.expect("exit=");
    assert!(
        refused.contains("error: the two passphrases differ; nothing was pushed"),
        "{refused}"
    );
    pty.expect("2");
    pty.expect("envsync passphrase: ");
    pty.type_line(PASS);
    pty.expect("repeat the passphrase");
    pty.type_line(PASS);
    let pushed = pty.expect("exit=");
    assert!(
        pushed.contains("Pushed .env to main as version 1"),
        "{pushed}"
    );
    let (_, out) = pty.finish();
    assert!(out.contains("exit=0"), "{out}");
    assert!(!out.contains(PASS), "echoed: {out}");
    terminal_restored(&out);

    // It was sealed with the passphrase typed twice: a teammate with it reads it back.
    let bob = Dev::clone_of(&dev, &server, "bob@example.com");
    bob.envsync(&["pull"]).ok();
    assert_eq!(bob.read_env().unwrap(), b"TOKEN=first-version\n");

    // A later version is not the first: one prompt.
    dev.write_env("TOKEN=second-version\n");
    let mut pty = dev.pty("git envsync push; echo \"exit=$?\"");
    pty.expect("envsync passphrase: ");
    pty.type_line(PASS);
    let second = pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(second.contains("as version 2"), "{out}");
    assert!(!out.contains("repeat"), "{out}");
}

#[test]
fn an_empty_passphrase_at_a_terminal_says_so() {
    let server = Server::start();
    let (_alice, bob) = teammate(&server, "prompt-empty");
    let mut pty = bob.pty("git envsync pull; echo \"exit=$?\"; echo stty:; stty -a");
    pty.expect("envsync passphrase: ");
    pty.type_line("");
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("error: empty passphrase"), "{out}");
    assert!(!out.contains("run the command in a terminal"), "{out}");
    assert!(out.contains("exit=2"), "{out}");
    terminal_restored(&out);
}

#[test]
fn ctrl_c_at_the_prompt_leaves_echo_on() {
    let server = Server::start();
    let (_alice, bob) = teammate(&server, "prompt-ctrlc");
    // An interactive shell, as a user has: the command runs as a job of its own, Ctrl-C
    // interrupts that job, and the shell stays to check the terminal.
    let mut pty = bob.pty("sh -i");
    pty.type_line("git envsync pull");
    pty.expect("envsync passphrase: ");
    pty.send(b"half-typ");
    pty.send(b"\x03");
    pty.type_line("echo \"code:$?\"; echo stty:; stty -a; exit");
    // Interrupted by SIGINT, as the key means: the shell sees 128 + 2. git itself also
    // gets the SIGINT and, when its handler reaps git-envsync before its own wait does,
    // says `waitpid for git-envsync failed` and exits 128 (git's race, seen on a loaded
    // machine); git-envsync's part is the same either way.
    pty.expect("code:1");
    let (_, out) = pty.finish();
    assert!(
        out.contains("code:130")
            || out.contains("waitpid for git-envsync failed") && out.contains("code:128"),
        "not ended by the interrupt: {out}"
    );
    assert!(!out.contains("half-typ"), "echoed: {out}");
    assert!(!out.contains("panicked"), "{out}");
    assert_eq!(bob.read_env(), None);
    terminal_restored(&out);
}

#[test]
fn a_termination_signal_at_the_prompt_leaves_echo_on() {
    let server = Server::start();
    let (_alice, bob) = teammate(&server, "prompt-term");
    // In the background (its stdin the terminal again), so the shell can say its pid.
    let mut pty = bob.pty(
        "git envsync pull </dev/tty & echo \"pid=$!.\"; wait $!; echo \"exit=$?\"; echo stty:; stty -a",
    );
    pty.expect("pid=");
    let said = pty.expect(".");
    let pid: u32 = said
        .trim_end_matches('.')
        .trim()
        .parse()
        .ok()
        .unwrap_or_else(|| panic!("no pid: {said}"));
    pty.expect("envsync passphrase: ");
    envsync_tests::signal(pid, "TERM");
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=143"), "{out}");
    terminal_restored(&out);
}

/// `rotate` at a terminal draws a progress bar (and not the per-branch lines it prints to
/// a pipe, or to a terminal that cannot redraw, `TERM` unset); under `-q` it draws nothing.
#[test]
fn rotate_draws_a_progress_bar_at_a_terminal_only() {
    let server = Server::start();
    let alice = Dev::new(&server, "prompt-rotate");
    for branch in ["main", "b1", "b2"] {
        alice.write_env(format!("K_{branch}=v\n"));
        alice.envsync(&["push", "--branch", branch]).ok();
    }
    let mut pty = alice.pty(
        "TERM=xterm ENVSYNC_NEW_PASS='a brand new passphrase' git envsync rotate; echo \"exit=$?\"",
    );
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=0"), "{out}");
    assert!(out.contains("rotating "), "no bar drawn: {out}");
    assert!(out.contains("/3]"), "{out}");
    assert!(
        !out.contains("sealing and sending"),
        "a push's spinner over the bar: {out}"
    );
    assert!(
        !out.contains(": version "),
        "pipe lines on a terminal: {out}"
    );
    assert!(out.contains("Rotated 3 branches"), "{out}");

    let mut pty = alice.pty(
        "TERM=xterm ENVSYNC_PASS='a brand new passphrase' ENVSYNC_NEW_PASS='and yet another one' git envsync -q rotate; echo \"exit=$?\"",
    );
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=0"), "{out}");
    assert!(
        !out.contains("rotating") && !out.contains("Rotated"),
        "{out}"
    );

    // Every passphrase is asked for before the bar takes the terminal: the new one
    // (twice), then the current one.
    let mut pty = alice.pty("unset ENVSYNC_PASS; TERM=xterm git envsync rotate; echo \"exit=$?\"");
    let fourth = "a fourth passphrase, typed";
    pty.expect("new envsync passphrase: ");
    pty.type_line(fourth);
    pty.expect("repeat the new passphrase: ");
    pty.type_line(fourth);
    let before_bar = pty.expect("envsync passphrase: ");
    assert!(
        !before_bar.contains("rotating") && !before_bar.contains("/3]"),
        "the bar started before the prompt: {before_bar}"
    );
    pty.type_line("and yet another one");
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=0"), "{out}");
    let after = out.rsplit_once("envsync passphrase: ").unwrap().1;
    assert!(
        after.contains("rotating "),
        "no bar after the prompt: {out}"
    );
    assert!(
        after.contains("Rotated 3 branches of prompt-rotate for a passphrase"),
        "{out}"
    );
    assert!(!out.contains(fourth), "echoed: {out}");
}

/// `token revoke EMAIL` asks before revoking, quoting the token ids the server listed: a
/// server that slips terminal escapes into one gets them shown escaped, not obeyed.
#[test]
fn a_question_quoting_the_server_shows_its_escapes_escaped() {
    let server = Server::start();
    let mut owner = Dev::new(&server, "prompt-escape");
    owner.token = server.token("owner@example.com", "owner", &[]);
    let leaver = server.token("leaver@example.com", "developer", &["prompt-escape"]);
    let proxy = Proxy::start(&server.url, |req, up: &Upstream| {
        let mut answer = up.pass(req);
        if req.method == "GET" && req.path.starts_with("/tokens") {
            let mut json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
            for token in json.as_array_mut().unwrap() {
                if token["email"] == "leaver@example.com" {
                    token["jti"] = "x\u{1b}]0;pwned\u{7}y".into();
                }
            }
            answer.body = json.to_string();
        }
        answer
    });
    owner.server_url = proxy.url.clone();
    let mut pty = owner.pty("git envsync token revoke leaver@example.com; echo \"exit=$?\"");
    pty.expect("[y/N]");
    pty.type_line("n");
    let (_, output) = pty.finish();
    assert!(output.contains("x\\u{1b}]0;pwned\\u{7}y"), "{output}");
    assert!(!output.contains('\u{1b}'), "{output:?}");
    assert!(output.contains("nothing revoked"), "{output}");
    assert!(output.contains("exit=1"), "{output}");
    assert_eq!(server.request("GET", "/whoami", &leaver, None).status, 200);
}

/// An error line at a terminal is coloured (the label in bold red, then a reset), unless
/// `NO_COLOR` is set; over a pipe it is plain, unless `CLICOLOR_FORCE=1`.
#[test]
fn error_lines_are_coloured_at_a_terminal_unless_no_color() {
    let server = Server::start();
    let dev = Dev::new(&server, "colour");
    let red = "\u{1b}[1;31merror:\u{1b}[0m no merge in progress on main";
    let cyan = "\u{1b}[36mhint:\u{1b}[0m";
    // `Dev::pty` sets NO_COLOR=1; `env -u` takes it away for one command.
    let pty = dev.pty("env -u NO_COLOR git envsync merge; echo \"exit=$?\"");
    let (_, out) = pty.finish();
    assert!(out.contains(red), "not coloured: {out:?}");
    assert!(out.contains(cyan), "not coloured: {out:?}");
    assert!(out.contains("exit=1"), "{out:?}");
    let pty = dev.pty("git envsync merge; echo \"exit=$?\"");
    let (_, out) = pty.finish();
    assert!(
        out.contains("error: no merge in progress on main"),
        "{out:?}"
    );
    assert!(!out.contains('\u{1b}'), "coloured under NO_COLOR: {out:?}");

    let piped = dev.envsync(&["merge"]).code(1);
    assert!(piped.stderr.starts_with("error: no merge"), "{piped:#?}");
    assert!(!piped.stderr.contains('\u{1b}'), "{piped:#?}");
    let mut cmd = dev.envsync_cmd(&["merge"]);
    cmd.env("CLICOLOR_FORCE", "1");
    let forced = envsync_tests::Run::from(cmd.output().unwrap()).code(1);
    assert!(forced.stderr.starts_with(red), "{forced:#?}");
    assert!(forced.stderr.contains(cyan), "{forced:#?}");
}

/// A token that may not push (readonly, or a developer's for another project) is told so
/// before any passphrase is asked for or derived: no prompt at a terminal, no seal with
/// `ENVSYNC_PASS`, no push sent; exit 1 with the way out.
#[test]
fn a_token_that_may_not_push_is_told_so_before_any_passphrase() {
    let server = Server::start();
    let (_alice, mut bob) = teammate(&server, "prompt-readonly");
    bob.token = server.token("ro@example.com", "readonly", &["prompt-readonly"]);
    bob.write_env("API_KEY=bob\n");
    // At a terminal: the first push to a new branch would prompt to check the passphrase.
    let mut pty = bob.pty("git envsync push --branch topic; echo \"exit=$?\"");
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(
        out.contains("error: this token may not push to prompt-readonly (readonly)"),
        "{out}"
    );
    assert!(out.contains("hint: git envsync login"), "{out}");
    assert!(out.contains("developer token"), "{out}");
    assert!(out.contains("exit=1"), "{out}");
    assert!(!out.contains("passphrase:"), "prompted: {out}");

    // With ENVSYNC_PASS: nothing is sealed, nothing is sent.
    let recorder = Proxy::recorder(&server.url);
    bob.server_url = recorder.url.clone();
    bob.pass = Some(PASS.to_owned());
    for (token, why) in [
        (bob.token.clone(), "(readonly)"),
        (
            server.token("bob@example.com", "developer", &["another-project"]),
            "(a developer token for other projects)",
        ),
    ] {
        bob.token = token;
        for args in [&["push", "--branch", "topic"][..], &["push", "--force"][..]] {
            let out = bob.envsync(args).refused().code(1);
            assert!(
                out.stderr
                    .contains(&format!("this token may not push to prompt-readonly {why}")),
                "{args:?} {out:#?}"
            );
        }
    }
    let exchanges = recorder.exchanges();
    assert!(
        exchanges
            .iter()
            .all(|(r, _)| r.method == "GET" && !r.path.starts_with("/env/prompt-readonly/main?")),
        "no blob read, nothing pushed: {exchanges:#?}"
    );
}

/// `push --force` over a version this clone cannot verify (sealed with another
/// passphrase by a developer-token holder) has nothing to check a typed passphrase
/// against: it asks for it twice, as a project's first push does; a mismatch pushes
/// nothing, the same passphrase twice replaces the version.
#[test]
fn a_forced_push_over_an_unverifiable_version_asks_a_typed_passphrase_twice() {
    use envsync_common::envelope::{self, Binding, Seal};
    use envsync_common::secret::SecretString;
    let server = Server::start();
    let (alice, bob) = teammate(&server, "prompt-force");
    let other = SecretString::from("someone else's passphrase".to_owned());
    let sealed = envelope::seal(
        &Binding::new("prompt-force", "main", 2),
        b"API_KEY=forged\n",
        &Seal::Passphrase {
            passphrase: &other,
            work_factor: 10,
        },
    )
    .unwrap();
    let mallory = server.token("mallory@example.com", "developer", &["prompt-force"]);
    server.push_sealed(
        &mallory,
        "prompt-force",
        "main",
        &sealed,
        &["API_KEY"],
        Some(1),
    );
    bob.write_env("API_KEY=bob\n");

    let mut pty = bob.pty("git envsync push --force; echo \"exit=$?\"");
    pty.expect("envsync passphrase: ");
    pty.type_line(PASS);
    pty.expect("repeat the passphrase (main version 2 cannot be verified");
    pty.type_line("a different passphrase typed");
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("the two passphrases differ"), "{out}");
    assert!(out.contains("exit=2"), "{out}");
    assert!(!out.contains("pushing over"), "{out}");
    assert_eq!(
        server.versions(&alice.token, "prompt-force", "main").len(),
        2
    );

    let mut pty = bob.pty("git envsync push --force; echo \"exit=$?\"");
    pty.expect("envsync passphrase: ");
    pty.type_line(PASS);
    pty.expect("repeat the passphrase");
    pty.type_line(PASS);
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=0"), "{out}");
    assert!(
        out.contains("pushing over main version 2, which this clone cannot verify"),
        "{out}"
    );
    alice.envsync(&["pull"]).clean().ok();
    assert_eq!(alice.read_env().unwrap(), b"API_KEY=bob\n");
}

/// A push at a terminal shows a spinner saying what it seals and sends while scrypt and the
/// request run, and clears it: the lines that stay are the same as over a pipe. Not under
/// `--quiet`, not over a pipe, and not in a hook (git gives hooks no terminal on stdin).
#[test]
fn a_push_at_a_terminal_shows_a_spinner_while_it_seals_and_sends() {
    let server = Server::start();
    let alice = Dev::new(&server, "prompt-spinner");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();

    alice.write_env("A=2\n");
    let mut pty = alice.pty("TERM=xterm git envsync push; echo \"exit=$?\"");
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=0"), "{out}");
    assert!(
        out.contains("sealing and sending main version 2"),
        "no spinner drawn: {out}"
    );
    assert!(out.contains("Pushed .env to main as version 2"), "{out}");

    alice.write_env("A=3\n");
    let mut pty = alice.pty("TERM=xterm git envsync -q push; echo \"exit=$?\"");
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=0"), "{out}");
    assert!(!out.contains("sealing and sending"), "{out}");

    alice.write_env("A=4\n");
    let piped = alice.envsync(&["push"]).clean().ok();
    assert!(!piped.stderr.contains("sealing"), "{piped:#?}");
    assert_eq!(
        server
            .latest(&alice.token, "prompt-spinner", "main")
            .unwrap()
            .0,
        4
    );

    // A hook at a terminal: the commit's auto-push draws nothing.
    alice.envsync(&["hooks", "install"]).clean().ok();
    alice.write_env("A=5\n");
    let mut pty = alice.pty("TERM=xterm git commit -q --allow-empty -m five; echo \"exit=$?\"");
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=0"), "{out}");
    assert!(
        !out.contains("sealing and sending"),
        "spinner in a hook: {out}"
    );
    assert_eq!(
        server
            .latest(&alice.token, "prompt-spinner", "main")
            .unwrap()
            .0,
        5
    );
}
