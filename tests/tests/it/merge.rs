//! Merge, don't refuse, end to end with two clones: disjoint edits merge and
//! push with the layout kept; a conflicting edit writes nothing and prints no value; each
//! way of resolving works; the hooks merge when clean; and a lying server cannot make a
//! merge take content it did not verify.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope::{self, Binding, Seal};
use envsync_common::secret::SecretString;
use envsync_tests::proxy::{Proxy, Upstream};
use envsync_tests::{Dev, Run, Server};
use std::fs;

const SENTINEL_OURS: &str = "ours-value-9f3a";
const SENTINEL_THEIRS: &str = "theirs-value-c0ff";

/// alice and bob, both synced with version 1 of a commented file.
fn pair(server: &Server, project: &str) -> (Dev, Dev) {
    let alice = Dev::new(server, project);
    alice.write_env("# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED=1\n");
    alice.envsync(&["push"]).clean().ok();
    let bob = Dev::clone_of(&alice, server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    (alice, bob)
}

fn latest_keys(server: &Server, dev: &Dev) -> (u64, Vec<String>) {
    let r = server.request(
        "GET",
        &format!("/env/{}/main/keys", dev.project()),
        &dev.token,
        None,
    );
    let json = r.json();
    (
        json["version"].as_u64().unwrap(),
        json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect(),
    )
}

/// A proxy in front of `server` that, on the first push through it, runs `racer`'s
/// `git envsync push` first: the push through it loses the race to that one.
fn racing(server: &Server, racer: &Dev) -> Proxy {
    let push = std::sync::Mutex::new(Some(racer.envsync_cmd(&["push"])));
    Proxy::start(&server.url, move |req, up: &Upstream| {
        if req.method == "POST"
            && let Some(mut push) = push.lock().unwrap().take()
        {
            assert!(push.output().unwrap().status.success());
        }
        up.pass(req)
    })
}

/// The status of every push that went through `proxy`, in order.
fn push_answers(proxy: &Proxy) -> Vec<u16> {
    proxy
        .exchanges()
        .iter()
        .filter(|(req, _)| req.method == "POST")
        .map(|(_, answer)| answer.status)
        .collect()
}

fn no_value_leaked(run: &Run) {
    for value in [SENTINEL_OURS, SENTINEL_THEIRS] {
        assert!(
            !run.stdout.contains(value) && !run.stderr.contains(value),
            "{run:#?}"
        );
    }
}

#[test]
fn disjoint_edits_merge_and_push_with_the_layout_kept() {
    let server = Server::start();
    let (alice, bob) = pair(&server, "disjoint");
    alice.write_env(
        "# database\nDB_URL=postgres://db\nDB_POOL=5\n\n# flags\nexport DEBUG=false\nSHARED=1\n",
    );
    alice.envsync(&["push"]).clean().ok();
    bob.write_env("# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=true\nSHARED=1\nBOB_ONLY='x y'\n");
    let out = bob.envsync(&["push"]).clean().ok();
    assert!(out.stderr.contains("Merged main version 2"), "{out:#?}");
    assert!(out.stderr.contains("came in: DB_POOL"), "{out:#?}");
    assert!(out.stderr.contains("as version 3"), "{out:#?}");
    // Bob's layout (comments, blank line, export, quoting), alice's key beside its
    // neighbour.
    assert_eq!(
        String::from_utf8(bob.read_env().unwrap()).unwrap(),
        "# database\nDB_URL=postgres://db\nDB_POOL=5\n\n# flags\nexport DEBUG=true\nSHARED=1\nBOB_ONLY='x y'\n"
    );
    let (version, keys) = latest_keys(&server, &bob);
    assert_eq!(version, 3);
    assert_eq!(keys, ["DB_URL", "DB_POOL", "DEBUG", "SHARED", "BOB_ONLY"]);
    // The file before the merge was kept, private.
    let backups: Vec<_> = fs::read_dir(&bob.repo)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".env.backup-"))
        .collect();
    assert_eq!(backups.len(), 1);
    // alice pulls it: her file was clean, so she simply takes version 3.
    alice.envsync(&["pull"]).clean().ok();
    assert_eq!(alice.read_env(), bob.read_env());
    // --no-merge refuses as before.
    alice.write_env("A=1\n");
    bob.write_env(
        bob.read_env()
            .unwrap()
            .into_iter()
            .chain(*b"C=1\n")
            .collect::<Vec<u8>>(),
    );
    bob.envsync(&["push"]).clean().ok();
    let out = alice.envsync(&["push", "--no-merge"]).refused().code(1);
    assert!(out.stderr.contains("push refused"), "{out:#?}");
}

