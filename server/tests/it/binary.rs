//! The real `envsync-server` binary: listening line, first start, offline tokens, SIGKILL
//! durability, refusals to start, and logs that hold no token.

use crate::common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary to its exit (killing it after `limit`), with a clean environment.
fn run(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envsync-server"));
    cmd.args(args)
        .env_remove("ENVSYNC_JWT_SECRET")
        .env_remove("ENVSYNC_ADDR")
        .env_remove("ENVSYNC_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_an_owner_token_and_later_starts_reuse_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let client = reqwest::Client::new();

    let mut server = Binary::start(&db, &[]);
    let hint = server.next_line();
    assert!(hint.starts_with("owner token"), "{hint}");
    let owner = server.next_line();
    assert_eq!(owner.split('.').count(), 3, "{owner}");
    let secret_file = dir.path().join("envsync.db.jwt.secret");
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let pushed = send(
        client
            .post(format!("{}/env/proj/main", server.url))
            .bearer_auth(&owner)
            .json(&json!({"ciphertext": ciphertext(), "keys": ["A"], "base_version": null})),
    )
    .await;
    assert_eq!(pushed.0, 201, "{}", pushed.1);
    let (status, tokens) = send(
        client
            .get(format!("{}/tokens", server.url))
            .bearer_auth(&owner),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(tokens[0]["role"], "owner");
    server.kill();

    // Second start: same secret, no new token, the old token still works.
    let secret_before = std::fs::read(&secret_file).unwrap();
    let mut again = Binary::start(&db, &[]);
    let (status, _) = send(
        client
            .get(format!("{}/env/proj/main", again.url))
            .bearer_auth(&owner),
    )
    .await;
    assert_eq!(status, 200);
    again.kill();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut again.stdout, &mut rest).unwrap();
    assert_eq!(rest, "", "a later start prints no token");
    assert_eq!(std::fs::read(&secret_file).unwrap(), secret_before);

    // A :memory: server also announces a token, and writes no file.
    let mut memory = Binary::start(std::path::Path::new(":memory:"), &[]);
    assert!(memory.next_line().starts_with("owner token"));
    let token = memory.next_line();
    let (status, _) = send(
        client
            .get(format!("{}/env/proj", memory.url))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!std::path::Path::new(":memory:.jwt.secret").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_subcommand_mints_offline_from_the_same_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let db_arg = db.to_str().unwrap();
    let client = reqwest::Client::new();

    // No secret anywhere yet: a clear refusal.
    let out = run(
        &[
            "token",
            "--email",
            "a@b",
            "--role",
            "developer",
            "--db",
            db_arg,
        ],
        &[],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: no JWT secret"), "{stderr}");

    let mut server = Binary::start(&db, &[]);
    let owner = {
        server.next_line();
        server.next_line()
    };
    let out = run(
        &[
            "token",
            "--email",
            "dev@example.com",
            "--role",
            "developer",
            "--project",
            "proj",
            "--project",
            "other",
            "--ttl",
            "1d",
            "--db",
            db_arg,
        ],
        &[],
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "the token alone on stdout: {stdout}"
    );
    let dev = stdout.trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&dev));

    let pushed = send(
        client
            .post(format!("{}/env/other/main", server.url))
            .bearer_auth(&dev)
            .json(&json!({"ciphertext": ciphertext(), "keys": ["A"], "base_version": null})),
    )
    .await;
    assert_eq!(pushed.0, 201, "{}", pushed.1);
    let (_, tokens) = send(
        client
            .get(format!("{}/tokens", server.url))
            .bearer_auth(&owner),
    )
    .await;
    let row = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["email"] == "dev@example.com")
        .expect("the offline token is recorded");
    assert_eq!(row["project_ids"], json!(["proj", "other"]));

    for bad in [
        vec!["token", "--email", "a@b", "--role", "admin", "--db", db_arg],
        vec![
            "token", "--email", "a@b", "--role", "owner", "--ttl", "soon", "--db", db_arg,
        ],
        vec![
            "token",
            "--email",
            "a@b",
            "--role",
            "owner",
            "--project",
            "a..b",
            "--db",
            db_arg,
        ],
        vec!["token", "--role", "owner", "--db", db_arg],
    ] {
        let out = run(&bad, &[], Duration::from_secs(20));
        assert!(!out.status.success(), "{bad:?}");
        assert!(out.stdout.is_empty(), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error:"), "{bad:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_push_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let env = [("ENVSYNC_JWT_SECRET", SECRET)];
    let dev = token("developer", &["proj"]);
    let client = reqwest::Client::new();
    let mut acknowledged = 0;
    for round in 0..3 {
        let mut server = Binary::start(&db, &env);
        // A burst of pushes; SIGKILL right after the last answer.
        for _ in 0..5 {
            let base = if acknowledged == 0 {
                None
            } else {
                Some(acknowledged)
            };
            let (status, body) = send(
                client
                    .post(format!("{}/env/proj/main", server.url))
                    .bearer_auth(&dev)
                    .json(&json!({"ciphertext": ciphertext(), "keys": [format!("R{round}")], "base_version": base})),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            acknowledged = body["version"].as_u64().unwrap();
            // A pull is answered once its audit row is in the WAL: that too survives.
            let (status, _) = send(
                client
                    .get(format!("{}/env/proj/main", server.url))
                    .bearer_auth(&dev),
            )
            .await;
            assert_eq!(status, 200);
        }
        server.kill();
    }
    let server = Binary::start(&db, &env);
    let (status, env_body) = send(
        client
            .get(format!("{}/env/proj/main", server.url))
            .bearer_auth(&dev),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(env_body["version"], acknowledged);
    assert_eq!(env_body["keys"], json!(["R2"]));
    let versions = all_versions(
        &client,
        &format!("{}/env/proj/main/versions", server.url),
        &dev,
    )
    .await;
    assert_eq!(versions.len() as u64, acknowledged);
    let owner = token("owner", &[]);
    let (_, page) = send(
        client
            .get(format!("{}/audit/proj?limit=500", server.url))
            .bearer_auth(&owner),
    )
    .await;
    let count = |action: &str| {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == "ok")
            .count() as u64
    };
    assert_eq!(count("push"), acknowledged);
    assert_eq!(
        count("pull"),
        acknowledged + 1,
        "every answered pull is audited"
    );
    drop(server);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn bad_configuration_refuses_to_start_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let db_arg = db.to_str().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "short secret",
            vec![],
            vec![("ENVSYNC_JWT_SECRET", "too-short")],
            "error: ENVSYNC_JWT_SECRET is refused",
        ),
        (
            "placeholder secret",
            vec![],
            vec![(
                "ENVSYNC_JWT_SECRET",
                "changeme-changeme-changeme-changeme-changeme",
            )],
            "error: ENVSYNC_JWT_SECRET is refused",
        ),
        (
            "bad algorithm",
            vec![],
            vec![
                ("ENVSYNC_JWT_SECRET", SECRET),
                ("ENVSYNC_JWT_ALGORITHM", "none"),
            ],
            "error: ENVSYNC_JWT_ALGORITHM",
        ),
        (
            "bad body limit",
            vec![],
            vec![("ENVSYNC_JWT_SECRET", SECRET), ("ENVSYNC_MAX_BODY", "lots")],
            "error: ENVSYNC_MAX_BODY",
        ),
        (
            "busy port",
            vec!["--addr", busy_addr.as_str()],
            vec![("ENVSYNC_JWT_SECRET", SECRET)],
            "error: cannot listen",
        ),
        (
            "bad address",
            vec!["--addr", "nowhere"],
            vec![("ENVSYNC_JWT_SECRET", SECRET)],
            "error: cannot listen",
        ),
        (
            "bad failure limit",
            vec![],
            vec![
                ("ENVSYNC_JWT_SECRET", SECRET),
                ("ENVSYNC_AUTH_MAX_FAILURES", "lots"),
            ],
            "error: ENVSYNC_AUTH_MAX_FAILURES",
        ),
        (
            "bad failure window",
            vec![],
            vec![
                ("ENVSYNC_JWT_SECRET", SECRET),
                ("ENVSYNC_AUTH_WINDOW", "forever"),
            ],
            "error: ENVSYNC_AUTH_WINDOW",
        ),
        (
            "no connections",
            vec![],
            vec![
                ("ENVSYNC_JWT_SECRET", SECRET),
                ("ENVSYNC_MAX_CONNECTIONS", "0"),
            ],
            "error: ENVSYNC_MAX_CONNECTIONS",
        ),
        (
            "bad header timeout",
            vec![],
            vec![
                ("ENVSYNC_JWT_SECRET", SECRET),
                ("ENVSYNC_HEADER_TIMEOUT", "never"),
            ],
            "error: ENVSYNC_HEADER_TIMEOUT",
        ),
        (
            "key names over the format's limit",
            vec![],
            vec![
                ("ENVSYNC_JWT_SECRET", SECRET),
                ("ENVSYNC_MAX_KEY_LEN", "1000"),
            ],
            "error: ENVSYNC_MAX_KEY_LEN",
        ),
        (
            "unreadable TLS certificate",
            vec![
                "--tls-cert",
                "/nonexistent-envsync-dir/cert.pem",
                "--tls-key",
                "/nonexistent-envsync-dir/key.pem",
            ],
            vec![("ENVSYNC_JWT_SECRET", SECRET)],
            "error: cannot read the TLS certificate /nonexistent-envsync-dir/cert.pem: No such file",
        ),
        ("unknown flag", vec!["--bogus"], vec![], "error:"),
        (
            "missing directory",
            vec!["--db", "/nonexistent-envsync-dir/x.db"],
            vec![("ENVSYNC_JWT_SECRET", SECRET)],
            "error: cannot open the database",
        ),
    ];
    for (name, extra, env, expected) in cases {
        let mut args = vec![];
        if !extra.contains(&"--db") {
            args.extend(["--db", db_arg]);
        }
        if !extra.contains(&"--addr") {
            args.extend(["--addr", "127.0.0.1:0"]);
        }
        args.extend(extra);
        let out = run(&args, &env, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: started anyway");
        assert!(out.status.code().is_some(), "{name}: killed, not exited");
        assert!(stderr.starts_with(expected), "{name}: {stderr}");
        let error_lines = stderr.lines().filter(|l| l.starts_with("error:")).count();
        assert_eq!(error_lines, 1, "{name}: {stderr}");
        assert!(
            !stderr.contains("No such file or directory (os error 2): No such"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!stderr.contains(SECRET), "{name}: the secret was echoed");
    }
    drop(busy);
}

/// Each refusal names its fix on one `hint:` line after the `error:` line, chosen by what
/// failed (not by the message's words), with the exit code a setting (2) or a failure (1)
/// gets.
#[test]
fn each_refusal_to_start_names_its_own_fix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let db_arg = db.to_str().unwrap();
    let short = dir.path().join("short.secret");
    std::fs::write(&short, "too-short\n").unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    let missing = dir.path().join("missing.secret");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    /// What is wrong, the flags and variables that make it so, the hint, the exit code.
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str, i32);
    let cases: [Case; 5] = [
        (
            "a secret file that does not exist",
            vec!["--jwt-secret-file", missing.to_str().unwrap()],
            vec![],
            "hint: point ENVSYNC_JWT_SECRET_FILE at the file the servers share",
            1,
        ),
        (
            "a secret file too short",
            vec!["--jwt-secret-file", short.to_str().unwrap()],
            vec![],
            "hint: replace it with a long random one",
            1,
        ),
        (
            "a secret variable too short",
            vec![],
            vec![("ENVSYNC_JWT_SECRET", "too-short")],
            "hint: unset ENVSYNC_JWT_SECRET to let the server generate one",
            1,
        ),
        (
            "an address in use",
            vec!["--addr", busy_addr.as_str()],
            vec![("ENVSYNC_JWT_SECRET", SECRET)],
            "hint: pick another address with --addr",
            1,
        ),
        (
            "a setting that cannot be used",
            vec![],
            vec![("ENVSYNC_JWT_SECRET", SECRET), ("ENVSYNC_MAX_BODY", "lots")],
            "hint: envsync-server --help lists every setting",
            2,
        ),
    ];
    for (name, extra, env, hint, code) in cases {
        let mut args = vec!["--db", db_arg];
        if !extra.contains(&"--addr") {
            args.extend(["--addr", "127.0.0.1:0"]);
        }
        args.extend(extra);
        let out = run(&args, &env, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{name}: {stderr}");
        assert!(lines[0].starts_with("error: "), "{name}: {stderr}");
        assert!(lines[1].starts_with(hint), "{name}: {stderr}");
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert!(!db.exists(), "{name}: a refused start wrote the database");
    }
    drop(busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_hold_no_token_or_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let mut server = Binary::start(&db, &[("RUST_LOG", "trace")]);
    server.next_line();
    let owner = server.next_line();
    let client = reqwest::Client::new();
    let blob = ciphertext();
    let post = |token: &str, base: Option<u64>| {
        client
            .post(format!("{}/env/proj/feature%2Fx", server.url))
            .bearer_auth(token)
            .json(&json!({"ciphertext": blob, "keys": ["API_KEY"], "base_version": base}))
    };
    assert_eq!(send(post(&owner, None)).await.0, 201);
    assert_eq!(send(post(&owner, None)).await.0, 409);
    assert_eq!(
        send(
            client
                .get(format!("{}/env/proj/feature%2Fx", server.url))
                .bearer_auth(&owner)
        )
        .await
        .0,
        200
    );
    let (status, minted) = send(
        client
            .post(format!("{}/tokens", server.url))
            .bearer_auth(&owner)
            .json(&json!({"email": "r@example.com", "role": "readonly", "project_ids": ["proj"]})),
    )
    .await;
    assert_eq!(status, 201);
    let readonly = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(send(post(&readonly, Some(1))).await.0, 403);
    let mut bad = owner.clone();
    bad.push('x');
    assert_eq!(
        send(
            client
                .get(format!("{}/env/proj", server.url))
                .bearer_auth(&bad)
        )
        .await
        .0,
        401
    );
    // Graceful stop flushes the log.
    envsync_tests::signal(server.child.id(), "TERM");
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "SIGTERM is a clean exit: {exit:?}");

    let log = server.stderr();
    assert!(log.contains("status=201"), "access log missing:\n{log}");
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "not a trace log:\n{log}"
    );
    for token in [&owner, &readonly] {
        assert!(!log.contains(token.as_str()), "a token is in the log");
        assert!(
            !log.contains(token.split('.').nth(2).unwrap()),
            "a token signature is in the log"
        );
        assert!(
            !log.contains(token.split('.').nth(1).unwrap()),
            "token claims are in the log"
        );
    }
    assert!(
        !log.contains(blob.lines().nth(1).unwrap()),
        "ciphertext is in the log"
    );
    assert!(!log.contains("BEGIN AGE"), "ciphertext is in the log");
    let secret = std::fs::read_to_string(dir.path().join("envsync.db.jwt.secret")).unwrap();
    assert!(!log.contains(secret.trim()), "the secret is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_its_wal_files_are_created_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    // The server started through a shell with umask 000, as a careless service unit would.
    let server = Binary::start_limited(&db, &[("ENVSYNC_JWT_SECRET", SECRET)], Some("umask 000"));
    let url = server.url.clone();
    let dev = token("developer", &["proj"]);
    let pushed = send(
        reqwest::Client::new()
            .post(format!("{url}/env/proj/main"))
            .bearer_auth(&dev)
            .json(&json!({"ciphertext": ciphertext(), "keys": ["A"], "base_version": null})),
    )
    .await;
    assert_eq!(pushed.0, 201, "{}", pushed.1);
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", db.display());
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_data_whose_secret_is_lost_is_refused_not_given_a_new_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let secret_file = dir.path().join("envsync.db.jwt.secret");
    let db_arg = db.to_str().unwrap();

    // An empty database file (created by hand, say) is still a first start.
    std::fs::write(&db, b"").unwrap();
    let mut server = Binary::start(&db, &[]);
    assert!(server.next_line().starts_with("owner token"));
    let owner = server.next_line();
    server.kill();
    let before = std::fs::read(&db).unwrap();

    let kept = std::fs::read(&secret_file).unwrap();
    std::fs::remove_file(&secret_file).unwrap();
    let out = run(
        &["--db", db_arg, "--addr", "127.0.0.1:0"],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "no listening line, no new owner token"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines = stderr.lines();
    let error = lines.next().unwrap();
    assert!(
        error.starts_with("error: the database holds data but its JWT secret is missing"),
        "{stderr}"
    );
    assert!(error.contains("envsync.db.jwt.secret"), "{stderr}");
    let hint = lines.next().unwrap_or_default();
    assert!(
        hint.starts_with("hint: restore") && hint.contains("ENVSYNC_JWT_SECRET"),
        "{stderr}"
    );
    assert!(!secret_file.exists(), "a new secret was written anyway");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database was touched"
    );

    // With the secret restored, the old token works again.
    std::fs::write(&secret_file, &kept).unwrap();
    let server = Binary::start(&db, &[]);
    let (status, _) = send(
        reqwest::Client::new()
            .get(format!("{}/whoami", server.url))
            .bearer_auth(&owner),
    )
    .await;
    assert_eq!(status, 200);
}

/// Every `ENVSYNC_*` variable the server reads (found in its source, so one added later is
/// checked too) is listed by `--help`: a setting's flag shows its variable and default.
#[test]
fn help_lists_every_setting_with_its_variable_and_default() {
    let mut read = std::collections::BTreeSet::new();
    for file in ["src/config.rs", "src/main.rs"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let source = std::fs::read_to_string(&path).unwrap();
        for (at, _) in source.match_indices("ENVSYNC_") {
            let name: String = source[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.len() > "ENVSYNC_".len() {
                read.insert(name);
            }
        }
    }
    assert!(read.len() >= 10, "the scan found too few: {read:?}");
    let out = run(&["--help"], &[], Duration::from_secs(10));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in &read {
        assert!(
            help.contains(var.as_str()),
            "{var} is not in --help:\n{help}"
        );
    }
    // Each flag's entry names its variable; those with a default show it.
    for (flag, default) in [
        ("--addr", Some("127.0.0.1:8000")),
        ("--db", Some("envsync.db")),
        ("--jwt-algorithm", Some("HS256")),
        ("--jwt-issuer", None),
        ("--max-body", Some("1MiB")),
        ("--auth-max-failures", Some("20")),
        ("--auth-window", Some("60s")),
        ("--auth-limiter-capacity", Some("10000")),
    ] {
        let start = help
            .find(&format!("\n      {flag} <"))
            .unwrap_or_else(|| panic!("{flag} is not in --help:\n{help}"));
        let entry = help[start + 1..].split("\n\n").next().unwrap_or_default();
        assert!(entry.contains("[env: ENVSYNC_"), "{entry}");
        if let Some(default) = default {
            assert!(entry.contains(&format!("[default: {default}]")), "{entry}");
        }
    }
    // The secret is the one setting without a flag (a command line is public).
    assert!(!help.contains("--jwt-secret <"), "{help}");
    assert!(help.contains("--jwt-secret-file <PATH>"), "{help}");
}

/// A bad setting, given as a flag or as its variable, is one error line and exit 2.
#[test]
fn a_bad_setting_by_flag_or_variable_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let db = db.to_str().unwrap();
    let secret = [("ENVSYNC_JWT_SECRET", SECRET)];
    for (args, env, expected) in [
        (
            vec!["--max-body", "lots"],
            vec![],
            "error: ENVSYNC_MAX_BODY must be a size",
        ),
        (
            vec![],
            vec![("ENVSYNC_AUTH_WINDOW", "2d")],
            "error: ENVSYNC_AUTH_WINDOW must be a duration",
        ),
        (
            vec!["--jwt-issuer", ""],
            vec![],
            "error: ENVSYNC_JWT_ISSUER is set but empty",
        ),
        (
            vec!["--tls-cert", "/etc/envsync/cert.pem"],
            vec![],
            "error: ENVSYNC_TLS_CERT is set without ENVSYNC_TLS_KEY",
        ),
        (
            vec![],
            vec![("ENVSYNC_TLS_KEY", "/etc/envsync/key.pem")],
            "error: ENVSYNC_TLS_KEY is set without ENVSYNC_TLS_CERT",
        ),
        // The flag wins over the variable.
        (
            vec!["--jwt-algorithm", "RS256"],
            vec![("ENVSYNC_JWT_ALGORITHM", "HS512")],
            "error: ENVSYNC_JWT_ALGORITHM must be HS256, HS384 or HS512, not 'RS256'",
        ),
    ] {
        let mut all = vec!["--db", db, "--addr", "127.0.0.1:0"];
        all.extend(&args);
        let env: Vec<(&str, &str)> = secret.iter().copied().chain(env).collect();
        let out = run(&all, &env, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with(expected), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1
        );
        assert!(stderr.contains("hint: envsync-server --help"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// `envsync-server man --dir DIR` writes envsync-server(1) and a page per subcommand, and
/// `man -l` renders each without a warning (when `man` is on the machine).
#[test]
fn manual_pages_are_written_and_render() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = run(
        &["man", "--dir", pages.to_str().unwrap()],
        &[],
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut written: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "envsync-server-audit-verify.1",
            "envsync-server-audit.1",
            "envsync-server-copy.1",
            "envsync-server-token.1",
            "envsync-server.1",
        ]
    );
    let main_page = std::fs::read_to_string(pages.join("envsync-server.1")).unwrap();
    for var in [
        "ENVSYNC_MAX_BODY",
        "ENVSYNC_AUTH_WINDOW",
        "ENVSYNC_JWT_SECRET",
    ] {
        assert!(main_page.contains(var), "{var}");
    }
    let man = Command::new("man").arg("--version").output();
    assert!(
        man.is_ok_and(|out| out.status.success()),
        "`man` is not on this machine: ./test.sh installs it (Debian's man-db)"
    );
    for page in &written {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(pages.join(page))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MANWIDTH", "80")
            // As on a terminal: help texts may hold UTF-8 (…), which an ASCII locale cannot draw.
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.is_empty(), "{page}: {err}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("NAME"),
            "{page}"
        );
    }
}

/// A subcommand's flags that cannot be used together are a usage error: one `error:` line
/// naming the flag, exit 2 (as clap's own), and nothing created.
#[test]
fn a_subcommand_given_flags_it_cannot_use_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let db_arg = db.to_str().unwrap();
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec![
                "token",
                "--db",
                ":memory:",
                "--email",
                "a@example.com",
                "--role",
                "owner",
            ],
            "error: `token` needs the server's database file, not :memory:",
        ),
        (
            vec!["--db", db_arg, "audit", "verify", "--anchor", "twelve"],
            "error: --anchor must be ID:HASH",
        ),
        (
            vec!["copy", "--from", db_arg, "--to", db_arg],
            "error: --from and --to name the same database",
        ),
        (
            vec!["copy", "--from", db_arg, "--to", ":memory:"],
            "error: `copy` needs a database file or URL on both sides",
        ),
        (
            vec!["copy", "--from", db_arg, "--to", "elsewhere.db"],
            "error: no database at",
        ),
    ];
    for (args, first) in cases {
        let out = run(
            &args,
            &[("ENVSYNC_JWT_SECRET", SECRET)],
            Duration::from_secs(20),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with(first), "{args:?}: {stderr}");
    }
    assert!(!db.exists(), "a refused command created the database");
}
