//! The passphrase agent, end to end: `unlock` (from stdin and at a terminal), the git
//! hooks pushing with no `ENVSYNC_PASS`, expiry, `lock`, one passphrase per project, the
//! socket's and directory's modes and owners, another user shut out, and no passphrase on
//! disk or in the agent's environment or command line. Every test's agent lives in that
//! test's own runtime directory and is killed when the test ends (`Dev`'s reaper).

#![allow(clippy::unwrap_used)]

use envsync_tests::{AgentReaper, Dev, PASS, Run, Server, agent_pid, procfs, run_with_stdin};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn unlock(dev: &Dev, duration: &str, passphrase: &str) -> Run {
    dev.envsync_stdin(
        &["unlock", "--passphrase-stdin", "--for", duration],
        format!("{passphrase}\n"),
    )
}

/// Edits the env file and commits something: the post-commit hook's line.
fn edit_and_commit(dev: &Dev, value: &str) -> Run {
    dev.write_env(format!("API_KEY={value}\n"));
    dev.commit(value)
}

/// The latest version of `branch` on the server.
fn version(server: &Server, dev: &Dev, branch: &str) -> Option<u64> {
    server
        .latest(&dev.token, &dev.project(), branch)
        .map(|(version, _)| version)
}

fn agent_dir(dev: &Dev) -> PathBuf {
    dev.runtime.join("envsync")
}

/// Waits (briefly) until no agent runs in `dir`.
#[track_caller]
fn gone(dir: &Path) {
    let start = Instant::now();
    while agent_pid(dir).is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the agent in {} is still running",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !dir.join("agent.sock").exists(),
        "the socket was left behind"
    );
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if kind.is_file()
            && fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        {
            found.push(path);
        }
    }
    found
}

/// A project with version 1 on main and the hooks installed; the developer has no
/// `ENVSYNC_PASS` from then on.
fn project(server: &Server, name: &str) -> Dev {
    let mut dev = Dev::hooked(server, name);
    dev.write_env("API_KEY=v1\n");
    dev.envsync(&["push"]).ok();
    dev.pass = None;
    dev
}

#[test]
fn an_unlocked_agent_lets_the_hooks_push_without_envsync_pass_until_lock() {
    let server = Server::start();
    let dev = project(&server, "agent-hooks");

    // Locked: the hook skips, as before.
    let run = edit_and_commit(&dev, "v2");
    assert!(run.stderr.contains("no passphrase in a hook"), "{run:#?}");
    assert_eq!(version(&server, &dev, "main"), Some(1));

    let run = unlock(&dev, "10m", PASS).clean().ok();
    assert!(
        run.stderr.contains("Unlocked agent-hooks for 10m (until "),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("checked against main version 1"),
        "{run:#?}"
    );
    let status = dev.envsync(&["unlock", "--status"]).ok();
    assert!(
        status.stderr.starts_with("Unlocked agent-hooks until "),
        "{status:#?}"
    );

    // The commit's hook pushes with the agent's passphrase, nothing else.
    let run = edit_and_commit(&dev, "v3");
    assert!(
        run.stderr
            .contains("envsync: pushed .env to main as version 2"),
        "{run:#?}"
    );
    assert_eq!(version(&server, &dev, "main"), Some(2));
    // And a command asks it before it would prompt (an old version: no cached copy).
    dev.envsync(&["pull", "--force", "--version", "1"])
        .clean()
        .ok();

    // The socket: 0600, in a 0700 directory, both ours.
    let dir = agent_dir(&dev);
    let meta = fs::symlink_metadata(&dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o777, 0o700);
    let sock = fs::symlink_metadata(dir.join("agent.sock")).unwrap();
    assert!(sock.file_type().is_socket());
    assert_eq!(sock.mode() & 0o777, 0o600);
    assert_eq!(sock.uid(), meta.uid());

    // The passphrase is in the agent's memory only: not in its environment or command
    // line, and in no file of the home, the runtime directory or the repository.
    let pid = agent_pid(&dir).expect("a running agent");
    let environ = procfs::environ(pid).unwrap();
    assert!(
        !environ.windows(PASS.len()).any(|w| w == PASS.as_bytes()),
        "the agent's environment holds the passphrase"
    );
    assert!(
        !String::from_utf8_lossy(&environ).contains("ENVSYNC_"),
        "the agent inherited envsync settings: {}",
        String::from_utf8_lossy(&environ)
    );
    let cmdline = procfs::cmdline(pid).unwrap();
    assert!(!cmdline.windows(PASS.len()).any(|w| w == PASS.as_bytes()));
    for root in [&dev.home, &dev.runtime, &dev.repo] {
        let found = files_holding(root, PASS.as_bytes());
        assert!(found.is_empty(), "the passphrase is on disk: {found:?}");
    }

    // lock forgets it, and the agent goes away.
    let run = dev.envsync(&["lock"]).clean().ok();
    assert!(
        run.stderr
            .contains("Forgot 1 passphrase; the agent has stopped"),
        "{run:#?}"
    );
    gone(&dir);
    let run = edit_and_commit(&dev, "v4");
    assert!(run.stderr.contains("no passphrase in a hook"), "{run:#?}");
    assert_eq!(version(&server, &dev, "main"), Some(2));
    let status = dev.envsync(&["unlock", "--status"]).ok();
    assert_eq!(status.stderr, "Locked: no agent is running\n");
    let run = dev.envsync(&["lock"]).clean().ok();
    assert!(run.stderr.contains("no agent is running"), "{run:#?}");
}

