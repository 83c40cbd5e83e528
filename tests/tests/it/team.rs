//! Team keys, rotation, offboarding, tokens, history: end to end, with the stock `age`
//! tool as an independent decrypter.

#![allow(clippy::unwrap_used)]

use envsync_tests::{Dev, Run, Server};
use std::fs;
use std::path::Path;
use std::process::Command;

fn keygen(dev: &Dev) -> String {
    let out = dev.envsync(&["keygen"]).clean().ok();
    let key = out.stdout.trim().to_owned();
    assert!(key.starts_with("age1"), "{out:#?}");
    key
}

fn identity(dev: &Dev) -> std::path::PathBuf {
    dev.home.join(".config/envsync/identity.txt")
}

/// Decrypts an armored age file with the stock `age` binary and an identity file.
fn stock_age(armored: &str, identity: &Path) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob.age");
    fs::write(&file, armored).unwrap();
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(&file)
        .output()
        .expect("the stock `age` tool must be installed (./test.sh installs it)");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn latest_blob(server: &Server, token: &str, project: &str, branch: &str) -> String {
    let r = server.request("GET", &format!("/env/{project}/{branch}"), token, None);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["ciphertext"].as_str().unwrap().to_owned()
}

/// alice and bob in team-key mode, with the recipients committed.
fn team(server: &Server, project: &str) -> (Dev, Dev) {
    let mut alice = Dev::new(server, project);
    alice.pass = None;
    let alice_key = keygen(&alice);
    let mut bob = Dev::clone_of(&alice, server, "bob@example.com");
    bob.pass = None;
    let bob_key = keygen(&bob);
    alice
        .envsync(&["members", "add", "dev@example.com", &alice_key])
        .clean()
        .ok();
    alice
        .envsync(&["members", "add", "bob@example.com", &bob_key])
        .clean()
        .ok();
    alice.git(&["commit", "-qam", "team keys"]);
    bob.git(&["pull", "-q"]);
    // The settings changed: bob reviews and trusts them, as a teammate would.
    bob.trust();
    (alice, bob)
}

#[test]
fn team_mode_round_trip_and_stock_age() {
    let server = Server::start();
    let (alice, bob) = team(&server, "team");
    alice.write_env("API_KEY=abc\n");
    alice.envsync(&["push"]).clean().ok();
    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"API_KEY=abc\n");

    let blob = latest_blob(&server, &alice.token, "team", "main");
    for dev in [&alice, &bob] {
        // Two comment lines (the binding, and alice's signature), then the file: still a
        // valid .env for anyone who opens it with age alone.
        let plain = String::from_utf8(stock_age(&blob, &identity(dev)).unwrap()).unwrap();
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines[0], "# envsync project=team branch=main version=1");
        // The meta line: the project's fingerprint key (readers know it), the signer.
        assert!(lines[1].starts_with("# envsync-meta fpk="), "{plain}");
        assert!(lines[1].contains(" signer=ed25519:"), "{plain}");
        assert!(lines[1].contains(" sig="), "{plain}");
        assert_eq!(&lines[2..], ["API_KEY=abc"]);
    }
    // Someone outside the team can do nothing with it.
    let mut eve = Dev::clone_of(&alice, &server, "eve@example.com");
    eve.pass = None;
    keygen(&eve);
    assert!(stock_age(&blob, &identity(&eve)).is_err());
    let out = eve.envsync(&["pull"]).clean().code(1);
    assert!(out.stderr.contains("cannot decrypt"), "{out:#?}");
    assert!(eve.read_env().is_none());
    // And cannot push, not even with --force: nobody could read back what they pushed.
    eve.write_env("API_KEY=evil\n");
    let out = eve.envsync(&["push", "--force"]).clean().code(1);
    assert!(
        out.stderr.contains("not among the project's recipients"),
        "{out:#?}"
    );
}

#[test]
fn identity_readable_by_others_is_refused() {
    let server = Server::start();
    let (alice, _bob) = team(&server, "perms");
    alice.write_env("A=1\n");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(identity(&alice), fs::Permissions::from_mode(0o644)).unwrap();
    let out = alice.envsync(&["push"]).clean().code(1);
    assert!(out.stderr.contains("readable by other users"), "{out:#?}");
}

