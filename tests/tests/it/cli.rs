//! The CLI end to end: real server, real git repositories, the real binary.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope::{self, Binding, Seal};
use envsync_common::secret::SecretString;
use envsync_tests::{Dev, Run, Server, env_fixtures};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The key names of the latest version of `project`'s `branch` on the server.
fn server_keys(server: &Server, token: &str, project: &str, branch: &str) -> Vec<String> {
    let latest = server.latest(token, project, branch);
    latest
        .unwrap_or_else(|| panic!("{project}/{branch} has no version on the server"))
        .1
}

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    let server = Server::start();
    let alice = Dev::new(&server, "fixtures");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    let files = env_fixtures();
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

    // --no-merge: the stale base is refused outright, naming who moved the branch on.
    bob.write_env("A=3\nB=1\n");
    let out = bob.envsync(&["push", "--no-merge"]).clean().code(1);
    assert!(out.stderr.contains("version 2"), "{out:#?}");
    assert!(out.stderr.contains("dev@example.com"), "{out:#?}");
    assert!(
        out.stderr.contains("hint: run git envsync pull"),
        "{out:#?}"
    );
    assert_eq!(server_keys(&server, &alice.token, "stale", "main"), ["A"]);

    // A plain push tries to merge version 2 in; both changed A, so it stops and writes
    // nothing, here or on the server.
    let out = bob.envsync(&["push"]).clean().code(1);
    assert!(out.stderr.contains("merge stopped"), "{out:#?}");
    assert!(out.stderr.contains("both changed A"), "{out:#?}");
    assert!(out.stderr.contains("dev@example.com"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), b"A=3\nB=1\n");
    assert_eq!(server_keys(&server, &alice.token, "stale", "main"), ["A"]);

    // Pull stops on the same conflict and leaves bob's unpushed edits alone.
    let out = bob.envsync(&["pull"]).clean().code(1);
    assert!(out.stderr.contains("both changed A"), "{out:#?}");
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
        server_keys(&server, &bob.token, "fallback", "feature/login"),
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
    server.push_sealed(&alice.token, "keylie", "main", &sealed, &["A"], Some(1));

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
        cmd.env_remove("ENVSYNC_API").env_remove("ENVSYNC_TOKEN");
        // A refusal before the token is read closes stdin early: not an error here.
        envsync_tests::run_with_stdin(&mut cmd, format!("{token}\n"))
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

/// `log` follows `/versions` pages past the largest page (100 versions).
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
    server.revoke("gone@example.com");
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
    // The help says so too (not "the current branch", which init ran on here).
    let help = bob.envsync(&["init", "--help"]).clean().ok().stdout;
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("default: the repository's default branch: origin/HEAD, else init.defaultBranch, else main"),
        "{help}"
    );
    assert!(!help.contains("the current branch"), "{help}");

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

