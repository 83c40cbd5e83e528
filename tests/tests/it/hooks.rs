//! Git hooks and the watcher, end to end: real git running the installed hooks, the real
//! binary, the real server.

#![allow(clippy::unwrap_used)]

use crate::watch::{Watcher, editor_save};
use envsync_tests::{Dev, Run, Server};
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// Generous bound for "git is not held up": the hook deadline is 1.5 s; a hang would be 30 s.
const NOT_STUCK: Duration = Duration::from_secs(8);

/// The latest version of `branch` on the server.
fn version(server: &Server, dev: &Dev, branch: &str) -> Option<u64> {
    server
        .latest(&dev.token, &dev.project(), branch)
        .map(|(version, _)| version)
}

fn hook_file(dev: &Dev, name: &str) -> Vec<u8> {
    fs::read(dev.repo.join(".git/hooks").join(name)).unwrap()
}

#[test]
fn foreign_hook_survives_install_and_uninstall_and_still_runs() {
    let server = Server::start();
    let dev = Dev::new(&server, "foreign");
    let path = dev.repo.join(".git/hooks/pre-commit");
    let foreign = "#!/bin/sh\necho ran >> foreign-marker\nexit 0\n";
    fs::write(&path, foreign).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();

    dev.envsync(&["hooks", "install"]).clean().ok();
    let installed = hook_file(&dev, "pre-commit");
    assert!(String::from_utf8_lossy(&installed).contains("git-envsync hook pre-commit"));
    // Installing twice changes no byte of any hook.
    let before: Vec<_> = ["pre-commit", "post-commit", "post-checkout"]
        .iter()
        .map(|h| hook_file(&dev, h))
        .collect();
    dev.envsync(&["hooks", "install"]).clean().ok();
    let after: Vec<_> = ["pre-commit", "post-commit", "post-checkout"]
        .iter()
        .map(|h| hook_file(&dev, h))
        .collect();
    assert_eq!(before, after);

    // Theirs still runs, and so does ours (a staged .env is refused).
    dev.commit("one").ok();
    assert_eq!(
        fs::read_to_string(dev.repo.join("foreign-marker")).unwrap(),
        "ran\n"
    );
    dev.write_env("A=1\n");
    dev.git(&["add", "-f", ".env"]);
    let out = dev.commit("two").code(1);
    assert!(out.stderr.contains(".env is staged"), "{out:#?}");
    dev.git(&["rm", "-q", "--cached", ".env"]);

    dev.envsync(&["hooks", "uninstall"]).clean().ok();
    assert_eq!(fs::read_to_string(&path).unwrap(), foreign);
    assert!(!dev.repo.join(".git/hooks/post-commit").exists());
    dev.commit("three").ok();
    assert_eq!(
        fs::read_to_string(dev.repo.join("foreign-marker")).unwrap(),
        "ran\nran\n"
    );
}

#[test]
fn non_shell_hook_is_refused_unless_forced() {
    let server = Server::start();
    let dev = Dev::new(&server, "python");
    let path = dev.repo.join(".git/hooks/post-commit");
    fs::write(&path, "#!/usr/bin/env python3\nprint('hi')\n").unwrap();
    dev.envsync(&["hooks", "install"]).clean().code(1);
    dev.envsync(&["hooks", "install", "--force"]).clean().ok();
    assert!(
        dev.repo
            .join(".git/hooks/post-commit.envsync-backup")
            .exists()
    );
}

#[test]
fn core_hooks_path_is_respected() {
    let server = Server::start();
    let dev = Dev::new(&server, "hookspath");
    dev.git(&["config", "core.hooksPath", ".githooks"]);
    dev.envsync(&["hooks", "install"]).clean().ok();
    assert!(dev.repo.join(".githooks/pre-commit").exists());
    assert!(!dev.repo.join(".git/hooks/pre-commit").exists());
    dev.write_env("A=1\n");
    dev.git(&["add", "-f", ".env"]);
    dev.commit("refused").code(1);
}