#[test]
fn pull_with_local_edits_merges_what_came_in() {
    let server = Server::start();
    let (alice, bob) = pair(&server, "pullmerge");
    alice.write_env(
        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED=1\nNEW=n\n",
    );
    alice.envsync(&["push"]).clean().ok();
    bob.write_env("# database\nDB_URL=postgres://bob\n\n# flags\nexport DEBUG=false\nSHARED=1\n");
    let out = bob.envsync(&["pull"]).clean().ok();
    assert!(out.stderr.contains("came in: NEW"), "{out:#?}");
    assert_eq!(
        String::from_utf8(bob.read_env().unwrap()).unwrap(),
        "# database\nDB_URL=postgres://bob\n\n# flags\nexport DEBUG=false\nSHARED=1\nNEW=n\n"
    );
    // The merge is an edit of version 2: status says so, push publishes it as 3.
    let status = bob.envsync(&["status"]).clean().ok();
    assert!(status.stdout.contains("(edited)"), "{status:#?}");
    assert!(status.stdout.contains("version 2 (same)"), "{status:#?}");
    bob.envsync(&["push"]).clean().ok();
    assert_eq!(latest_keys(&server, &bob).0, 3);
}

/// The server moved by several versions: each conflicting key is named with the version
/// that changed it and who pushed that one (from key lists and value fingerprints, with
/// nothing decrypted), not only the latest.
#[test]
fn a_conflict_names_the_version_and_pusher_that_changed_each_key() {
    let server = Server::start();
    let (alice, bob) = pair(&server, "who-changed");
    let carol = Dev::clone_of(&alice, &server, "carol@example.com");
    carol.envsync(&["pull"]).clean().ok();
    carol.write_env(format!(
        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED={SENTINEL_THEIRS}\n"
    ));
    carol.envsync(&["push"]).clean().ok();
    alice.envsync(&["pull"]).clean().ok();
    alice.write_env(format!(
        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=true\nSHARED={SENTINEL_THEIRS}\n"
    ));
    alice.envsync(&["push"]).clean().ok();
    bob.write_env(format!(
        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=yes\nSHARED={SENTINEL_OURS}\n"
    ));
    let out = bob.envsync(&["push"]).refused().code(1);
    no_value_leaked(&out);
    assert!(
        out.stderr
            .contains("SHARED (yours modified; theirs modified in version 2 by carol@example.com)"),
        "{out:#?}"
    );
    assert!(
        out.stderr
            .contains("DEBUG (yours modified; theirs modified in version 3 by dev@example.com)"),
        "{out:#?}"
    );
    assert!(
        out.stderr
            .contains("version 3 of main (pushed by dev@example.com)"),
        "{out:#?}"
    );
}

/// The server moved by more versions than one page of its version list holds (at most
/// 100): the history behind a conflict's message is read page by page, so the message
/// still says where the key changed.
#[test]
fn a_conflict_across_more_versions_than_a_page_names_where_the_key_changed() {
    let server = Server::start();
    let (alice, bob) = pair(&server, "long-history");
    // Versions 2 to 102, each SHARED=theirs, sealed here to save 101 runs of the CLI (no
    // fingerprints: the history can tell the span, not the one version).
    let pass = SecretString::from(envsync_tests::PASS.to_owned());
    let theirs = "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED=theirs\n";
    for version in 2..=102 {
        let sealed = envelope::seal(
            &Binding::new("long-history", "main", version),
            theirs.as_bytes(),
            &Seal::Passphrase {
                passphrase: &pass,
                work_factor: 10,
            },
        )
        .unwrap();
        server.push_sealed(
            &alice.token,
            "long-history",
            "main",
            &sealed,
            &["DB_URL", "DEBUG", "SHARED"],
            Some(version - 1),
        );
    }
    bob.write_env(format!(
        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED={SENTINEL_OURS}\n"
    ));
    let out = bob.envsync(&["push"]).refused().code(1);
    no_value_leaked(&out);
    assert!(
        out.stderr
            .contains("SHARED (yours modified; theirs modified in versions 2 to 102)"),
        "{out:#?}"
    );
}

