//! Secret hygiene end to end (docs/testing.md J1, J3, J4, J5, H4): sentinel values, a
//! sentinel passphrase and the bearer tokens go through every command and error path
//! (only `get` and `export` print a value, and only on stdout) with
//! `RUST_LOG=trace` on both sides, and never show up in the CLI's output, the server's
//! log, any HTTP request or answer, the database files, the audit log, the local state,
//! or a panic.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope;
use envsync_tests::proxy::{Proxy, Upstream};
use envsync_tests::{Dev, Run, Server};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const VALUE: &str = "SENTINEL_VALUE_9f3a7c1e";
const PASSPHRASE: &str = "SENTINEL_PASS_4b8d2e6a horse battery";
const NEW_PASSPHRASE: &str = "SENTINEL_NEWPASS_77d1 staple";

/// Every secret of the test, for the final sweep.
fn secrets<'a>(tokens: &'a [&'a str]) -> Vec<&'a str> {
    let mut all = vec![VALUE, PASSPHRASE, NEW_PASSPHRASE];
    all.extend_from_slice(tokens);
    all
}

/// `git envsync ARGS` at trace level, with backtraces on: a panic would show.
fn traced(dev: &Dev, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let mut cmd = dev.envsync_cmd(args);
    cmd.env("RUST_LOG", "trace").env("RUST_BACKTRACE", "1");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

/// [`traced`] with `input` on standard input.
fn traced_stdin(dev: &Dev, args: &[&str], input: &str) -> Run {
    let mut cmd = dev.envsync_cmd(args);
    cmd.env("RUST_LOG", "trace").env("RUST_BACKTRACE", "1");
    envsync_tests::run_with_stdin(&mut cmd, input)
}

/// `git ARGS` (hooks included) in the developer's repository at trace level.
fn traced_git(dev: &Dev, args: &[&str]) -> Run {
    let base = dev.envsync_cmd(&[]);
    let out = Command::new("git")
        .env_clear()
        .envs(base.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .current_dir(&dev.repo)
        .stdin(Stdio::null())
        .args(args)
        .output()
        .unwrap();
    Run::from(out)
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[track_caller]
fn assert_clean_text(what: &str, text: &[u8], secrets: &[&str]) {
    for s in secrets {
        assert!(
            !contains(text, s),
            "{what} contains the secret {s:?}:\n{}",
            String::from_utf8_lossy(text)
        );
    }
    assert!(!contains(text, "panicked"), "{what} shows a panic");
}

#[test]
fn sentinels_never_leave_the_env_file() {
    let server = Server::start_logging("trace");
    let recorder = Proxy::recorder(&server.url);
    // A second way to the same server that lies about key names and damages blobs, for
    // the integrity error paths.
    let liar = Proxy::start(&server.url, |req, up: &Upstream| {
        let resp = up.pass(req);
        if resp.status != 200 || !req.path.starts_with("/env/hygiene/") {
            return resp;
        }
        let mut v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
        if v.get("keys").is_some() {
            v["keys"] = serde_json::json!(["API_KEY"]);
        }
        envsync_tests::Response {
            status: 200,
            body: v.to_string(),
        }
    });

    let mut alice = Dev::new(&server, "hygiene");
    alice.server_url = recorder.url.clone();
    alice.pass = Some(PASSPHRASE.to_owned());
    let mut bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.server_url = recorder.url.clone();
    bob.pass = Some(PASSPHRASE.to_owned());
    let owner = server.token("owner@example.com", "owner", &[]);
    let mut runs: Vec<(String, Run)> = Vec::new();
    let mut log = |what: &str, run: Run| -> Run {
        runs.push((what.to_owned(), run.clone()));
        run
    };

    let env = format!(
        "API_KEY={VALUE}\nexport DATABASE_URL=\"postgres://app:{VALUE}@db/app\"\nPEM='-----BEGIN-----\n{VALUE}\n-----END-----'\n"
    );
    alice.write_env(&env);
    log("push", traced(&alice, &["push"], &[])).ok();
    log("pull", traced(&bob, &["pull"], &[])).ok();
    assert_eq!(bob.read_env().unwrap(), env.as_bytes());
    for args in [
        &["diff"][..],
        &["diff", "--json"],
        &["status"],
        &["status", "--json"],
        &["log"],
        &["log", "--json"],
        &["pull", "--json"],
    ] {
        log(&format!("{args:?}"), traced(&bob, args, &[])).ok();
    }
    // run sets the variables without printing them (the command checks the value).
    let check = format!("test \"$API_KEY\" = '{VALUE}'");
    log("run", traced(&bob, &["run", "--", "sh", "-c", &check], &[])).ok();

    // The small commands. Only get and export print a value, and only on stdout:
    // their runs are kept apart and swept below with that one exception.
    let mut printing: Vec<(String, Run)> = Vec::new();
    {
        let mut print = |what: &str, run: Run| {
            let run = run.ok();
            assert!(run.stdout.contains(VALUE), "{what}: {run:#?}");
            printing.push((what.to_owned(), run));
        };
        print("get", traced(&bob, &["get", "API_KEY"], &[]));
        for format in ["sh", "json", "dotenv"] {
            print(
                &format!("export {format}"),
                traced(&bob, &["export", "--format", format], &[]),
            );
        }
        log("get absent", traced(&bob, &["get", "NOPE"], &[])).refused();
        let not_a_key = format!("{VALUE} pasted");
        log("get bad key", traced(&bob, &["get", &not_a_key], &[])).refused();
        log("set", traced(&bob, &["set", "PLAIN=1"], &[])).ok();
        log(
            "set --stdin",
            traced_stdin(&bob, &["set", "TYPED", "--stdin"], VALUE),
        )
        .ok();
        log(
            "set bad key",
            traced(&bob, &["set", &format!("{not_a_key}={VALUE}")], &[]),
        )
        .refused();
        log("set no value", traced(&bob, &["set", "TYPED"], &[])).refused();
        log("unset", traced(&bob, &["unset", "PLAIN", "TYPED"], &[])).ok();
        log("unset absent", traced(&bob, &["unset", "NOPE"], &[])).refused();
        assert_eq!(bob.read_env().unwrap(), env.as_bytes());
        // The editor writes the sentinel (from its environment: the sweep reads the
        // home directory, where the script lives), then leaves it on a broken line.
        let edit_to = |name: &str, line: &str| {
            let path = bob.home.join(name);
            fs::write(
                &path,
                format!("#!/bin/sh\nprintf '{line}\\n' \"$S\" >> \"$1\"\n"),
            )
            .unwrap();
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            path.display().to_string()
        };
        let append = edit_to("append", "EDITED=%s");
        let broken = edit_to("broken", "BROKEN=\"%s");
        log(
            "edit",
            traced(&bob, &["edit"], &[("EDITOR", &append), ("S", VALUE)]),
        )
        .ok();
        log(
            "edit broken",
            traced(
                &bob,
                &["edit", "--push"],
                &[("EDITOR", &broken), ("S", VALUE)],
            ),
        )
        .refused();
        bob.write_env(format!("# OLD_KEY={VALUE}\n{env}"));
        log("example", traced(&bob, &["example"], &[])).ok();
        let example = fs::read(bob.repo.join(".env.example")).unwrap();
        assert_clean_text(".env.example", &example, &[VALUE]);
        assert!(contains(&example, "API_KEY="));
        log(
            "copy",
            traced(
                &bob,
                &["copy", "--branch", "feature/copy", "--from", "main"],
                &[],
            ),
        )
        .ok();
        // From the server: the file is main's, not feature/copy's.
        print(
            "get from the server",
            traced(&bob, &["get", "--branch", "feature/copy", "API_KEY"], &[]),
        );
        // What a format cannot carry: refused, with nothing printed.
        fs::write(
            bob.env_path(),
            [env.as_bytes(), b"BIN=", VALUE.as_bytes(), b"\xff\0\n"].concat(),
        )
        .unwrap();
        for format in ["sh", "json"] {
            let run = log(
                &format!("export {format} refused"),
                traced(&bob, &["export", "--format", format], &[]),
            )
            .refused();
            assert_eq!(run.stdout, "");
        }
        bob.write_env(&env);
    }

    // watch, briefly: started, told about a drifting edit, stopped with SIGTERM.
    {
        let mut cmd = bob.envsync_cmd(&["watch", "--debounce", "50"]);
        cmd.env("RUST_LOG", "trace").env("RUST_BACKTRACE", "1");
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        bob.write_env(format!("{env}EXTRA={VALUE}\n"));
        std::thread::sleep(Duration::from_millis(900));
        envsync_tests::signal(child.id(), "TERM");
        let out = child.wait_with_output().unwrap();
        let run = log("watch", Run::from(out));
        assert!(
            run.stderr.contains("EXTRA") || run.stdout.contains("EXTRA"),
            "{run:#?}"
        );
        bob.write_env(&env);
    }

    // Parse errors on the sentinel's line: an unterminated quote, a stray pasted line.
    for (i, bad) in [
        format!("A=1\nB=\"{VALUE}\n"),
        format!("A=1\n{VALUE} pasted by mistake\n"),
        format!("A=1\nhttps://user:{VALUE}@host\n"),
        format!("A=1\nC='{VALUE}' {VALUE}\n"),
    ]
    .iter()
    .enumerate()
    {
        alice.write_env(bad);
        for args in [&["push"][..], &["diff"], &["status"]] {
            let run = log(
                &format!("parse error {i} {args:?}"),
                traced(&alice, args, &[]),
            );
            if args == ["push"] {
                let run = run.refused();
                assert!(run.stderr.contains("line 2"), "{run:#?}");
            }
        }
    }
    alice.write_env(&env);

    // A wrong passphrase (itself a secret) on pull and run.
    {
        let mut wrong = Dev::clone_of(&alice, &server, "eve@example.com");
        wrong.server_url = recorder.url.clone();
        wrong.pass = Some(format!("{PASSPHRASE} but wrong"));
        log("wrong pass pull", traced(&wrong, &["pull"], &[])).refused();
        log(
            "wrong pass run",
            traced(&wrong, &["run", "--", "true"], &[]),
        )
        .refused();
        // Too short a passphrase to push with.
        wrong.pass = Some("short".into());
        wrong.write_env(&env);
        log("weak pass push", traced(&wrong, &["push", "--force"], &[])).refused();
    }

    // A clean merge on push; a conflict on push (kept for `merge`) and with --no-merge;
    // resolving it per key and through the merge file; then local edits that pull
    // refuses to overwrite, and --force's backup.
    alice.write_env(format!("{env}NEW={VALUE}\n"));
    log("push v2", traced(&alice, &["push"], &[])).ok();
    bob.write_env(format!("{env}MINE={VALUE}\n"));
    log("merge on push", traced(&bob, &["push"], &[])).ok();
    log("alice pulls the merge", traced(&alice, &["pull"], &[])).ok();
    alice.write_env(format!(
        "{env}NEW={VALUE}\nMINE={VALUE}-alice\nBOTH={VALUE}-a\n"
    ));
    log("push v4", traced(&alice, &["push"], &[])).ok();
    bob.write_env(format!(
        "{env}NEW={VALUE}\nMINE={VALUE}-bob\nBOTH={VALUE}-b\n"
    ));
    log("conflict", traced(&bob, &["push"], &[])).refused();
    log(
        "conflict --no-merge",
        traced(&bob, &["push", "--no-merge"], &[]),
    )
    .refused();
    log("conflict on pull", traced(&bob, &["pull"], &[])).refused();
    log("merge shown", traced(&bob, &["merge"], &[])).ok();
    log(
        "merge --theirs",
        traced(&bob, &["merge", "--theirs", "MINE"], &[]),
    )
    .ok();
    log("merge --edit", traced(&bob, &["merge", "--edit"], &[])).ok();
    let merge_file = bob.repo.join(".env.merge");
    assert!(contains(&fs::read(&merge_file).unwrap(), VALUE));
    log(
        "merge --continue",
        traced(&bob, &["merge", "--continue"], &[]),
    )
    .refused();
    fs::write(
        &merge_file,
        format!("{env}NEW={VALUE}\nMINE={VALUE}-alice\nBOTH={VALUE}-b\n"),
    )
    .unwrap();
    log(
        "merge --continue",
        traced(&bob, &["merge", "--continue"], &[]),
    )
    .ok();
    log("push the merge", traced(&bob, &["push"], &[])).ok();
    bob.write_env(format!("{env}MINE={VALUE}\n"));
    log("local edits", traced(&bob, &["pull"], &[])).refused();
    log("pull --force", traced(&bob, &["pull", "--force"], &[])).ok();
    log("rollback", traced(&bob, &["rollback", "1"], &[])).ok();

    // Integrity failures: a lying key list, on pull and run.
    {
        let mut misled = Dev::clone_of(&alice, &server, "mallory@example.com");
        misled.server_url = liar.url.clone();
        misled.pass = Some(PASSPHRASE.to_owned());
        log("integrity pull", traced(&misled, &["pull"], &[])).refused();
        log(
            "integrity run",
            traced(&misled, &["run", "--", "true"], &[]),
        )
        .refused();
    }

    // The server down.
    {
        let mut offline = Dev::clone_of(&alice, &server, "dave@example.com");
        offline.server_url = "http://127.0.0.1:9".into();
        offline.pass = Some(PASSPHRASE.to_owned());
        offline.write_env(&env);
        for args in [
            &["push"][..],
            &["pull"],
            &["diff"],
            &["status"],
            &["run", "--", "true"],
        ] {
            log(&format!("offline {args:?}"), traced(&offline, args, &[]));
        }
    }

    // Hooks: drift warnings on commit, auto-push, pull on checkout.
    log("hooks install", traced(&bob, &["hooks", "install"], &[])).ok();
    bob.write_env(format!("{env}HOOKED={VALUE}\n"));
    fs::write(bob.repo.join("file.txt"), "x").unwrap();
    log("git add", traced_git(&bob, &["add", "file.txt"])).ok();
    log("git commit", traced_git(&bob, &["commit", "-qm", "c"])).ok();
    log(
        "git checkout",
        traced_git(&bob, &["checkout", "-q", "-b", "feature/y"]),
    )
    .ok();

    // Rotation to a new passphrase (also a secret), and the audit log.
    log(
        "rotate",
        traced(&alice, &["rotate"], &[("ENVSYNC_NEW_PASS", NEW_PASSPHRASE)]),
    )
    .ok();
    let mut alice_owner = Dev::clone_of(&alice, &server, "owner@example.com");
    alice_owner.token = owner.clone();
    alice_owner.server_url = recorder.url.clone();
    log("audit", traced(&alice_owner, &["audit"], &[])).ok();

    // The sweep, which must be able to see a secret where one belongs: the env file and
    // the backup pull --force made.
    assert!(contains(&bob.read_env().unwrap(), VALUE));
    let backups: Vec<_> = files(&bob.repo)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains(".env.backup-"))
        .collect();
    assert!(!backups.is_empty());
    for (path, bytes) in &backups {
        assert!(contains(bytes, VALUE), "{}", path.display());
    }
    let tokens = [alice.token.as_str(), bob.token.as_str(), owner.as_str()];
    let secrets = secrets(&tokens);
    for (what, run) in &runs {
        assert_clean_text(&format!("{what}: stdout"), run.stdout.as_bytes(), &secrets);
        assert_clean_text(&format!("{what}: stderr"), run.stderr.as_bytes(), &secrets);
    }
    let but_the_value: Vec<&str> = secrets.iter().copied().filter(|s| *s != VALUE).collect();
    for (what, run) in &printing {
        assert_clean_text(&format!("{what}: stderr"), run.stderr.as_bytes(), &secrets);
        assert_clean_text(
            &format!("{what}: stdout"),
            run.stdout.as_bytes(),
            &but_the_value,
        );
    }
    // J4: the server's trace log holds no value, passphrase or bearer token.
    let server_log = fs::read(&server.stderr_log).unwrap();
    assert!(
        contains(&server_log, "TRACE"),
        "the server logged at trace level"
    );
    assert_clean_text("the server log", &server_log, &secrets);
    // No request carried a value or a passphrase; no answer either.
    let exchanges = recorder.exchanges();
    assert!(exchanges.len() > 20, "{}", exchanges.len());
    for (req, resp) in &exchanges {
        let what = format!("{} {}", req.method, req.path);
        assert_clean_text(
            &format!("request {what}"),
            req.body.as_bytes(),
            &secrets[..3],
        );
        assert_clean_text(&format!("answer to {what}"), resp.body.as_bytes(), &secrets);
    }
    // The database (and its WAL) at rest, and the audit log through the API.
    for (path, bytes) in files(server.dir()) {
        if path != server.stderr_log {
            assert_clean_text(&path.display().to_string(), &bytes, &secrets[..3]);
        }
    }
    let audit = server.request("GET", "/audit/hygiene?limit=500", &owner, None);
    assert_eq!(audit.status, 200, "{audit:?}");
    assert!(
        audit.body.contains("\"push\"") || audit.body.contains("push"),
        "{audit:?}"
    );
    assert_clean_text("the audit log", audit.body.as_bytes(), &secrets);
    // Local state and keys: only the env file and its backups hold plaintext.
    for dev in [&alice, &bob] {
        let state = files(&dev.repo.join(".git"));
        assert!(
            state
                .iter()
                .any(|(p, _)| p.to_string_lossy().ends_with(".age"))
        );
        for (path, bytes) in state.into_iter().chain(files(&dev.home)) {
            assert_clean_text(&path.display().to_string(), &bytes, &secrets[..3]);
        }
    }
}

#[test]
fn passphrases_are_never_taken_from_the_command_line() {
    let server = Server::start();
    let alice = Dev::new(&server, "flags");
    alice.write_env("A=1\n");
    // (`run` takes everything after it as the command to run, so it has no flags to abuse.)
    for flag in ["--passphrase", "--pass", "--password", "-p"] {
        for cmd in ["push", "pull", "rotate", "rollback", "diff", "unlock"] {
            let args = [cmd, flag, PASSPHRASE];
            let out = alice.envsync(&args).code(2);
            assert!(
                out.stderr.contains("unexpected argument"),
                "{args:?}: {out:#?}"
            );
            assert!(!out.stderr.contains(PASSPHRASE), "{out:#?}");
        }
    }
    // Nothing in the help mentions a passphrase flag.
    for cmd in ["push", "pull", "run", "rotate"] {
        let out = alice.envsync(&[cmd, "--help"]).ok();
        assert!(!out.stdout.contains("--pass"), "{cmd}: {}", out.stdout);
    }
}

#[test]
fn new_files_meet_the_work_factor_floor_and_weak_passphrases_are_refused() {
    let server = Server::start();
    let mut alice = Dev::new(&server, "floor");
    alice.write_env("A=1\n");
    // The product's default, without the tests' insecure override: 18.
    let mut cmd = alice.envsync_cmd(&["push"]);
    cmd.env_remove("ENVSYNC_INSECURE_WORK_FACTOR");
    let out = Run::from(cmd.output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    let blob = server
        .request("GET", "/env/floor/main", &alice.token, None)
        .json();
    let armored = blob["ciphertext"].as_str().unwrap();
    assert_eq!(envelope::scrypt_work_factor(armored).unwrap(), Some(18));

    // A project may ask for more, never for less.
    let config = alice.repo.join(".envsync.toml");
    let original = fs::read_to_string(&config).unwrap();
    // And never above 22, the most a reader accepts (30 would ask scrypt for 1 TiB).
    for wf in [12, 23, 30] {
        fs::write(&config, format!("{original}work_factor = {wf}\n")).unwrap();
        let out = alice.envsync(&["push"]).refused().code(2);
        assert!(out.stderr.contains("outside 18..=22"), "{out:#?}");
    }
    fs::write(&config, original).unwrap();

    // A passphrase that does not open the branch's latest version (a typo, or the old
    // one after a rotation) is refused before anything is sealed or sent.
    alice.pass = Some("not the project's passphrase".into());
    alice.write_env("A=2\n");
    let out = alice.envsync(&["push"]).refused().code(1);
    assert!(
        out.stderr.contains("does not open main version 1"),
        "{out:#?}"
    );
    let versions = server.request("GET", "/env/floor/main/versions", &alice.token, None);
    assert_eq!(versions.json()["versions"].as_array().unwrap().len(), 1);

    // A short passphrase is refused for a new project's files, unless explicitly allowed.
    let mut weak = Dev::new(&server, "weak");
    weak.pass = Some("short".into());
    weak.write_env("A=2\n");
    let out = weak.envsync(&["push"]).refused().code(2);
    assert!(out.stderr.contains("shorter than 10"), "{out:#?}");
    assert!(out.stderr.contains("ENVSYNC_ALLOW_WEAK_PASS"), "{out:#?}");
    let versions = server.request("GET", "/env/weak/main/versions", &weak.token, None);
    assert_ne!(versions.status, 201);
    let mut cmd = weak.envsync_cmd(&["push"]);
    cmd.env("ENVSYNC_ALLOW_WEAK_PASS", "1");
    assert_eq!(Run::from(cmd.output().unwrap()).code, 0);
}
