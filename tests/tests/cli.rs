//! The CLI end to end: real server, real git repositories, the real binary.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope::{self, Binding, Seal};
use envsync_common::secret::SecretString;
use envsync_tests::{Dev, Run, Server, fixtures};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn server_keys(server: &Server, token: &str, project: &str, branch: &str) -> Vec<String> {
    let r = server.request("GET", &format!("/env/{project}/{branch}/keys"), token, None);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    let server = Server::start();
    let alice = Dev::new(&server, "fixtures");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    let mut files: Vec<_> = fs::read_dir(fixtures().join("dotenv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "env"))
        .collect();
    files.sort();
    files.push(fixtures().join("sample.env"));
    for (i, file) in files.iter().enumerate() {
        let bytes = fs::read(file).unwrap();
        alice.write_env(&bytes);
        alice.envsync(&["push"]).clean().ok();
        bob.envsync(&["pull"]).clean().ok();
        assert_eq!(bob.read_env().unwrap(), bytes, "{}", file.display());
        assert_eq!(mode(&bob.env_path()), 0o600);
        let expected: Vec<String> = fs::read_to_string(file.with_extension("keys"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let keys = server_keys(&server, &alice.token, "fixtures", "main");
        assert_eq!(keys, expected, "{}", file.display());
        let versions = server.request("GET", "/env/fixtures/main/versions", &alice.token, None);
        assert_eq!(versions.json()["versions"][0]["version"], (i + 1) as u64);
    }
}

#[test]
fn pull_writes_0600_under_any_umask() {
    let server = Server::start();
    let alice = Dev::new(&server, "modes");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    for umask in ["000", "022", "077"] {
        let bob = Dev::clone_of(&alice, &server, "bob@example.com");
        // A pre-existing world-readable file, identical content: still ends up 0600.
        bob.write_env("A=1\n");
        fs::set_permissions(bob.env_path(), fs::Permissions::from_mode(0o644)).unwrap();
        let exe = envsync_tests::binary("git-envsync");
        let base = bob.envsync_cmd(&[]);
        let mut cmd = std::process::Command::new("sh");
        cmd.env_clear()
            .envs(base.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
            .current_dir(&bob.repo)
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" pull"))
            .arg(&exe);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(mode(&bob.env_path()), 0o600, "umask {umask}");
        let state = bob.repo.join(".git/envsync");
        assert_eq!(mode(&state), 0o700, "umask {umask}");
        assert_eq!(mode(&state.join("modes/file.json")), 0o600, "umask {umask}");
    }
}

#[test]
fn drift_between_two_clones() {
    let server = Server::start();
    let alice = Dev::new(&server, "drift");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    alice.write_env("API_KEY=a\nDEBUG=1\nDATABASE_URL=x\nSTRIPE_SECRET=s\n");
    alice.envsync(&["push"]).ok();
    bob.write_env("API_KEY=b\nDEBUG=0\nDATABASE_URL=y\n");

    let out = bob.envsync(&["diff"]).clean().ok();
    assert_eq!(
        out.stdout,
        "Local keys (3): API_KEY, DEBUG, DATABASE_URL\n\
         Server keys (4): API_KEY, DEBUG, DATABASE_URL, STRIPE_SECRET\n\
         Missing locally: STRIPE_SECRET\n\
         Extra locally: None\n\
         In sync? False\n"
    );
    bob.envsync(&["diff", "--exit-code"]).code(1);
    let json = bob.envsync(&["diff", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["missing"], serde_json::json!(["STRIPE_SECRET"]));
    assert_eq!(v["in_sync"], false);

    // diff needs no passphrase.
    let mut nopass = Dev::clone_of(&alice, &server, "carol@example.com");
    nopass.pass = None;
    nopass.write_env("API_KEY=a\nDEBUG=1\nDATABASE_URL=x\nSTRIPE_SECRET=s\n");
    nopass.envsync(&["diff", "--exit-code"]).ok();
}

#[test]
fn diff_against_another_branch() {
    let server = Server::start();
    let alice = Dev::new(&server, "against");
    alice.write_env("A=1\nB=2\n");
    alice.envsync(&["push"]).ok();
    alice.write_env("A=1\nC=3\n");
    alice.envsync(&["push", "--branch", "feature/x"]).ok();
    let out = alice
        .envsync(&["diff", "--branch", "feature/x", "--against", "main"])
        .ok();
    assert_eq!(
        out.stdout,
        "Keys on feature/x (2): A, C\nKeys on main (2): A, B\nMissing on feature/x: B\nExtra on feature/x: C\nIn sync? False\n"
    );
    // A branch with no env is not "no keys": it is a mistake to say so.
    let out = alice
        .envsync(&["diff", "--against", "no-such-branch"])
        .refused()
        .code(1);
    assert!(
        out.stderr
            .contains("no-such-branch has no env on the server"),
        "{out:#?}"
    );
}

#[test]
fn stale_push_is_refused_and_server_unchanged() {
    let server = Server::start();
    let alice = Dev::new(&server, "stale");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    bob.envsync(&["pull"]).ok();
    alice.write_env("A=2\n");
    alice.envsync(&["push"]).ok();

    bob.write_env("A=3\nB=1\n");
    let out = bob.envsync(&["push"]).clean().code(1);
    assert!(out.stderr.contains("version 2"), "{out:#?}");
    assert!(out.stderr.contains("dev@example.com"), "{out:#?}");
    assert!(
        out.stderr.contains("hint: run git envsync pull"),
        "{out:#?}"
    );
    assert_eq!(server_keys(&server, &alice.token, "stale", "main"), ["A"]);

    // Pull refuses to overwrite bob's unpushed edits, and leaves the file alone.
    let out = bob.envsync(&["pull"]).clean().code(1);
    assert!(out.stderr.contains("local edits"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), b"A=3\nB=1\n");

    // --force saves a 0600 backup first.
    let out = bob.envsync(&["pull", "--force"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"A=2\n");
    let backups: Vec<_> = fs::read_dir(&bob.repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".env.backup-"))
        .collect();
    assert_eq!(backups.len(), 1, "{out:#?}");
    assert_eq!(fs::read(&backups[0]).unwrap(), b"A=3\nB=1\n");
    assert_eq!(mode(&backups[0]), 0o600);

    // push --force replaces a version this clone has not seen.
    alice.write_env("A=4\n");
    alice.envsync(&["push"]).ok();
    bob.write_env("A=5\nB=5\n");
    bob.envsync(&["push"]).code(1);
    bob.envsync(&["push", "--force"]).clean().ok();
    assert_eq!(
        server_keys(&server, &alice.token, "stale", "main"),
        ["A", "B"]
    );
}

#[test]
fn new_branch_falls_back_to_default_branch() {
    let server = Server::start();
    let alice = Dev::new(&server, "fallback");
    alice.write_env("A=main\n");
    alice.envsync(&["push"]).ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.git(&["checkout", "-q", "-b", "feature/login"]);
    let out = bob.envsync(&["pull"]).clean().ok();
    assert!(out.stderr.contains("pulled main version 1"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), b"A=main\n");
    // Pushing creates the branch's own env.
    bob.write_env("A=feature\n");
    bob.envsync(&["push"]).ok();
    assert_eq!(
        server_keys(&server, &bob.token, "fallback", "feature%2Flogin"),
        ["A"]
    );
    let r = server.request("GET", "/env/fallback/main/keys", &bob.token, None);
    assert_eq!(r.json()["version"], 1);
}

#[test]
fn run_sets_variables_without_writing_a_file() {
    let server = Server::start();
    let alice = Dev::new(&server, "run");
    alice.write_env("GREETING=\"hello world\"\nLITERAL='$HOME'\nexport N=42\n");
    alice.envsync(&["push"]).ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    let out = bob
        .envsync(&[
            "run",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$GREETING\" \"$LITERAL\" \"$N\"; exit 7",
        ])
        .code(7);
    assert_eq!(out.stdout, "hello world|$HOME|42");
    assert!(bob.read_env().is_none(), "run must not write the env file");
}

#[test]
fn wrong_passphrase_writes_nothing() {
    let server = Server::start();
    let alice = Dev::new(&server, "wrongpass");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    let mut bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.pass = Some("not the right passphrase".into());
    let out = bob.envsync(&["pull"]).clean().code(1);
    assert!(out.stderr.contains("wrong passphrase"), "{out:#?}");
    assert!(bob.read_env().is_none());
}

#[test]
fn bad_token_and_missing_token() {
    let server = Server::start();
    let mut alice = Dev::new(&server, "tokens");
    alice.write_env("A=1\n");
    alice.token = "garbage".into();
    let out = alice.envsync(&["push"]).clean().code(2);
    assert!(out.stderr.contains("401"), "{out:#?}");
    assert!(out.stderr.contains("hint: "), "{out:#?}");
    alice.token = String::new();
    let out = alice.envsync(&["push"]).clean().code(2);
    assert!(out.stderr.contains("no token for"), "{out:#?}");
}

#[test]
fn server_down_is_exit_3_within_seconds() {
    let mut server = Server::start();
    let alice = Dev::new(&server, "down");
    alice.write_env("A=1\n");
    server.kill();
    let start = Instant::now();
    let out = alice.envsync(&["push"]).clean().code(3);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(out.stderr.contains("cannot reach"), "{out:#?}");
    alice.envsync(&["diff"]).clean().code(3);
    alice.envsync(&["pull"]).clean().code(3);
}

#[test]
fn missing_config_mentions_init() {
    let server = Server::start();
    let alice = Dev::new(&server, "noconfig");
    fs::remove_file(alice.repo.join(".envsync.toml")).unwrap();
    let out = alice.envsync(&["push"]).clean().code(2);
    assert!(out.stderr.contains("git envsync init"), "{out:#?}");
}

#[test]
fn detached_head_needs_branch() {
    let server = Server::start();
    let alice = Dev::new(&server, "detached");
    alice.write_env("A=1\n");
    alice.git(&["checkout", "-q", "--detach"]);
    let out = alice.envsync(&["push"]).clean().code(2);
    assert!(out.stderr.contains("--branch"), "{out:#?}");
    alice.envsync(&["push", "--branch", "main"]).clean().ok();
}

#[test]
fn blob_bound_elsewhere_is_refused_with_nothing_written() {
    let server = Server::start();
    let alice = Dev::new(&server, "binding");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    alice.write_env("A=2\n");
    alice.envsync(&["push"]).ok();
    let main_v1 = server
        .request("GET", "/env/binding/main?version=1", &alice.token, None)
        .json();

    // Replay main's blob as the first version of feature/x.
    let body = serde_json::json!({
        "ciphertext": main_v1["ciphertext"], "keys": main_v1["keys"], "base_version": null,
    });
    let r = server.request(
        "POST",
        "/env/binding/feature%2Fx",
        &alice.token,
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{r:?}");
    // Replay version 1 as version 3 of main.
    let body = serde_json::json!({
        "ciphertext": main_v1["ciphertext"], "keys": main_v1["keys"], "base_version": 2,
    });
    let r = server.request(
        "POST",
        "/env/binding/main",
        &alice.token,
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{r:?}");

    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    let out = bob
        .envsync(&["pull", "--branch", "feature/x"])
        .clean()
        .code(1);
    assert!(out.stderr.contains("integrity check failed"), "{out:#?}");
    assert!(out.stderr.contains("branch"), "{out:#?}");
    assert!(bob.read_env().is_none());
    let out = bob.envsync(&["pull"]).clean().code(1);
    assert!(out.stderr.contains("version"), "{out:#?}");
    assert!(bob.read_env().is_none());
}

#[test]
fn server_key_list_must_match_the_plaintext() {
    let server = Server::start();
    let alice = Dev::new(&server, "keylie");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    // A correctly bound version 2 whose key list, as told to the server, leaves out B.
    let pass = SecretString::from(envsync_tests::PASS.to_owned());
    let sealed = envelope::seal(
        &Binding::new("keylie", "main", 2),
        b"A=1\nB=2\n",
        &Seal::Passphrase {
            passphrase: &pass,
            work_factor: 10,
        },
    )
    .unwrap();
    let body = serde_json::json!({"ciphertext": sealed, "keys": ["A"], "base_version": 1});
    let r = server.request(
        "POST",
        "/env/keylie/main",
        &alice.token,
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{r:?}");

    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    let out = bob.envsync(&["pull"]).clean().code(1);
    assert!(out.stderr.contains("key list"), "{out:#?}");
    assert!(bob.read_env().is_none());
}

#[test]
fn status_and_log() {
    let server = Server::start();
    let alice = Dev::new(&server, "status");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    alice.write_env("A=1\nB=2\n");
    alice.envsync(&["push"]).ok();
    let out = alice.envsync(&["status"]).clean().ok();
    assert!(out.stdout.contains("Project: status"), "{out:#?}");
    assert!(out.stdout.contains("Branch:  main"), "{out:#?}");
    assert!(out.stdout.contains("(clean)"), "{out:#?}");
    assert!(out.stdout.contains("version 2 (same)"), "{out:#?}");
    assert!(out.stdout.contains("Drift:   in sync"), "{out:#?}");
    alice.write_env("A=1\nB=2\nC=3\n");
    let out = alice.envsync(&["status"]).ok();
    assert!(out.stdout.contains("(edited)"), "{out:#?}");
    assert!(
        out.stdout.contains("0 missing locally, 1 extra locally"),
        "{out:#?}"
    );

    let out = alice.envsync(&["log"]).clean().ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("version 2  "), "{out:#?}");
    assert!(lines[0].contains("dev@example.com"), "{out:#?}");
    assert_eq!(lines[1], "    + B");
    assert!(lines[2].starts_with("version 1  "), "{out:#?}");
}

#[test]
fn login_saves_a_private_user_config_and_checks_the_token() {
    let server = Server::start();
    let alice = Dev::new(&server, "login");
    let login = |token: &str, url: &str, extra: &[&str]| {
        let mut args = vec!["login", "--server", url, "--token-stdin"];
        args.extend_from_slice(extra);
        let mut cmd = alice.envsync_cmd(&args);
        cmd.env_remove("ENVSYNC_API")
            .env_remove("ENVSYNC_TOKEN")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // A refusal before the token is read closes stdin early: not an error here.
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{token}\n").as_bytes());
        envsync_tests::Run::from(child.wait_with_output().unwrap())
    };
    let config = alice.home.join(".config/envsync/config.toml");

    // The token is never an argument (argv and shell history).
    let mut cmd = alice.envsync_cmd(&["login", "--server", &server.url, "--token", "x"]);
    cmd.env_remove("ENVSYNC_TOKEN");
    let out = envsync_tests::Run::from(cmd.output().unwrap());
    assert_eq!(out.code, 2, "{out:#?}");

    let out = login("not-a-token", &server.url, &[]).clean().code(2);
    assert!(out.stderr.contains("refused this token"), "{out:#?}");
    assert!(!config.exists());
    let out = login(&alice.token, "http://127.0.0.1:9", &[])
        .clean()
        .code(3);
    assert!(out.stderr.contains("cannot reach"), "{out:#?}");
    // Plain http to another machine is refused before anything is sent, unless the
    // user accepts it for that server.
    let out = login(&alice.token, "http://192.0.2.7:8000", &[])
        .clean()
        .code(2);
    assert!(out.stderr.contains("--insecure-http"), "{out:#?}");

    let out = login(&format!("Bearer {}", alice.token), &server.url, &[])
        .clean()
        .ok();
    assert!(
        out.stderr.contains("as dev@example.com (developer)"),
        "{out:#?}"
    );
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(config.parent().unwrap()), 0o700);
    assert!(
        !out.stderr.contains(&alice.token),
        "the token is never echoed"
    );
    let saved = fs::read_to_string(&config).unwrap();
    let origin = server.url.trim_end_matches('/');
    assert!(
        saved.contains(&format!("[servers.\"{origin}\"]")),
        "{saved}"
    );

    // Later commands need no environment at all.
    alice.write_env("A=1\n");
    let mut cmd = alice.envsync_cmd(&["push"]);
    cmd.env_remove("ENVSYNC_API").env_remove("ENVSYNC_TOKEN");
    let out = envsync_tests::Run::from(cmd.output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
}

#[test]
fn configuration_precedence_flag_env_project_user() {
    let server = Server::start();
    let alice = Dev::new(&server, "precedence");
    alice.write_env("A=1\n");
    let dead = "http://127.0.0.1:9";
    let user_config = alice.home.join(".config/envsync");
    fs::create_dir_all(&user_config).unwrap();
    let live = server.url.as_str();
    let run = |args: &[&str],
               env_api: Option<&str>,
               project_server: Option<&str>,
               user_server: &str| {
        // A token stored for each server: which one is used follows the server.
        fs::write(
                user_config.join("config.toml"),
                format!(
                    "server = \"{user_server}\"\n[servers.\"{live}\"]\ntoken = \"{}\"\n[servers.\"{dead}\"]\ntoken = \"t\"\n",
                    alice.token
                ),
            )
            .unwrap();
        let mut toml = "project = \"precedence\"\n".to_owned();
        if let Some(s) = project_server {
            toml.push_str(&format!("server = \"{s}\"\n"));
        }
        fs::write(alice.repo.join(".envsync.toml"), toml).unwrap();
        alice.trust();
        let mut cmd = alice.envsync_cmd(args);
        cmd.env_remove("ENVSYNC_TOKEN");
        match env_api {
            Some(api) => cmd.env("ENVSYNC_API", api),
            None => cmd.env_remove("ENVSYNC_API"),
        };
        envsync_tests::Run::from(cmd.output().unwrap()).code
    };
    // The user config alone.
    assert_eq!(run(&["diff"], None, None, live), 0);
    // .envsync.toml beats the user config.
    assert_eq!(run(&["diff"], None, Some(live), dead), 0);
    assert_eq!(run(&["diff"], None, Some(dead), live), 3);
    // The environment beats .envsync.toml.
    assert_eq!(run(&["diff"], Some(live), Some(dead), dead), 0);
    assert_eq!(run(&["diff"], Some(dead), Some(live), live), 3);
    // The flag beats the environment.
    assert_eq!(
        run(&["diff", "--server", live], Some(dead), Some(dead), dead),
        0
    );
    assert_eq!(
        run(&["diff", "--server", dead], Some(live), Some(live), live),
        3
    );
}

/// A token goes only to the origin it was stored for, and `ENVSYNC_TOKEN` only to the
/// server `ENVSYNC_API` names.
#[test]
fn tokens_are_bound_to_their_server() {
    let server = Server::start();
    let alice = Dev::new(&server, "bound");
    alice.write_env("A=1\n");
    let user_config = alice.home.join(".config/envsync");
    fs::create_dir_all(&user_config).unwrap();
    fs::write(
        user_config.join("config.toml"),
        format!(
            "server = \"{}\"\n[servers.\"{}\"]\ntoken = \"{}\"\n",
            server.url, server.url, alice.token
        ),
    )
    .unwrap();
    let other = Server::start();
    // --server names a server with no stored token: refused before any request.
    let mut cmd = alice.envsync_cmd(&["diff", "--server", &other.url]);
    cmd.env_remove("ENVSYNC_API").env_remove("ENVSYNC_TOKEN");
    let out = envsync_tests::Run::from(cmd.output().unwrap())
        .refused()
        .code(2);
    assert!(out.stderr.contains("no token for"), "{out:#?}");
    // ENVSYNC_TOKEN without ENVSYNC_API goes nowhere.
    let mut cmd = alice.envsync_cmd(&["diff", "--server", &other.url]);
    cmd.env_remove("ENVSYNC_API");
    let out = envsync_tests::Run::from(cmd.output().unwrap())
        .refused()
        .code(2);
    assert!(out.stderr.contains("ENVSYNC_API"), "{out:#?}");
    let log = fs::read_to_string(&other.stderr_log).unwrap_or_default();
    assert!(
        !log.contains("/env/"),
        "the other server got a request: {log}"
    );
    // The stored token still works for its own server.
    let mut cmd = alice.envsync_cmd(&["push"]);
    cmd.env_remove("ENVSYNC_API").env_remove("ENVSYNC_TOKEN");
    envsync_tests::Run::from(cmd.output().unwrap()).clean().ok();
}

#[test]
fn init_writes_config_and_ignores_the_env_file() {
    let server = Server::start();
    let alice = Dev::new(&server, "unused");
    fs::remove_file(alice.repo.join(".envsync.toml")).unwrap();
    fs::remove_file(alice.repo.join(".gitignore")).unwrap();
    let out = alice.envsync(&["init", "--project", "fresh"]).clean().ok();
    assert!(out.stderr.contains("project fresh"), "{out:#?}");
    let config = fs::read_to_string(alice.repo.join(".envsync.toml")).unwrap();
    assert!(config.contains("project = \"fresh\""), "{config}");
    assert!(config.contains("default_branch = \"main\""), "{config}");
    let ignore = fs::read_to_string(alice.repo.join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "/.env"), "{ignore}");
    alice.envsync(&["init"]).clean().code(1);
    alice
        .envsync(&["init", "--project", "bad/id", "--force"])
        .clean()
        .code(2);

    let dev_token = server.token("dev@example.com", "developer", &["fresh"]);
    let mut alice = alice;
    alice.token = dev_token;
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();
    let status = alice.git(&["status", "--porcelain"]);
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains(".env\n"),
        "the env file is ignored"
    );
}

/// Issue 11: `log` follows `/versions` pages past the largest page (100 versions).
#[test]
fn log_follows_the_pages_of_a_long_history() {
    let server = Server::start();
    let alice = Dev::new(&server, "history");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();
    // 129 more versions straight through the API (log decrypts nothing).
    let v1 = server.request("GET", "/env/history/main", &alice.token, None);
    let ciphertext = v1.json()["ciphertext"].as_str().unwrap().to_owned();
    for base in 1..=129u64 {
        let body = serde_json::json!({
            "ciphertext": ciphertext,
            "keys": ["A", format!("K{base}")],
            "base_version": base,
        });
        let r = server.request(
            "POST",
            "/env/history/main",
            &alice.token,
            Some(&body.to_string()),
        );
        assert_eq!(r.status, 201, "{r:?}");
    }
    let out = alice.envsync(&["log", "--json"]).clean().ok();
    let listed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let numbers: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=130).rev().collect::<Vec<_>>());
    // The oldest entry, from the last page, still shows its changes against nothing.
    assert_eq!(listed[129]["added"], serde_json::json!(["A"]));
}

/// `status` says what is true and what to do: a rejected token is a login problem, not an
/// unreachable server; a branch with no env of its own uses the default branch's; a newer
/// version says to pull.
#[test]
fn status_tells_the_truth_and_the_next_step() {
    let server = Server::start();
    let mut alice = Dev::new(&server, "truth");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();

    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    bob.write_env("A=1\nB=2\n");
    bob.envsync(&["push"]).clean().ok();
    let out = alice.envsync(&["status"]).clean().ok();
    assert!(
        out.stdout
            .contains("version 2 (newer than your 1: git envsync pull)"),
        "{out:#?}"
    );

    alice.git(&["checkout", "-q", "-b", "feature"]);
    let out = alice.envsync(&["status"]).clean().ok();
    assert!(
        out.stdout.contains("Server:  none; using main v2"),
        "{out:#?}"
    );
    assert!(
        out.stdout.contains("Drift:   1 missing locally"),
        "{out:#?}"
    );

    alice.token = server.token("gone@example.com", "developer", &["truth"]);
    let owner = server.token("owner@example.com", "owner", &[]);
    let tokens = server.request("GET", "/tokens", &owner, None).json();
    let jti = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["email"] == "gone@example.com")
        .map(|t| t["jti"].as_str().unwrap().to_owned())
        .unwrap();
    let r = server.request("DELETE", &format!("/tokens/{jti}"), &owner, None);
    assert_eq!(r.status, 204, "{r:?}");
    let out = alice.envsync(&["status"]).clean();
    assert!(
        out.stdout.contains("token rejected: run git envsync login"),
        "{out:#?}"
    );
    assert!(!out.stdout.contains("unreachable"), "{out:#?}");
}

/// `run` takes the file on disk when it holds this branch's env (edits included), else the
/// server's verified version, else offline this clone's copy; one line says which; a
/// command that does not exist is exit 127, as in a shell.
#[test]
fn run_takes_the_file_then_the_server_then_the_copy() {
    let mut server = Server::start();
    let mut alice = Dev::new(&server, "runsrc");
    alice.write_env("V=pushed\n");
    alice.envsync(&["push"]).clean().ok();
    let show = |dev: &Dev| dev.envsync(&["run", "--", "sh", "-c", "printf %s \"$V\""]);

    // The file, with an unpushed edit.
    alice.write_env("V=edited\n");
    let out = show(&alice).clean().ok();
    assert_eq!(out.stdout, "edited");
    assert!(
        out.stderr.contains("variables from the env file"),
        "{out:#?}"
    );

    // A file that holds another branch's env is not this branch's: the server's.
    alice.envsync(&["push"]).clean().ok();
    alice.git(&["branch", "other"]);
    alice.envsync(&["push", "--branch", "other"]).clean().ok();
    alice.write_env("V=other-edit\n");
    alice.envsync(&["push", "--branch", "other"]).clean().ok();
    let out = show(&alice).clean().ok();
    assert_eq!(
        out.stdout, "edited",
        "main's version, not the file (other's)"
    );
    assert!(
        out.stderr.contains("the server's main version 2"),
        "{out:#?}"
    );

    // The server down: this clone's copy.
    server.kill();
    let out = show(&alice).clean().ok();
    assert_eq!(out.stdout, "edited");
    assert!(
        out.stderr.contains("this clone's copy of version 2"),
        "{out:#?}"
    );
    server.restart();
    alice.server_url = server.url.clone();

    let out = alice.envsync(&["run", "--", "no-such-command-here"]);
    assert_eq!(out.code, 127, "{out:#?}");
    assert!(
        out.stderr.contains("cannot run no-such-command-here"),
        "{out:#?}"
    );
}

/// `init`'s defaults: the repository's default branch (not the branch it runs on), a
/// warning when the project id already has versions, the member named by the user's
/// email; and a config without `default_branch` falls back to the repository's default.
#[test]
fn init_defaults_follow_the_repository_and_the_server() {
    let server = Server::start();
    let alice = Dev::new(&server, "taken");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();

    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    fs::remove_file(bob.repo.join(".envsync.toml")).unwrap();
    bob.git(&["checkout", "-q", "-b", "wip/experiment"]);
    let out = bob
        .envsync(&["init", "--project", "taken", "--recipients"])
        .clean()
        .ok();
    assert!(out.stderr.contains("default branch main"), "{out:#?}");
    assert!(
        out.stderr
            .contains("project taken already has 1 branch on the server (main)"),
        "{out:#?}"
    );
    let config = fs::read_to_string(bob.repo.join(".envsync.toml")).unwrap();
    assert!(config.contains("default_branch = \"main\""), "{config}");
    assert!(config.contains("name = \"bob@example.com\""), "{config}");

    // Without default_branch, a new branch still falls back to the repository's default.
    fs::write(alice.repo.join(".envsync.toml"), "project = \"taken\"\n").unwrap();
    alice.trust();
    alice.git(&["checkout", "-q", "-b", "feature"]);
    fs::remove_file(alice.env_path()).unwrap();
    let out = alice.envsync(&["pull"]).clean().ok();
    assert!(out.stderr.contains("pulled main version 1"), "{out:#?}");
}

/// `-q` keeps stderr for errors; colour only on a terminal or with `CLICOLOR_FORCE`, and
/// never with `NO_COLOR`.
#[test]
fn quiet_and_colour_follow_the_conventions() {
    let server = Server::start();
    let alice = Dev::new(&server, "quiet");
    alice.write_env("A=1\n");
    let out = alice.envsync(&["push", "-q"]).ok();
    assert_eq!(out.stderr, "", "{out:#?}");
    let out = alice.envsync(&["-q", "pull", "--version", "9"]);
    assert!(out.stderr.starts_with("error: "), "{out:#?}");
    let mut cmd = alice.envsync_cmd(&["pull", "--version", "9"]);
    cmd.env("CLICOLOR_FORCE", "1");
    let out = Run::from(cmd.output().unwrap());
    assert!(
        out.stderr.starts_with("\u{1b}[1;31merror:\u{1b}[0m "),
        "{out:#?}"
    );
    let mut cmd = alice.envsync_cmd(&["pull", "--version", "9"]);
    cmd.env("NO_COLOR", "1");
    let out = Run::from(cmd.output().unwrap());
    assert!(!out.stderr.contains('\u{1b}'), "{out:#?}");
}

/// The README's Quick start, run as written: every `$` line of the blocks marked
/// `<!-- quickstart: WHO -->`, as that person (their own home, their clone of one shared
/// remote), against a real server; what each prints must be the README's lines, with
/// times, token ids and `ls -l` details masked and this run's paths and URL put back as
/// the README spells them. Exports set the person's environment for their next lines.
#[test]
fn the_readme_quick_start_runs_as_written() {
    let readme =
        fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let mut blocks = Vec::new();
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("<!-- quickstart: ") {
        rest = &rest[at + "<!-- quickstart: ".len()..];
        let (who, after) = rest.split_once(" -->\n```console\n").unwrap();
        let (body, after) = after.split_once("\n```").unwrap();
        blocks.push((who.to_owned(), body.to_owned()));
        rest = after;
    }
    assert!(blocks.len() >= 4, "the quick start blocks are missing");

    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = envsync_tests::binary("git-envsync");
    let bin = bin.parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let origin = dir.path().join("origin.git");
    let home = |who: &str| dir.path().join(who);
    for who in ["operator", "alice", "bob"] {
        fs::create_dir_all(home(who)).unwrap();
        fs::write(
            home(who).join(".gitconfig"),
            format!("[user]\n\tname = {who}\n\temail = {who}@example.com\n[init]\n\tdefaultBranch = main\n"),
        )
        .unwrap();
    }
    let mut env: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    let run = |who: &str, cwd: &std::path::Path, extra: &[(String, String)], cmd: &str| {
        let mut c = std::process::Command::new("/bin/sh");
        c.env_clear()
            .env("PATH", &path)
            .env("HOME", home(who))
            .env("XDG_CONFIG_HOME", home(who).join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("LANG", "C")
            .env("ENVSYNC_INSECURE_WORK_FACTOR", "10")
            .env("ENVSYNC_DB", &server.db)
            .env("ENVSYNC_JWT_SECRET", envsync_tests::SECRET)
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .args(["-c", &format!("{{ {cmd}\n}} 2>&1")]);
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    let git = |args: &[&str], cwd: &std::path::Path, who: &str| {
        let out = run(who, cwd, &[], &format!("git {}", args.join(" ")));
        assert!(!out.contains("fatal"), "{out}");
    };
    git(
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            origin.to_str().unwrap(),
        ],
        dir.path(),
        "alice",
    );
    let mask = |text: &str| -> Vec<String> {
        text.replace(&server.url, "http://127.0.0.1:8000")
            .replace(home("alice").to_str().unwrap(), "/home/alice")
            .replace(home("bob").to_str().unwrap(), "/home/bob")
            .lines()
            .map(|line| {
                let mut line = line.to_owned();
                if let Some(at) = line.find("(jti ") {
                    let end = line[at..].find(',').map_or(line.len(), |e| at + e);
                    line.replace_range(at..end, "(jti <jti>");
                }
                if line.starts_with("-rw") {
                    let name = line.rsplit(' ').next().unwrap_or_default().to_owned();
                    line = format!("{} … {name}", &line[..10]);
                }
                // RFC 3339 times, with or without a fraction.
                let bytes: Vec<char> = line.chars().collect();
                let mut out = String::new();
                let mut i = 0;
                while i < bytes.len() {
                    let is_time = i + 20 <= bytes.len()
                        && bytes[i..i + 4].iter().all(char::is_ascii_digit)
                        && bytes[i + 4] == '-'
                        && bytes[i + 10] == 'T'
                        && bytes[i + 13] == ':';
                    if is_time {
                        let mut j = i + 19;
                        while j < bytes.len() && (bytes[j] == '.' || bytes[j].is_ascii_digit()) {
                            j += 1;
                        }
                        if j < bytes.len() && bytes[j] == 'Z' {
                            out.push_str("<time>");
                            i = j + 1;
                            continue;
                        }
                    }
                    out.push(bytes[i]);
                    i += 1;
                }
                out
            })
            .collect()
    };

    for (who, body) in &blocks {
        let repo = match who.as_str() {
            "operator" => home("operator"),
            _ => home(who).join("app"),
        };
        if who != "operator" && !repo.exists() {
            git(
                &["clone", "-q", origin.to_str().unwrap(), "app"],
                &home(who),
                who,
            );
        }
        // Each `$` line and the lines it prints.
        let mut steps: Vec<(String, Vec<String>)> = Vec::new();
        for line in body.lines() {
            match line.strip_prefix("$ ") {
                Some(cmd) => steps.push((cmd.to_owned(), Vec::new())),
                None => steps.last_mut().unwrap().1.push(line.to_owned()),
            }
        }
        for (cmd, expected) in steps {
            let cmd = cmd.split("      #").next().unwrap().trim().to_owned();
            if let Some(assign) = cmd.strip_prefix("export ") {
                let (name, value) = assign.split_once('=').unwrap();
                let value = value.trim_matches('\'').to_owned();
                env.entry(who.clone())
                    .or_default()
                    .push((name.to_owned(), value));
                continue;
            }
            let cmd = cmd.replace("http://127.0.0.1:8000", &server.url);
            let extra = env.get(who).cloned().unwrap_or_default();
            let actual = run(who, &repo, &extra, &cmd);
            assert_eq!(
                mask(&actual),
                mask(&expected.join("\n")),
                "{who}: $ {cmd}\nprinted:\n{actual}"
            );
        }
        // The operator hands each person their token.
        if who == "operator" {
            for person in ["alice", "bob"] {
                let token = home("operator").join(format!("{person}.token"));
                fs::copy(&token, home(person).join(format!("{person}.token"))).unwrap();
            }
        }
    }
}

/// `doctor`: exit 0 on a healthy clone, and for each broken thing exit 1 with its line
/// and the fix.
#[test]
fn doctor_names_what_is_wrong_and_the_fix() {
    let mut server = Server::start();
    let alice = Dev::new(&server, "doctor");
    alice.envsync(&["hooks", "install"]).clean().ok();
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();
    let doctor = |dev: &Dev| {
        let mut cmd = dev.envsync_cmd(&["doctor"]);
        cmd.env_remove("ENVSYNC_INSECURE_WORK_FACTOR");
        Run::from(cmd.output().unwrap())
    };
    let out = doctor(&alice);
    assert_eq!(out.code, 0, "{out:#?}");
    for what in [
        "hooks", "trust", "server", "token", "keys", "state", "scrypt",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(what)),
            "{what}: {out:#?}"
        );
    }
    assert!(out.stdout.contains("expires in"), "{out:#?}");
    let failing = |out: &Run, what: &str, fix: &str| {
        assert_eq!(out.code, 1, "{out:#?}");
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("FAIL") && l.contains(what))
            .unwrap_or_else(|| panic!("no failing {what} line: {out:#?}"));
        assert!(line.contains(fix), "{line}");
    };

    // The insecure work factor of the tests.
    failing(
        &alice.envsync(&["doctor"]),
        "scrypt",
        "unset ENVSYNC_INSECURE_WORK_FACTOR",
    );
    // Hooks gone.
    alice.envsync(&["hooks", "uninstall"]).clean().ok();
    failing(&doctor(&alice), "hooks", "git envsync hooks install");
    alice.envsync(&["hooks", "install"]).clean().ok();
    // Settings changed and not trusted.
    let config = alice.repo.join(".envsync.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, format!("{text}env_file = \"config/.env\"\n")).unwrap();
    failing(&doctor(&alice), "trust", "git envsync trust");
    fs::write(&config, text).unwrap();
    // A key file others can read.
    let key = alice.home.join(".config/envsync/local.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    failing(&doctor(&alice), "keys", "chmod 600");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    // A rejected token.
    let mut stranger = Dev::clone_of(&alice, &server, "x@example.com");
    stranger.token = "not-a-token".into();
    failing(&doctor(&stranger), "token", "login");
    // The server down.
    server.kill();
    failing(&doctor(&alice), "server", "");
    assert!(
        doctor(&alice)
            .stdout
            .lines()
            .filter(|l| l.starts_with("FAIL"))
            .count()
            == 1,
        "only the server fails"
    );
}
