//! Rate limiting of failed authentication (D4) against real servers. The limiter's bounded
//! memory (100k distinct clients) is a unit test in `server/src/limiter.rs`.

use crate::common::*;
use envsync_server::limiter::LimiterSettings;
use std::net::IpAddr;
use std::time::Duration;

/// A client whose connections come from `local` (any 127.0.0.0/8 address is this machine).
fn client_from(local: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(local))
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    client.get(url).bearer_auth(token).send().await.unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("a 429 without Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_401s_from_one_address_get_429_with_an_honest_retry_after() {
    let server = TestServer::start_with(|s| {
        s.auth_limit = LimiterSettings {
            max_failures: 3,
            window: Duration::from_secs(2),
            capacity: 1000,
        };
    })
    .await;
    let url = format!("{}/env/proj", server.url);
    let good = token("developer", &["proj"]);
    let bad = format!("{good}x");
    let attacker = client_from([127, 0, 0, 1]);
    let neighbour = client_from([127, 0, 0, 2]);

    // Successful requests never count.
    for _ in 0..60 {
        assert_eq!(get(&attacker, &url, &good).await.status(), 200);
    }
    for _ in 0..3 {
        assert_eq!(get(&attacker, &url, &bad).await.status(), 401);
    }
    let refused = get(&attacker, &url, &bad).await;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    assert!(!body.to_string().contains(&bad));

    // Blocked before the token is looked at: a good token from that address waits too
    // (answering it would tell a guesser which guess was good). /health needs no token.
    assert_eq!(get(&attacker, &url, &good).await.status(), 429);
    let health = attacker
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Another address is not affected, not even by the same bad token.
    assert_eq!(get(&neighbour, &url, &good).await.status(), 200);
    assert_eq!(get(&neighbour, &url, &bad).await.status(), 401);

    // Retrying after Retry-After seconds is served, and counting starts afresh.
    let refused = get(&attacker, &url, &bad).await;
    assert_eq!(refused.status(), 429, "refusals do not end the block early");
    tokio::time::sleep(Duration::from_secs(retry_after(&refused))).await;
    assert_eq!(get(&attacker, &url, &good).await.status(), 200);
    assert_eq!(get(&attacker, &url, &bad).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_its_limits_from_the_environment_and_logs_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("envsync.db");
    let server = Binary::start(
        &db,
        &[
            ("ENVSYNC_JWT_SECRET", SECRET),
            ("ENVSYNC_AUTH_MAX_FAILURES", "2"),
            ("ENVSYNC_AUTH_WINDOW", "10m"),
        ],
    );
    let client = reqwest::Client::new();
    let url = format!("{}/whoami", server.url);
    let good = token("readonly", &["proj"]);
    let bad = format!("{good}x");
    for _ in 0..20 {
        assert_eq!(get(&client, &url, &good).await.status(), 200);
    }
    assert_eq!(get(&client, &url, &bad).await.status(), 401);
    assert_eq!(get(&client, &url, &bad).await.status(), 401);
    let refused = get(&client, &url, &bad).await;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((590..=600).contains(&wait), "Retry-After {wait}");

    // Turned off, the same run of failures stays 401.
    let off = Binary::start(
        dir.path().join("off.db"),
        &[
            ("ENVSYNC_JWT_SECRET", SECRET),
            ("ENVSYNC_AUTH_MAX_FAILURES", "0"),
        ],
    );
    let off_url = format!("{}/whoami", off.url);
    for _ in 0..30 {
        assert_eq!(get(&client, &off_url, &bad).await.status(), 401);
    }

    let log = server.stderr();
    assert_eq!(
        log.matches("too many failed authentications").count(),
        1,
        "one warning when the block starts:\n{log}"
    );
    assert!(log.contains("client=127.0.0.1"), "{log}");
    assert!(!log.contains(&good[20..]), "a token is in the log");
}