#[test]
fn linked_worktree_shares_the_hooks() {
    let server = Server::start();
    let dev = Dev::new(&server, "worktree");
    dev.write_env("A=main\n");
    dev.envsync(&["push"]).ok();
    let wt = dev.repo.parent().unwrap().join("wt");
    dev.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "feature",
        wt.to_str().unwrap(),
    ]);
    let out = dev
        .envsync_cmd(&["hooks", "install"])
        .current_dir(&wt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(dev.repo.join(".git/hooks/post-checkout").exists());
    // A checkout inside the linked work tree runs the hook there.
    let out = Run::from(
        dev.envsync_cmd(&[])
            .current_dir(&wt)
            .arg("status")
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 0, "{out:#?}");
    let mut git = std::process::Command::new("git");
    git.current_dir(&wt)
        .envs(
            dev.envsync_cmd(&[])
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k, v))),
        )
        .args(["checkout", "-q", "-b", "feature2"]);
    let out = git.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(fs::read(wt.join(".env")).unwrap(), b"A=main\n");
}

#[test]
fn checkout_brings_the_fallback_env_and_edits_follow_their_branch() {
    let server = Server::start();
    let mut dev = Dev::hooked(&server, "follow");
    dev.write_env("A=main\n");
    dev.envsync(&["push"]).ok();

    dev.git_run(&["checkout", "-q", "-b", "feature/x"]).ok();
    assert_eq!(dev.read_env().unwrap(), b"A=main\n");

    // Edits made on feature/x are pushed to feature/x when leaving it.
    dev.write_env("A=feature\nB=new\n");
    let out = dev.git_run(&["checkout", "-q", "main"]).ok();
    assert!(
        out.stderr.contains("pushed your edits to feature/x"),
        "{out:#?}"
    );
    assert_eq!(dev.read_env().unwrap(), b"A=main\n");
    assert_eq!(version(&server, &dev, "feature/x"), Some(1));
    assert_eq!(version(&server, &dev, "main"), Some(1));

    // Coming back restores feature/x's env from the sealed local copy: no passphrase.
    dev.pass = None;
    let out = dev.git_run(&["checkout", "-q", "feature/x"]).ok();
    assert_eq!(dev.read_env().unwrap(), b"A=feature\nB=new\n", "{out:#?}");
}

#[test]
fn post_commit_pushes_changed_env() {
    let server = Server::start();
    let dev = Dev::hooked(&server, "autopush");
    dev.write_env("A=1\n");
    dev.envsync(&["push"]).ok();
    dev.commit("nothing changed").ok();
    assert_eq!(version(&server, &dev, "main"), Some(1));
    dev.write_env("A=1\nB=2\n");
    let out = dev.commit("env changed").ok();
    assert!(out.stderr.contains("as version 2"), "{out:#?}");
    assert_eq!(version(&server, &dev, "main"), Some(2));
}

/// post-commit starts git-envsync only when there may be something to push: the note
/// pre-commit leaves while the env file is in sync lets the hook's shell skip it, and an
/// edit after that note (say, while the commit message was being written) or another HEAD
/// brings the binary back, which then pushes.
#[test]
fn post_commit_skips_the_binary_only_while_the_env_is_in_sync() {
    let server = Server::start();
    let dev = Dev::hooked(&server, "fastpath");
    dev.write_env("A=1\n");
    dev.envsync(&["push"]).ok();
    dev.commit("in sync").ok();
    // With git-envsync off PATH the hook stays silent only if it did not need it.
    let post_commit = |path: Option<&str>| {
        let mut cmd = dev.sh_cmd(".git/hooks/post-commit");
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        Run::from(cmd.output().unwrap()).ok()
    };
    let without_binary = Some("/usr/bin:/bin");
    let out = post_commit(without_binary);
    assert_eq!(out.stderr, "", "{out:#?}");

    dev.write_env("A=1\nB=2\n");
    let out = post_commit(without_binary);
    assert!(
        out.stderr.contains("git-envsync is not on PATH"),
        "{out:#?}"
    );
    let out = post_commit(None);
    assert!(out.stderr.contains("as version 2"), "{out:#?}");
    assert_eq!(version(&server, &dev, "main"), Some(2));

    dev.commit("in sync again").ok();
    assert_eq!(post_commit(without_binary).stderr, "");
    dev.git(&["checkout", "-q", "-b", "elsewhere"]);
    let out = post_commit(without_binary);
    assert!(
        out.stderr.contains("git-envsync is not on PATH"),
        "{out:#?}"
    );
}

