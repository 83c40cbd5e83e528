//! The threat model of the README's Security section, staged for real: a teammate who can push a
//! branch commits a hostile `.envsync.toml` (another server, an extra member, an env file
//! through a symlinked directory, a huge work factor); a developer-token holder pushes a
//! forged version; a server sends terminal escapes. The victim is a clone with the hooks
//! installed and a stored login, as a real user's is. Each attack must reach nothing: no
//! request to the attacker's server, no file outside the work tree read or written, the
//! victim's env file untouched, no version pushed for them.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope::{self, Binding, Seal};
use envsync_common::signing::SigningKey;
use envsync_tests::proxy::Proxy;
use envsync_tests::{Dev, Run, Server};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Generous bound for "git is not held up" (a hang would be 30 s or more).
const NOT_STUCK: Duration = Duration::from_secs(8);

/// The victim: a repository with envsync set up, hooks installed, logged in (no
/// credentials in the environment), `main` pushed, and an unpushed edit in `.env`.
fn victim(server: &Server, project: &str) -> Dev {
    let mut alice = Dev::new(server, project);
    alice.envsync(&["hooks", "install"]).clean().ok();
    alice.login();
    alice.write_env("SECRET=alice-only\n");
    alice.envsync(&["push"]).clean().ok();
    alice.write_env("SECRET=alice-only\nWIP=unpushed\n");
    alice
}

/// A teammate's clone that commits `config` (and whatever `extra` puts in the work tree)
/// on `branch` and pushes it to the victim's repository.
fn hostile_branch(
    victim: &Dev,
    server: &Server,
    branch: &str,
    config: &str,
    extra: impl FnOnce(&Path),
) {
    let mallory = Dev::clone_of(victim, server, "mallory@example.com");
    mallory.git(&["checkout", "-q", "-b", branch]);
    fs::write(mallory.repo.join(".envsync.toml"), config).unwrap();
    extra(&mallory.repo);
    mallory.git(&["add", "-A"]);
    mallory.git(&["commit", "-q", "-m", "harmless-looking change"]);
    mallory.git(&["push", "-q", "origin", branch]);
}

/// How many versions `branch` has on the server.
fn versions(server: &Server, dev: &Dev, branch: &str) -> usize {
    server.versions(&dev.token, &dev.project(), branch).len()
}

#[test]
fn a_branch_naming_another_server_and_member_gets_no_token_and_no_plaintext() {
    let server = Server::start();
    let alice = victim(&server, "victim");
    let env_before = alice.read_env();
    // The attacker's server: a recorder in front of the real one, so that a token sent
    // to it would even work.
    let attacker = Proxy::recorder(&server.url);
    let mallory_key = age::x25519::Identity::generate().to_public();
    let mallory_signer = SigningKey::generate().unwrap().public();
    let config = format!(
        "project = \"victim\"\nserver = \"{}\"\ndefault_branch = \"main\"\nrecipients = [{{ name = \"mallory\", key = \"{mallory_key}\", signer = \"{mallory_signer}\" }}]\n",
        attacker.url
    );
    hostile_branch(&alice, &server, "evil", &config, |_| {});

    let start = Instant::now();
    let out = alice.git_run(&["checkout", "-q", "evil"]).ok();
    assert!(start.elapsed() < NOT_STUCK);
    let lines = out.envsync_lines();
    assert_eq!(
        lines,
        [
            "envsync: .envsync.toml changed since this clone trusted it (server, member added); the hooks do nothing until you review it with git envsync trust"
        ],
        "one line: {out:#?}"
    );
    // A commit on the branch: the hooks do nothing either.
    let out = alice
        .git_run(&["commit", "-q", "--allow-empty", "-m", "x"])
        .ok();
    // One line from each hook that ran (pre-commit, then post-commit), the checkout's.
    assert_eq!(out.envsync_lines(), [lines[0], lines[0]], "{out:#?}");
    assert!(
        attacker.exchanges().is_empty(),
        "{:#?}",
        attacker.exchanges()
    );

    // Every command refuses, with one line and the way to consent.
    for args in [
        &["pull"][..],
        &["push"][..],
        &["diff"][..],
        &["status"][..],
        &["run", "--", "true"][..],
    ] {
        let out = alice.envsync(args).refused().code(2);
        assert!(
            out.stderr.contains("changed since this clone trusted it"),
            "{args:?} {out:#?}"
        );
        assert!(out.stderr.contains("server"), "{args:?} {out:#?}");
    }

    // Even a careless trust sends the stored token nowhere but where it was stored for.
    alice.trust();
    for args in [
        &["pull"][..],
        &["push", "--branch", "evil"][..],
        &["diff"][..],
    ] {
        let out = alice.envsync(args).refused().code(2);
        assert!(out.stderr.contains("no token for"), "{args:?} {out:#?}");
    }

    assert!(
        attacker.exchanges().is_empty(),
        "the attacker's server was contacted: {:#?}",
        attacker.exchanges()
    );
    assert_eq!(alice.read_env(), env_before, "the env file changed");
    assert_eq!(versions(&server, &alice, "main"), 1);
    assert_eq!(versions(&server, &alice, "evil"), 0);
}