/// `doctor` checks what the first test does not reach: each branch's sealed local copy
/// (missing, damaged, readable by others), hooks that are there but outdated, the state
/// directory's mode, a token about to expire, settings that do not parse, git and the
/// `git-envsync` that `git envsync` runs; each failure names its fix, and `--json` has one
/// object per check.
#[test]
fn doctor_checks_sealed_copies_binaries_and_settings() {
    let server = Server::start();
    let mut alice = Dev::new(&server, "doctor2");
    alice.envsync(&["hooks", "install"]).clean().ok();
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();
    let doctor = |dev: &Dev| {
        let mut cmd = dev.envsync_cmd(&["doctor"]);
        cmd.env_remove("ENVSYNC_INSECURE_WORK_FACTOR");
        Run::from(cmd.output().unwrap())
    };
    let line = |out: &Run, what: &str| -> String {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(what))
            .unwrap_or_else(|| panic!("no {what} line: {out:#?}"))
            .to_owned()
    };
    let failing = |out: &Run, what: &str, fix: &str| {
        assert_eq!(out.code, 1, "{out:#?}");
        let line = line(out, what);
        assert!(line.starts_with("FAIL") && line.contains(fix), "{line}");
        assert_eq!(
            out.stdout.lines().filter(|l| l.starts_with("FAIL")).count(),
            1,
            "only {what} fails: {out:#?}"
        );
        line
    };
    let out = doctor(&alice);
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        line(&out, "sealed").contains("1 sealed local cop(ies)"),
        "{out:#?}"
    );
    assert!(line(&out, "git").contains("git version "), "{out:#?}");
    assert!(
        line(&out, "binary").contains("the one git envsync runs"),
        "{out:#?}"
    );

    // The sealed copy: damaged, readable by others, missing.
    let branches = alice.repo.join(".git/envsync/doctor2/branches");
    let sealed = fs::read_dir(&branches)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "age"))
        .unwrap();
    let original = fs::read(&sealed).unwrap();
    fs::write(&sealed, "not an age file\n").unwrap();
    let refetch = "git envsync forget --branch main, then git envsync pull --branch main";
    let shown = failing(&doctor(&alice), "sealed", refetch);
    assert!(
        shown.contains("main: ") && shown.contains("damaged"),
        "{shown}"
    );
    // The fix it names works.
    alice.envsync(&["forget", "--branch", "main"]).clean().ok();
    alice.envsync(&["pull", "--branch", "main"]).clean().ok();
    assert_eq!(doctor(&alice).code, 0);
    assert_ne!(fs::read(&sealed).unwrap(), b"not an age file\n");
    fs::set_permissions(&sealed, fs::Permissions::from_mode(0o644)).unwrap();
    failing(
        &doctor(&alice),
        "sealed",
        &format!("chmod 600 {}", sealed.display()),
    );
    fs::remove_file(&sealed).unwrap();
    let shown = failing(&doctor(&alice), "sealed", refetch);
    assert!(
        shown.contains("main: the sealed copy is missing"),
        "{shown}"
    );
    fs::write(&sealed, &original).unwrap();
    fs::set_permissions(&sealed, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(doctor(&alice).code, 0);

    // Hooks there, but not the block this version installs.
    let hook = alice.repo.join(".git/hooks/post-checkout");
    let text = fs::read_to_string(&hook).unwrap();
    let edited = text.replacen("git envsync", "git   envsync", 1);
    assert_ne!(edited, text);
    fs::write(&hook, &edited).unwrap();
    let shown = failing(&doctor(&alice), "hooks", "git envsync hooks install");
    assert!(shown.contains("outdated: post-checkout"), "{shown}");
    alice.envsync(&["hooks", "install"]).clean().ok();

    // The state directory open to others.
    let state = alice.repo.join(".git/envsync");
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
    failing(
        &doctor(&alice),
        "state",
        &format!("chmod 700 {}", state.display()),
    );
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();

    // A token that runs out within a week, minted by an owner through the server.
    let owner = server.token("owner@example.com", "owner", &[]);
    let minted = server.request(
        "POST",
        "/tokens",
        &owner,
        Some(r#"{"email":"soon@example.com","role":"developer","project_ids":["doctor2"],"ttl":"2d"}"#),
    );
    assert_eq!(minted.status, 201, "{}", minted.body);
    let token = alice.token.clone();
    alice.token = minted.json()["token"].as_str().unwrap().to_owned();
    let shown = failing(&doctor(&alice), "token", "ask an owner for a new token");
    // Two days from the second it was minted: 2 days, or 1 once that second has passed.
    assert!(
        shown.contains("soon@example.com (developer), expires in 2 day(s)")
            || shown.contains("soon@example.com (developer), expires in 1 day(s)"),
        "{shown}"
    );
    alice.token = token;

    // Settings that do not parse.
    let config = alice.repo.join(".envsync.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, "project = \"doctor2\"\nthis is not toml\n").unwrap();
    let out = doctor(&alice);
    let shown = failing(&out, "settings", "");
    assert!(shown.contains(".envsync.toml"), "{shown}");
    fs::write(&config, &text).unwrap();

    // Another git-envsync before this one on PATH, and no git at all.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere.path().join("git-envsync");
    fs::write(&other, "#!/bin/sh\necho old\n").unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o755)).unwrap();
    let git_dir = ["/usr/bin", "/bin", "/usr/local/bin"]
        .into_iter()
        .find(|d| std::path::Path::new(d).join("git").exists())
        .unwrap();
    let mut cmd = alice.envsync_cmd(&["doctor"]);
    cmd.env_remove("ENVSYNC_INSECURE_WORK_FACTOR")
        .env("PATH", format!("{}:{git_dir}", elsewhere.path().display()));
    let out = Run::from(cmd.output().unwrap());
    let shown = failing(&out, "binary", &format!("remove {}", other.display()));
    assert!(
        shown.contains(&format!("but git envsync runs {}", other.display())),
        "{shown}"
    );
    let mut cmd = alice.envsync_cmd(&["doctor"]);
    cmd.env("PATH", elsewhere.path());
    let out = Run::from(cmd.output().unwrap());
    assert_eq!(out.code, 1, "{out:#?}");
    let shown = line(&out, "git");
    assert!(
        shown.starts_with("FAIL") && shown.contains("(fix: install git"),
        "{shown}"
    );

    // --json: whether all hold, and one object per check; a fix only where one fails.
    let mut cmd = alice.envsync_cmd(&["doctor", "--json"]);
    cmd.env_remove("ENVSYNC_INSECURE_WORK_FACTOR");
    let out = Run::from(cmd.output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["what"].as_str().unwrap()).collect();
    for what in [
        "binary",
        "git",
        "repository",
        "hooks",
        "trust",
        "scrypt",
        "state",
        "sealed",
        "server",
        "token",
        "keys",
    ] {
        assert!(names.contains(&what), "{what}: {names:?}");
    }
    for check in checks {
        let mut fields: Vec<&String> = check.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["detail", "ok", "what"], "{check}");
        assert_eq!(check["ok"], true);
        assert!(check["detail"].is_string());
    }
    let out = Run::from(alice.envsync_cmd(&["doctor", "--json"]).output().unwrap());
    assert_eq!(out.code, 1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["what"], "scrypt");
    assert!(
        failed[0]["fix"]
            .as_str()
            .unwrap()
            .contains("ENVSYNC_INSECURE_WORK_FACTOR")
    );
}

// ---- The small commands: get, set, unset, edit, export, example, copy.