#[test]
fn conflict_in_a_hook_keeps_the_local_file() {
    let server = Server::start();
    let alice = Dev::hooked(&server, "hookconflict");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["hooks", "install"]).ok();
    bob.envsync(&["pull"]).ok();
    alice.write_env("A=2\n");
    alice.envsync(&["push"]).ok();

    bob.write_env("A=bob\n");
    let out = bob.commit("bob commits").ok();
    assert!(out.stderr.contains("not pushed"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), b"A=bob\n");
    assert_eq!(version(&server, &alice, "main"), Some(2));
}

#[test]
fn drift_is_warned_and_strict_refuses() {
    let server = Server::start();
    let dev = Dev::hooked(&server, "strict");
    dev.write_env("A=1\nB=2\n");
    dev.envsync(&["push"]).ok();
    // A teammate adds C: this clone's file, clean, now lacks it.
    let mate = Dev::clone_of(&dev, &server, "mate@example.com");
    mate.envsync(&["pull"]).ok();
    mate.write_env("A=1\nB=2\nC=3\n");
    mate.envsync(&["push"]).ok();
    let out = dev.commit("drifting").ok();
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {out:#?}");
    assert!(lines[0].contains("- C (missing locally)"), "{out:#?}");
    // Edits the commit's post-commit pushes are expected to differ: no drift line.
    dev.envsync(&["pull"]).ok();
    dev.write_env("A=1\nB=2\nC=3\nD=4\n");
    let out = dev.commit("edited").ok();
    assert!(!out.stderr.contains("drifts"), "{out:#?}");
    assert_eq!(version(&server, &dev, "main"), Some(3));
    // Under envsync.strict, drift refuses the commit.
    dev.git(&["config", "envsync.strict", "true"]);
    dev.write_env("A=1\nD=4\n");
    let out = dev.commit("drifting again").code(1);
    assert!(out.stderr.contains("envsync.strict"), "{out:#?}");
}

#[test]
fn server_refusing_connections_does_not_hold_git() {
    let mut server = Server::start();
    let dev = Dev::hooked(&server, "down");
    dev.write_env("A=1\n");
    dev.envsync(&["push"]).ok();
    server.kill();
    dev.write_env("A=1\nB=2\n");
    let start = Instant::now();
    let out = dev.commit("offline").ok();
    let checkout = dev
        .git_run(&["checkout", "-q", "-b", "offline-branch"])
        .ok();
    assert!(start.elapsed() < NOT_STUCK, "{:?}", start.elapsed());
    assert!(out.stderr.contains("cannot reach"), "{out:#?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
    // A branch created here takes the unpushed edits over (nothing to ask the server).
    assert!(checkout.stderr.contains("takes over"), "{checkout:#?}");
    // Checking out main again: the edits belong to offline-branch, which cannot be
    // reached; the file is left, and says so in one line.
    let back = dev.git_run(&["checkout", "-q", "main"]).ok();
    assert_eq!(back.stderr.lines().count(), 1, "{back:#?}");
    assert!(back.stderr.contains("kept your edits"), "{back:#?}");
    assert_eq!(dev.read_env().unwrap(), b"A=1\nB=2\n");
}

#[test]
fn silent_server_does_not_hold_git() {
    let server = Server::start();
    let mut dev = Dev::hooked(&server, "silent");
    dev.write_env("A=1\n");
    dev.envsync(&["push"]).ok();
    // A server that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    dev.server_url = format!("http://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().take(16) {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    dev.write_env("A=2\n");
    let start = Instant::now();
    let out = dev.commit("silent").ok();
    dev.git_run(&["checkout", "-q", "-b", "silent-branch"]).ok();
    assert!(start.elapsed() < NOT_STUCK, "{:?}", start.elapsed());
    assert!(out.stderr.contains("envsync:"), "{out:#?}");
}

#[test]
fn no_passphrase_means_no_prompt() {
    let server = Server::start();
    let mut dev = Dev::hooked(&server, "nopass");
    dev.write_env("A=1\n");
    dev.envsync(&["push"]).ok();
    dev.pass = None;
    dev.write_env("A=1\nB=2\n");
    let start = Instant::now();
    let out = dev.commit("no pass").ok();
    assert!(start.elapsed() < NOT_STUCK);
    assert!(out.stderr.contains("no passphrase"), "{out:#?}");
    assert_eq!(version(&server, &dev, "main"), Some(1));
}

#[test]
fn skip_flag_exits_before_any_work() {
    let server = Server::start();
    let dev = Dev::hooked(&server, "skip");
    dev.write_env("A=1\n");
    dev.git(&["add", "-f", ".env"]);
    let mut cmd = dev.envsync_cmd(&["hook", "pre-commit"]);
    let out = Run::from(cmd.env("ENVSYNC_SKIP_HOOKS", "1").output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stderr.is_empty(), "{out:#?}");
    // Without it, the same hook refuses.
    dev.envsync(&["hook", "pre-commit"]).code(1);
}

#[test]
fn watcher_reports_drift_and_stops_on_sigterm() {
    let server = Server::start();
    let dev = Dev::new(&server, "watch");
    dev.write_env("A=1\n");
    dev.envsync(&["push"]).ok();
    let mut watcher = Watcher::start(&dev);

    editor_save(&dev.env_path(), "A=1\nNEW_KEY=x\n");
    watcher.until("+ NEW_KEY (not on server)");

    fs::OpenOptions::new()
        .append(true)
        .open(dev.env_path())
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"OTHER=y\n"))
        .unwrap();
    watcher.until("+ OTHER (not on server)");

    let status = watcher.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn hooks_refuse_work_factors_above_the_projects_own() {
    use envsync_common::envelope::{self, Binding, Seal};
    use envsync_common::secret::SecretString;
    let server = Server::start();
    let dev = Dev::hooked(&server, "hookcap");
    // A file the project would never make (the tests' work factor is 10): 14 costs a
    // hook more than it may spend, though an explicit pull (cap 22) accepts it.
    let pass = SecretString::from(envsync_tests::PASS.to_owned());
    let sealed = envelope::seal(
        &Binding::new("hookcap", "main", 1),
        b"A=1\n",
        &Seal::Passphrase {
            passphrase: &pass,
            work_factor: 14,
        },
    )
    .unwrap();
    server.push_sealed(&dev.token, "hookcap", "main", &sealed, &["A"], None);

    let out = dev.git_run(&["checkout", "-q", "-b", "feature"]).ok();
    assert!(out.stderr.contains("work factor 14"), "{out:#?}");
    assert!(dev.read_env().is_none());
    dev.envsync(&["pull"]).clean().ok();
    assert_eq!(dev.read_env().unwrap(), b"A=1\n");
}

/// `git config envsync.autopush`: true (the default) pushes at commits and at checkouts
/// leaving the edits' branch, `commit` and `checkout` only there, `false` never; the
/// setting is stated by `hooks install`.
#[test]
fn autopush_setting_decides_which_hooks_push() {
    let server = Server::start();
    for (setting, at_commit, at_checkout) in [
        (None, true, true),
        (Some("true"), true, true),
        (Some("commit"), true, false),
        (Some("checkout"), false, true),
        (Some("false"), false, false),
    ] {
        let project = format!("auto-{}", setting.unwrap_or("default"));
        let dev = Dev::new(&server, &project);
        if let Some(value) = setting {
            dev.git(&["config", "envsync.autopush", value]);
        }
        let install = dev.envsync(&["hooks", "install"]).clean().ok();
        let shown = setting.unwrap_or("true");
        assert!(
            install
                .stderr
                .contains(&format!("envsync.autopush = {shown}")),
            "{install:#?}"
        );
        dev.write_env("A=1\n");
        dev.envsync(&["push"]).ok();
        dev.git(&["branch", "other"]);

        dev.write_env("A=1\nB=2\n");
        dev.commit("edit").ok();
        let pushed = version(&server, &dev, "main") == Some(2);
        assert_eq!(pushed, at_commit, "{setting:?} at a commit");
        if !pushed {
            // Still the edits of main: a checkout leaving main may push them.
            let out = dev.git_run(&["checkout", "-q", "other"]).ok();
            let pushed = version(&server, &dev, "main") == Some(2);
            assert_eq!(pushed, at_checkout, "{setting:?} at a checkout: {out:#?}");
            if !pushed {
                assert!(out.stderr.contains("envsync.autopush"), "{out:#?}");
                assert_eq!(dev.read_env().unwrap(), b"A=1\nB=2\n");
            }
        }
    }
}

/// An `envsync.autopush` that is none of the known values pushes nothing, and each hook
/// run says so in its one line; `hooks install` says the same.
#[test]
fn an_invalid_autopush_value_is_said_in_one_line() {
    let server = Server::start();
    let dev = Dev::new(&server, "autopush-bad");
    dev.git(&["config", "envsync.autopush", "sometimes"]);
    dev.envsync(&["hooks", "install"]).clean().ok();
    dev.write_env("A=1\n");
    dev.envsync(&["push"]).ok();
    dev.git(&["branch", "other"]);
    dev.write_env("A=1\nB=2\n");

    let out = dev.commit("edit").ok();
    let lines = out.envsync_lines();
    assert_eq!(lines.len(), 1, "{out:#?}");
    assert!(
        lines[0].contains("not pushed: envsync.autopush = sometimes"),
        "{out:#?}"
    );
    let out = dev.git_run(&["checkout", "-q", "other"]).ok();
    let lines = out.envsync_lines();
    assert_eq!(lines.len(), 1, "{out:#?}");
    assert!(
        lines[0].contains("kept your edits to main v1")
            && lines[0].contains("envsync.autopush = sometimes is not"),
        "{out:#?}"
    );
    assert_eq!(version(&server, &dev, "main"), Some(1));
    assert_eq!(dev.read_env().unwrap(), b"A=1\nB=2\n");
    // What hooks install says agrees.
    let install = dev.envsync(&["hooks", "install"]).clean().ok();
    assert!(
        install.stderr.contains(
            "envsync.autopush = sometimes is not true, commit, checkout or false: the hooks push nothing"
        ),
        "{install:#?}"
    );
}

/// A revoked token: post-commit and strict pre-commit say in their line to log in again,
/// not that the server refused the request or cannot be reached.
#[test]
fn a_revoked_token_makes_the_hooks_say_login() {
    let server = Server::start();
    let dev = Dev::hooked(&server, "revoked");
    dev.write_env("A=1\n");
    dev.envsync(&["push"]).ok();
    server.revoke("dev@example.com");

    dev.write_env("A=1\nB=2\n");
    let out = dev.commit("edit").ok();
    let lines = out.envsync_lines();
    assert_eq!(lines.len(), 1, "{out:#?}");
    assert!(
        lines[0].contains("not pushed: token rejected: run git envsync login"),
        "{out:#?}"
    );

    dev.git(&["config", "envsync.strict", "true"]);
    let out = dev.commit("strict").code(1);
    let error = out.stderr.lines().find(|l| l.starts_with("error: "));
    assert!(
        error.is_some_and(|l| l.contains("as last seen: token rejected: run git envsync login")),
        "{out:#?}"
    );
    assert!(
        out.stderr.contains("hint: git envsync login, then"),
        "{out:#?}"
    );
    assert!(!out.stderr.contains("unreachable"), "{out:#?}");

    let reader = server.token("reader@example.com", "developer", &["revoked"]);
    let (latest, _) = server.latest(&reader, "revoked", "main").unwrap();
    assert_eq!(latest, 1, "nothing pushed with the revoked token");
}
