//! The audit log (F1–F4): one row per state change in the same transaction, a failing
//! audit insert undoes the change, the hash chain catches tampering, and rows hold names
//! and hashes but never values or tokens.

use crate::common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::process::Command;

async fn audit_rows(db: &TestDb) -> i64 {
    db.count("SELECT COUNT(*) FROM audit").await
}

async fn last_row(db: &TestDb) -> (String, String) {
    let rows = db
        .rows("SELECT action, outcome FROM audit ORDER BY id DESC LIMIT 1")
        .await;
    (rows[0][0].clone().unwrap(), rows[0][1].clone().unwrap())
}

on_each_backend! {
/// F1: each state-changing request (and each ciphertext read) adds exactly one audit row;
/// plain reads and refused-before-authorisation requests add none.
async fn every_state_change_writes_exactly_one_audit_row(backend: Backend) {
    let server = TestServer::on(backend).await;
    let owner = token("owner", &[]);
    let dev = token("developer", &["proj"]);
    let readonly = token("readonly", &["proj"]);
    let db = &server.store;

    let mut expected = audit_rows(db).await;
    let mut step = async |rows: i64, action: &str, outcome: &str| {
        expected += rows;
        assert_eq!(audit_rows(db).await, expected, "{action} {outcome}");
        if rows == 1 {
            let (a, o) = last_row(db).await;
            assert_eq!((a.as_str(), o.as_str()), (action, outcome));
        }
    };

    assert_eq!(server.push(&dev, "proj", "main", &["A"], None).await.0, 201);
    step(1, "push", "ok").await;
    assert_eq!(server.push(&dev, "proj", "main", &["A"], None).await.0, 409);
    step(1, "push", "conflict").await;
    assert_eq!(
        server
            .push(&readonly, "proj", "main", &["A"], Some(1))
            .await
            .0,
        403
    );
    step(1, "push", "forbidden").await;
    let (status, minted) = send(server.post(
        "/tokens",
        &owner,
        &json!({"email": "n@example.com", "role": "readonly", "project_ids": ["proj"]}),
    ))
    .await;
    assert_eq!(status, 201);
    step(1, "token.mint", "ok").await;
    let jti = minted["jti"].as_str().unwrap().to_owned();
    let delete = |jti: &str| {
        server
            .client
            .delete(format!("{}/tokens/{jti}", server.url))
            .bearer_auth(&owner)
    };
    assert_eq!(send(delete(&jti)).await.0, 204);
    step(1, "token.revoke", "ok").await;
    assert_eq!(send(delete("nope")).await.0, 404);
    step(1, "token.revoke", "not_found").await;
    assert_eq!(send(server.get("/env/proj/main", &dev)).await.0, 200);
    step(1, "pull", "ok").await;

    // Reads of names only, and requests refused before any role check, write nothing.
    for path in [
        "/env/proj/main/keys",
        "/env/proj/main/versions",
        "/env/proj",
        "/whoami",
    ] {
        assert_eq!(send(server.get(path, &dev)).await.0, 200, "{path}");
    }
    assert_eq!(send(server.get("/tokens", &owner)).await.0, 200);
    assert_eq!(send(server.get("/audit/proj", &owner)).await.0, 200);
    assert_eq!(send(server.get("/env/proj", "garbage")).await.0, 401);
    let bad = server.post(
        "/env/proj/main",
        &dev,
        &json!({"ciphertext": "x", "keys": [], "base_version": 1}),
    );
    assert_eq!(send(bad).await.0, 400);
    step(0, "", "").await;
}
}

on_each_backend! {
/// F2: when the audit insert fails, the request is a 500 and nothing it did is kept. The
/// failure is a trigger on the database file, as a full disk or a corrupt index would be.
async fn a_failing_audit_insert_is_a_500_and_undoes_the_change(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);
    assert_eq!(server.push(&dev, "proj", "main", &["A"], None).await.0, 201);
    server.store.fail_audit_inserts(true).await;
    let rows = audit_rows(&server.store).await;

    let answer = server.push(&dev, "proj", "main", &["B"], Some(1)).await;
    assert_error(&answer, 500, "internal");
    let message = answer.1["message"].as_str().unwrap();
    assert!(
        !message.contains("failpoint"),
        "internals leaked: {message}"
    );
    // The version row written before the audit row was rolled back with it.
    let versions = server.store.count("SELECT COUNT(*) FROM versions").await;
    assert_eq!(versions, 1);
    let (_, keys) = send(server.get("/env/proj/main/keys", &dev)).await;
    assert_eq!(keys, json!({"version": 1, "keys": ["A"]}));
    // A ciphertext is never served without its audit row.
    let answer = send(server.get("/env/proj/main", &dev)).await;
    assert_error(&answer, 500, "internal");
    assert!(answer.1.get("ciphertext").is_none());
    assert_eq!(audit_rows(&server.store).await, rows);

    // Once the fault is gone the same push goes through: nothing was half-applied.
    server.store.fail_audit_inserts(false).await;
    assert_eq!(
        server.push(&dev, "proj", "main", &["B"], Some(1)).await,
        (201, json!({"version": 2}))
    );
    let check = server.store.verify().await;
    assert!(
        matches!(check, envsync_server::store::chain::Verdict::Intact { .. }),
        "{check}"
    );
}
}