/// The number of versions `branch` has on the server.
fn version_count(server: &Server, token: &str, project: &str, branch: &str) -> usize {
    let branch = branch.replace('/', "%2F");
    let r = server.request(
        "GET",
        &format!("/env/{project}/{branch}/versions"),
        token,
        None,
    );
    if r.status == 404 {
        return 0;
    }
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["versions"].as_array().unwrap().len()
}

/// `git envsync ARGS` with its stdout as raw bytes.
fn raw_stdout(dev: &Dev, args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = dev.envsync_cmd(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An editor script for `EDITOR`: runs `body` with the file as `$1`.
fn editor(dev: &Dev, name: &str, body: &str) -> String {
    let path = dev.home.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn get_reads_the_branch_s_file_else_the_server() {
    let server = Server::start();
    let alice = Dev::new(&server, "get");
    alice.write_env("# c\nexport A='a b'\nQ=\"say \\\"hi\\\"\\nbye\"\nE=\nBARE\nD=1\nD=2\n");
    alice.envsync(&["push"]).ok();

    // The file, byte-exact and with no line end added (stdout is not a terminal).
    for (key, value) in [
        ("A", &b"a b"[..]),
        ("Q", b"say \"hi\"\nbye"),
        ("E", b""),
        ("BARE", b""),
        ("D", b"2"),
    ] {
        let (code, stdout, stderr) = raw_stdout(&alice, &["get", key]);
        assert_eq!((code, stdout.as_slice()), (0, value), "{key}: {stderr}");
        assert_eq!(stderr, "", "{key}");
    }
    // Local edits count: the file is the branch's.
    alice.write_env("A=edited\n");
    assert_eq!(raw_stdout(&alice, &["get", "A"]).1, b"edited");

    // No file: the server's version, verified (and for a branch without an env, the
    // default branch's).
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    assert_eq!(raw_stdout(&bob, &["get", "A"]).1, b"a b");
    assert!(bob.read_env().is_none(), "get writes nothing");
    bob.git(&["checkout", "-q", "-b", "feature"]);
    assert_eq!(raw_stdout(&bob, &["get", "D"]).1, b"2");

    // A file that holds another branch's env is not this branch's: the server answers,
    // and --branch reads the file it holds.
    alice.git(&["checkout", "-q", "-b", "feature"]);
    assert_eq!(raw_stdout(&alice, &["get", "A"]).1, b"a b");
    assert_eq!(
        raw_stdout(&alice, &["get", "--branch", "main", "A"]).1,
        b"edited"
    );

    // Absent: exit 1, one line naming the key, no value anywhere.
    let out = alice.envsync(&["get", "NOPE"]).refused().code(1);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("NOPE is not set"), "{out:#?}");
    // Not a key name: exit 2, and the text is not repeated (it may be a value).
    let out = alice.envsync(&["get", "sk_live 123"]).refused().code(2);
    assert!(!out.stderr.contains("sk_live"), "{out:#?}");
    alice.envsync(&["get"]).code(2);
}

const LAYOUT: &str = "\u{feff}# Service settings\r\nexport API_URL=https://api.example.com # prod\r\nPASS='old secret'\r\n\r\n# the signing key\r\nPEM=\"-----BEGIN-----\r\nabc\r\n-----END-----\"\r\nTICK=`x`\r\nDUP=1\r\nDUP=2\r\nLAST=z";

#[test]
fn set_and_unset_keep_comments_order_quoting_and_export() {
    let server = Server::start();
    let alice = Dev::new(&server, "setunset");
    alice.write_env(LAYOUT);
    alice.envsync(&["push"]).ok();
    fs::set_permissions(alice.env_path(), fs::Permissions::from_mode(0o644)).unwrap();

    let out = alice
        .envsync(&[
            "set",
            "PASS=new'one",
            "API_URL=https://other.example.com/a b",
            "TICK=y",
            "DUP=3",
            "LAST=",
            "NEW=$HOME #x",
        ])
        .clean()
        .ok();
    assert!(out.stderr.contains("not pushed"), "{out:#?}");
    assert_eq!(out.stdout, "");
    let expected = "\u{feff}# Service settings\r\nexport API_URL=https://other.example.com/a b # prod\r\nPASS=\"new'one\"\r\n\r\n# the signing key\r\nPEM=\"-----BEGIN-----\r\nabc\r\n-----END-----\"\r\nTICK=`y`\r\nDUP=1\r\nDUP=3\r\nLAST=\r\nNEW='$HOME #x'\r\n";
    assert_eq!(
        String::from_utf8(alice.read_env().unwrap()).unwrap(),
        expected
    );
    assert_eq!(mode(&alice.env_path()), 0o600);
    // A multi-line value from stdin (one final line break dropped), in the PEM's quotes.
    alice
        .envsync_stdin(
            &["set", "PEM", "--stdin"],
            b"-----BEGIN-----\nnew\n-----END-----\n",
        )
        .clean()
        .ok();
    let expected = expected.replace("abc", "new");
    assert_eq!(
        String::from_utf8(alice.read_env().unwrap()).unwrap(),
        expected
    );
    // Nothing was pushed.
    assert_eq!(version_count(&server, &alice.token, "setunset", "main"), 1);

    alice.envsync(&["unset", "DUP", "PASS"]).clean().ok();
    let expected = expected
        .replace("PASS=\"new'one\"\r\n", "")
        .replace("DUP=1\r\nDUP=3\r\n", "");
    assert_eq!(
        String::from_utf8(alice.read_env().unwrap()).unwrap(),
        expected
    );
    let (_, value, _) = raw_stdout(&alice, &["get", "PEM"]);
    assert_eq!(value, b"-----BEGIN-----\nnew\n-----END-----");

    // The edit is an ordinary local edit: push sends it.
    alice.envsync(&["push"]).ok();
    assert_eq!(version_count(&server, &alice.token, "setunset", "main"), 2);
}

#[test]
fn set_and_unset_refusals_change_nothing() {
    let server = Server::start();
    let alice = Dev::new(&server, "setrefuse");
    // No file: nothing to edit (a new file pushed would replace the branch's env).
    let out = alice.envsync(&["set", "A=1"]).refused().code(2);
    assert!(out.stderr.contains("there is no .env"), "{out:#?}");
    assert!(alice.read_env().is_none());

    alice.write_env("A=1\n");
    for (args, code) in [
        (&["set", "bad key=1"][..], 2),
        (&["set", "=1"], 2),
        (&["set", "A", "B"], 2),
        (&["set", "A=1", "--stdin"], 2),
        (&["set", "A"], 2), // no terminal and no --stdin
        (&["unset", "NOPE"], 1),
        (&["unset", "A", "NOPE"], 1),
        (&["unset", "bad key"], 2),
    ] {
        let out = alice.envsync(args).refused().code(code);
        assert!(!out.stderr.contains("bad key"), "{args:?}: {out:#?}");
        assert_eq!(alice.read_env().unwrap(), b"A=1\n", "{args:?}");
    }
    alice.write_env("A=\"open\n");
    let out = alice.envsync(&["set", "B=1"]).refused().code(2);
    assert!(out.stderr.contains("line 1"), "{out:#?}");

    // A file holding another branch's env is not edited from here.
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    alice.git(&["checkout", "-q", "-b", "feature"]);
    for args in [&["set", "A=2"][..], &["unset", "A"]] {
        let out = alice.envsync(args).refused().code(1);
        assert!(out.stderr.contains("holds main"), "{out:#?}");
    }
    assert_eq!(alice.read_env().unwrap(), b"A=1\n");
    alice.envsync(&["set", "--branch", "main", "A=2"]).ok();
    assert_eq!(alice.read_env().unwrap(), b"A=2\n");
}

#[test]
fn edit_runs_the_editor_then_pushes_when_asked() {
    let server = Server::start();
    let alice = Dev::new(&server, "edit");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    let append = editor(&alice, "append", "printf 'B=2\\n' >> \"$1\"");
    let edit = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = alice.envsync_cmd(&[&["edit"][..], args].concat());
        cmd.envs(env.iter().copied());
        envsync_tests::Run::from(cmd.output().unwrap())
    };

    // Not a terminal, no --push: edited, and told how to push.
    let out = edit(&[("EDITOR", &append)], &[]).clean().ok();
    assert!(out.stderr.contains("Edited .env: +B"), "{out:#?}");
    assert!(out.stderr.contains("git envsync push"), "{out:#?}");
    assert_eq!(alice.read_env().unwrap(), b"A=1\nB=2\n");
    assert_eq!(version_count(&server, &alice.token, "edit", "main"), 1);
    // --push pushes; VISUAL comes before EDITOR.
    let out = edit(&[("VISUAL", &append), ("EDITOR", "false")], &["--push"])
        .clean()
        .ok();
    assert!(out.stderr.contains("as version 2"), "{out:#?}");
    assert_eq!(version_count(&server, &alice.token, "edit", "main"), 2);
    // An editor save by rename leaves a 0644 file: made 0600 again.
    let rename = editor(
        &alice,
        "rename",
        "printf 'A=3\\n' > \"$1.tmp\" && chmod 644 \"$1.tmp\" && mv \"$1.tmp\" \"$1\"",
    );
    edit(&[("EDITOR", &rename)], &[]).ok();
    assert_eq!(mode(&alice.env_path()), 0o600);

    // Nothing changed; the editor failed; the editor broke the file.
    let out = edit(&[("EDITOR", "true")], &["--push"]).ok();
    assert!(out.stderr.contains("No changes"), "{out:#?}");
    edit(&[("EDITOR", "false")], &["--push"]).refused().code(1);
    let broken = editor(&alice, "broken", "printf 'C=\"open\\n' >> \"$1\"");
    let out = edit(&[("EDITOR", &broken)], &["--push"]).refused().code(2);
    assert!(out.stderr.contains("line 2"), "{out:#?}");
    assert_eq!(version_count(&server, &alice.token, "edit", "main"), 2);

    // A file holding another branch's env: the editor never starts.
    alice.write_env("A=3\n");
    alice.envsync(&["push"]).ok();
    alice.git(&["checkout", "-q", "-b", "feature"]);
    let marker = alice.home.join("editor-ran");
    let touch = editor(&alice, "touch", &format!("touch '{}'", marker.display()));
    edit(&[("EDITOR", &touch)], &[]).refused().code(1);
    assert!(!marker.exists());
}

/// The prompt, in a terminal (`script` gives the command one): y pushes, anything else
/// does not.
#[test]
fn edit_in_a_terminal_asks_before_pushing() {
    // script(1) drives the terminal: ./test.sh installs it (bsdutils) as the pty tests need.
    let server = Server::start();
    let alice = Dev::new(&server, "editprompt");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    let exe = envsync_tests::binary("git-envsync");
    for (answer, versions) in [("n\n", 1), ("y\n", 2)] {
        let append = editor(
            &alice,
            "append",
            &format!("printf 'K{versions}=1\\n' >> \"$1\""),
        );
        let mut cmd = alice.sh_cmd(&format!(
            "script -qec \"EDITOR='{append}' '{}' edit\" /dev/null",
            exe.display()
        ));
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).unwrap();
        let out = envsync_tests::Run::from(child.wait_with_output().unwrap());
        drop(stdin);
        assert_eq!(out.code, 0, "{out:#?}");
        assert!(out.stdout.contains("[y/N]"), "{out:#?}");
        assert_eq!(
            version_count(&server, &alice.token, "editprompt", "main"),
            versions,
            "{answer:?}: {out:#?}"
        );
    }
}

