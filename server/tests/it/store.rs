//! The store contract, one suite run against every backend through `Arc<dyn Store>`:
//! compare-and-swap, audit rows in the same transaction, append-only tables enforced by
//! the database, tokens and revocations, pages, the chain's verdict, and the export and
//! import that `copy` is made of.

use crate::common::*;
use envsync_common::api::{Role, TokenInfo};
use envsync_server::store::chain::Verdict;
use envsync_server::store::copy::copy;
use envsync_server::store::{
    Action, AuditQuery, BranchesQuery, Event, NewPush, Outcome, PullRequest, Store, StoreError,
    VersionsQuery,
};
use sha2::Digest;
use std::sync::Arc;

fn push(branch: &str, base: Option<u64>, keys: &[&str]) -> NewPush {
    NewPush {
        actor: "t@example.com".into(),
        jti: "jti-t".into(),
        project: "p".into(),
        branch: branch.into(),
        ciphertext: ciphertext(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        base_version: base,
        fingerprints: None,
    }
}

/// [`push`] with a fingerprint for each key (`n` tells the values apart).
fn printed(branch: &str, base: Option<u64>, keys: &[&str], n: u32) -> NewPush {
    NewPush {
        fingerprints: Some(keys.iter().map(|k| (k.to_string(), fp(n))).collect()),
        ..push(branch, base, keys)
    }
}

fn pull(branch: &str, version: Option<u64>) -> PullRequest {
    PullRequest {
        actor: "r@example.com".into(),
        jti: "jti-r".into(),
        project: "p".into(),
        branch: branch.into(),
        version,
    }
}

fn token_info(jti: &str) -> TokenInfo {
    TokenInfo {
        jti: jti.into(),
        email: format!("{jti}@example.com"),
        role: Role::Developer,
        project_ids: vec!["p".into()],
        issued_at: "2026-01-01T00:00:00Z".into(),
        expires_at: "2026-02-01T00:00:00Z".into(),
        revoked: false,
    }
}

async fn open(backend: Backend) -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::new(backend).await;
    let store = db.database.open().await.unwrap();
    (db, store)
}

async fn all_events(store: &dyn Store) -> Vec<(String, String)> {
    let page = store
        .audit(AuditQuery {
            project: None,
            limit: 500,
            before: None,
        })
        .await
        .unwrap();
    page.events
        .into_iter()
        .rev()
        .map(|e| (e.action, e.outcome))
        .collect()
}

on_each_backend! {
/// 64 concurrent pushes to 32 branches, two per branch on the same empty base: in
/// whatever batches they land, exactly one of each pair wins, and every attempt is audited.
async fn concurrent_pushes_are_each_compare_and_swapped(backend: Backend) {
    let (_db, store) = open(backend).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.push(push(&format!("b{}", i % 32), None, &["A"])).await })
        })
        .collect();
    let (mut won, mut lost) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(1) => won += 1,
            Err(StoreError::Conflict { current: Some(1) }) => lost += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((won, lost), (32, 32));
    let events = all_events(store.as_ref()).await;
    let count = |outcome: &str| events.iter().filter(|(_, o)| o == outcome).count();
    assert_eq!((count("ok"), count("conflict")), (32, 32));
    assert!(matches!(store.verify(Vec::new()).await.unwrap(), Verdict::Intact { rows: 64, .. }));
}
}