#[test]
fn an_env_file_through_a_symlinked_directory_reads_and_writes_nothing_outside() {
    let server = Server::start();
    let alice = victim(&server, "links");
    let home_file = alice.home.join(".bash_aliases");
    fs::write(&home_file, "alias ll='ls -l'\n").unwrap();
    let other_project = alice.home.join("other-project");
    fs::create_dir_all(&other_project).unwrap();
    fs::write(other_project.join(".env"), "OTHER_SECRET=theirs\n").unwrap();
    let listing = |dir: &Path| {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let home_before = listing(&alice.home);
    let env_before = alice.read_env();

    let home = alice.home.clone();
    hostile_branch(
        &alice,
        &server,
        "evil-home",
        "project = \"links\"\ndefault_branch = \"main\"\nenv_file = \"h/.bash_aliases\"\n",
        |repo| std::os::unix::fs::symlink(&home, repo.join("h")).unwrap(),
    );
    let other = other_project.clone();
    hostile_branch(
        &alice,
        &server,
        "evil-creds",
        "project = \"links\"\ndefault_branch = \"main\"\nenv_file = \"creds/.env\"\n",
        |repo| std::os::unix::fs::symlink(&other, repo.join("creds")).unwrap(),
    );

    for branch in ["evil-home", "evil-creds"] {
        alice.git_run(&["checkout", "-q", branch]).ok();
        // Trusted by mistake: the path itself is still refused, for reads and writes.
        alice.trust();
        alice.git_run(&["checkout", "-q", "main"]).ok();
        let out = alice.git_run(&["checkout", "-q", branch]).ok();
        let lines = out.envsync_lines();
        let env_file = if branch == "evil-home" {
            "h/.bash_aliases"
        } else {
            "creds/.env"
        };
        assert_eq!(
            lines,
            [format!(
                "envsync: cannot reach {env_file}: a directory on its path is a symbolic link or not a directory; envsync never follows links in env_file"
            )],
            "{out:#?}"
        );
        for args in [
            &["pull"][..],
            &["pull", "--force"][..],
            &["push", "--branch", branch][..],
            &["status"][..],
        ] {
            let out = alice.envsync(args).refused().code(2);
            assert!(
                out.stderr.contains("symbolic link"),
                "{branch} {args:?}: {out:#?}"
            );
        }
        alice.git_run(&["checkout", "-q", "main"]).ok();
    }
    assert_eq!(
        fs::read_to_string(&home_file).unwrap(),
        "alias ll='ls -l'\n"
    );
    assert_eq!(
        fs::read_to_string(other_project.join(".env")).unwrap(),
        "OTHER_SECRET=theirs\n"
    );
    assert_eq!(
        listing(&other_project).len(),
        1,
        "nothing written beside the other project's file"
    );
    assert_eq!(
        listing(&alice.home),
        home_before,
        "nothing written in the home directory"
    );
    assert_eq!(alice.read_env(), env_before);
    // Nothing of theirs was pushed: main still has its one version, no branch gained one.
    assert_eq!(versions(&server, &alice, "main"), 1);
    assert_eq!(versions(&server, &alice, "evil-home"), 0);
    assert_eq!(versions(&server, &alice, "evil-creds"), 0);
}

/// A merge in progress on `cfg/.env`, then `cfg` becomes a symbolic link to another
/// directory holding a file of the merge file's name (a checkout of a branch that commits
/// the link, say): `merge --abort` forgets the merge and removes nothing through the link.
#[test]
fn merge_abort_removes_nothing_through_a_symlinked_directory() {
    let server = Server::start();
    let alice = Dev::new(&server, "mergelink");
    fs::write(
        alice.repo.join(".envsync.toml"),
        "project = \"mergelink\"\ndefault_branch = \"main\"\nenv_file = \"cfg/.env\"\n",
    )
    .unwrap();
    fs::write(alice.repo.join(".gitignore"), "/cfg/\n").unwrap();
    alice.git(&["commit", "-qam", "the env file in cfg/"]);
    alice.trust();
    fs::create_dir(alice.repo.join("cfg")).unwrap();
    fs::write(alice.repo.join("cfg/.env"), "A=1\n").unwrap();
    alice.envsync(&["push"]).clean().ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    fs::create_dir(bob.repo.join("cfg")).unwrap();
    bob.envsync(&["pull"]).clean().ok();
    fs::write(alice.repo.join("cfg/.env"), "A=2\n").unwrap();
    alice.envsync(&["push"]).clean().ok();
    fs::write(bob.repo.join("cfg/.env"), "A=3\n").unwrap();
    bob.envsync(&["push"]).refused().code(1);
    bob.envsync(&["merge"]).clean().ok();

    let elsewhere = bob.home.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join(".env.merge"), "NOT_OURS=1\n").unwrap();
    fs::rename(bob.repo.join("cfg"), bob.home.join("cfg-before")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, bob.repo.join("cfg")).unwrap();
    bob.envsync(&["merge", "--abort"]).clean().ok();
    assert_eq!(
        fs::read_to_string(elsewhere.join(".env.merge")).unwrap(),
        "NOT_OURS=1\n",
        "removed through the link"
    );
    bob.envsync(&["merge"]).refused().code(1);
}