#[test]
fn export_gives_back_every_value_byte_for_byte() {
    let server = Server::start();
    let alice = Dev::new(&server, "export");
    let env = "SPACES='  two  spaces  '\nQUOTES=\"it's \\\"quoted\\\"\"\nDOLLAR='$HOME ${X} $(id) `id`'\nLINES=\"one\ntwo\n\"\nBACKSLASH='a\\nb\\\\'\nHASH=a#b\nEMPTY=\nexport EXPORTED=1\nDUP=old\nDUP=new\napi.host=skipped-in-sh\n";
    alice.write_env(env);
    let values: [(&str, &[u8]); 9] = [
        ("SPACES", b"  two  spaces  "),
        ("QUOTES", b"it's \"quoted\""),
        ("DOLLAR", b"$HOME ${X} $(id) `id`"),
        ("LINES", b"one\ntwo\n"),
        ("BACKSLASH", b"a\\nb\\\\"),
        ("HASH", b"a#b"),
        ("EMPTY", b""),
        ("EXPORTED", b"1"),
        ("DUP", b"new"),
    ];

    // sh, evaluated by /bin/sh: every value back exactly (printf %s, NUL-separated).
    let names: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
    let script = format!(
        "eval \"$(git-envsync export --format sh)\" && printf '%s\\0' {}",
        names
            .iter()
            .map(|k| format!("\"${k}\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = alice.sh_cmd(&script).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let got: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
    for (i, (key, value)) in values.iter().enumerate() {
        assert_eq!(got[i], *value, "{key}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipped api.host"), "{stderr}");

    // json: one object with every key, api.host included.
    let (code, stdout, _) = raw_stdout(&alice, &["export", "--format", "json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    for (key, value) in values {
        assert_eq!(json[key].as_str().unwrap().as_bytes(), value, "{key}");
    }
    assert_eq!(json["api.host"], "skipped-in-sh");
    assert_eq!(raw_stdout(&alice, &["export", "--json"]).1, stdout);

    // dotenv: the extractor reads back every value.
    let (_, stdout, _) = raw_stdout(&alice, &["export", "--format", "dotenv"]);
    let entries = envsync_common::envfile::entries(&stdout).unwrap();
    for (key, value) in values {
        let e = entries.iter().find(|e| e.key == key).unwrap();
        assert_eq!(e.value.expose(), value, "{key}");
    }
    assert_eq!(entries.len(), values.len() + 1, "each key once");

    // From the server when the file is not this branch's: bob has no file.
    alice.envsync(&["push"]).ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    assert_eq!(
        raw_stdout(&bob, &["export", "--format", "dotenv"]).1,
        stdout
    );

    // What a format cannot carry is refused with nothing on stdout.
    alice.write_env(b"NUL=a\0b\nBIN=\xff\n");
    let (code, stdout, stderr) = raw_stdout(&alice, &["export"]);
    assert_eq!((code, stdout.len()), (1, 0), "{stderr}");
    assert!(stderr.contains("NUL holds a NUL byte"), "{stderr}");
    let (code, stdout, stderr) = raw_stdout(&alice, &["export", "--format", "json"]);
    assert_eq!((code, stdout.len()), (1, 0), "{stderr}");
    assert!(stderr.contains("BIN is not valid UTF-8"), "{stderr}");
    let (code, stdout, _) = raw_stdout(&alice, &["export", "--format", "dotenv"]);
    assert_eq!(code, 0);
    let entries = envsync_common::envfile::entries(&stdout).unwrap();
    assert_eq!(entries[0].value.expose(), b"a\0b");
    assert_eq!(entries[1].value.expose(), b"\xff");
    alice.envsync(&["export", "--format", "xml"]).code(2);
}

#[test]
fn example_empties_every_value_and_keeps_the_rest() {
    let server = Server::start();
    let alice = Dev::new(&server, "example");
    alice.write_env(
        "# Payments\n# OLD_STRIPE_KEY=sk_live_old\nexport STRIPE_KEY=\"sk_live_new\" # rotated\nPEM='-----BEGIN-----\nabc\n-----END-----'\n\nDEBUG=1\nFEATURE\n",
    );
    let out = alice.envsync(&["example"]).clean().ok();
    assert!(
        out.stderr.contains("Wrote .env.example (4 keys"),
        "{out:#?}"
    );
    let example = fs::read_to_string(alice.repo.join(".env.example")).unwrap();
    assert_eq!(
        example,
        "# Written by git envsync example from .env: key names and comments, values emptied.\n# Payments\n# OLD_STRIPE_KEY=\nexport STRIPE_KEY= # rotated\nPEM=\n\nDEBUG=\nFEATURE\n"
    );
    assert_eq!(mode(&alice.repo.join(".env.example")), 0o644);
    let entries = envsync_common::envfile::entries(example.as_bytes()).unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e.value.is_empty()));
    // Not ignored (the test repository ignores /.env only): no warning; and committable.
    assert!(!out.stderr.contains("warning"), "{out:#?}");
    alice.git(&["add", ".env.example"]);

    // Again: up to date. A file example did not write is kept unless --force.
    let out = alice.envsync(&["example"]).ok();
    assert!(out.stderr.contains("up to date"), "{out:#?}");
    fs::write(alice.repo.join(".env.example"), "MINE=1\n").unwrap();
    let out = alice.envsync(&["example"]).refused().code(1);
    assert!(out.stderr.contains("--force"), "{out:#?}");
    assert_eq!(
        fs::read_to_string(alice.repo.join(".env.example")).unwrap(),
        "MINE=1\n"
    );
    alice.envsync(&["example", "--force"]).ok();
    assert_eq!(
        fs::read_to_string(alice.repo.join(".env.example")).unwrap(),
        example
    );

    // --output inside the work tree, relative to the current directory; never outside,
    // never over the env file.
    fs::create_dir(alice.repo.join("docs")).unwrap();
    let mut cmd = alice.envsync_cmd(&["example", "--output", "env.sample"]);
    cmd.current_dir(alice.repo.join("docs"));
    envsync_tests::Run::from(cmd.output().unwrap()).ok();
    assert_eq!(
        fs::read_to_string(alice.repo.join("docs/env.sample")).unwrap(),
        example
    );
    alice
        .envsync(&["example", "--output", "../outside.example"])
        .refused()
        .code(2);
    alice
        .envsync(&["example", "--output", ".env", "--force"])
        .refused()
        .code(2);
    assert!(alice.read_env().unwrap().starts_with(b"# Payments"));
    // Ignored by git: written, with a warning.
    fs::write(alice.repo.join(".gitignore"), "/.env\n*.example\n").unwrap();
    fs::remove_file(alice.repo.join(".env.example")).unwrap();
    let out = alice.envsync(&["example"]).ok();
    assert!(
        out.stderr.contains("warning: .env.example is ignored"),
        "{out:#?}"
    );
}

#[test]
fn copy_seeds_a_branch_as_a_new_version_and_keeps_the_source() {
    let server = Server::start();
    let alice = Dev::new(&server, "copy");
    alice.write_env("A=main\nB=2\n");
    alice.envsync(&["push"]).ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");

    // Into a branch with no env yet.
    let out = alice
        .envsync(&["copy", "--branch", "feature/x", "--from", "main"])
        .clean()
        .ok();
    assert!(
        out.stderr
            .contains("Copied main version 1 to feature/x as version 1"),
        "{out:#?}"
    );
    assert_eq!(version_count(&server, &alice.token, "copy", "main"), 1);
    assert_eq!(
        raw_stdout(&bob, &["get", "--branch", "feature/x", "A"]).1,
        b"main"
    );

    // Into a branch that has one: a new version on top, the old one in its history.
    alice.write_env("A=main2\n");
    alice.envsync(&["push"]).ok();
    let out = alice
        .envsync(&["copy", "--branch", "feature/x", "--from", "main"])
        .clean()
        .ok();
    assert!(out.stderr.contains("as version 2"), "{out:#?}");
    assert!(
        out.stderr.contains("version 1 stays in its history"),
        "{out:#?}"
    );
    assert_eq!(
        raw_stdout(&bob, &["get", "--branch", "feature/x", "A"]).1,
        b"main2"
    );

    // The env file holding the target's env follows the copy; with unpushed edits the
    // copy is refused (a later push would undo it unnoticed).
    bob.git(&["checkout", "-q", "-b", "feature/x"]);
    bob.envsync(&["pull"]).ok();
    alice.write_env("A=main3\n");
    alice.envsync(&["push"]).ok();
    let out = bob.envsync(&["copy", "--from", "main"]).clean().ok();
    assert!(out.stderr.contains(".env now holds it"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), b"A=main3\n");
    bob.envsync(&["status"]).ok();
    bob.write_env("A=mine\n");
    let out = bob.envsync(&["copy", "--from", "main"]).refused().code(1);
    assert!(out.stderr.contains("never pushed"), "{out:#?}");
    assert_eq!(version_count(&server, &alice.token, "copy", "feature/x"), 3);
    // A file envsync never synced is the checked-out branch's, and all edits.
    let carol = Dev::clone_of(&alice, &server, "carol@example.com");
    carol.git(&["checkout", "-q", "-b", "feature/y"]);
    carol.write_env("MINE=1\n");
    carol.envsync(&["copy", "--from", "main"]).refused().code(1);
    assert_eq!(version_count(&server, &alice.token, "copy", "feature/y"), 0);
    carol
        .envsync(&["copy", "--branch", "feature/z", "--from", "main"])
        .ok();
    assert_eq!(carol.read_env().unwrap(), b"MINE=1\n");

    // Refusals: no source env, the same branch, a bad name.
    alice
        .envsync(&["copy", "--branch", "other", "--from", "nothing-here"])
        .refused()
        .code(1);
    alice.envsync(&["copy", "--from", "main"]).refused().code(2);
    alice
        .envsync(&["copy", "--from", "bad..name"])
        .refused()
        .code(2);
}

#[test]
fn copy_pushes_with_compare_and_swap() {
    let server = Server::start();
    let alice = Dev::new(&server, "copycas");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    alice
        .envsync(&["copy", "--branch", "target", "--from", "main"])
        .ok();
    // A server (or a race) that reports the target one version behind: the push's base
    // is then stale and the server refuses it; nothing is stored.
    let stale = envsync_tests::proxy::Proxy::start(&server.url, |req, up| {
        let resp = up.pass(req);
        if req.path.ends_with("/target/keys") && resp.status == 200 {
            let mut v = resp.json();
            v["version"] = serde_json::json!(0);
            return envsync_tests::Response {
                status: 200,
                body: v.to_string(),
            };
        }
        resp
    });
    let mut racing = Dev::clone_of(&alice, &server, "bob@example.com");
    racing.server_url = stale.url.clone();
    let out = racing
        .envsync(&["copy", "--branch", "target", "--from", "main"])
        .refused()
        .code(1);
    assert!(
        out.stderr
            .contains("push refused: the server has version 1 of target"),
        "{out:#?}"
    );
    assert_eq!(version_count(&server, &alice.token, "copycas", "target"), 1);
}

/// stdout of `git envsync ARGS --json` (and `input` on stdin), parsed: it must succeed and
/// print JSON and nothing else.
#[track_caller]
fn json_of(dev: &Dev, args: &[&str], input: Option<&str>) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let run = match input {
        Some(input) => dev.envsync_stdin(&all, input),
        None => dev.envsync(&all),
    }
    .clean()
    .ok();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{all:?} printed no JSON ({e}): {run:#?}"))
}

/// Every command that offers `--json` prints JSON on stdout with the fields it documents:
/// push (pushed and up to date), example, copy, unlock and lock, merge (a conflict shown,
/// then resolved), audit, token create and members list.
#[test]
fn json_output_of_every_command_that_offers_it() {
    let server = Server::start();
    let mut alice = Dev::new(&server, "json");
    alice.token = server.token("dev@example.com", "owner", &["json"]);
    alice.write_env("A=1\nB=2\n");

    let pushed = json_of(&alice, &["push"], None);
    assert_eq!(pushed["pushed"], true, "{pushed}");
    assert_eq!(pushed["version"], 1, "{pushed}");
    assert_eq!(pushed["added"], serde_json::json!(["A", "B"]), "{pushed}");
    assert_eq!(pushed["removed"], serde_json::json!([]), "{pushed}");
    assert!(pushed["merged"].is_null(), "{pushed}");
    let again = json_of(&alice, &["push"], None);
    assert_eq!(again, serde_json::json!({"pushed": false, "version": 1}));

    let example = json_of(&alice, &["example"], None);
    assert_eq!(
        example,
        serde_json::json!({"written": ".env.example", "keys": 2})
    );

    let copied = json_of(
        &alice,
        &["copy", "--from", "main", "--branch", "staging"],
        None,
    );
    assert_eq!(copied["from"], "main", "{copied}");
    assert_eq!(copied["from_version"], 1, "{copied}");
    assert_eq!(copied["branch"], "staging", "{copied}");
    assert_eq!(copied["version"], 1, "{copied}");
    assert_eq!(copied["file_updated"], false, "{copied}");

    let unlocked = json_of(
        &alice,
        &["unlock", "--passphrase-stdin", "--for", "10m"],
        Some(&format!("{}\n", envsync_tests::PASS)),
    );
    assert_eq!(unlocked["project"], "json", "{unlocked}");
    assert!(unlocked["until"].as_u64().unwrap() > 0, "{unlocked}");
    assert_eq!(
        unlocked["checked"],
        serde_json::json!({"branch": "main", "version": 1})
    );
    let locked = json_of(&alice, &["lock"], None);
    assert_eq!(locked, serde_json::json!({"running": true, "forgotten": 1}));

    // A conflict: bob's edit and alice's newer version both change A.
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    alice.write_env("A=alice\nB=2\n");
    alice.envsync(&["push"]).clean().ok();
    bob.write_env("A=bob\nB=2\n");
    bob.envsync(&["push"]).refused().code(1);
    let pending = json_of(&bob, &["merge"], None);
    assert_eq!(pending["branch"], "main", "{pending}");
    assert_eq!(pending["theirs_version"], 2, "{pending}");
    assert_eq!(pending["theirs_by"], "dev@example.com", "{pending}");
    let conflicts = pending["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{pending}");
    assert_eq!(conflicts[0]["key"], "A", "{pending}");
    assert!(conflicts[0]["take"].is_null(), "{pending}");
    let merged = json_of(&bob, &["merge", "--theirs", "A"], None);
    assert_eq!(merged["merged"], true, "{merged}");
    assert_eq!(merged["version"], 2, "{merged}");

    let events = json_of(&alice, &["audit"], None);
    let events = events.as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "push" && e["outcome"] == "ok" && e["branch"] == "staging"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["actor"].is_string() && e["at"].is_string()),
        "{events:#?}"
    );

    let minted = json_of(
        &alice,
        &[
            "token",
            "create",
            "--email",
            "ci@example.com",
            "--role",
            "readonly",
        ],
        None,
    );
    for field in ["token", "jti", "expires_at"] {
        assert!(minted[field].is_string(), "{field}: {minted}");
    }
    let r = server.request(
        "GET",
        "/env/json/main/keys",
        minted["token"].as_str().unwrap(),
        None,
    );
    assert_eq!(r.status, 200, "the minted token works: {r:?}");

    assert_eq!(
        json_of(&alice, &["members", "list"], None),
        serde_json::json!([])
    );
    let line = alice.envsync(&["keygen"]).clean().ok().stdout;
    let (key, signer) = line.trim().split_once(' ').unwrap();
    alice
        .envsync(&["members", "add", "dev@example.com", line.trim()])
        .clean()
        .ok();
    assert_eq!(
        json_of(&alice, &["members", "list"], None),
        serde_json::json!([{
            "name": "dev@example.com", "key": key, "signer": signer, "email": "dev@example.com",
        }])
    );
}