on_each_backend! {
/// F4: push rows name keys and carry the ciphertext's SHA-256; token rows carry the jti.
/// No row holds a ciphertext, a value, a token or a token's signature.
async fn audit_rows_hold_names_and_hashes_never_values_or_tokens(backend: Backend) {
    let server = TestServer::on(backend).await;
    let owner = token("owner", &[]);
    let dev = token("developer", &["proj"]);
    assert_eq!(
        server
            .push(&dev, "proj", "main", &["API_KEY", "DEBUG"], None)
            .await
            .0,
        201
    );
    let (status, minted) = send(server.post(
        "/tokens",
        &owner,
        &json!({"email": "n@example.com", "role": "developer", "project_ids": ["proj"]}),
    ))
    .await;
    assert_eq!(status, 201);
    let new_token = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .push(&new_token, "proj", "main", &["API_KEY"], Some(1))
            .await
            .0,
        201
    );
    assert_eq!(send(server.get("/env/proj/main", &new_token)).await.0, 200);
    assert_eq!(
        server.push(&dev, "other", "main", &["X"], None).await.0,
        403
    );

    let rows: Vec<(String, Option<String>, String)> = server
        .store
        .rows(
            "SELECT action, detail, actor || ' ' || action || ' ' || COALESCE(project, '') || ' '
                 || COALESCE(branch, '') || ' ' || outcome || ' ' || COALESCE(detail, '')
             FROM audit ORDER BY id",
        )
        .await
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone(), r[2].clone().unwrap()))
        .collect();
    let digest: String = Sha256::digest(ciphertext().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let pushes: Vec<Value> = rows
        .iter()
        .filter(|(action, detail, _)| action == "push" && detail.is_some())
        .map(|(_, detail, _)| serde_json::from_str(detail.as_deref().unwrap()).unwrap())
        .filter(|d: &Value| d.get("ciphertext_sha256").is_some())
        .collect();
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[0]["added"], json!(["API_KEY", "DEBUG"]));
    assert_eq!(pushes[1]["removed"], json!(["DEBUG"]));
    assert!(pushes.iter().all(|d| d["ciphertext_sha256"] == digest));
    assert!(
        rows.iter()
            .any(|(a, _, text)| a == "token.mint" && text.contains(minted["jti"].as_str().unwrap()))
    );

    let blob = ciphertext();
    for (_, _, text) in &rows {
        for token in [&owner, &dev, &new_token] {
            assert!(!text.contains(token.as_str()), "a token: {text}");
            assert!(
                !text.contains(token.split('.').nth(2).unwrap()),
                "a signature: {text}"
            );
        }
        for line in blob.lines().skip(1).filter(|l| l.len() > 16) {
            assert!(!text.contains(line), "ciphertext: {text}");
        }
        assert!(!text.contains("sentinel-value"), "a value: {text}");
    }
}
}

/// Runs `envsync-server audit verify --db DB [extra…]`: (exit code, stdout, stderr).
fn verify(db: impl AsRef<std::ffi::OsStr>, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_envsync-server"))
        .args(["audit", "verify", "--db"])
        .arg(db)
        .args(extra)
        .env_remove("ENVSYNC_DB")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// What an attacker with the database runs before editing it: the append-only triggers
/// (and on PostgreSQL, the positive-id check the row shuffles below pass through) are only
/// in the way.
fn out_of_the_way(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "DROP TRIGGER audit_append_only_update;
             DROP TRIGGER audit_append_only_delete;
             DROP TRIGGER IF EXISTS versions_append_only_update;"
        }
        Backend::Postgres => {
            "ALTER TABLE audit DISABLE TRIGGER audit_append_only;
             ALTER TABLE audit DROP CONSTRAINT audit_id_check;
             ALTER TABLE versions DISABLE TRIGGER versions_append_only;"
        }
    }
}