#[test]
fn a_huge_work_factor_is_one_line_never_an_abort_or_a_hang() {
    let server = Server::start();
    let alice = victim(&server, "scrypt");
    hostile_branch(
        &alice,
        &server,
        "evil-wf",
        "project = \"scrypt\"\ndefault_branch = \"main\"\nwork_factor = 30\n",
        |_| {},
    );
    let start = Instant::now();
    let out = alice.git_run(&["checkout", "-q", "evil-wf"]).ok();
    assert!(start.elapsed() < NOT_STUCK, "{:?}", start.elapsed());
    let line = "envsync: .envsync.toml: work_factor 30 is outside 18..=22 (scrypt above 22 needs over 4 GiB, and nobody could open the files)";
    assert_eq!(out.envsync_lines(), [line], "{out:#?}");
    alice.write_env("SECRET=alice-only\nWIP=more\n");
    let out = alice
        .git_run(&["commit", "-q", "--allow-empty", "-m", "x"])
        .ok();
    // One line from each hook that ran (pre-commit, then post-commit).
    assert_eq!(out.envsync_lines(), [line, line], "{out:#?}");
    for args in [&["push"][..], &["pull"][..], &["trust", "--yes"][..]] {
        let start = Instant::now();
        let out = alice.envsync(args).refused().code(2);
        assert!(start.elapsed() < NOT_STUCK);
        assert!(out.stderr.contains("outside 18..=22"), "{args:?} {out:#?}");
    }
    assert_eq!(alice.read_env().unwrap(), b"SECRET=alice-only\nWIP=more\n");
    assert_eq!(versions(&server, &alice, "main"), 1);
    assert_eq!(versions(&server, &alice, "evil-wf"), 0);
}

/// alice and bob in team mode; returns them with the project's age recipients.
fn team(server: &Server, project: &str) -> (Dev, Dev, Vec<age::x25519::Recipient>) {
    let mut alice = Dev::new(server, project);
    alice.pass = None;
    let alice_line = alice
        .envsync(&["keygen"])
        .clean()
        .ok()
        .stdout
        .trim()
        .to_owned();
    let mut bob = Dev::clone_of(&alice, server, "bob@example.com");
    bob.pass = None;
    let bob_line = bob
        .envsync(&["keygen"])
        .clean()
        .ok()
        .stdout
        .trim()
        .to_owned();
    alice
        .envsync(&["members", "add", "alice@example.com", &alice_line])
        .clean()
        .ok();
    alice
        .envsync(&["members", "add", "bob@example.com", &bob_line])
        .clean()
        .ok();
    alice.git(&["commit", "-qam", "team keys"]);
    bob.git(&["pull", "-q"]);
    bob.trust();
    let recipients = [&alice_line, &bob_line]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    (alice, bob, recipients)
}

/// What a developer-token holder pushes to `project`'s main on top of version `base`:
/// `armored`, with the key list of the forged file (`API_KEY`, `NODE_OPTIONS`).
fn forged_push(server: &Server, token: &str, project: &str, armored: &str, base: u64) {
    let keys = ["API_KEY", "NODE_OPTIONS"];
    server.push_sealed(token, project, "main", armored, &keys, Some(base));
}

/// `plaintext` sealed by the stock `age` tool to one X25519 public key, armored.
fn stock_age_seal(plaintext: &str, public_key: &str) -> String {
    let mut cmd = std::process::Command::new("age");
    cmd.args(["--encrypt", "--armor", "--recipient", public_key]);
    let out = envsync_tests::run_with_stdin(&mut cmd, plaintext);
    assert_eq!(
        out.code, 0,
        "the stock age tool must be installed: {out:#?}"
    );
    out.stdout
}

/// A passphrase-mode project whose user also has an age identity (a member of some
/// team-mode project, whose committed `.envsync.toml` shows her public key to anyone):
/// a developer-token holder seals a version to that key with the stock `age` tool. It
/// would open with her identity, and passphrase mode checks no signature: only the mode
/// check keeps it out of pull, run and the hooks.
#[test]
fn a_version_sealed_to_the_users_own_age_key_is_refused_in_passphrase_mode() {
    let server = Server::start();
    let alice = Dev::hooked(&server, "ownkey");
    alice.write_env("API_KEY=real\n");
    alice.envsync(&["push"]).clean().ok();
    let line = alice.envsync(&["keygen"]).clean().ok().stdout;
    let public_key = line.split_whitespace().next().unwrap().to_owned();

    let mallory_token = server.token("mallory@example.com", "developer", &["ownkey"]);
    let plaintext = "# envsync project=ownkey branch=main version=2\nAPI_KEY=real\nNODE_OPTIONS=--require=./evil.js\n";
    forged_push(
        &server,
        &mallory_token,
        "ownkey",
        &stock_age_seal(plaintext, &public_key),
        1,
    );

    for args in [&["pull"][..], &["pull", "--force"][..]] {
        let out = alice.envsync(args).refused().code(1);
        assert!(
            out.stderr
                .contains("refusing version 2 of main: it is sealed to age keys"),
            "{out:#?}"
        );
        assert!(out.stderr.contains("passphrase mode"), "{out:#?}");
        assert!(out.stderr.contains("hint: nothing was written"), "{out:#?}");
        assert_eq!(alice.read_env().unwrap(), b"API_KEY=real\n");
    }
    // run reads the server when the clone has no file of its own.
    fs::remove_file(alice.env_path()).unwrap();
    let out = alice.envsync(&["run", "--", "env"]).refused().code(1);
    assert!(out.stderr.contains("sealed to age keys"), "{out:#?}");
    assert!(!out.stdout.contains("NODE_OPTIONS"), "{out:#?}");
    assert!(alice.read_env().is_none());
    alice.write_env("API_KEY=real\n");
    // The hooks: a checkout to a branch that falls back to main writes nothing.
    let out = alice.git_run(&["checkout", "-q", "-b", "topic"]).ok();
    assert!(
        out.envsync_lines()
            .iter()
            .any(|l| l.contains("sealed to age keys")),
        "{out:#?}"
    );
    assert_eq!(alice.read_env().unwrap(), b"API_KEY=real\n");
    alice.git_run(&["checkout", "-q", "main"]).ok();
    assert_eq!(alice.read_env().unwrap(), b"API_KEY=real\n");
    // A clone that never synced the branch refuses it the same way.
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    let out = bob.envsync(&["pull"]).refused().code(1);
    assert!(out.stderr.contains("sealed to age keys"), "{out:#?}");
    assert!(bob.read_env().is_none());
}