/// `init --recipients` in a clone whose git configuration has no `user.email` names the
/// member by the email of the token it is logged in with; with neither, it refuses.
#[test]
fn init_names_the_member_by_the_token_s_email_without_a_git_email() {
    let server = Server::start();
    let mut alice = Dev::new(&server, "named");
    alice.token = server.token("token-holder@example.com", "developer", &["named"]);
    fs::write(
        alice.home.join(".gitconfig"),
        "[user]\n\tname = Test\n[init]\n\tdefaultBranch = main\n",
    )
    .unwrap();
    let no_email = alice.git_run(&["config", "--get", "user.email"]);
    assert_eq!(no_email.code, 1, "user.email is still set: {no_email:#?}");

    // No login either: nobody to name.
    alice.env_credentials = false;
    let out = alice
        .envsync(&["init", "--project", "named", "--recipients", "--force"])
        .refused()
        .code(2);
    assert!(
        out.stderr
            .contains("cannot name you as a member: no user.email in git config, and no login"),
        "{out:#?}"
    );
    assert!(out.stdout.is_empty(), "{out:#?}");
    assert!(
        !alice.home.join(".config/envsync/identity.txt").exists(),
        "keys were made before the refusal"
    );

    alice.env_credentials = true;
    let out = alice
        .envsync(&["init", "--project", "named", "--recipients", "--force"])
        .clean()
        .ok();
    assert!(out.stderr.contains("team-key mode"), "{out:#?}");
    let members = alice.envsync(&["members", "list", "--json"]).clean().ok();
    let members: serde_json::Value = serde_json::from_str(&members.stdout).unwrap();
    assert_eq!(members[0]["name"], "token-holder@example.com", "{members}");
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    // The member is the one whose pushes verify: alice signs as her token's email.
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();
    let log = alice.envsync(&["log"]).clean().ok();
    assert!(
        log.stdout.contains("signed by token-holder@example.com"),
        "{log:#?}"
    );
}