on_each_backend! {
/// Pushes, pulls, keys, versions and branches read back what was written, with the audit
/// row of each push and pull, typed actions and outcomes stored by name.
async fn what_is_pushed_is_what_is_read_and_audited(backend: Backend) {
    let (_db, store) = open(backend).await;
    assert_eq!(store.push(push("main", None, &["A", "B"])).await, Ok(1));
    assert_eq!(store.push(push("main", Some(1), &["A"])).await, Ok(2));
    assert_eq!(
        store.push(push("main", Some(1), &["C"])).await,
        Err(StoreError::Conflict { current: Some(2) })
    );
    assert_eq!(store.push(push("feature/ü", None, &["X"])).await, Ok(1));
    let keys = store.keys("p".into(), "main".into()).await.unwrap();
    assert_eq!((keys.version, keys.keys), (2, vec!["A".to_owned()]));
    let v1 = store.pull(pull("main", Some(1))).await.unwrap();
    assert_eq!((v1.version, v1.keys.len()), (1, 2));
    assert_eq!(v1.ciphertext, ciphertext());
    assert_eq!(
        store.pull(pull("main", Some(9))).await.unwrap_err(),
        StoreError::NotFound
    );
    let page = store
        .versions(VersionsQuery {
            project: "p".into(),
            branch: "main".into(),
            limit: 1,
            before: None,
        })
        .await
        .unwrap();
    assert_eq!(page.versions[0].version, 2);
    assert_eq!(page.next_before, Some(2));
    let branches = store
        .branches(BranchesQuery {
            project: "p".into(),
            limit: 10,
            after: None,
        })
        .await
        .unwrap();
    let names: Vec<&str> = branches.branches.iter().map(|b| b.branch.as_str()).collect();
    assert_eq!(names, ["feature/ü", "main"]);
    store
        .record(Event {
            project: Some("p".into()),
            ..Event::new("x@example.com", Action::Keys, Outcome::Forbidden)
        })
        .await
        .unwrap();
    assert_eq!(
        all_events(store.as_ref()).await,
        [
            ("push", "ok"),
            ("push", "ok"),
            ("push", "conflict"),
            ("push", "ok"),
            ("pull", "ok"),
            ("pull", "not_found"),
            ("keys", "forbidden"),
        ]
        .map(|(a, o)| (a.to_owned(), o.to_owned()))
    );
    // Pages of the audit log, newest first.
    let first = store
        .audit(AuditQuery { project: Some("p"), limit: 3, before: None })
        .await
        .unwrap();
    assert_eq!(first.events.iter().map(|e| e.id).collect::<Vec<_>>(), [7, 6, 5]);
    assert_eq!(first.next_before, Some(5));
    assert!(matches!(store.verify(Vec::new()).await.unwrap(), Verdict::Intact { rows: 7, .. }));
}
}