/// The other way round: in team mode, a version sealed with a passphrase is refused
/// before anything asks for one (only `rotate`, moving a project from passphrase mode,
/// reads those).
#[test]
fn a_passphrase_version_is_refused_in_team_mode_without_asking_for_a_passphrase() {
    let server = Server::start();
    let (alice, bob, _) = team(&server, "nopass");
    alice.write_env("API_KEY=real\n");
    alice.envsync(&["push"]).clean().ok();
    bob.envsync(&["pull"]).clean().ok();

    let mallory_token = server.token("mallory@example.com", "developer", &["nopass"]);
    let passphrase =
        envsync_common::secret::SecretString::from("mallory's own passphrase".to_owned());
    let armored = envelope::seal(
        &Binding::new("nopass", "main", 2),
        b"API_KEY=real\nNODE_OPTIONS=--require=./evil.js\n",
        &Seal::Passphrase {
            passphrase: &passphrase,
            work_factor: 10,
        },
    )
    .unwrap();
    forged_push(&server, &mallory_token, "nopass", &armored, 1);
    let out = bob.envsync(&["pull"]).refused().code(1);
    assert!(
        out.stderr
            .contains("refusing version 2 of main: it is sealed with a passphrase"),
        "{out:#?}"
    );
    assert!(!out.stderr.contains("no passphrase available"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), b"API_KEY=real\n");
}

#[test]
fn a_version_no_member_signed_is_refused_by_pull_run_and_the_hooks() {
    let server = Server::start();
    let (alice, bob, recipients) = team(&server, "forge");
    bob.envsync(&["hooks", "install"]).clean().ok();
    alice.write_env("API_KEY=real\n");
    alice.envsync(&["push"]).clean().ok();
    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"API_KEY=real\n");

    // mallory holds a developer token and reads the public recipients from the committed
    // file: enough to seal a well-formed version for the team. Unsigned, then signed by a
    // key no member has.
    let mallory_token = server.token("mallory@example.com", "developer", &["forge"]);
    let evil = b"API_KEY=real\nNODE_OPTIONS=--require=./evil.js\n";
    let stranger = SigningKey::generate().unwrap();
    for (n, signed) in [(2u64, false), (3, true)] {
        let binding = Binding::new("forge", "main", n);
        let to = Seal::Recipients(&recipients);
        let armored = if signed {
            envelope::seal_signed(&binding, evil, &to, &stranger).unwrap()
        } else {
            envelope::seal(&binding, evil, &to).unwrap()
        };
        forged_push(&server, &mallory_token, "forge", &armored, n - 1);

        let out = bob.envsync(&["pull"]).refused().code(1);
        let why = if signed {
            "no member's signing key"
        } else {
            "it is not signed"
        };
        assert!(out.stderr.contains(why), "{out:#?}");
        assert_eq!(bob.read_env().unwrap(), b"API_KEY=real\n");
        // run reads the server when the clone has no file of its own.
        fs::remove_file(bob.env_path()).unwrap();
        let out = bob.envsync(&["run", "--", "env"]).refused().code(1);
        assert!(!out.stdout.contains("NODE_OPTIONS"), "{out:#?}");
        bob.write_env("API_KEY=real\n");
        // The hooks: a checkout to a branch that falls back to main writes nothing.
        bob.git(&["checkout", "-q", "-b", &format!("topic-{n}")]);
        assert_eq!(bob.read_env().unwrap(), b"API_KEY=real\n");
        bob.git(&["checkout", "-q", "main"]);
        assert_eq!(bob.read_env().unwrap(), b"API_KEY=real\n");
    }
    // The log shows the server's claim beside what the signatures say.
    let log = bob.envsync(&["log"]).clean().ok();
    let lines: Vec<&str> = log
        .stdout
        .lines()
        .filter(|l| l.starts_with("version"))
        .collect();
    assert_eq!(lines.len(), 3, "{log:#?}");
    assert!(
        lines[0].contains("mallory@example.com") && lines[0].contains("NOT VERIFIED"),
        "{log:#?}"
    );
    assert!(
        lines[1].contains("mallory@example.com") && lines[1].contains("NOT VERIFIED"),
        "{log:#?}"
    );
    assert!(lines[2].contains("signed by alice@example.com"), "{log:#?}");
    // A member's real version is accepted again.
    alice.write_env("API_KEY=rotated\n");
    alice.envsync(&["push", "--force"]).clean().ok();
    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"API_KEY=rotated\n");
}

#[test]
fn run_gives_the_command_none_of_our_credentials() {
    let server = Server::start();
    let alice = Dev::new(&server, "creds");
    alice.write_env("APP_SETTING=visible\n");
    alice.envsync(&["push"]).clean().ok();
    let mut cmd = alice.envsync_cmd(&["run", "--", "env"]);
    cmd.env("ENVSYNC_NEW_PASS", "another passphrase entirely");
    let out = Run::from(cmd.output().unwrap()).clean().ok();
    assert!(out.stdout.contains("APP_SETTING=visible"), "{out:#?}");
    for leak in [
        "ENVSYNC_TOKEN",
        "ENVSYNC_PASS",
        "ENVSYNC_NEW_PASS",
        alice.token.as_str(),
        envsync_tests::PASS,
        "another passphrase entirely",
    ] {
        assert!(!out.stdout.contains(leak), "{leak} reached the command");
    }
}