#[test]
fn removing_a_member_then_rotate_locks_them_out() {
    let server = Server::start();
    let (alice, bob) = team(&server, "offboard");
    // carol is a member named "carol" whose token says carol@example.com.
    let mut carol = Dev::clone_of(&alice, &server, "carol@example.com");
    carol.pass = None;
    let line = keygen(&carol);
    alice
        .envsync(&[
            "members",
            "add",
            "carol",
            &line,
            "--email",
            "carol@example.com",
        ])
        .clean()
        .ok();
    alice.git(&["commit", "-qam", "carol joins"]);
    carol.git(&["pull", "-q"]);
    carol.trust();
    for branch in ["main", "feature/a", "feature/b"] {
        alice.write_env(format!("SECRET_{}=x\nSHARED=y\n", branch.len()));
        alice.envsync(&["push", "--branch", branch]).clean().ok();
    }
    // bob pulls main, carol feature/a; then both leave.
    bob.envsync(&["pull"]).clean().ok();
    carol
        .envsync(&["pull", "--branch", "feature/a"])
        .clean()
        .ok();
    let config = alice.repo.join(".envsync.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        format!("# Offboarding: rotate after removing.\n{text}"),
    )
    .unwrap();
    for who in ["bob@example.com", "carol"] {
        alice.envsync(&["members", "remove", who]).clean().ok();
    }
    let text = fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with("# Offboarding: rotate after removing.\n"),
        "{text}"
    );
    let owner = server.token("owner@example.com", "owner", &[]);
    let mut alice_owner = alice;
    alice_owner.token = owner;
    // No --removed: rotate remembers who was removed since the last rotation.
    let out = alice_owner.envsync(&["rotate"]).clean().ok();
    assert!(
        out.stderr
            .contains("Rotated 3 branches of offboard for 1 member (dev@example.com)\n"),
        "{out:#?}"
    );
    assert!(
        out.stdout.contains("main: SECRET_4, SHARED"),
        "checklist: {out:#?}"
    );
    assert!(
        out.stdout.contains("feature/a: SECRET_9, SHARED"),
        "carol's, found by her email: {out:#?}"
    );
    assert!(
        !out.stdout.contains("feature/b"),
        "nobody removed pulled it: {out:#?}"
    );
    for branch in ["main", "feature%2Fa", "feature%2Fb"] {
        let blob = latest_blob(&server, &alice_owner.token, "offboard", branch);
        assert!(stock_age(&blob, &identity(&bob)).is_err(), "{branch}");
        assert!(stock_age(&blob, &identity(&carol)).is_err(), "{branch}");
        assert!(
            stock_age(&blob, &identity(&alice_owner)).is_ok(),
            "{branch}"
        );
    }
    // A second run has nothing left to do, and no removal to report again.
    let out = alice_owner.envsync(&["rotate"]).clean().ok();
    assert!(out.stderr.contains("Rotated 0 branches"), "{out:#?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
    // An older removal can still be named.
    let out = alice_owner
        .envsync(&["rotate", "--removed", "bob@example.com"])
        .clean()
        .ok();
    assert!(out.stdout.contains("main: SECRET_4, SHARED"), "{out:#?}");
}

