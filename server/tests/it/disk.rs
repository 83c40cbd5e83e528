//! A full disk on the server, made without root with `RLIMIT_FSIZE` on the
//! running binary (`prlimit`): a push that cannot be made durable is a 507 with the JSON
//! error, reads go on, nothing acknowledged is lost, and pushes work again once there is
//! room.

use crate::common::*;
use rustix::process::{Pid, Resource, Rlimit, getrlimit, prlimit};
use serde_json::{Value, json};
use std::path::Path;

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Sets the server's soft file-size limit (`None`: unlimited), keeping its hard limit.
fn set_file_size_limit(server: &Binary, soft: Option<u64>) {
    let pid = Pid::from_raw(i32::try_from(server.child.id()).unwrap()).unwrap();
    // The child inherited this process's hard limit.
    let hard = getrlimit(Resource::Fsize).maximum;
    prlimit(
        Some(pid),
        Resource::Fsize,
        Rlimit {
            current: soft,
            maximum: hard,
        },
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_507_reads_go_on_and_pushes_resume_once_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let wal = dir.path().join("envsync.db-wal");
    let mut server = Binary::start(&db, &[("ENVSYNC_JWT_SECRET", SECRET)]);
    let dev = token("developer", &["proj"]);
    let client = reqwest::Client::new();
    let url = format!("{}/env/proj/main", server.url);
    // Pushes big enough to need new WAL frames each time (the key list is stored as is).
    let keys: Vec<String> = (0..500).map(|i| format!("KEY_{i:0>60}")).collect();
    let push = |base: Option<u64>| {
        client
            .post(&url)
            .bearer_auth(&dev)
            .json(&json!({"ciphertext": ciphertext(), "keys": keys, "base_version": base}))
    };
    for base in [None, Some(1), Some(2)] {
        assert_eq!(send(push(base)).await.0, 201);
    }

    // No file may grow past its present size: the next push needs the WAL to grow.
    let limit = size(&db).max(size(&wal));
    set_file_size_limit(&server, Some(limit));
    for _ in 0..3 {
        let answer = send(push(Some(3))).await;
        assert_error(&answer, 507, "insufficient_storage");
        assert!(!answer.1.to_string().contains("disk I/O"), "{}", answer.1);
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died of SIGXFSZ"
    );
    // Reads that write nothing go on.
    for path in ["/keys", "/versions", ""] {
        let path = if path.is_empty() {
            format!("{}/env/proj", server.url)
        } else {
            format!("{url}{path}")
        };
        let (status, body) = send(client.get(path).bearer_auth(&dev)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, keys_answer) = send(client.get(format!("{url}/keys")).bearer_auth(&dev)).await;
    assert_eq!(keys_answer["version"], 3);
    // A pull needs its audit row: it is served with that row or refused, never without.
    let pull = send(client.get(&url).bearer_auth(&dev)).await;
    assert!(
        pull.0 == 200 || (pull.0 == 507 && pull.1["error"] == "insufficient_storage"),
        "{pull:?}"
    );
    let pulled = pull.0 == 200;
    let health = send(client.get(format!("{}/health", server.url))).await;
    assert_eq!(health.0, 200);

    // Room again: the same push succeeds as version 4, nothing acknowledged was lost,
    // nothing refused was kept, and the audit log accounts for every version.
    set_file_size_limit(&server, None);
    assert_eq!(send(push(Some(3))).await, (201, json!({"version": 4})));
    let versions = all_versions(&client, &format!("{url}/versions"), &dev).await;
    let numbers: Vec<u64> = versions
        .iter()
        .map(|v: &Value| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![4, 3, 2, 1]);
    server.kill();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let pushes: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'push'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        pushes, 4,
        "only the acknowledged pushes are in the audit log"
    );
    let pulls: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'pull'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pulls, i64::from(pulled));
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_envsync-server"))
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{out}");
    let log = std::fs::read_to_string(&server.stderr_path).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
}