#[test]
fn what_a_server_sends_reaches_the_terminal_escaped() {
    let server = Server::start();
    let alice = Dev::new(&server, "escape");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();
    // A server that claims a pusher whose "email" clears the screen, retitles the
    // terminal and reverses the text after it; and errors that carry the same.
    let hostile = "x\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}moc.live@";
    let proxy = Proxy::start(&server.url, move |req, up| {
        let resp = up.pass(req);
        if req.path.contains("/versions") {
            let mut v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
            let list = match v.get_mut("versions") {
                Some(paged) => paged,
                None => &mut v,
            };
            for version in list.as_array_mut().unwrap() {
                version["pushed_by"] = hostile.into();
            }
            return envsync_tests::Response {
                status: 200,
                body: v.to_string(),
            };
        }
        if req.path.ends_with("/keys") {
            return envsync_tests::Response {
                status: 500,
                body: serde_json::json!({"error": hostile, "message": hostile}).to_string(),
            };
        }
        resp
    });
    let mut bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.server_url = proxy.url.clone();
    let log = bob.envsync(&["log"]).clean().ok();
    let diff = bob.envsync(&["diff"]).clean().code(3);
    for out in [&log, &diff] {
        let all = format!("{}{}", out.stdout, out.stderr);
        for raw in ['\u{1b}', '\u{7}', '\u{202e}'] {
            assert!(!all.contains(raw), "{raw:?} reached the terminal: {all:?}");
        }
    }
    assert!(log.stdout.contains("\\u{1b}[2J"), "{log:#?}");
    assert!(diff.stderr.contains("\\u{202e}"), "{diff:#?}");
}

