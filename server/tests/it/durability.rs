//! Server durability (E3, E5): SIGKILL at random points of a push loop loses no
//! acknowledged push and leaves a sound database; a replayed push creates nothing.

use crate::common::*;
use envsync_server::store::chain::Verdict;
use envsync_tests::Rng;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SEED: u64 = 0x00e5_5eed_0000_00e3;
/// Kills per run: fewer on PostgreSQL, where each start also connects and checks the
/// schema (the loop proves the same thing).
fn iterations(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 60,
        Backend::Postgres => 20,
    }
}
/// Pushes one iteration may make (the kill normally comes long before).
const MAX_PUSHES: usize = 500;

/// Pushes one after the other, compare-and-swapped, until the server goes away. Returns
/// the versions acknowledged with a 201 and the base to go on from.
async fn push_until_killed(
    url: String,
    token: String,
    mut base: Option<u64>,
    acked_count: Arc<AtomicUsize>,
) -> (Vec<u64>, Option<u64>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acked = Vec::new();
    for i in 0..MAX_PUSHES {
        let body =
            json!({"ciphertext": ciphertext(), "keys": [format!("K{i}")], "base_version": base});
        let Ok(response) = client
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
        else {
            break;
        };
        let status = response.status().as_u16();
        let Ok(answer) = response.json::<serde_json::Value>().await else {
            break;
        };
        match status {
            201 => {
                let v = answer["version"].as_u64().unwrap();
                acked.push(v);
                base = Some(v);
                acked_count.fetch_add(1, Ordering::SeqCst);
            }
            // The push before the kill was committed but its answer was lost.
            409 => base = answer["current_version"].as_u64(),
            other => panic!("push answered {other}: {answer}"),
        }
    }
    (acked, base)
}

/// What a restart finds: integrity, the stored versions, an intact audit chain.
async fn check_after_crash(db: &TestDb) -> BTreeSet<u64> {
    if db.backend == Backend::Sqlite {
        let check = db.rows("PRAGMA integrity_check").await;
        assert_eq!(check[0][0].as_deref(), Some("ok"));
    }
    let stored: BTreeSet<u64> = db
        .rows("SELECT version FROM versions WHERE project = 'proj' AND branch = 'main'")
        .await
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    if let Some(&max) = stored.last() {
        assert_eq!(stored.len() as u64, max, "gaps in the stored versions");
    }
    let verdict = db.verify().await;
    assert!(matches!(verdict, Verdict::Intact { .. }), "{verdict}");
    stored
}

on_each_backend! {
async fn sigkill_at_random_points_loses_no_acknowledged_push(backend: Backend) {
    let db = TestDb::new(backend).await;
    let iterations = iterations(backend);
    let env = [("ENVSYNC_JWT_SECRET", SECRET)];
    let dev = token("developer", &["proj"]);
    let mut rng = Rng(SEED);
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut base = None;
    let mut stored_count = 0;
    for iteration in 0..iterations {
        let mut server = Binary::start(&db.arg, &env);
        let count = Arc::new(AtomicUsize::new(0));
        let pusher = tokio::spawn(push_until_killed(
            format!("{}/env/proj/main", server.url),
            dev.clone(),
            base,
            count.clone(),
        ));
        // The kill point: after 0–7 acknowledged pushes, then 0–3 ms into whatever the
        // server is doing (parsing, the writer's batch, the fsync, the answer).
        // Modulo, as this loop has always drawn them: the same seed, the same kill points.
        let after = (rng.next_u64() % 8) as usize;
        let delay = Duration::from_micros(rng.next_u64() % 3000);
        let waited = Instant::now();
        while count.load(Ordering::SeqCst) < after {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "iteration {iteration}: the server stopped acknowledging pushes"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(delay).await;
        server.kill();
        let (got, next_base) = pusher.await.unwrap();
        assert!(got.len() < MAX_PUSHES, "the push loop outlived the server");
        acked.extend(got);
        base = next_base;

        let stored = check_after_crash(&db).await;
        let lost: Vec<&u64> = acked.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "iteration {iteration} (seed {SEED:#x}): acknowledged pushes lost: {lost:?}"
        );
        stored_count = stored.len();
    }
    assert!(
        acked.len() >= iterations,
        "only {} pushes acknowledged",
        acked.len()
    );
    eprintln!(
        "sigkill ({backend:?}): {iterations} kills, {} acknowledged pushes all present, {} more committed without their answer",
        acked.len(),
        stored_count - acked.len()
    );
}
}

/// E5: the exact bytes of an accepted push, sent again, are a 409 and store nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_push_is_a_conflict_and_creates_no_version() {
    let server = TestServer::start().await;
    let dev = token("developer", &["proj"]);
    let capture = |base: Option<u64>| {
        let body =
            json!({"ciphertext": ciphertext(), "keys": ["A"], "base_version": base}).to_string();
        format!(
            "POST /env/proj/main HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {dev}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let first = capture(None);
    let second = capture(Some(1));
    assert_eq!(
        server.raw(first.clone()).await,
        (201, r#"{"version":1}"#.into())
    );
    assert_eq!(
        server.raw(second.clone()).await,
        (201, r#"{"version":2}"#.into())
    );
    for replay in [first, second] {
        let (status, body) = server.raw(replay).await;
        assert_eq!(status, 409, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["current_version"], 2);
    }
    let (_, page) = send(server.get("/env/proj/main/versions", &dev)).await;
    assert_eq!(page["versions"].as_array().unwrap().len(), 2);
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    let conflicts: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'push' AND outcome = 'conflict'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(conflicts, 2, "each replay is audited as a conflict");
}
