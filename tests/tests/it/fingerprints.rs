//! Value fingerprints, end to end: pushes send them, the server keeps them with
//! each version, and `diff`, `status`, `log` and the pre-commit hook tell changed values
//! without a passphrase; equal values give equal fingerprints across branches and
//! versions, another value, another key (after `rotate`) or another project gives another;
//! a server that lies about them is caught by the next pull; `fingerprints = false` sends
//! none.

#![allow(clippy::unwrap_used)]

use envsync_tests::proxy::{Proxy, Upstream};
use envsync_tests::{Dev, Server};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The `/keys` answer of a branch: its fingerprints (name → print, "" the key id).
fn prints(server: &Server, dev: &Dev, branch: &str) -> serde_json::Map<String, Value> {
    let r = server.request(
        "GET",
        &format!("/env/{}/{}/keys", dev.project(), branch.replace('/', "%2F")),
        &dev.token,
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["fingerprints"]
        .as_object()
        .cloned()
        .unwrap_or_else(|| panic!("no fingerprints: {}", r.body))
}

#[test]
fn equal_values_give_equal_fingerprints_and_nothing_else_does() {
    let server = Server::start();
    let alice = Dev::new(&server, "prints");
    alice.write_env("A=same\nB=one\n");
    alice.envsync(&["push"]).clean().ok();
    let feature = Dev::clone_of(&alice, &server, "feature@example.com");
    feature.git(&["checkout", "-q", "-b", "feature/x"]);
    feature.write_env("A=same\nB=two\n");
    feature.envsync(&["push"]).clean().ok();
    let main = prints(&server, &alice, "main");
    let on_feature = prints(&server, &alice, "feature/x");
    // One key for the project: the same id, equal A, different B.
    assert_eq!(main[""], on_feature[""]);
    assert_eq!(main["A"], on_feature["A"]);
    assert_ne!(main["B"], on_feature["B"]);
    assert_eq!(main.len(), 3);
    // Across versions: B back to "one" on main gives its old fingerprint again.
    alice.write_env("A=same\nB=three\n");
    alice.envsync(&["push"]).clean().ok();
    assert_ne!(prints(&server, &alice, "main")["B"], main["B"]);
    alice.write_env("A=same\nB=one\n");
    alice.envsync(&["push"]).clean().ok();
    assert_eq!(prints(&server, &alice, "main"), main);
    // Another project (its own key, its name in the HMAC): the same value differs.
    let other = Dev::new(&server, "prints-other");
    other.write_env("A=same\nB=one\n");
    other.envsync(&["push"]).clean().ok();
    let theirs = prints(&server, &other, "main");
    assert_ne!(theirs[""], main[""]);
    assert_ne!(theirs["A"], main["A"]);
    // No value, whole or in part, is in what the server keeps: each print is 32
    // lower-case hex characters (no room for a value's text), and neither value is in
    // any of its answers about the branch.
    for print in main.values() {
        let print = print.as_str().unwrap();
        assert_eq!(print.len(), 32);
        assert!(
            print
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{print}"
        );
    }
    for path in ["keys", "versions"] {
        let r = server.request(
            "GET",
            &format!("/env/prints/main/{path}"),
            &alice.token,
            None,
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            !r.body.contains("same") && !r.body.contains("one"),
            "{}",
            r.body
        );
    }
}

#[test]
fn diff_status_and_log_show_changed_values_without_a_passphrase() {
    let server = Server::start();
    let alice = Dev::new(&server, "changed");
    alice.write_env("A=1\nB=2\nC=3\n");
    alice.envsync(&["push"]).clean().ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    let bob = {
        let mut b = bob;
        b.pass = None;
        b
    };
    // In sync: compared, nothing changed (the block as it always was).
    let out = bob.envsync(&["diff"]).clean().ok();
    assert!(!out.stdout.contains("Changed values"), "{out:#?}");
    assert!(out.stdout.ends_with("In sync? True\n"), "{out:#?}");
    let json: Value = serde_json::from_str(&bob.envsync(&["diff", "--json"]).ok().stdout).unwrap();
    assert_eq!(json["changed"], serde_json::json!([]));

    // bob edits a value: no passphrase needed to see which.
    bob.write_env("A=1\nB=20\nC=3\n");
    let out = bob.envsync(&["diff", "--exit-code"]).code(1);
    assert!(out.stdout.contains("Changed values: B\n"), "{out:#?}");
    assert!(out.stdout.ends_with("In sync? False\n"), "{out:#?}");
    assert!(!out.stdout.contains("20"), "{out:#?}");
    let json: Value = serde_json::from_str(&bob.envsync(&["diff", "--json"]).ok().stdout).unwrap();
    assert_eq!(json["changed"], serde_json::json!(["B"]));
    let out = bob.envsync(&["status"]).clean().ok();
    assert!(out.stdout.contains("changed values: B"), "{out:#?}");

    // alice pushes C=30: bob (not pulled) sees C changed too.
    alice.write_env("A=1\nB=2\nC=30\n");
    alice.envsync(&["push"]).clean().ok();
    let out = bob.envsync(&["diff"]).clean().ok();
    assert!(out.stdout.contains("Changed values: B, C\n"), "{out:#?}");

    // Two branches on the server, no local file involved.
    let feature = Dev::clone_of(&alice, &server, "feature@example.com");
    feature.git(&["checkout", "-q", "-b", "feature/y"]);
    feature.write_env("A=1\nB=2\nC=3\nD=4\n");
    feature.envsync(&["push"]).clean().ok();
    let out = bob
        .envsync(&["diff", "--against", "feature/y"])
        .clean()
        .ok();
    assert!(out.stdout.contains("Changed values: C\n"), "{out:#?}");
    assert!(out.stdout.contains("Missing on main: D\n"), "{out:#?}");

    // log marks the version that changed C.
    let out = bob.envsync(&["log"]).clean().ok();
    let v2 = out.stdout.split("version 1 ").next().unwrap();
    assert!(v2.contains("    ~ C\n"), "{out:#?}");
    assert!(!v2.contains("~ A") && !v2.contains("~ B"), "{out:#?}");
    let json: Value = serde_json::from_str(&bob.envsync(&["log", "--json"]).ok().stdout).unwrap();
    assert_eq!(json[0]["changed"], serde_json::json!(["C"]));
    assert_eq!(json[1]["changed"], Value::Null);
}

#[test]
fn pre_commit_reports_a_changed_value_as_drift() {
    let server = Server::start();
    let alice = Dev::new(&server, "hookprints");
    alice.write_env("A=1\nB=2\n");
    alice.envsync(&["push"]).clean().ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    bob.envsync(&["hooks", "install"]).clean().ok();
    alice.write_env("A=1\nB=3\n");
    alice.envsync(&["push"]).clean().ok();
    std::fs::write(bob.repo.join("file.txt"), "x").unwrap();
    bob.git(&["add", "file.txt"]);
    let out = bob.git_run(&["commit", "-qm", "c"]).ok();
    assert!(
        out.stderr
            .contains("drifts from the server's values: ~ B (value differs from the server)"),
        "{out:#?}"
    );
    assert!(!out.stderr.contains('3'), "{out:#?}");
}

/// `rotate` makes a new key; every clone takes it from the first rotated version it reads,
/// on any branch, and an old version read again does not bring the old key back.
#[test]
fn rotate_replaces_the_key_and_log_says_values_were_not_compared() {
    const NEW_PASS: &str = "a new passphrase, long enough";
    let server = Server::start();
    let alice = Dev::new(&server, "rotprints");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();
    let carol = Dev::clone_of(&alice, &server, "carol@example.com");
    carol.git(&["checkout", "-q", "-b", "feature"]);
    carol.write_env("A=1\nF=1\n");
    carol.envsync(&["push"]).clean().ok();
    let mut bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    let before = prints(&server, &alice, "main");
    let mut rotate = alice.envsync_cmd(&["rotate"]);
    rotate.env("ENVSYNC_NEW_PASS", NEW_PASS);
    let out = envsync_tests::Run::from(rotate.output().unwrap()).ok();
    let after = prints(&server, &alice, "main");
    assert_ne!(after[""], before[""], "{out:#?}");
    assert_ne!(after["A"], before["A"]);
    let out = alice.envsync(&["log"]).clean().ok();
    assert!(
        out.stdout
            .contains("(new fingerprint key: values not compared)"),
        "{out:#?}"
    );
    // The rotating clone kept the new key: its unchanged file compares, and is in sync.
    let out = alice.envsync(&["diff", "--json"]).clean().ok();
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["changed"], serde_json::json!([]), "{out:#?}");
    // A clone that only knows the old key compares nothing rather than everything.
    let out = bob.envsync(&["diff", "--json"]).clean().ok();
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["changed"], Value::Null, "{out:#?}");
    assert_eq!(json["in_sync"], true, "{out:#?}");

    // bob pulls only feature (not the default branch): its rotated version carries the
    // new key, which he takes, so what he pushes there is fingerprinted with it.
    bob.pass = Some(NEW_PASS.to_owned());
    bob.git(&["checkout", "-q", "-b", "feature"]);
    bob.envsync(&["pull", "--force"]).clean().ok();
    bob.write_env("A=1\nF=2\n");
    bob.envsync(&["push"]).clean().ok();
    let feature = prints(&server, &bob, "feature");
    assert_eq!(
        feature[""], after[""],
        "feature's new version under the new key"
    );
    assert_eq!(feature["A"], after["A"]);
    let out = bob
        .envsync(&["diff", "--json", "--against", "main"])
        .clean()
        .ok();
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["changed"], serde_json::json!([]), "compared: {out:#?}");

    // An old version of the default branch, read again with the old passphrase, carries
    // the old key: it does not replace the new one.
    bob.git(&["checkout", "-q", "main"]);
    bob.pass = alice.pass.clone();
    bob.envsync(&["pull", "--force", "--version", "1"])
        .clean()
        .ok();
    let out = bob.envsync(&["diff", "--json"]).clean().ok();
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["changed"], serde_json::json!([]), "{out:#?}");
}