#[test]
fn bidi_branch_names_are_refused() {
    let server = Server::start();
    let alice = Dev::new(&server, "bidi");
    alice.write_env("A=1\n");
    let out = alice
        .envsync(&["push", "--branch", "main\u{202e}gol"])
        .refused()
        .code(2);
    assert!(out.stderr.contains("bidirectional"), "{out:#?}");
    let r = server.request("GET", "/env/bidi/main%E2%80%AEgol/keys", &alice.token, None);
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn forget_wipes_the_sealed_copies_and_state() {
    let server = Server::start();
    let alice = Dev::new(&server, "forget");
    alice.write_env("A=1\n");
    alice.envsync(&["push", "--branch", "other"]).clean().ok();
    alice.envsync(&["push", "--branch", "main"]).clean().ok();
    let branches = alice.repo.join(".git/envsync/forget/branches");
    assert_eq!(
        fs::read_dir(&branches).unwrap().count(),
        4,
        "json + age for two branches"
    );
    alice.envsync(&["forget"]).clean().ok();
    assert_eq!(fs::read_dir(&branches).unwrap().count(), 2, "other is kept");
    let status = alice.envsync(&["status"]).clean().ok();
    assert!(status.stdout.contains("never synced"), "{status:#?}");
    assert_eq!(
        alice.read_env().unwrap(),
        b"A=1\n",
        "the file itself is left alone"
    );
    alice.envsync(&["forget", "--all"]).clean().ok();
    assert!(!alice.repo.join(".git/envsync/forget").exists());
    // And the clone recovers by pulling (the file counts as never synced: --force).
    alice.envsync(&["pull", "--force"]).clean().ok();
}

/// Which project's state `forget` wipes is the trusted settings' to say: on a branch
/// whose untrusted `.envsync.toml` names another project this clone keeps state for,
/// `forget --all` is refused like every command, and that state survives.
#[test]
fn forget_on_an_untrusted_config_wipes_nothing() {
    let server = Server::start();
    let kept_token = server.token("dev@example.com", "developer", &["kept", "forget-now"]);
    let mut alice = Dev::new(&server, "kept");
    alice.token = kept_token;
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();
    // The repository moves on to another project id; the old one's state stays.
    fs::write(
        alice.repo.join(".envsync.toml"),
        "project = \"forget-now\"\ndefault_branch = \"main\"\n",
    )
    .unwrap();
    alice.git(&["commit", "-qam", "new project id"]);
    alice.trust();
    alice.envsync(&["push"]).clean().ok();
    let kept = alice.repo.join(".git/envsync/kept");
    assert!(kept.exists());

    hostile_branch(
        &alice,
        &server,
        "evil-forget",
        "project = \"kept\"\ndefault_branch = \"evil-forget\"\n",
        |_| {},
    );
    alice.git_run(&["checkout", "-q", "evil-forget"]).ok();
    for args in [&["forget", "--all"][..], &["forget"][..]] {
        let out = alice.envsync(args).refused().code(2);
        assert!(out.stderr.contains(".envsync.toml"), "{args:?} {out:#?}");
        assert!(kept.exists(), "{args:?} wiped another project's state");
    }
    assert!(alice.repo.join(".git/envsync/forget-now").exists());
}

/// `forget --branch B` takes a merge in progress on B with it (its sealed copy of their
/// version included), and leaves one on another branch alone.
#[test]
fn forget_wipes_a_merge_in_progress_on_that_branch_only() {
    let server = Server::start();
    let alice = Dev::new(&server, "forget-merge");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    alice.write_env("A=2\n");
    alice.envsync(&["push"]).clean().ok();
    bob.write_env("A=3\n");
    bob.envsync(&["push"]).refused().code(1);
    let state = bob.repo.join(".git/envsync/forget-merge");
    let theirs = state.join("merge-theirs.age");
    assert!(theirs.exists() && state.join("merge.json").exists());

    bob.envsync(&["forget", "--branch", "other"]).clean().ok();
    assert!(theirs.exists(), "another branch's merge was wiped");
    bob.envsync(&["merge"]).clean().ok();

    bob.envsync(&["forget", "--branch", "main"]).clean().ok();
    assert!(!theirs.exists());
    assert!(!state.join("merge.json").exists());
    bob.envsync(&["merge"]).refused().code(1);
    assert_eq!(bob.read_env().unwrap(), b"A=3\n", "the file is left alone");
}

/// A hook never pushes edits under settings other than the ones they were made under:
/// alice edits the env file under the settings she trusted; a teammate commits a change
/// to `.envsync.toml`, which she pulls with git and trusts; her next commit, and a
/// checkout of another branch, each say in one line that the edits are not pushed, and
/// the server gets no version. An explicit push, after checking, still publishes them.
#[test]
fn a_hook_never_pushes_edits_made_under_other_settings() {
    let server = Server::start();
    let alice = victim(&server, "resettled");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    fs::write(
        bob.repo.join(".envsync.toml"),
        "project = \"resettled\"\ndefault_branch = \"develop\"\n",
    )
    .unwrap();
    bob.git(&["commit", "-qam", "develop is the default branch now"]);
    bob.git(&["checkout", "-q", "-b", "topic"]);
    bob.commit("topic work").ok();
    let bob_repo = bob.repo.to_str().unwrap();
    alice.git(&["pull", "-q", "--ff-only", bob_repo, "main"]);
    let trusted = alice.envsync(&["trust", "--yes"]).clean().ok();
    assert!(
        trusted.stdout.contains("default_branch: main -> develop"),
        "{trusted:#?}"
    );
    let env_before = alice.read_env();

    let out = alice.commit("a commit under the new settings").ok();
    assert_eq!(
        out.envsync_lines(),
        [
            "envsync: .env was synced under other settings; not pushed (git envsync push, after checking it)"
        ],
        "{out:#?}"
    );
    assert_eq!(versions(&server, &alice, "main"), 1);

    alice.git(&["fetch", "-q", bob_repo, "topic:topic"]);
    let out = alice.git_run(&["checkout", "-q", "topic"]).ok();
    assert_eq!(
        out.envsync_lines(),
        [
            "envsync: kept your edits to main v1 in .env (made under other settings, not pushed); it is not topic's env"
        ],
        "{out:#?}"
    );
    assert_eq!(versions(&server, &alice, "main"), 1);
    assert_eq!(versions(&server, &alice, "topic"), 0);
    assert_eq!(alice.read_env(), env_before);

    // Back on main, the user's own push publishes them.
    alice.git_run(&["checkout", "-q", "main"]).ok();
    alice.envsync(&["push"]).clean().ok();
    assert_eq!(versions(&server, &alice, "main"), 2);
}

/// Versions pushed in team mode before signatures existed carry none: pull refuses them,
/// `rotate` refuses them too and names `--accept-unsigned`, which re-signs them as the
/// rotating member's after she has checked them; pull takes the re-signed version.
#[test]
fn rotate_accept_unsigned_moves_unsigned_team_versions_over() {
    let server = Server::start();
    let (alice, bob, recipients) = team(&server, "unsigned");
    alice.write_env("API_KEY=signed\n");
    alice.envsync(&["push"]).clean().ok();
    bob.envsync(&["pull"]).clean().ok();
    // What an older client pushed: sealed to the members, no signature.
    // (The key list `forged_push` sends: API_KEY and NODE_OPTIONS.)
    let old = b"API_KEY=from-before-signatures\nNODE_OPTIONS=--max-old-space-size=4096\n";
    let armored = envelope::seal(
        &Binding::new("unsigned", "main", 2),
        old,
        &Seal::Recipients(&recipients),
    )
    .unwrap();
    forged_push(&server, &alice.token, "unsigned", &armored, 1);

    let out = bob.envsync(&["pull"]).refused().code(1);
    assert!(
        out.stderr
            .contains("refusing version 2 of main: it is not signed"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("rotate --accept-unsigned"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), b"API_KEY=signed\n");

    let out = alice.envsync(&["rotate"]).refused().code(1);
    assert!(
        out.stderr
            .contains("error: main: refusing version 2 of main: it is not signed"),
        "{out:#?}"
    );
    assert!(
        out.stderr.contains(
            "hint: nothing was written; versions from before signatures move over with git envsync rotate --accept-unsigned"
        ),
        "{out:#?}"
    );
    assert_eq!(versions(&server, &alice, "main"), 2, "rotate pushed");

    let out = alice.envsync(&["rotate", "--accept-unsigned"]).clean().ok();
    assert!(
        out.stderr
            .contains("main: version 2 was not signed; re-signing it as yours (--accept-unsigned)"),
        "{out:#?}"
    );
    assert!(
        out.stderr.contains(
            "Rotated 1 branch of unsigned for 2 members (alice@example.com, bob@example.com)"
        ),
        "{out:#?}"
    );
    assert_eq!(versions(&server, &alice, "main"), 3);

    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), old);
    let log = bob.envsync(&["log"]).clean().ok();
    let newest = log
        .stdout
        .lines()
        .find(|l| l.starts_with("version 3"))
        .unwrap();
    assert!(newest.contains("signed by alice@example.com"), "{log:#?}");
}