/// Both change SHARED: nothing written, no value printed, the conflict named with who
/// and which version; then each way of resolving, every one of which keeps the other
/// changes of both sides (alice's new ALICE, bob's new BOB).
#[test]
fn conflicts_write_nothing_and_each_resolution_works() {
    let server = Server::start();
    for how in ["ours", "theirs", "edit", "abort"] {
        let project = format!("conflict-{how}");
        let (alice, bob) = pair(&server, &project);
        alice.write_env(format!("# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED={SENTINEL_THEIRS}\nALICE=1\n"));
        alice.envsync(&["push"]).clean().ok();
        let ours = format!(
            "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED={SENTINEL_OURS}\nBOB=1\n"
        );
        bob.write_env(&ours);
        let out = bob.envsync(&["push"]).refused().code(1);
        no_value_leaked(&out);
        assert!(
            out.stderr.contains(
                "SHARED (yours modified; theirs modified in version 2 by dev@example.com)"
            ),
            "{out:#?}"
        );
        assert!(
            out.stderr
                .contains("version 2 of main (pushed by dev@example.com)"),
            "{out:#?}"
        );
        assert_eq!(bob.read_env().unwrap(), ours.as_bytes(), "nothing written");
        assert_eq!(latest_keys(&server, &bob).0, 2, "nothing pushed");
        let shown = bob.envsync(&["merge"]).clean().ok();
        assert!(
            shown
                .stdout
                .contains("SHARED: yours modified, theirs modified -> not chosen yet"),
            "{shown:#?}"
        );
        no_value_leaked(&shown);

        let text = || String::from_utf8(bob.read_env().unwrap()).unwrap();
        match how {
            "ours" => {
                bob.envsync(&["merge", "--ours", "SHARED"]).clean().ok();
                assert_eq!(
                    text(),
                    format!(
                        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED={SENTINEL_OURS}\nALICE=1\nBOB=1\n"
                    ),
                    "our value, both clean changes, our layout"
                );
            }
            "theirs" => {
                bob.envsync(&["merge", "--theirs", "SHARED"]).clean().ok();
                assert_eq!(
                    text(),
                    format!(
                        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED={SENTINEL_THEIRS}\nALICE=1\nBOB=1\n"
                    ),
                    "their value, both clean changes, our layout"
                );
            }
            "edit" => {
                let out = bob.envsync(&["merge", "--edit"]).clean().ok();
                no_value_leaked(&out);
                let merge_file = bob.repo.join(".env.merge");
                let marked = fs::read_to_string(&merge_file).unwrap();
                // The merge itself (alice's ALICE came in beside its neighbour, bob's
                // BOB stays), with markers only around the conflicting key.
                let block = format!(
                    "<<<<<<< ours: SHARED\nSHARED={SENTINEL_OURS}\n=======\nSHARED={SENTINEL_THEIRS}\n>>>>>>> theirs: SHARED (version 2 by dev@example.com)\n"
                );
                assert_eq!(
                    marked,
                    format!(
                        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\n{block}ALICE=1\nBOB=1\n"
                    )
                );
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(
                    fs::metadata(&merge_file).unwrap().permissions().mode() & 0o777,
                    0o600
                );
                // Continuing with markers left is refused.
                bob.envsync(&["merge", "--continue"]).refused().code(1);
                // The plaintext guard covers the merge file too.
                bob.envsync(&["hooks", "install"]).clean().ok();
                bob.git(&["add", "-f", ".env.merge"]);
                let commit = bob.git_run(&["commit", "-q", "-m", "oops"]);
                bob.git(&["rm", "-q", "--cached", ".env.merge"]);
                assert_eq!(commit.code, 1, "{commit:#?}");
                assert!(
                    commit.stderr.contains(".env.merge is staged"),
                    "{commit:#?}"
                );
                bob.envsync(&["hooks", "uninstall"]).clean().ok();
                // Resolving means replacing the marked block, nothing else.
                fs::write(&merge_file, marked.replace(&block, "SHARED=both\n")).unwrap();
                bob.envsync(&["merge", "--continue"]).clean().ok();
                assert_eq!(
                    text(),
                    "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED=both\nALICE=1\nBOB=1\n"
                );
                assert!(!merge_file.exists());
            }
            _ => {
                bob.envsync(&["merge", "--abort"]).clean().ok();
                assert_eq!(bob.read_env().unwrap(), ours.as_bytes());
                bob.envsync(&["merge"]).refused().code(1);
                continue;
            }
        }
        let out = bob.envsync(&["push"]).clean().ok();
        no_value_leaked(&out);
        let (version, keys) = latest_keys(&server, &bob);
        assert_eq!(version, 3, "{how}: {out:#?}");
        assert_eq!(
            keys,
            ["DB_URL", "DEBUG", "SHARED", "ALICE", "BOB"],
            "{how}: the pushed version keeps both sides' clean changes"
        );
    }
}

