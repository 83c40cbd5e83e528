//! Racing pushes (E1, E2): compare-and-swap holds under group commit.

use crate::common::*;
use std::sync::Arc;

on_each_backend! {
async fn sixteen_racing_pushes_on_one_base_have_exactly_one_winner(backend: Backend) {
    let server = Arc::new(TestServer::on(backend).await);
    let dev = token("developer", &["proj"]);
    assert_eq!(server.push(&dev, "proj", "main", &["A"], None).await.0, 201);
    for round in 0..5u64 {
        let base = round + 1;
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let server = server.clone();
                let dev = dev.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let key = format!("K{i}");
                    barrier.wait().await;
                    server.push(&dev, "proj", "main", &[&key], Some(base)).await
                })
            })
            .collect();
        let mut won = 0;
        let mut lost = 0;
        for task in tasks {
            let (status, body) = task.await.unwrap();
            match status {
                201 => {
                    won += 1;
                    assert_eq!(body["version"], base + 1);
                }
                409 => {
                    lost += 1;
                    assert_eq!(body["current_version"], base + 1, "{body}");
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!((won, lost), (1, 15), "round {round}");
        let (_, keys) = send(server.get("/env/proj/main/keys", &dev)).await;
        assert_eq!(keys["version"], base + 1);
    }
    let (_, page) = send(server.get("/env/proj/main/versions", &dev)).await;
    assert_eq!(page["versions"].as_array().unwrap().len(), 6);
}
}

on_each_backend! {
async fn writers_that_retry_lose_nothing_and_leave_no_gaps(backend: Backend) {
    let server = Arc::new(TestServer::on(backend).await);
    let dev = token("developer", &["proj"]);
    const WRITERS: usize = 16;
    const PUSHES: usize = 15;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let server = server.clone();
            let dev = dev.clone();
            tokio::spawn(async move {
                let mut base: Option<u64> = None;
                let mut accepted = Vec::new();
                while accepted.len() < PUSHES {
                    let key = format!("W{w}_{}", accepted.len());
                    let (status, body) = server.push(&dev, "proj", "main", &[&key], base).await;
                    match status {
                        201 => {
                            let v = body["version"].as_u64().unwrap();
                            accepted.push(v);
                            base = Some(v);
                        }
                        409 => base = body["current_version"].as_u64(),
                        other => panic!("unexpected {other}: {body}"),
                    }
                }
                accepted
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    let expected: Vec<u64> = (1..=(WRITERS * PUSHES) as u64).collect();
    assert_eq!(
        all, expected,
        "every accepted push is one version, no gaps, no doubles"
    );
    let (_, keys) = send(server.get("/env/proj/main/keys", &dev)).await;
    assert_eq!(keys["version"], (WRITERS * PUSHES) as u64);
}
}