/// `git envsync trust` at a terminal: it shows what changed since the settings last
/// trusted (each changed field, before and after; the member added) and asks. `n` trusts
/// nothing: the record is byte-for-byte as before and commands still refuse; `y` trusts.
#[test]
fn trust_at_a_terminal_shows_what_changed_and_asks() {
    let server = Server::start();
    let alice = Dev::new(&server, "asked");
    let record = alice.repo.join(".git/envsync/trust.json");
    let record_before = fs::read(&record).unwrap();
    let key = age::x25519::Identity::generate().to_public();
    let signer = SigningKey::generate().unwrap().public();
    fs::write(
        alice.repo.join(".envsync.toml"),
        format!(
            "project = \"asked\"\ndefault_branch = \"develop\"\nwork_factor = 20\nrecipients = [{{ name = \"carol\", key = \"{key}\", signer = \"{signer}\" }}]\n"
        ),
    )
    .unwrap();
    alice.git(&["commit", "-qam", "a teammate's change"]);

    for answer in ["n", "y"] {
        let mut pty = alice.pty("git envsync trust; echo \"exit=$?\"");
        let shown = pty.expect("Trust these settings for this clone? [y/N] ");
        pty.type_line(answer);
        pty.expect("exit=");
        let (_, out) = pty.finish();
        for line in [
            ".envsync.toml changed since you last trusted it:",
            "  default_branch: main -> develop",
            "  work_factor: (unset) -> 20",
            &format!("  member added: carol (key {key}, signer {signer})"),
        ] {
            assert!(shown.contains(line), "{line:?} not shown: {shown}");
        }
        assert!(
            !shown.contains("project:"),
            "an unchanged field shown: {shown}"
        );
        if answer == "n" {
            assert!(out.contains("error: not trusted; nothing changed"), "{out}");
            assert!(out.contains("exit=1"), "{out}");
            assert_eq!(fs::read(&record).unwrap(), record_before, "'n' trusted");
            let refused = alice.envsync(&["status"]).refused().code(2);
            assert!(
                refused
                    .stderr
                    .contains("changed since this clone trusted it"),
                "{refused:#?}"
            );
        } else {
            assert!(
                out.contains("Trusted .envsync.toml (project asked)"),
                "{out}"
            );
            assert!(out.contains("exit=0"), "{out}");
        }
    }
    let again = alice.envsync(&["trust"]).clean().ok();
    assert!(again.stderr.contains("already trusted"), "{again:#?}");
}

/// A token goes over plain http only to this machine, or to a server whose login recorded
/// `--insecure-http`. `[::ffff:127.0.0.1]` is an address envsync does not take for this
/// machine (only `127.0.0.0/8`, `::1` and `localhost` are), yet it reaches the loopback
/// server here: a stand-in for another machine that needs no network. At command time a
/// token from the environment is refused before any request; once `login --insecure-http`
/// has recorded the choice for that origin, the same commands are served.
#[test]
fn plain_http_to_another_machine_needs_login_insecure_http() {
    let server = Server::start();
    let recorder = Proxy::recorder(&server.url);
    let elsewhere = recorder.url.replace("127.0.0.1", "[::ffff:127.0.0.1]");
    let mut alice = Dev::new(&server, "plain");
    alice.server_url = elsewhere.clone();
    alice.write_env("A=1\n");

    for args in [&["push"][..], &["pull"][..], &["diff"][..]] {
        let out = alice.envsync(args).refused().code(2);
        assert!(
            out.stderr
                .contains("error: refusing to send your token over plain http to http://[::ffff:"),
            "{args:?} {out:#?}"
        );
        assert!(out.stderr.contains("--insecure-http"), "{args:?} {out:#?}");
    }
    let out = alice
        .envsync_stdin(
            &["login", "--server", &elsewhere, "--token-stdin"],
            format!("{}\n", alice.token),
        )
        .refused()
        .code(2);
    assert!(
        out.stderr.contains("plain http on another machine"),
        "{out:#?}"
    );
    assert!(
        recorder.exchanges().is_empty(),
        "a request went out: {:#?}",
        recorder.exchanges()
    );
    assert_eq!(versions(&server, &alice, "main"), 0);

    alice
        .envsync_stdin(
            &[
                "login",
                "--server",
                &elsewhere,
                "--insecure-http",
                "--token-stdin",
            ],
            format!("{}\n", alice.token),
        )
        .clean()
        .ok();
    // The recorded choice is honoured for the token from the environment, and for the
    // stored login alone.
    alice.envsync(&["push"]).clean().ok();
    assert_eq!(versions(&server, &alice, "main"), 1);
    alice.env_credentials = false;
    alice.write_env("A=2\n");
    alice.envsync(&["push"]).clean().ok();
    assert_eq!(versions(&server, &alice, "main"), 2);
    let posts = recorder
        .exchanges()
        .iter()
        .filter(|(req, _)| req.method == "POST")
        .count();
    assert_eq!(posts, 2, "both pushes went through the recorded origin");
}