/// A copy of `db` named `name` with `tamper` applied, as an attacker with the database
/// would (see [`out_of_the_way`]).
async fn tampered(db: &TestDb, name: &str, tamper: &str) -> TestDb {
    let copy = db.copy(name).await;
    let sql = format!("{} {tamper}", out_of_the_way(db.backend));
    copy.exec(&sql)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    copy
}

/// A new database of `backend` on which the binary mints no first owner token, whose
/// audit row would take an id the tests name rows by: on PostgreSQL (where a server with a
/// shared secret mints one on a new database) the first start is claimed beforehand.
async fn database_without_a_first_token(backend: Backend) -> TestDb {
    let db = TestDb::new(backend).await;
    if backend == Backend::Postgres {
        let store = db.database.open().await.unwrap();
        assert!(store.claim_first_start().await.unwrap());
    }
    db
}

on_each_backend! {
/// F3: `audit verify` passes an untouched log and names the first bad row after an edit,
/// a deletion, a swap of two rows, an inserted row, and (with an anchor) a truncation.
async fn audit_verify_finds_the_first_tampered_row(backend: Backend) {
    let store = database_without_a_first_token(backend).await;
    let db = store.arg.clone();
    let env = [("ENVSYNC_JWT_SECRET", SECRET)];
    let dev = token("developer", &["proj"]);
    let readonly = token("readonly", &["proj"]);
    let client = reqwest::Client::new();
    let mut server = Binary::start(&db, &env);
    let push = |base: Option<u64>, token: &str| {
        client
            .post(format!("{}/env/proj/main", server.url))
            .bearer_auth(token)
            .json(&json!({"ciphertext": ciphertext(), "keys": ["A"], "base_version": base}))
    };
    // Ten rows: pushes, a conflict, pulls, a refusal.
    assert_eq!(send(push(None, &dev)).await.0, 201);
    for v in 1..=4 {
        assert_eq!(send(push(Some(v), &dev)).await.0, 201);
    }
    assert_eq!(send(push(Some(1), &dev)).await.0, 409);
    assert_eq!(send(push(Some(5), &readonly)).await.0, 403);
    for _ in 0..3 {
        let pull = client
            .get(format!("{}/env/proj/main", server.url))
            .bearer_auth(&dev);
        assert_eq!(send(pull).await.0, 200);
    }
    // The cases below name rows by id: on PostgreSQL too they are 1 to 10.
    assert_eq!(store.count("SELECT MAX(id) FROM audit").await, 10);

    // While the server runs (a read-only walk of one snapshot).
    let (code, out, err) = verify(&db, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("ok (10 rows)"));
    let head = lines
        .next()
        .unwrap()
        .strip_prefix("head ")
        .unwrap()
        .to_owned();
    assert!(head.starts_with("10:") && head.len() == 3 + 64, "{head}");
    server.kill();
    assert_eq!(verify(&db, &["--anchor", &head]).0, 0);

    let no_hash_check = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_needs_hash;",
        Backend::Postgres => {
            "ALTER TABLE audit DROP CONSTRAINT audit_needs_hash, ALTER COLUMN hash DROP NOT NULL;"
        }
    };
    let cases = [
        ("edited", "UPDATE audit SET actor = 'mallory@example.com' WHERE id = 5".to_owned(), 5, "does not match"),
        ("edited_detail", "UPDATE audit SET detail = NULL WHERE id = 2".to_owned(), 2, "does not match"),
        (
            "deleted",
            "DELETE FROM audit WHERE id = 4".to_owned(),
            5,
            "position 4 of the chain of project 'proj' is missing",
        ),
        (
            "deleted_two",
            "DELETE FROM audit WHERE id IN (1, 2)".to_owned(),
            3,
            "positions 1 to 2 of the chain of project 'proj' are missing",
        ),
        (
            "swapped",
            "CREATE TEMP TABLE a AS SELECT * FROM audit WHERE id IN (3, 6);
             UPDATE audit SET (at, actor, action, project, branch, version, outcome, detail, hash) =
                 (SELECT at, actor, action, project, branch, version, outcome, detail, hash
                  FROM a WHERE a.id = 9 - audit.id)
             WHERE id IN (3, 6);".to_owned(),
            3,
            "does not match",
        ),
        (
            "inserted_in_the_middle",
            "UPDATE audit SET id = -id WHERE id >= 7;
             UPDATE audit SET id = 1 - id WHERE id < 0;
             INSERT INTO audit (id, at, actor, action, outcome, hash)
                 SELECT 7, at, 'mallory@example.com', 'pull', 'ok', hash FROM audit WHERE id = 6;".to_owned(),
            7,
            "does not match",
        ),
        (
            "appended_without_a_hash",
            format!(
                "{no_hash_check}
                 INSERT INTO audit (id, at, actor, action, outcome) VALUES (11, 't', 'm', 'pull', 'ok');"
            ),
            11,
            "no chain hash",
        ),
    ];
    for (name, tamper, row, what) in cases {
        let copy = tampered(&store, name, &tamper).await;
        let (code, out, err) = verify(&copy.arg, &[]);
        assert_eq!(code, 1, "{name}: {out}{err}");
        let expected = format!("bad row {row}: ");
        assert!(out.starts_with(&expected), "{name}: {out}");
        assert!(out.contains(what), "{name}: {out}");
        assert_eq!(out.lines().count(), 1, "{name}: {out}");
    }

    // Deleting the newest row leaves a shorter chain that is intact on its own: only a
    // head kept elsewhere shows the truncation.
    let copy = tampered(&store, "truncated", "DELETE FROM audit WHERE id = 10").await;
    assert_eq!(verify(&copy.arg, &[]).1.lines().next(), Some("ok (9 rows)"));
    let (code, out, _) = verify(&copy.arg, &["--anchor", &head]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("bad row 10: "), "{out}");

    // What cannot be checked is exit 2 with one error line, never a verdict.
    let missing = store.path.with_file_name("missing.db");
    let mut unverifiable = vec![(vec!["--anchor", "10:zz"], db.clone())];
    if backend == Backend::Sqlite {
        unverifiable.push((vec![], missing.display().to_string()));
    }
    for (args, db) in unverifiable {
        let (code, out, err) = verify(&db, &args);
        assert_eq!(code, 2, "{out}{err}");
        assert!(out.is_empty() && err.starts_with("error: "), "{err}");
        assert!(!missing.exists(), "verify created a file");
    }

    // A restarted server appends to the same chain.
    let server = Binary::start(&db, &env);
    let pull = client
        .get(format!("{}/env/proj/main", server.url))
        .bearer_auth(&dev);
    assert_eq!(send(pull).await.0, 200);
    let (code, out, _) = verify(&db, &["--anchor", &head]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok (11 rows)"), "{out}");
}
}