on_each_backend! {
/// Fingerprints are stored with their version and read back by pull, keys and
/// versions; a version pushed without has none; the push's audit row records their
/// SHA-256, never them; `NewPush`'s `Debug` shows a count.
async fn fingerprints_are_stored_with_their_version_and_read_back(backend: Backend) {
    let (db, store) = open(backend).await;
    let with = printed("main", None, &["A", "B"], 7);
    let shown = format!("{with:?}");
    assert!(shown.contains("fingerprints: Some([2])") && !shown.contains(&fp(7)), "{shown}");
    assert_eq!(store.push(with.clone()).await, Ok(1));
    assert_eq!(store.push(push("main", Some(1), &["A"])).await, Ok(2));
    let v1 = store.pull(pull("main", Some(1))).await.unwrap();
    assert_eq!(v1.fingerprints, with.fingerprints);
    assert_eq!(store.pull(pull("main", None)).await.unwrap().fingerprints, None);
    assert_eq!(store.keys("p".into(), "main".into()).await.unwrap().fingerprints, None);
    let v3 = printed("main", Some(2), &["C"], 8);
    assert_eq!(store.push(v3.clone()).await, Ok(3));
    assert_eq!(
        store.keys("p".into(), "main".into()).await.unwrap().fingerprints,
        v3.fingerprints
    );
    let page = store
        .versions(VersionsQuery { project: "p".into(), branch: "main".into(), limit: 10, before: None })
        .await
        .unwrap();
    let prints: Vec<_> = page.versions.into_iter().map(|v| v.fingerprints).collect();
    assert_eq!(prints, [v3.fingerprints, None, with.fingerprints]);
    // The stored text is the canonical JSON; the audit row holds its hash only.
    let stored = db.rows("SELECT fingerprints FROM versions ORDER BY id").await;
    let text = format!(r#"{{"A":"{0}","B":"{0}"}}"#, fp(7));
    assert_eq!(stored[0][0].as_deref(), Some(text.as_str()));
    assert_eq!(stored[1][0], None);
    let details: Vec<serde_json::Value> = db
        .rows("SELECT detail FROM audit WHERE action = 'push' ORDER BY id")
        .await
        .into_iter()
        .map(|r| serde_json::from_str(r[0].as_deref().unwrap()).unwrap())
        .collect();
    let digest: String = sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(details[0]["fingerprints_sha256"], digest.as_str());
    assert!(details[1].get("fingerprints_sha256").is_none(), "{}", details[1]);
    for d in &details {
        assert!(!d.to_string().contains(&fp(7)) && !d.to_string().contains(&fp(8)), "{d}");
    }
    assert!(matches!(store.verify(Vec::new()).await.unwrap(), Verdict::Intact { rows: 5, .. }));
}
}

on_each_backend! {
/// A database from before the fingerprints column (as the previous schema left
/// it, with a version in it) is verified as it is, then opens, migrates and serves: its
/// versions have no fingerprints, new ones do, and the chain accounts for all of them.
async fn a_database_from_before_fingerprints_opens_and_serves(backend: Backend) {
    let (db, store) = open(backend).await;
    store.push(push("main", None, &["A"])).await.unwrap();
    drop(store);
    let back_then = match backend {
        Backend::Sqlite => "ALTER TABLE versions DROP COLUMN fingerprints; PRAGMA user_version = 3;",
        Backend::Postgres => {
            "ALTER TABLE versions DROP COLUMN fingerprints;
             DELETE FROM envsync_schema WHERE version = 2;"
        }
    };
    db.exec(back_then).await.unwrap();
    assert!(matches!(db.verify().await, Verdict::Intact { rows: 1, .. }));
    let store = db.database.open().await.unwrap();
    let keys = store.keys("p".into(), "main".into()).await.unwrap();
    assert_eq!((keys.version, keys.fingerprints), (1, None));
    assert_eq!(store.pull(pull("main", None)).await.unwrap().fingerprints, None);
    let next = printed("main", Some(1), &["A"], 1);
    assert_eq!(store.push(next.clone()).await, Ok(2));
    assert_eq!(
        store.keys("p".into(), "main".into()).await.unwrap().fingerprints,
        next.fingerprints
    );
    assert!(matches!(store.verify(Vec::new()).await.unwrap(), Verdict::Intact { rows: 3, .. }));
}
}

on_each_backend! {
/// Each project has its own chain, and events of no project the server's: three heads;
/// an anchor on each catches the newest row of its chain cut off.
async fn each_project_has_its_own_chain(backend: Backend) {
    let (db, store) = open(backend).await;
    let mut other = push("main", None, &["A"]);
    other.project = "q".into();
    store.push(push("main", None, &["A"])).await.unwrap();
    store.push(other.clone()).await.unwrap();
    store.add_token(token_info("j1"), "admin".into()).await.unwrap();
    store.push(push("main", Some(1), &["B"])).await.unwrap();
    let Verdict::Intact { rows: 4, heads } = store.verify(Vec::new()).await.unwrap() else {
        panic!("not intact")
    };
    assert_eq!(heads.iter().map(|(id, _)| *id).collect::<Vec<_>>().len(), 3);
    assert_eq!(store.audit_heads().await.unwrap(), heads);
    let positions = db
        .rows("SELECT project, seq FROM audit ORDER BY id")
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone().unwrap()))
        .collect::<Vec<_>>();
    assert_eq!(
        positions,
        [
            (Some("p".to_owned()), "1".to_owned()),
            (Some("q".to_owned()), "1".to_owned()),
            (None, "1".to_owned()),
            (Some("p".to_owned()), "2".to_owned()),
        ]
    );
    assert!(matches!(store.verify(heads.clone()).await.unwrap(), Verdict::Intact { .. }));
    // Another push to p moves p's head on: the old head is still a row of the chain.
    store.push(push("main", Some(2), &["C"])).await.unwrap();
    assert!(matches!(store.verify(heads).await.unwrap(), Verdict::Intact { rows: 5, .. }));
}
}