/// A developer-token holder pushes a version nobody on the team can read (sealed by the
/// stock `age` tool to alice's own key, in a passphrase-mode project): pull refuses it,
/// and so does every push on top of it, with the way out in the hint; `push --force`
/// replaces it, saying what it pushes over and why, and a teammate's fresh clone pulls
/// the result. On another branch, the forced push checks the passphrase against the
/// default branch's latest instead: a wrong one is still refused there.
#[test]
fn push_force_replaces_a_version_nobody_on_the_team_can_read() {
    let server = Server::start();
    let alice = Dev::new(&server, "overwrite");
    alice.write_env("API_KEY=real\n");
    alice.envsync(&["push"]).clean().ok();
    let line = alice.envsync(&["keygen"]).clean().ok().stdout;
    let public_key = line.split_whitespace().next().unwrap().to_owned();
    let mallory_token = server.token("mallory@example.com", "developer", &["overwrite"]);
    let plaintext = "# envsync project=overwrite branch=main version=2\nAPI_KEY=real\nNODE_OPTIONS=--require=./evil.js\n";
    let forged = stock_age_seal(plaintext, &public_key);
    forged_push(&server, &mallory_token, "overwrite", &forged, 1);

    alice.write_env("API_KEY=rotated\n");
    // Without --force: the push (which would merge the forged version) and a rollback
    // (which checks the version it pushes on) are refused, naming push --force.
    for args in [&["push"][..], &["rollback", "1"][..]] {
        let out = alice.envsync(args).refused().code(1);
        assert!(out.stderr.contains("version 2"), "{args:?} {out:#?}");
        assert!(
            out.stderr.contains("hint: ")
                && out.stderr.contains("git envsync push --force replaces it"),
            "{args:?} {out:#?}"
        );
    }
    assert_eq!(versions(&server, &alice, "main"), 2, "nothing was pushed");

    let out = alice.envsync(&["push", "--force"]).clean().ok();
    assert!(
        out.stderr.contains(
            "pushing over main version 2, which this clone cannot verify (sealed in team mode)"
        ),
        "{out:#?}"
    );
    assert!(out.stderr.contains("as version 3"), "{out:#?}");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"API_KEY=rotated\n");

    // A forged version on topic: the forced push checks against main's latest.
    alice.git(&["checkout", "-q", "-b", "topic"]);
    alice.envsync(&["adopt"]).clean().ok();
    alice.envsync(&["push"]).clean().ok();
    let plaintext = "# envsync project=overwrite branch=topic version=2\nAPI_KEY=rotated\n";
    let forged = stock_age_seal(plaintext, &public_key);
    server.push_sealed(
        &mallory_token,
        "overwrite",
        "topic",
        &forged,
        &["API_KEY"],
        Some(1),
    );
    alice.write_env("API_KEY=rotated\nTOPIC=1\n");
    let mut wrong = Dev::clone_of(&alice, &server, "carol@example.com");
    wrong.pass = Some("not the team's passphrase".to_owned());
    wrong.git(&["checkout", "-q", "topic"]);
    wrong.write_env("API_KEY=carol\n");
    let out = wrong.envsync(&["push", "--force"]).refused().code(1);
    assert!(
        out.stderr
            .contains("this passphrase does not open main version 3"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("replace it first"), "{out:#?}");
    assert_eq!(versions(&server, &alice, "topic"), 2, "nothing was pushed");
    let out = alice.envsync(&["push", "--force"]).clean().ok();
    assert!(
        out.stderr.contains("pushing over topic version 2"),
        "{out:#?}"
    );
    bob.git(&["fetch", "-q"]);
    bob.git(&["checkout", "-q", "topic"]);
    bob.envsync(&["pull", "--force"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"API_KEY=rotated\nTOPIC=1\n");
}

/// `push --force` over a version in this push's mode that the passphrase does not open,
/// with no other branch to vouch for the passphrase: the version may be forged, or the
/// passphrase one a rotation replaced. Taken from `ENVSYNC_PASS` it cannot tell which and
/// is refused, nothing sent (typed, it is asked twice: the pty test in prompt.rs); the
/// team's passphrase pushes as usual.
#[test]
fn a_forced_push_with_a_stored_passphrase_a_rotation_replaced_is_refused() {
    let server = Server::start();
    let alice = Dev::new(&server, "stale-force");
    alice.write_env("API_KEY=one\n");
    alice.envsync(&["push"]).clean().ok();
    let mut bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    let new = "the passphrase after the rotation";
    let mut cmd = alice.envsync_cmd(&["rotate"]);
    let out = Run::from(cmd.env("ENVSYNC_NEW_PASS", new).output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(versions(&server, &alice, "main"), 2);

    bob.write_env("API_KEY=bob\n");
    let out = bob.envsync(&["push", "--force"]).refused().code(1);
    assert!(
        out.stderr
            .contains("the passphrase from ENVSYNC_PASS does not open main version 2"),
        "{out:#?}"
    );
    assert!(
        out.stderr.contains("hint: ") && out.stderr.contains("typed at the prompt"),
        "{out:#?}"
    );
    assert!(!out.stderr.contains("pushing over"), "{out:#?}");
    assert_eq!(versions(&server, &alice, "main"), 2, "nothing was pushed");

    bob.pass = Some(new.to_owned());
    bob.envsync(&["push", "--force"]).clean().ok();
    assert_eq!(versions(&server, &alice, "main"), 3);
    let mut cmd = alice.envsync_cmd(&["pull"]);
    let out = Run::from(cmd.env("ENVSYNC_PASS", new).output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(alice.read_env().unwrap(), b"API_KEY=bob\n");
}