#[test]
fn passphrase_to_new_passphrase_and_interrupted_rotate_resumes() {
    let server = Server::start();
    let alice = Dev::new(&server, "newpass");
    for branch in ["main", "b1", "b2"] {
        alice.write_env(format!("K_{branch}=v\n"));
        alice.envsync(&["push", "--branch", branch]).ok();
    }
    let new = "an entirely new passphrase";
    let mut cmd = alice.envsync_cmd(&["rotate", "--batch", "1"]);
    let out = Run::from(cmd.env("ENVSYNC_NEW_PASS", new).output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stderr.contains("stopped after 1 branch;"), "{out:#?}");
    let mut cmd = alice.envsync_cmd(&["rotate"]);
    let out = Run::from(cmd.env("ENVSYNC_NEW_PASS", new).output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stderr.contains("already rotated"), "{out:#?}");
    assert!(
        out.stderr
            .contains("Rotated 2 branches of newpass for a passphrase"),
        "{out:#?}"
    );

    let mut bob = Dev::clone_of(&alice, &server, "bob@example.com");
    for branch in ["main", "b1", "b2"] {
        let out = bob.envsync(&["pull", "--branch", branch]).clean().code(1);
        assert!(out.stderr.contains("wrong passphrase"), "{out:#?}");
    }
    bob.pass = Some(new.to_owned());
    bob.envsync(&["pull", "--branch", "b2"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"K_b2=v\n");

    // A later rotation to another passphrase is a rotation of its own, not the finished
    // one resumed: every branch again.
    let third = "yet another passphrase, third";
    let mut cmd = bob.envsync_cmd(&["rotate"]);
    let out = Run::from(cmd.env("ENVSYNC_NEW_PASS", third).output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stderr.contains("Rotated 3 branches"), "{out:#?}");
    assert!(!out.stderr.contains("already rotated"), "{out:#?}");
    bob.pass = Some(third.to_owned());
    bob.envsync(&["pull", "--branch", "main", "--force"])
        .clean()
        .ok();
    assert_eq!(bob.read_env().unwrap(), b"K_main=v\n");
}

#[test]
fn passphrase_to_team_mode() {
    let server = Server::start();
    let alice = Dev::new(&server, "migrate");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    let key = keygen(&alice);
    alice
        .envsync(&["members", "add", "dev@example.com", &key])
        .ok();
    alice.envsync(&["rotate"]).clean().ok();
    let blob = latest_blob(&server, &alice.token, "migrate", "main");
    let plain = String::from_utf8(stock_age(&blob, &identity(&alice)).unwrap()).unwrap();
    assert!(
        plain.starts_with("# envsync project=migrate branch=main version=2\n# envsync-meta "),
        "{plain}"
    );
    assert!(plain.ends_with("\nA=1\n"), "{plain}");
    // The old passphrase opens nothing any more: the branch now needs an identity.
    alice.git(&["commit", "-qam", "team keys"]);
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    let out = bob.envsync(&["pull"]).clean().code(2);
    assert!(out.stderr.contains("no identity file"), "{out:#?}");
    assert!(out.stderr.contains("git envsync keygen"), "{out:#?}");
}

#[test]
fn tokens_from_the_cli() {
    let server = Server::start();
    let mut alice = Dev::new(&server, "tok");
    alice.token = server.token("owner@example.com", "owner", &[]);
    let out = alice
        .envsync(&[
            "token",
            "create",
            "--email",
            "ci@example.com",
            "--role",
            "readonly",
            "--ttl",
            "1h",
        ])
        .clean()
        .ok();
    let minted = out.stdout.trim().to_owned();
    let jti = out.stderr.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(
        server
            .request("GET", "/env/tok/main/keys", &minted, None)
            .status,
        404
    );
    let out = alice.envsync(&["token", "list"]).clean().ok();
    assert!(out.stdout.contains("ci@example.com"), "{out:#?}");
    assert!(
        !out.stdout.contains(&minted),
        "the list never shows a token"
    );
    let out = alice
        .envsync(&["token", "revoke", &jti, "--json"])
        .clean()
        .ok();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json, serde_json::json!({ "revoked": [jti] }), "{out:#?}");
    assert_eq!(
        server
            .request("GET", "/env/tok/main/keys", &minted, None)
            .status,
        401
    );
    let out = alice.envsync(&["token", "list", "--json"]).ok();
    assert!(out.stdout.contains("\"revoked\": true"), "{out:#?}");

    // Every token of one email: asks first (no terminal here: refused), then with --yes.
    let first = server.token("leaver@example.com", "developer", &["tok"]);
    let second = server.token("leaver@example.com", "readonly", &["tok"]);
    let out = alice
        .envsync(&["token", "revoke", "leaver@example.com"])
        .refused()
        .code(2);
    assert!(out.stderr.contains("--yes"), "{out:#?}");
    for t in [&first, &second] {
        assert_eq!(server.request("GET", "/whoami", t, None).status, 200);
    }
    let out = alice
        .envsync(&["token", "revoke", "leaver@example.com", "--yes", "--json"])
        .clean()
        .ok();
    assert_eq!(out.stderr.matches("revoked ").count(), 2, "{out:#?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["revoked"].as_array().unwrap().len(), 2, "{out:#?}");
    for t in [&first, &second] {
        assert_eq!(server.request("GET", "/whoami", t, None).status, 401);
    }
    alice
        .envsync(&["token", "revoke", "leaver@example.com", "--yes"])
        .refused()
        .code(1);
}

#[test]
fn rollback_and_audit() {
    let server = Server::start();
    let mut alice = Dev::new(&server, "history");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    alice.write_env("A=2\nB=2\n");
    alice.envsync(&["push"]).ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).ok();

    alice.envsync(&["rollback", "1"]).clean().ok();
    assert_eq!(alice.read_env().unwrap(), b"A=1\n");
    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"A=1\n");
    let r = server.request("GET", "/env/history/main/versions", &alice.token, None);
    assert_eq!(r.json()["versions"][0]["version"], 3);
    assert_eq!(r.json()["versions"][0]["keys"], serde_json::json!(["A"]));
    let out = bob.envsync(&["pull", "--version", "2"]).clean().ok();
    assert!(out.stderr.contains("version 2"), "{out:#?}");

    alice.token = server.token("owner@example.com", "owner", &[]);
    let out = alice.envsync(&["audit"]).clean().ok();
    let pulls: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("bob@example.com") && l.contains("pull"))
        .collect();
    assert!(pulls.iter().any(|l| l.contains("main@2")), "{out:#?}");
    assert!(pulls.iter().any(|l| l.contains("main@3")), "{out:#?}");
}