on_each_backend! {
/// Push and pull rows name the token that acted (its `jti`), not only its email.
async fn push_and_pull_rows_name_the_token_that_acted(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);
    let reader = token("readonly", &["proj"]);
    assert_eq!(server.push(&dev, "proj", "main", &["A"], None).await.0, 201);
    assert_eq!(server.push(&dev, "proj", "main", &["A"], None).await.0, 409);
    assert_eq!(send(server.get("/env/proj/main", &reader)).await.0, 200);
    assert_eq!(send(server.get("/env/proj/other", &reader)).await.0, 404);
    let rows: Vec<(String, String, String)> = server
        .store
        .rows("SELECT action, outcome, detail FROM audit ORDER BY id")
        .await
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].clone().unwrap(),
                r[2].clone().unwrap(),
            )
        })
        .collect();
    let seen: Vec<(&str, &str, String)> = rows
        .iter()
        .map(|(action, outcome, detail)| {
            let detail: Value = serde_json::from_str(detail).unwrap();
            (
                action.as_str(),
                outcome.as_str(),
                detail["jti"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("push", "ok", "jti-developer-proj".to_owned()),
            ("push", "conflict", "jti-developer-proj".to_owned()),
            ("pull", "ok", "jti-readonly-proj".to_owned()),
            ("pull", "not_found", "jti-readonly-proj".to_owned()),
        ]
    );
}
}