on_each_backend! {
/// The projects holding a version, in name order, paged by `after` (the dashboard's
/// administrator list): a project whose only event is a refused push is not one.
async fn projects_are_listed_in_name_order_and_paged(backend: Backend) {
    let (_db, store) = open(backend).await;
    assert!(store.projects(None, 10).await.unwrap().is_empty());
    for project in ["b", "a", "c", "a"] {
        let mut p = push("main", None, &["A"]);
        p.project = project.into();
        let _ = store.push(p).await; // the second "a" is a conflict
    }
    let mut p = push("other", None, &["A"]);
    p.project = "b".into();
    store.push(p).await.unwrap();
    assert_eq!(store.projects(None, 10).await.unwrap(), ["a", "b", "c"]);
    assert_eq!(store.projects(None, 2).await.unwrap(), ["a", "b"]);
    assert_eq!(store.projects(Some("b".into()), 2).await.unwrap(), ["c"]);
    assert!(store.projects(Some("c".into()), 2).await.unwrap().is_empty());
}
}

on_each_backend! {
/// Versions and audit rows are append-only in the database itself: an UPDATE or DELETE
/// by another connection is refused, whoever sends it.
async fn versions_and_audit_rows_are_append_only_in_the_database(backend: Backend) {
    let (db, store) = open(backend).await;
    store.push(push("main", None, &["A"])).await.unwrap();
    for sql in [
        "UPDATE versions SET ciphertext = 'x'",
        "DELETE FROM versions",
        "UPDATE audit SET actor = 'someone else'",
        "DELETE FROM audit",
    ] {
        let refused = db.exec(sql).await;
        assert!(
            refused.as_ref().is_err_and(|m| m.contains("append-only")),
            "{sql}: {refused:?}"
        );
    }
    if backend == Backend::Postgres {
        for table in ["versions", "audit"] {
            let refused = db.exec(&format!("TRUNCATE {table}")).await;
            assert!(refused.is_err_and(|m| m.contains("append-only")), "{table}");
        }
    }
    assert_eq!(store.keys("p".into(), "main".into()).await.unwrap().version, 1);
    assert!(matches!(store.verify(Vec::new()).await.unwrap(), Verdict::Intact { rows: 1, .. }));
}
}

on_each_backend! {
/// Tokens: recorded (never the token), listed, revoked once or twice, an unknown one not
/// found, and the revocation list filled from the store.
async fn tokens_are_recorded_and_revoked(backend: Backend) {
    let (_db, store) = open(backend).await;
    assert!(!store.holds_data().await.unwrap());
    store.add_token(token_info("j1"), "admin".into()).await.unwrap();
    store.add_token(token_info("j2"), "admin".into()).await.unwrap();
    assert!(store.holds_data().await.unwrap());
    assert_eq!(store.token("j1".into()).await.unwrap().email, "j1@example.com");
    assert_eq!(store.token("nope".into()).await, Err(StoreError::NotFound));
    store.revoke_token("j1".into(), "admin".into()).await.unwrap();
    store.revoke_token("j1".into(), "admin".into()).await.unwrap();
    assert_eq!(
        store.revoke_token("nope".into(), "admin".into()).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.revoked().await.unwrap(), ["j1"]);
    let listed = store.tokens().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|t| t.jti == "j1" && t.revoked));
    // A shared store tells the other servers; a SQLite one has nobody to tell.
    let (learnt, cursor) = store.revoked_after(0).await.unwrap();
    match backend {
        Backend::Sqlite => assert!(learnt.is_empty() && !store.is_shared()),
        Backend::Postgres => {
            assert_eq!(learnt, ["j1"]);
            assert!(store.is_shared());
            assert_eq!(store.revoked_after(cursor).await.unwrap().0, Vec::<String>::new());
        }
    }
    let events = all_events(store.as_ref()).await;
    assert_eq!(
        events.iter().filter(|(a, _)| a == "token.revoke").count(),
        3
    );
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.jtis, counts.versions, counts.audit), (2, 0, 5));
}
}