/// A large audit log (forty pushes that swap 1000 key names of 128 bytes, within the
/// default quotas: about 10 MB of events) is read a page at a time: `audit --limit 5` asks
/// the server for 5 events, not a page of 500, and `--limit 40` follows the server's
/// pages, which end at their byte budget, until it has 40.
#[test]
fn audit_reads_a_large_log_a_page_at_a_time() {
    let server = Server::start();
    let mut dev = Dev::new(&server, "bigaudit");
    dev.write_env("A=1\n");
    dev.envsync(&["push"]).clean().ok();
    // The first version's ciphertext, pushed again with long key lists (the server keeps
    // names, never looks inside).
    let first = server.request("GET", "/env/bigaudit/main", &dev.token, None);
    assert_eq!(first.status, 200);
    let ciphertext = first.json()["ciphertext"].as_str().unwrap().to_owned();
    let names =
        |set: char| -> Vec<String> { (0..1000).map(|i| format!("{set}{i:0>127}")).collect() };
    let (a, b) = (names('A'), names('B'));
    for version in 1..=40u64 {
        let keys = if version % 2 == 0 { &a } else { &b };
        let body =
            serde_json::json!({"ciphertext": ciphertext, "keys": keys, "base_version": version});
        let pushed = server.request(
            "POST",
            "/env/bigaudit/main",
            &dev.token,
            Some(&body.to_string()),
        );
        assert_eq!(pushed.status, 201, "{}", pushed.body);
    }

    let recorder = envsync_tests::proxy::Proxy::recorder(&server.url);
    dev.server_url = recorder.url.clone();
    dev.token = server.token("owner@example.com", "owner", &[]);
    let audit_requests = || -> Vec<String> {
        recorder
            .exchanges()
            .into_iter()
            .map(|(req, _)| req.path)
            .filter(|p| p.starts_with("/audit/"))
            .collect()
    };
    let out = dev.envsync(&["audit", "--limit", "5"]).clean().ok();
    assert_eq!(out.stdout.lines().count(), 5, "{out:#?}");
    assert_eq!(audit_requests(), ["/audit/bigaudit?limit=5"]);

    let out = dev
        .envsync(&["audit", "--limit", "40", "--json"])
        .clean()
        .ok();
    let events: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(events.len(), 40);
    let versions: Vec<u64> = events
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (2..=41).rev().collect::<Vec<u64>>(),
        "the newest 40 pushes"
    );
    let pages = audit_requests().len() - 1;
    assert!(pages >= 3, "one page per 4 MiB: {:?}", audit_requests());
}

