//! Connection limits against the real binary on loopback: a flood of half-open
//! connections under a lowered file limit, the header, idle and request timeouts, the file
//! limit raised at start, and a shutdown that does not wait for silent clients.

use crate::common::*;
use envsync_tests::http::parse_response;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Reads one HTTP/1.1 response from `stream` (framed by the kit's parser), leaving the
/// connection open.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(answer) = parse_response(&buf, false) {
            return (answer.status, answer.body);
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `GET /health` on a fresh connection.
async fn health(addr: SocketAddr) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut stream).await.0
}

/// Whether the server has closed `stream` (EOF or reset), waiting at most `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        timeout(wait, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// The time until the server closes `stream`, if it does within `limit`.
async fn time_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    closed_within(stream, limit)
        .await
        .then(|| started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_half_open_connections_under_a_low_file_limit_never_keeps_health_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start_limited(
        dir.path().join("envsync.db"),
        &[("ENVSYNC_JWT_SECRET", SECRET)],
        Some("ulimit -n 256"),
    );
    assert_eq!(
        server.limit("Max open files"),
        ("256".to_owned(), "256".to_owned())
    );
    let addr = server.addr();

    // 300 connections that each send half a request head and then nothing: more than the
    // 256 descriptors the server has, and the header timeout (10 s) will not end them.
    let mut attackers = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        attackers.push(stream);
    }
    // A fresh connection is still answered, within a second, every time.
    for round in 0..5 {
        let status = timeout(Duration::from_secs(1), health(addr))
            .await
            .unwrap_or_else(|_| panic!("round {round}: /health did not answer within 1 s"));
        assert_eq!(status, 200, "round {round}");
    }
    // So is a real request with a token.
    let client = reqwest::Client::new();
    let pushed = send(
        client
            .post(format!("{}/env/proj/main", server.url))
            .bearer_auth(token("developer", &["proj"]))
            .json(&serde_json::json!({"ciphertext": ciphertext(), "keys": ["A"], "base_version": null})),
    )
    .await;
    assert_eq!(pushed.0, 201, "{}", pushed.1);

    // The server held at most its cap, below the file limit, by closing the attackers'
    // oldest connections; it never ran out of descriptors.
    let mut closed = 0;
    for stream in &mut attackers {
        if closed_within(stream, Duration::from_millis(5)).await {
            closed += 1;
        }
    }
    assert!(closed >= 300 - 192, "only {closed} of 300 were shed");
    let log = server.stderr();
    assert!(log.contains("max_connections=192"), "{log}");
    assert!(log.contains("connection limit reached"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(!log.contains("accept failed"), "{log}");
    // One warning per 10 s at most (a slow machine may cross into a second window).
    let warnings = log.matches("connection limit reached").count();
    assert!(
        (1..=3).contains(&warnings),
        "the warning is throttled, not one per connection ({warnings}):\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_idle_and_request_timeouts_close_what_they_should_and_only_that() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start(
        dir.path().join("envsync.db"),
        &[
            ("ENVSYNC_JWT_SECRET", SECRET),
            ("ENVSYNC_HEADER_TIMEOUT", "1s"),
            ("ENVSYNC_IDLE_TIMEOUT", "4s"),
            ("ENVSYNC_REQUEST_TIMEOUT", "2s"),
        ],
    );
    let addr = server.addr();
    let limit = Duration::from_secs(8);

    // A connection that sends nothing: closed by the header timeout, not at once.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let took = time_to_close(&mut silent, limit)
        .await
        .expect("a silent connection stayed open");
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");

    // A head dripped a line at a time: the clock runs from its first byte, so bytes
    // arriving do not keep it open.
    let mut drip = TcpStream::connect(addr).await.unwrap();
    drip.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut open = true;
    while open && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(200)).await;
        open = drip.write_all(b"X-Drip: 1\r\n").await.is_ok()
            && !closed_within(&mut drip, Duration::from_millis(1)).await;
    }
    assert!(!open, "a dripping head stayed open for {limit:?}");

    // Between requests the idle timeout (4 s) applies, not the header one (1 s)…
    let mut kept = TcpStream::connect(addr).await.unwrap();
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    kept.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut kept).await.0, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    kept.write_all(request).await.unwrap();
    assert_eq!(
        read_response(&mut kept).await.0,
        200,
        "closed before the idle timeout"
    );
    // …and ends the connection once it runs out.
    let took = time_to_close(&mut kept, limit)
        .await
        .expect("an idle connection stayed open");
    assert!(took >= Duration::from_secs(2), "closed after {took:?}");

    // A body that never arrives: the request timeout ends it.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /env/proj/main HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"cipher",
        token("developer", &["proj"])
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    assert!(
        time_to_close(&mut slow, limit).await.is_some(),
        "a stalled body stayed open"
    );

    // None of it stopped the server.
    assert_eq!(health(addr).await, 200);
    let log = server.stderr();
    assert!(log.contains("header_timeout_secs=1"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_open_file_limit_is_raised_to_the_hard_one_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start_limited(
        dir.path().join("envsync.db"),
        &[("ENVSYNC_JWT_SECRET", SECRET)],
        Some("ulimit -S -n 200"),
    );
    let (soft, hard) = server.limit("Max open files");
    assert_eq!(soft, hard);
    // Raised, unless the hard limit here is no higher than the soft one the test set.
    let ours = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    if ours.is_none_or(|h| h > 200) {
        assert_ne!(soft, "200");
    }
    assert_eq!(health(server.addr()).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connections_between_requests_without_waiting_for_their_timeouts() {
    let server = TestServer::start().await;
    let _silent = TcpStream::connect(server.addr).await.unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);
    // The default header and idle timeouts are 10 s and 60 s.
    timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("shutdown waited for connections doing nothing");
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await);
}