on_each_backend! {
/// A version written into the database behind the server's back (or a ciphertext
/// changed) has no accepted-push row recording it, and `audit verify` says so.
async fn audit_verify_reports_a_version_slipped_into_the_database(backend: Backend) {
    let store = database_without_a_first_token(backend).await;
    let env = [("ENVSYNC_JWT_SECRET", SECRET)];
    let dev = token("developer", &["proj"]);
    let client = reqwest::Client::new();
    let server = Binary::start(&store.arg, &env);
    for base in [None, Some(1)] {
        let pushed = send(
            client
                .post(format!("{}/env/proj/main", server.url))
                .bearer_auth(&dev)
                .json(&json!({"ciphertext": ciphertext(), "keys": ["A"], "base_version": base})),
        )
        .await;
        assert_eq!(pushed.0, 201, "{}", pushed.1);
    }
    // Stopped, so that PostgreSQL can copy the database.
    drop(server);
    let (code, out, _) = verify(&store.arg, &[]);
    assert_eq!(
        (code, out.lines().next()),
        (0, Some("ok (2 rows)")),
        "{out}"
    );

    // A changed ciphertext, on a copy.
    let changed = tampered(
        &store,
        "changed",
        "UPDATE versions SET ciphertext = ciphertext || ' ' WHERE version = 1;",
    )
    .await;
    let (code, out, _) = verify(&changed.arg, &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.trim_end(),
        "bad version: project 'proj' branch 'main' version 1 is not the ciphertext its \
         accepted-push audit row records (changed behind the server's back)"
    );

    // A version inserted while the server runs: the chain is intact, the version is not
    // accounted for, and the server serves it (clients check their own bindings).
    let _server = Binary::start(&store.arg, &env);
    store
        .exec(&format!(
            "INSERT INTO versions (project, branch, version, ciphertext, keys, key_count,
                 pushed_by, pushed_at)
             VALUES ('proj', 'main', 3, '{}', '[\"A\"]', 1, 'developer@example.com',
                 '2026-01-01T00:00:00.000Z')",
            ciphertext()
        ))
        .await
        .unwrap();
    let (code, out, err) = verify(&store.arg, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        out.trim_end(),
        "bad version: project 'proj' branch 'main' version 3 has no accepted-push audit row \
         (written behind the server's back)"
    );
}
}

/// The server logs the chain's head at start and at its interval, in the form
/// `audit verify --anchor` takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_logs_the_chain_head_at_start_and_at_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let server = Binary::start(
        &db,
        &[
            ("ENVSYNC_JWT_SECRET", SECRET),
            ("ENVSYNC_AUDIT_HEAD_INTERVAL", "1s"),
        ],
    );
    let client = reqwest::Client::new();
    let pushed = send(
        client
            .post(format!("{}/env/proj/main", server.url))
            .bearer_auth(token("developer", &["proj"]))
            .json(&json!({"ciphertext": ciphertext(), "keys": ["A"], "base_version": null})),
    )
    .await;
    assert_eq!(pushed.0, 201);
    // The first line is logged at start, before any row; a later one names row 1.
    let started = std::time::Instant::now();
    let head = loop {
        let log = server.stderr();
        let heads: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("audit chain head"))
            .filter_map(|l| l.split("head=").nth(1))
            .map(|rest| rest.split_whitespace().next().unwrap_or(""))
            .collect();
        if let Some(head) = heads.iter().find(|h| h.starts_with("1:")) {
            assert_eq!(heads[0], "\"none\"", "{log}");
            break (*head).to_owned();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no head logged for row 1:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let (code, out, err) = verify(&db, &["--anchor", &head]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("head {head}")), "{out}");
}