#[test]
fn the_passphrase_expires_and_the_next_hook_skips_again() {
    let server = Server::start();
    let dev = project(&server, "agent-expiry");
    unlock(&dev, "2s", PASS).clean().ok();
    let run = edit_and_commit(&dev, "v2");
    assert!(
        run.stderr.contains("pushed .env to main as version 2"),
        "{run:#?}"
    );
    let dir = agent_dir(&dev);
    std::thread::sleep(Duration::from_millis(2300));
    // Expired: forgotten, and the agent, holding nothing, exits.
    gone(&dir);
    let run = edit_and_commit(&dev, "v3");
    assert!(run.stderr.contains("no passphrase in a hook"), "{run:#?}");
    assert_eq!(version(&server, &dev, "main"), Some(2));
}

#[test]
fn a_wrong_passphrase_is_not_kept() {
    let server = Server::start();
    let dev = project(&server, "agent-wrong");
    let run = unlock(&dev, "1h", "not the passphrase at all").refused();
    assert!(
        run.stderr
            .starts_with("error: not unlocked: cannot decrypt"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("not the passphrase at all"));
    assert_eq!(agent_pid(&agent_dir(&dev)), None);
    let run = dev
        .envsync(&["pull", "--force", "--version", "1"])
        .refused();
    assert!(
        run.stderr.starts_with("error: no passphrase available"),
        "{run:#?}"
    );
    // Bad input: one error line, never a panic.
    unlock(&dev, "0s", PASS).code(2);
    unlock(&dev, "8d", PASS).code(2);
    let run = unlock(&dev, "1h", "").refused();
    assert!(
        run.stderr.starts_with("error: empty passphrase"),
        "{run:#?}"
    );
    let run = dev.envsync(&["unlock"]).refused();
    assert!(run.stderr.contains("--passphrase-stdin"), "{run:#?}");
}

#[test]
fn a_new_project_is_unlocked_unchecked_and_its_first_push_uses_the_agent() {
    let server = Server::start();
    let mut dev = Dev::new(&server, "agent-new");
    dev.pass = None;
    let run = unlock(&dev, "1h", PASS).clean().ok();
    assert!(
        run.stderr
            .contains("not checked: the project has no version on the server yet"),
        "{run:#?}"
    );
    dev.write_env("FIRST=1\n");
    let run = dev.envsync(&["push"]).clean().ok();
    assert!(run.stderr.contains("as version 1"), "{run:#?}");
    // Sealed with that passphrase: a teammate who has it reads it.
    let bob = Dev::clone_of(&dev, &server, "bob@example.com");
    bob.envsync(&["pull"]).ok();
    assert_eq!(bob.read_env().unwrap(), b"FIRST=1\n");
    // A weak passphrase for a new project is refused before it is kept.
    let mut weak = Dev::new(&server, "agent-weak");
    weak.pass = None;
    let run = unlock(&weak, "1h", "short").refused();
    assert!(run.stderr.contains("shorter than"), "{run:#?}");
}

#[test]
fn a_passphrase_belongs_to_one_project() {
    let server = Server::start();
    let a = project(&server, "agent-one");
    let mut b = project(&server, "agent-two");
    // The same user, the same agent.
    b.runtime = a.runtime.clone();
    unlock(&a, "1h", PASS).clean().ok();
    let run = edit_and_commit(&b, "v2");
    assert!(run.stderr.contains("no passphrase in a hook"), "{run:#?}");
    let run = b.envsync(&["pull", "--force", "--version", "1"]).refused();
    assert!(run.stderr.starts_with("error: no passphrase available"));
    let status = b.envsync(&["unlock", "--status", "--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let projects: Vec<&str> = json["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["project"].as_str().unwrap())
        .collect();
    assert_eq!(projects, ["agent-one"]);

    // Both unlocked; lock --this-project forgets only b's.
    unlock(&b, "1h", PASS).clean().ok();
    let run = b.envsync(&["lock", "--this-project"]).clean().ok();
    assert_eq!(run.stderr, "Forgot the passphrase of agent-two\n");
    let run = edit_and_commit(&a, "v2");
    assert!(run.stderr.contains("pushed .env to main"), "{run:#?}");
    let run = edit_and_commit(&b, "v3");
    assert!(run.stderr.contains("no passphrase in a hook"), "{run:#?}");
}

#[test]
fn rotate_to_a_new_passphrase_makes_the_agent_forget_the_old_one() {
    let server = Server::start();
    let dev = project(&server, "agent-rotate");
    unlock(&dev, "1h", PASS).clean().ok();
    let mut cmd = dev.envsync_cmd(&["rotate"]);
    cmd.env("ENVSYNC_NEW_PASS", "a brand new passphrase for all");
    let run = Run::from(cmd.output().unwrap()).clean().ok();
    assert!(
        run.stderr
            .contains("The agent forgot agent-rotate's old passphrase"),
        "{run:#?}"
    );
    let status = dev.envsync(&["unlock", "--status"]).ok();
    assert!(status.stderr.starts_with("Locked"), "{status:#?}");
    let run = edit_and_commit(&dev, "v9");
    assert!(run.stderr.contains("no passphrase in a hook"), "{run:#?}");
    unlock(&dev, "1h", PASS).refused();
    unlock(&dev, "1h", "a brand new passphrase for all")
        .clean()
        .ok();
}

#[test]
fn envsync_pass_comes_before_the_agent() {
    let server = Server::start();
    let mut dev = project(&server, "agent-order");
    unlock(&dev, "1h", PASS).clean().ok();
    dev.pass = Some("a different passphrase entirely".into());
    let run = dev
        .envsync(&["pull", "--force", "--version", "1"])
        .refused();
    assert!(run.stderr.contains("hint: check ENVSYNC_PASS"), "{run:#?}");
    dev.pass = None;
    dev.envsync(&["pull", "--force", "--version", "1"])
        .clean()
        .ok();
}

#[test]
fn unlock_at_a_terminal() {
    let server = Server::start();
    let dev = project(&server, "agent-tty");
    let mut pty = dev.pty("git envsync unlock --for 5m; echo \"exit=$?\"");
    pty.expect("envsync passphrase for agent-tty: ");
    pty.type_line(PASS);
    pty.expect("exit=");
    let (_, out) = pty.finish();
    assert!(out.contains("exit=0"), "{out}");
    assert!(out.contains("Unlocked agent-tty for 5m"), "{out}");
    assert!(!out.contains(PASS), "echoed: {out}");
    let run = edit_and_commit(&dev, "v2");
    assert!(run.stderr.contains("pushed .env to main"), "{run:#?}");
}

#[test]
fn a_stale_passphrase_in_the_agent_is_named_in_the_hint() {
    let server = Server::start();
    let mut alice = Dev::new(&server, "agent-stale");
    alice.pass = None;
    // Unchecked (nothing on the server yet)...
    unlock(&alice, "1h", "what alice thought it was")
        .clean()
        .ok();
    // ...and then the project's first version is sealed with another passphrase.
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.write_env("X=1\n");
    bob.envsync(&["push"]).ok();
    let run = alice.envsync(&["pull"]).refused();
    assert!(
        run.stderr
            .contains("hint: the agent holds another passphrase for this project: git envsync lock, then git envsync unlock"),
        "{run:#?}"
    );
    assert_eq!(alice.read_env(), None);
}

#[test]
fn the_fallback_directory_under_tmp_is_made_private_and_checked() {
    let server = Server::start();
    let dev = project(&server, "agent-tmp");
    let tmp = tempfile::tempdir().unwrap();
    let uid = fs::metadata(&dev.repo).unwrap().uid();
    let dir = tmp.path().join(format!("envsync-{uid}"));
    let _reaper = AgentReaper { dir: dir.clone() };
    let in_tmp = |args: &[&str], input: Option<&str>| {
        let mut cmd = dev.envsync_cmd(args);
        cmd.env_remove("XDG_RUNTIME_DIR").env("TMPDIR", tmp.path());
        if let Some(input) = input {
            return run_with_stdin(&mut cmd, input);
        }
        Run::from(cmd.output().unwrap())
    };
    in_tmp(
        &["unlock", "--passphrase-stdin"],
        Some(&format!("{PASS}\n")),
    )
    .clean()
    .ok();
    let meta = fs::symlink_metadata(&dir).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert!(agent_pid(&dir).is_some());
    in_tmp(&["lock"], None).clean().ok();
    gone(&dir);

    // A directory others may enter is refused, not repaired.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let run = in_tmp(
        &["unlock", "--passphrase-stdin"],
        Some(&format!("{PASS}\n")),
    )
    .refused();
    assert!(run.stderr.contains("not 0700"), "{run:#?}");
    let run = in_tmp(&["unlock", "--status"], None).refused();
    assert!(run.stderr.contains("not 0700"), "{run:#?}");
    // A link in its place is refused too.
    fs::remove_dir_all(&dir).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    let run = in_tmp(
        &["unlock", "--passphrase-stdin"],
        Some(&format!("{PASS}\n")),
    )
    .refused();
    assert!(run.stderr.contains("not a directory"), "{run:#?}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// Whether this test process may act as another user (root, with `setpriv`).
fn can_switch_user() -> bool {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !root || !setpriv {
        println!("note: not run as root with setpriv: the other-user checks are skipped");
    }
    root && setpriv
}

#[test]
fn another_user_cannot_use_the_agent_or_plant_one() {
    let server = Server::start();
    let dev = project(&server, "agent-uid");
    if !can_switch_user() {
        return;
    }
    unlock(&dev, "1h", PASS).clean().ok();
    let dir = agent_dir(&dev);
    let sock = dir.join("agent.sock");
    // A raw client (perl, in every Debian's perl-base): connects, asks for the
    // passphrase, prints the first line of the answer and how many bytes came.
    let client = format!(
        "use IO::Socket::UNIX; $SIG{{PIPE}} = 'IGNORE'; my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => '{}') or die \"connect: $!\\n\"; print $s \"envsync-agent/1 get agent-uid\\n\"; shutdown($s, 1); local $/; my $a = <$s> // ''; my ($l) = split /\\n/, $a; printf \"connected; first line: %s; bytes: %d\\n\", $l // '', length $a;",
        sock.display()
    );
    let ask = |as_nobody: bool| {
        let mut cmd = Command::new("setpriv");
        if as_nobody {
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        }
        Run::from(cmd.args(["perl", "-e", &client]).output().unwrap())
    };
    // The owner gets an answer (the control).
    let run = ask(false);
    assert!(run.stdout.contains("first line: ok;"), "{run:#?}");
    // Behind the 0700 directory, nobody cannot even reach the socket.
    let run = ask(true);
    assert!(
        run.stderr.contains("connect: Permission denied"),
        "{run:#?}"
    );
    // With the directories and the socket opened to everyone, the agent itself says
    // nothing to another uid (SO_PEERCRED).
    let open = |path: &Path, mode: u32| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap()
    };
    open(dev.runtime.parent().unwrap(), 0o711);
    open(&dev.runtime, 0o711);
    open(&dir, 0o711);
    open(&sock, 0o666);
    let run = ask(true);
    assert!(
        run.stdout.contains("connected; first line: ; bytes: 0"),
        "{run:#?}"
    );
    // And our own client will not use a directory others may enter.
    let run = dev.envsync(&["unlock", "--status"]).refused();
    assert!(run.stderr.contains("not 0700"), "{run:#?}");
    let run = edit_and_commit(&dev, "v2");
    assert!(run.stderr.contains("no passphrase in a hook"), "{run:#?}");
    open(&dir, 0o700);
    open(&sock, 0o600);

    // A directory someone else owns is refused: they could run the "agent" behind it.
    let chown = |owner: &str| {
        let ok = Command::new("chown")
            .args([owner, dir.to_str().unwrap()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    chown("65534");
    let run = dev.envsync(&["unlock", "--status"]).refused();
    assert!(run.stderr.contains("belongs to uid 65534"), "{run:#?}");
    let run = dev
        .envsync(&["pull", "--force", "--version", "1"])
        .refused();
    assert!(
        run.stderr.starts_with("error: no passphrase available"),
        "{run:#?}"
    );
    chown("0");
    dev.envsync(&["lock"]).clean().ok();
    gone(&dir);
}
