//! Load (E2), scaled for a debug build: writers that compare-and-swap on one branch and
//! readers pulling it, against the real binary on loopback. The full-size run (16 writers ×
//! 200 pushes, 64 readers × 500 pulls, release build) is `envsync-bench load`.

use crate::common::*;
use envsync_tests::procfs::{self, RssSampler};
use serde_json::json;

const WRITERS: usize = 16;
const PUSHES_PER_WRITER: usize = 25;
const READERS: usize = 64;
const PULLS_PER_READER: usize = 40;
/// A generous bound for the debug server's resident memory under this load (it idles
/// at about 10 MB): what it catches is growth with the request count.
const RSS_LIMIT_KB: u64 = 128 * 1024;
/// Attempts one writer may make before the test calls it livelock.
const MAX_ATTEMPTS: usize = PUSHES_PER_WRITER * 200;

/// What one writer saw: versions it got 201 for, conflicts, anything else.
struct Written {
    accepted: Vec<u64>,
    conflicts: usize,
    other: Vec<u16>,
}

async fn writer(client: reqwest::Client, url: String, token: String, w: usize) -> Written {
    let mut out = Written {
        accepted: Vec::new(),
        conflicts: 0,
        other: Vec::new(),
    };
    let mut base: Option<u64> = None;
    for attempt in 0..MAX_ATTEMPTS {
        if out.accepted.len() == PUSHES_PER_WRITER {
            break;
        }
        let body = json!({
            "ciphertext": ciphertext(),
            "keys": [format!("W{w}_{attempt}")],
            "base_version": base,
        });
        let response = client
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: serde_json::Value = response.json().await.unwrap();
        match status {
            201 => {
                let v = answer["version"].as_u64().unwrap();
                out.accepted.push(v);
                base = Some(v);
            }
            // Compare-and-swap lost: take the current version and try again.
            409 => {
                out.conflicts += 1;
                base = answer["current_version"].as_u64();
            }
            other => out.other.push(other),
        }
    }
    out
}

/// What one reader saw: statuses other than 200, and whether versions ever went back.
async fn reader(client: reqwest::Client, url: String, token: String) -> (Vec<u16>, bool) {
    let mut other = Vec::new();
    let mut last = 0;
    let mut monotonic = true;
    for _ in 0..PULLS_PER_READER {
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        let status = response.status().as_u16();
        if status != 200 {
            other.push(status);
            continue;
        }
        let env: serde_json::Value = response.json().await.unwrap();
        let version = env["version"].as_u64().unwrap();
        monotonic &= version >= last;
        last = version;
    }
    (other, monotonic)
}

on_each_backend! {
async fn writers_and_readers_under_load_lose_nothing_and_never_see_a_lock(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = Binary::start(&db.arg, &[("ENVSYNC_JWT_SECRET", SECRET)]);
    let pid = server.child.id();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(WRITERS + READERS)
        .build()
        .unwrap();
    let url = format!("{}/env/proj/main", server.url);
    let dev = token("developer", &["proj"]);
    let readonly = token("readonly", &["proj"]);
    // The branch exists before the readers start: every pull must be a 200.
    let seed = send(client.post(&url).bearer_auth(&dev).json(&json!({
        "ciphertext": ciphertext(), "keys": ["SEED"], "base_version": null
    })))
    .await;
    assert_eq!(seed.0, 201, "{}", seed.1);

    let sampler = RssSampler::start(pid, true);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(client.clone(), url.clone(), dev.clone(), w)))
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|_| tokio::spawn(reader(client.clone(), url.clone(), readonly.clone())))
        .collect();
    let mut accepted = vec![1u64];
    let mut conflicts = 0;
    for task in writers {
        let written = task.await.unwrap();
        assert!(
            written.other.is_empty(),
            "pushes answered {:?}",
            written.other
        );
        assert_eq!(
            written.accepted.len(),
            PUSHES_PER_WRITER,
            "a writer gave up after {MAX_ATTEMPTS} attempts"
        );
        accepted.extend(written.accepted);
        conflicts += written.conflicts;
    }
    for task in readers {
        let (other, monotonic) = task.await.unwrap();
        assert!(other.is_empty(), "pulls answered {other:?}");
        assert!(monotonic, "a reader saw the version go back");
    }
    let peak = sampler.stop();

    // Accepted pushes are exactly the versions 1..=N, each once.
    let total = (1 + WRITERS * PUSHES_PER_WRITER) as u64;
    accepted.sort_unstable();
    assert_eq!(accepted, (1..=total).collect::<Vec<_>>());
    let versions = all_versions(&client, &format!("{url}/versions"), &dev).await;
    let listed: Vec<u64> = versions
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, (1..=total).rev().collect::<Vec<_>>());

    // The server's own account: no lock error, no storage failure, every attempt audited
    // in one intact chain.
    let hwm = procfs::status_kb(pid, "VmHWM:").unwrap();
    let log = server.stderr();
    assert!(!log.contains("database is locked"), "{log}");
    assert!(!log.contains("ERROR"), "errors in the server log");
    assert!(!log.contains("status=5"), "a 5xx in the access log");
    let pushes = total + conflicts as u64;
    let pulls = (READERS * PULLS_PER_READER) as u64;
    drop(server);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM audit WHERE action = 'push' AND outcome = 'ok'")
            .await as u64,
        total
    );
    // On PostgreSQL the first start also minted the owner token (one row).
    let minted = db
        .count("SELECT COUNT(*) FROM audit WHERE action = 'token.mint'")
        .await as u64;
    assert_eq!(minted, u64::from(backend == Backend::Postgres));
    assert_eq!(
        db.count("SELECT COUNT(*) FROM audit").await as u64,
        pushes + pulls + minted
    );
    let verdict = db.verify().await;
    assert_eq!(
        verdict.to_string().lines().next().unwrap(),
        format!("ok ({} rows)", pushes + pulls + minted)
    );
    let peak = peak.max(hwm);
    assert!(
        peak > 0 && peak < RSS_LIMIT_KB,
        "server RSS peaked at {peak} kB"
    );
    eprintln!(
        "load ({backend:?}): {total} versions from {pushes} push attempts ({conflicts} conflicts), {pulls} pulls, server peak RSS {} MB",
        peak / 1024
    );
}
}