/// Without `default_branch` in the settings, a branch with no env of its own falls back
/// to the repository's default branch: `origin/HEAD` first (here `develop`, while
/// `init.defaultBranch` says `main`), and with no origin, `init.defaultBranch` (`trunk`).
#[test]
fn the_fallback_branch_is_origin_head_then_init_default_branch() {
    let server = Server::start();
    let alice = Dev::new(&server, "fallback");
    fs::write(alice.repo.join(".envsync.toml"), "project = \"fallback\"\n").unwrap();
    alice.git(&["commit", "-qam", "no default_branch"]);
    alice.trust();
    for branch in ["main", "develop", "trunk"] {
        alice.write_env(format!("FROM={branch}\n"));
        alice.envsync(&["push", "--branch", branch]).clean().ok();
    }
    alice.git(&["branch", "develop"]);

    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.git(&["remote", "set-head", "origin", "develop"]);
    let default = bob.git(&["config", "--get", "init.defaultBranch"]);
    assert_eq!(String::from_utf8_lossy(&default.stdout), "main\n");
    bob.git(&["checkout", "-q", "-b", "feature"]);
    let out = bob.envsync(&["pull"]).clean().ok();
    assert!(out.stderr.contains("pulled develop version 1"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), b"FROM=develop\n");

    // alice's repository has no origin.
    alice.git(&["config", "init.defaultBranch", "trunk"]);
    alice.git(&["checkout", "-q", "-b", "feature"]);
    fs::remove_file(alice.env_path()).unwrap();
    let out = alice.envsync(&["pull"]).clean().ok();
    assert!(out.stderr.contains("pulled trunk version 1"), "{out:#?}");
    assert_eq!(alice.read_env().unwrap(), b"FROM=trunk\n");
}