#[test]
fn a_server_lying_about_fingerprints_is_caught_by_the_pull() {
    let server = Server::start();
    let alice = Dev::new(&server, "lyingprints");
    alice.write_env("A=1\nB=2\n");
    alice.envsync(&["push"]).clean().ok();
    let lying = Arc::new(AtomicBool::new(true));
    let proxy = Proxy::start(&server.url, {
        let lying = lying.clone();
        move |req, up: &Upstream| {
            let mut answer = up.pass(req);
            if lying.load(Ordering::SeqCst) && req.method == "GET" && answer.status == 200 {
                let mut json: Value = serde_json::from_str(&answer.body).unwrap();
                if let Some(prints) = json.get_mut("fingerprints").and_then(Value::as_object_mut) {
                    // B "changed": a print that is not B's.
                    let a = prints["A"].clone();
                    prints.insert("B".into(), a);
                    answer.body = json.to_string();
                }
            }
            answer
        }
    });
    let mut bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.server_url = proxy.url.clone();
    let out = bob.envsync(&["pull"]).refused().code(1);
    assert!(
        out.stderr
            .contains("integrity check failed: the server's value fingerprints for main version 1"),
        "{out:#?}"
    );
    assert!(bob.read_env().is_none(), "{out:#?}");
    lying.store(false, Ordering::SeqCst);
    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"A=1\nB=2\n");
}