/// What `copy` is made of, between the two backends both ways: the chain is the same
/// chain (same head), and the target goes on from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_move_a_store_between_backends_with_the_same_head() {
    let (_a, sqlite) = open(Backend::Sqlite).await;
    let mut base = None;
    for i in 0..30 {
        // Every other version with fingerprints: both kinds travel.
        let key = format!("K{i}");
        let next = if i % 2 == 0 {
            printed("main", base, &[&key], i)
        } else {
            push("main", base, &[&key])
        };
        base = Some(sqlite.push(next).await.unwrap());
        sqlite.pull(pull("main", None)).await.unwrap();
    }
    sqlite
        .add_token(token_info("j1"), "admin".into())
        .await
        .unwrap();
    sqlite
        .revoke_token("j1".into(), "admin".into())
        .await
        .unwrap();
    let head = sqlite.verify(Vec::new()).await.unwrap();
    assert!(matches!(head, Verdict::Intact { rows: 62, .. }));

    let (_b, pg) = open(Backend::Postgres).await;
    let mut reports = 0;
    let copied = copy(sqlite.as_ref(), pg.as_ref(), |_| reports += 1)
        .await
        .unwrap();
    assert_eq!((copied.versions, copied.audit, copied.jtis), (30, 62, 1));
    assert!(reports >= 3);
    assert_eq!(pg.verify(Vec::new()).await.unwrap(), head);
    assert_eq!(pg.revoked().await.unwrap(), ["j1"]);
    // Copying into a store that holds data is refused.
    assert!(copy(sqlite.as_ref(), pg.as_ref(), |_| {}).await.is_err());

    let (_c, back) = open(Backend::Sqlite).await;
    copy(pg.as_ref(), back.as_ref(), |_| {}).await.unwrap();
    assert_eq!(back.verify(Vec::new()).await.unwrap(), head);
    // The versions, fingerprints included, are the same versions byte for byte.
    let exported = |store: Arc<dyn Store>| async move {
        let mut rows = store.export_versions(0, 100).await.unwrap();
        for row in &mut rows {
            row.id = 0;
        }
        rows
    };
    let original = exported(sqlite.clone()).await;
    assert_eq!(
        original.iter().filter(|v| v.fingerprints.is_some()).count(),
        15
    );
    assert_eq!(exported(pg.clone()).await, original);
    assert_eq!(exported(back.clone()).await, original);
    let v1 = pg
        .versions(VersionsQuery {
            project: "p".into(),
            branch: "main".into(),
            limit: 1,
            before: Some(2),
        })
        .await
        .unwrap();
    assert_eq!(
        v1.versions[0].fingerprints,
        printed("main", None, &["K0"], 0).fingerprints
    );
    // Each goes on from the copied chain: the same next push gives the same version.
    assert_eq!(pg.push(push("main", Some(30), &["N"])).await, Ok(31));
    assert_eq!(back.push(push("main", Some(30), &["N"])).await, Ok(31));
    assert!(matches!(
        pg.verify(Vec::new()).await.unwrap(),
        Verdict::Intact { rows: 63, .. }
    ));
    assert!(matches!(
        back.verify(Vec::new()).await.unwrap(),
        Verdict::Intact { rows: 63, .. }
    ));
}