/// A push is checked against what the team can read before anything is sealed or sent:
/// the same passphrase as the branch's latest version (no scrypt when this clone synced
/// it with that passphrase), and the same mode; so neither a mistyped or rotated-away
/// passphrase nor an older checkout's settings make a version the team cannot open.
#[test]
fn pushes_keep_to_the_teams_passphrase_and_mode() {
    let server = Server::start();
    let alice = Dev::new(&server, "modes");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();

    // Verified by this clone already: the push fetches no blob to prove the passphrase.
    let recorder = envsync_tests::proxy::Proxy::recorder(&server.url);
    let mut via = Dev::clone_of(&alice, &server, "via@example.com");
    via.server_url = recorder.url.clone();
    via.envsync(&["pull"]).clean().ok();
    via.write_env("A=1\nB=2\n");
    let before = recorder.exchanges().len();
    via.envsync(&["push"]).clean().ok();
    let blobs = recorder.exchanges()[before..]
        .iter()
        .filter(|(r, _)| r.method == "GET" && r.path.starts_with("/env/modes/main?"))
        .count();
    assert_eq!(
        blobs,
        0,
        "a verified passphrase needs no blob: {:#?}",
        recorder.exchanges()
    );

    // After a rotation to a new passphrase, the old one is refused, with nothing sent.
    alice.envsync(&["pull"]).clean().ok();
    let new = "the passphrase after rotation";
    let mut cmd = alice.envsync_cmd(&["rotate"]);
    assert_eq!(
        Run::from(cmd.env("ENVSYNC_NEW_PASS", new).output().unwrap()).code,
        0
    );
    alice.write_env("A=1\nB=2\nC=3\n");
    let out = alice.envsync(&["push"]).refused().code(1);
    assert!(
        out.stderr.contains("does not open main version 3"),
        "{out:#?}"
    );
    let mut alice = alice;
    alice.pass = Some(new.to_owned());
    alice.envsync(&["push"]).clean().ok();

    // carol moves the project to team keys (members add, rotate) without alice's clone
    // knowing: alice's passphrase push is refused instead of quietly downgrading.
    let mut carol = Dev::clone_of(&alice, &server, "carol@example.com");
    carol.pass = Some(new.to_owned());
    carol.envsync(&["pull"]).clean().ok();
    let line = keygen(&carol);
    carol
        .envsync(&["members", "add", "carol@example.com", &line])
        .clean()
        .ok();
    // Before the rotation, carol's own team-mode push is refused: rotate's job (only
    // --force would push over a version this clone cannot verify).
    carol.write_env("A=1\nB=2\nC=3\nD=4\n");
    let out = carol.envsync(&["push"]).refused().code(1);
    assert!(out.stderr.contains("sealed in passphrase mode"), "{out:#?}");
    assert!(out.stderr.contains("rotate"), "{out:#?}");
    assert!(out.stderr.contains("push --force replaces it"), "{out:#?}");
    carol.envsync(&["rotate"]).clean().ok();
    // alice's clone still trusts passphrase-mode settings: the team-mode version is
    // refused as one of another mode, with the way to catch up.
    let out = alice.envsync(&["pull"]).refused().code(1);
    assert!(out.stderr.contains("sealed to age keys"), "{out:#?}");
    assert!(out.stderr.contains("git envsync trust"), "{out:#?}");
    alice.write_env("A=1\nB=2\nC=3\nE=5\n");
    let out = alice.envsync(&["push"]).refused().code(1);
    assert!(out.stderr.contains("sealed to age keys"), "{out:#?}");
    assert!(out.stderr.contains("git envsync trust"), "{out:#?}");
    let versions = server.request("GET", "/env/modes/main/versions", &alice.token, None);
    assert_eq!(
        versions.json()["versions"][0]["version"],
        5,
        "nothing more was pushed"
    );
}