#[test]
fn a_project_can_turn_fingerprints_off() {
    let server = Server::start();
    let alice = Dev::new(&server, "noprints");
    let config = alice.repo.join(".envsync.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}fingerprints = false\n")).unwrap();
    alice.envsync(&["trust", "--yes"]).clean().ok();
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).clean().ok();
    let r = server.request("GET", "/env/noprints/main/keys", &alice.token, None);
    assert!(r.json().get("fingerprints").is_none(), "{}", r.body);
    alice.write_env("A=2\n");
    let out = alice.envsync(&["diff"]).clean().ok();
    assert!(!out.stdout.contains("Changed values"), "{out:#?}");
    assert!(!alice.repo.join(".git/envsync/fingerprint-key.age").exists());
}

/// A fresh clone's first push to a new branch proves its passphrase against the default
/// branch's latest version, and takes the project's fingerprint key from that same
/// verified read: the blob is fetched once (one scrypt), and the new branch's prints are
/// made with the project's key.
#[test]
fn a_first_push_to_a_new_branch_reads_the_default_branch_once() {
    let server = Server::start();
    let alice = Dev::new(&server, "read-once");
    alice.write_env("A=same\n");
    alice.envsync(&["push"]).clean().ok();

    let recorder = Proxy::recorder(&server.url);
    let mut fresh = Dev::clone_of(&alice, &server, "fresh@example.com");
    fresh.server_url = recorder.url.clone();
    fresh.git(&["checkout", "-q", "-b", "topic"]);
    fresh.write_env("A=same\nB=new\n");
    fresh.envsync(&["push"]).clean().ok();
    let exchanges = recorder.exchanges();
    let blobs = exchanges
        .iter()
        .filter(|(r, _)| {
            let blob = r.path.split('?').next() == Some("/env/read-once/main");
            r.method == "GET" && blob
        })
        .count();
    assert_eq!(blobs, 1, "main's latest is read once: {exchanges:#?}");
    let (main, topic) = (
        prints(&server, &alice, "main"),
        prints(&server, &alice, "topic"),
    );
    assert_eq!(main[""], topic[""], "the project's key");
    assert_eq!(main["A"], topic["A"]);
}