#[test]
fn hooks_merge_when_clean_and_change_nothing_otherwise() {
    let server = Server::start();
    let (alice, bob) = pair(&server, "hookmerge");
    bob.envsync(&["hooks", "install"]).clean().ok();
    alice.write_env(
        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED=1\nALICE=1\n",
    );
    alice.envsync(&["push"]).clean().ok();
    bob.write_env(
        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED=1\nBOB=1\n",
    );
    let out = bob
        .git_run(&["commit", "-q", "--allow-empty", "-m", "x"])
        .ok();
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{out:#?}");
    assert!(
        lines[0].contains("merged main version 2") && lines[0].contains("as version 3"),
        "{out:#?}"
    );
    // ALICE lands beside its neighbour in theirs (after SHARED), BOB stays where it was.
    assert_eq!(
        latest_keys(&server, &bob).1,
        ["DB_URL", "DEBUG", "SHARED", "ALICE", "BOB"]
    );

    // A conflict: one line, nothing written, nothing kept for `merge`.
    alice.envsync(&["pull"]).clean().ok();
    alice.write_env(
        alice
            .read_env()
            .unwrap()
            .into_iter()
            .chain(*b"X=alice\n")
            .collect::<Vec<u8>>(),
    );
    alice.envsync(&["push"]).clean().ok();
    let mine = [bob.read_env().unwrap(), b"X=bob\n".to_vec()].concat();
    bob.write_env(&mine);
    let out = bob
        .git_run(&["commit", "-q", "--allow-empty", "-m", "y"])
        .ok();
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
    assert!(out.stderr.contains("merge stopped"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), mine);
    bob.envsync(&["merge"]).refused().code(1);
}

/// A lying server during a merge: theirs must pass the same verified read as a pull, so
/// another branch's blob, or a key list that is not the blob's, stops the merge with
/// nothing written and nothing pushed.
#[test]
fn a_lying_server_cannot_slip_content_into_a_merge() {
    let server = Server::start();
    let (alice, _) = pair(&server, "mergelie");
    alice.write_env("OTHER=evil\n");
    alice.envsync(&["push", "--branch", "other"]).clean().ok();
    alice.envsync(&["pull", "--force"]).clean().ok();
    alice.write_env(
        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED=1\nNEW=1\n",
    );
    alice.envsync(&["push"]).clean().ok();
    for lie in ["swap", "keys"] {
        let proxy = Proxy::start(&server.url, move |req, up: &Upstream| {
            let blob = req.method == "GET" && req.path.starts_with("/env/mergelie/main?");
            match lie {
                "swap" if blob => up.send("GET", "/env/mergelie/other?version=1", req),
                "keys" if blob => {
                    let mut resp = up.pass(req);
                    let mut v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
                    v["keys"] = serde_json::json!(["DB_URL", "DEBUG", "SHARED", "NEW", "EXTRA"]);
                    resp.body = v.to_string();
                    resp
                }
                _ => up.pass(req),
            }
        });
        let mut bob = Dev::clone_of(&alice, &server, "bob@example.com");
        bob.envsync(&["pull", "--version", "1"]).clean().ok();
        // bob's state: synced version 1 (an explicit old version counts only when first).
        bob.server_url = proxy.url.clone();
        let mine = b"# database\nDB_URL=postgres://bob\n\n# flags\nexport DEBUG=false\nSHARED=1\n"
            .to_vec();
        bob.write_env(&mine);
        let out = bob.envsync(&["pull"]).refused().code(1);
        assert!(
            out.stderr.contains("integrity check failed"),
            "{lie}: {out:#?}"
        );
        assert_eq!(bob.read_env().unwrap(), mine, "{lie}");
        let out = bob.envsync(&["push"]).refused().code(1);
        assert!(
            out.stderr.contains("integrity check failed"),
            "{lie}: {out:#?}"
        );
        assert_eq!(latest_keys(&server, &alice).0, 2, "{lie}: nothing pushed");
    }
}

#[test]
fn a_push_that_loses_the_race_merges_and_pushes_again() {
    let server = Server::start();
    let (mut alice, bob) = pair(&server, "race");
    bob.write_env(
        "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED=1\nBOB=1\n",
    );
    // Bob's push lands between alice's look at the branch (still version 1: nothing to
    // merge) and her push, which the compare-and-swap then refuses.
    let proxy = racing(&server, &bob);
    alice.server_url = proxy.url.clone();
    alice.write_env(
        "# database\nDB_URL=postgres://db\nALICE=1\n\n# flags\nexport DEBUG=false\nSHARED=1\n",
    );
    let out = alice.envsync(&["push"]).clean().ok();
    assert!(out.stderr.contains("Merged main version 2"), "{out:#?}");
    assert!(out.stderr.contains("came in: BOB"), "{out:#?}");
    assert!(out.stderr.contains("as version 3"), "{out:#?}");
    let (version, keys) = latest_keys(&server, &alice);
    assert_eq!(version, 3);
    assert_eq!(keys, ["DB_URL", "ALICE", "DEBUG", "SHARED", "BOB"]);
    assert_eq!(push_answers(&proxy), [409, 201]);
}

/// A server that refuses every push as stale, with a version it does not have: the retry
/// after a lost race is bounded, ends in one clear refusal, and the file keeps the edits.
#[test]
fn a_server_that_always_says_it_moved_gets_a_bounded_retry_and_a_refusal() {
    let server = Server::start();
    let (mut alice, _bob) = pair(&server, "liar409");
    let proxy = Proxy::start(&server.url, |req, up: &Upstream| {
        if req.method == "POST" {
            return envsync_tests::Response {
                status: 409,
                body: r#"{"error":"conflict","message":"stale base","current_version":99}"#
                    .to_owned(),
            };
        }
        up.pass(req)
    });
    alice.server_url = proxy.url.clone();
    let edited =
        "# database\nDB_URL=postgres://db\nALICE=1\n\n# flags\nexport DEBUG=false\nSHARED=1\n";
    alice.write_env(edited);
    let out = alice.envsync(&["push"]).refused().code(1);
    assert!(out.stderr.starts_with("error: push refused"), "{out:#?}");
    assert_eq!(out.stderr.matches("error:").count(), 1, "{out:#?}");
    // Its version 99 is nobody's push: no pusher is named for it.
    assert!(
        out.stderr
            .contains("the server has version 99 of main, and this clone last synced version 1"),
        "{out:#?}"
    );
    assert_eq!(
        String::from_utf8(alice.read_env().unwrap()).unwrap(),
        edited
    );
    assert_eq!(
        push_answers(&proxy),
        [409, 409, 409],
        "one push and two retries, no more"
    );
    assert_eq!(latest_keys(&server, &alice).0, 1);
}

/// A push that merges and then loses the race too: the next round asks the server again
/// and merges what moved it, instead of pushing the first merge again.
#[test]
fn a_push_that_merges_then_loses_the_race_merges_again() {
    let server = Server::start();
    let (mut alice, bob) = pair(&server, "race2");
    let base = "# database\nDB_URL=postgres://db\n\n# flags\nexport DEBUG=false\nSHARED=1\n";
    bob.write_env(format!("{base}BOB=1\n"));
    bob.envsync(&["push"]).clean().ok();
    bob.write_env(format!("{base}BOB=1\nBOB2=1\n"));
    // Bob's second push lands between alice's merge of his first and her push.
    let proxy = racing(&server, &bob);
    alice.server_url = proxy.url.clone();
    alice.write_env(
        "# database\nDB_URL=postgres://db\nALICE=1\n\n# flags\nexport DEBUG=false\nSHARED=1\n",
    );
    let out = alice.envsync(&["push"]).clean().ok();
    assert!(out.stderr.contains("Merged main version 3"), "{out:#?}");
    assert!(out.stderr.contains("came in: BOB, BOB2"), "{out:#?}");
    assert!(out.stderr.contains("as version 4"), "{out:#?}");
    let (version, keys) = latest_keys(&server, &alice);
    assert_eq!(version, 4);
    assert_eq!(keys, ["DB_URL", "ALICE", "DEBUG", "SHARED", "BOB", "BOB2"]);
    assert_eq!(push_answers(&proxy), [409, 201]);
}