on_each_backend! {
/// A version's fingerprints are covered by its accepted-push row like its
/// ciphertext: changed, removed, or given to a version pushed without, behind the server's
/// back (by a connection that gets the append-only trigger out of the way first), they are
/// reported by the walk `audit verify` runs; put back, the log verifies again.
async fn audit_verify_reports_fingerprints_changed_behind_the_server_s_back(backend: Backend) {
    use envsync_server::store::chain::{Verdict, VersionProblem};
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);
    let prints = json!({"": fp(0), "A": fp(1), "B": fp(2)});
    let pushed = server
        .push_with(&dev, "proj", "main", &["A", "B"], None, &prints)
        .await;
    assert_eq!(pushed.0, 201, "{}", pushed.1);
    assert_eq!(
        server.push(&dev, "proj", "main", &["A", "B"], Some(1)).await.0,
        201
    );
    let db = &server.store;
    assert!(matches!(db.verify().await, Verdict::Intact { rows: 2, .. }));
    let original = db
        .rows("SELECT fingerprints FROM versions WHERE version = 1")
        .await[0][0]
        .clone()
        .unwrap();
    let out_of_the_way = match backend {
        Backend::Sqlite => "DROP TRIGGER IF EXISTS versions_append_only_update;",
        Backend::Postgres => "ALTER TABLE versions DISABLE TRIGGER versions_append_only;",
    };
    let tamper = |sql: String| async move {
        db.exec(&format!("{out_of_the_way} {sql}")).await.unwrap();
        db.verify().await
    };
    let forged = original.replace(&fp(2), &fp(1));
    for (sql, version) in [
        // B's value made to look like A's.
        (format!("UPDATE versions SET fingerprints = '{forged}' WHERE version = 1"), 1),
        (format!("UPDATE versions SET fingerprints = '{original}' WHERE version = 1"), 0),
        // Removed: clients would compare nothing.
        ("UPDATE versions SET fingerprints = NULL WHERE version = 1".to_owned(), 1),
        (format!("UPDATE versions SET fingerprints = '{original}' WHERE version = 1"), 0),
        // Given to the version pushed without: clients would see "unchanged" values.
        (format!("UPDATE versions SET fingerprints = '{original}' WHERE version = 2"), 2),
        ("UPDATE versions SET fingerprints = NULL WHERE version = 2".to_owned(), 0),
    ] {
        let verdict = tamper(sql.clone()).await;
        if version == 0 {
            assert!(matches!(verdict, Verdict::Intact { rows: 2, .. }), "{sql}: {verdict:?}");
            continue;
        }
        let Verdict::Unaccounted { version: bad, problem: VersionProblem::OtherFingerprints, .. } =
            &verdict
        else {
            panic!("{sql}: {verdict:?}")
        };
        assert_eq!(*bad, version, "{sql}");
        assert_eq!(
            verdict.to_string(),
            format!(
                "bad version: project 'proj' branch 'main' version {version} does not have the \
                 value fingerprints its accepted-push audit row records (changed behind the \
                 server's back)"
            )
        );
    }
}
}

/// Every event of an audit route, following its pages from `limit=500` on; asserts each
/// answer stays within a few MB. Returns the ids, newest first, and how many pages.
async fn audit_pages(server: &TestServer, route: &str, token: &str) -> (Vec<u64>, usize) {
    let (mut ids, mut pages) = (Vec::new(), 0);
    let join = if route.contains('?') { '&' } else { '?' };
    let mut path = format!("{route}{join}limit=500");
    loop {
        let response = server.get(&path, token).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.unwrap();
        assert!(
            text.len() < 6 << 20,
            "{path}: a page of {} bytes",
            text.len()
        );
        let page: Value = serde_json::from_str(&text).unwrap();
        ids.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_u64().unwrap()),
        );
        pages += 1;
        match page["next_before"].as_u64() {
            Some(next) => path = format!("{route}{join}limit=500&before={next}"),
            None => return (ids, pages),
        }
    }
}

on_each_backend! {
/// A page of audit events stops at its byte budget, as a page of versions does: a push's
/// event names the keys it added and removed, so forty pushes that swap 1000 names of 128
/// bytes (within the default quotas) make a log of about 10 MB, which `limit=500` would
/// answer at once. Paged, every event comes back, on every route and through a filter.
async fn a_page_of_audit_events_stops_at_its_byte_budget(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);
    let owner = token("owner", &[]);
    let names = |set: char| -> Vec<String> {
        (0..1000).map(|i| format!("{set}{i:0>127}")).collect()
    };
    let (a, b) = (names('A'), names('B'));
    let pushes = 40;
    for n in 0..pushes {
        let keys: Vec<&str> = if n % 2 == 0 { &a } else { &b }.iter().map(String::as_str).collect();
        let base = (n > 0).then_some(n);
        assert_eq!(server.push(&dev, "proj", "main", &keys, base).await.0, 201);
    }
    assert_eq!(send(server.get("/env/proj/main", &dev)).await.0, 200);
    for (route, rows) in [
        ("/audit/proj", "SELECT COUNT(*) FROM audit WHERE project = 'proj'"),
        ("/audit", "SELECT COUNT(*) FROM audit"),
        ("/audit/proj?action=push", "SELECT COUNT(*) FROM audit WHERE action = 'push'"),
    ] {
        // The count before the read: the read itself is audited.
        let rows = server.store.count(rows).await;
        let (ids, pages) = audit_pages(&server, route, &owner).await;
        assert!(pages >= 3, "{route}: {pages} pages");
        assert_eq!(ids.len() as i64, rows, "{route}: every event, once");
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "{route}: newest first, no repeats");
    }
}
}