/// rollback, copy and mv push as well, and are held to push's check: a clone still
/// holding the passphrase a rotation replaced reads what that passphrase still opens (old
/// versions, a branch an interrupted rotation has not reached yet) but cannot seal a new
/// version with it, which nobody with the new passphrase could open.
#[test]
fn rollback_copy_and_mv_keep_to_the_teams_passphrase() {
    let server = Server::start();
    let alice = Dev::new(&server, "writers");
    for (branch, env) in [("main", "A=1\n"), ("main", "A=2\n"), ("src", "S=1\n")] {
        alice.write_env(env);
        alice.envsync(&["push", "--branch", branch]).clean().ok();
    }
    // The rotation stops after main (branches go in name order): src is still sealed
    // with the old passphrase, which alice's ENVSYNC_PASS still holds.
    let new = "the passphrase after rotation";
    let mut cmd = alice.envsync_cmd(&["rotate", "--batch", "1"]);
    let out = Run::from(cmd.env("ENVSYNC_NEW_PASS", new).output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(server.versions(&alice.token, "writers", "main").len(), 3);

    let server_state = || {
        ["main", "src", "feat", "renamed"]
            .map(|b| server.versions(&alice.token, "writers", b).len())
    };
    let before = server_state();
    for args in [
        &["rollback", "1"][..],
        &["copy", "--branch", "feat", "--from", "src"][..],
        &["mv", "src", "renamed"][..],
    ] {
        let out = alice.envsync(args).refused().code(1);
        assert!(
            out.stderr
                .contains("refusing to push: this passphrase does not open main version 3"),
            "{args:?}: {out:#?}"
        );
        assert!(
            out.stderr.contains("nothing was sent"),
            "{args:?}: {out:#?}"
        );
        assert_eq!(server_state(), before, "{args:?} pushed something");
    }

    // Once the rotation has finished (reading with the old passphrase, as rotate does),
    // the same copy with the new passphrase is taken.
    let mut cmd = alice.envsync_cmd(&["rotate"]);
    let out = Run::from(cmd.env("ENVSYNC_NEW_PASS", new).output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    let mut alice = alice;
    alice.pass = Some(new.to_owned());
    alice
        .envsync(&["copy", "--branch", "feat", "--from", "src"])
        .clean()
        .ok();
    let mut bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.pass = Some(new.to_owned());
    bob.envsync(&["pull", "--branch", "feat"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"S=1\n");
}

/// `members add` and `remove` say what they did as JSON with `--json`; and a member added
/// under a name that is not an email, without `--email`, gets a one-line warning: the
/// audit log knows them by their token's email, so rotate could not report what they
/// pulled.
#[test]
fn members_add_and_remove_print_json_and_warn_without_an_email() {
    let server = Server::start();
    let mut alice = Dev::new(&server, "roster");
    alice.pass = None;
    let alice_line = keygen(&alice);
    let mut carol = Dev::clone_of(&alice, &server, "carol@example.com");
    carol.pass = None;
    let carol_line = keygen(&carol);

    let out = alice
        .envsync(&["members", "add", "dev@example.com", &alice_line, "--json"])
        .clean()
        .ok();
    assert!(!out.stderr.contains("warning"), "{out:#?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let (age_key, signer) = alice_line.split_once(' ').unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "added": {
                "name": "dev@example.com",
                "key": age_key,
                "signer": signer,
                "email": "dev@example.com",
            },
            "team_mode_started": true,
        }),
        "{out:#?}"
    );

    // A name that is not an email, and no --email: added, with the warning.
    let out = alice
        .envsync(&["members", "add", "carol", &carol_line, "--json"])
        .clean()
        .ok();
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out:#?}");
    assert!(warnings[0].contains("no email for carol"), "{out:#?}");
    assert!(warnings[0].contains("--email"), "{out:#?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["added"]["email"], serde_json::Value::Null, "{out:#?}");
    assert_eq!(json["team_mode_started"], false, "{out:#?}");

    let out = alice
        .envsync(&["members", "remove", "carol", "--json"])
        .clean()
        .ok();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["removed"][0]["name"], "carol", "{out:#?}");
    assert_eq!(json["removed"].as_array().unwrap().len(), 1, "{out:#?}");
    assert_eq!(json["members_left"], 1, "{out:#?}");

    // With --email: no warning, and the email is what the JSON (and rotate) use.
    let out = alice
        .envsync(&[
            "members",
            "add",
            "carol",
            &carol_line,
            "--email",
            "carol@example.com",
            "--json",
        ])
        .clean()
        .ok();
    assert!(!out.stderr.contains("warning"), "{out:#?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["added"]["email"], "carol@example.com", "{out:#?}");
    let out = alice.envsync(&["members", "list", "--json"]).clean().ok();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json[1]["email"], "carol@example.com", "{out:#?}");
}
