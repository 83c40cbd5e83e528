//! Every route's happy path and its error statuses, against `serve` on a real socket.

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_token() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_tells_the_token_s_identity() {
    let server = TestServer::start().await;
    for (role, projects) in [
        ("owner", vec![]),
        ("developer", vec!["a", "b"]),
        ("readonly", vec!["a"]),
    ] {
        let (status, who) = send(server.get("/whoami", &token(role, &projects))).await;
        assert_eq!(status, 200, "{who}");
        assert_eq!(
            who,
            json!({"email": format!("{role}@example.com"), "role": role, "project_ids": projects})
        );
    }
    let anonymous = server.client.get(format!("{}/whoami", server.url));
    assert_error(&send(anonymous).await, 401, "unauthorized");
    assert_error(
        &send(server.get("/whoami", "garbage")).await,
        401,
        "unauthorized",
    );
}

on_each_backend! {
async fn push_then_read_every_view(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);

    let first = server.push(&dev, "proj", "main", &["A", "B"], None).await;
    assert_eq!(first, (201, json!({ "version": 1 })));
    let second = server
        .push(&dev, "proj", "main", &["A", "C"], Some(1))
        .await;
    assert_eq!(second, (201, json!({ "version": 2 })));
    let other = server.push(&dev, "proj", "dev", &["X"], None).await;
    assert_eq!(other, (201, json!({ "version": 1 })));

    let (status, latest) = send(server.get("/env/proj/main", &dev)).await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["ciphertext"], ciphertext());
    assert_eq!(latest["keys"], json!(["A", "C"]));
    assert_eq!(latest["pushed_by"], "developer@example.com");
    assert!(latest["pushed_at"].as_str().unwrap().ends_with('Z'));

    let (status, v1) = send(server.get("/env/proj/main?version=1", &dev)).await;
    assert_eq!(status, 200);
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["keys"], json!(["A", "B"]));

    let (status, keys) = send(server.get("/env/proj/main/keys", &dev)).await;
    assert_eq!(
        (status, keys),
        (200, json!({ "version": 2, "keys": ["A", "C"] }))
    );

    let (status, page) = send(server.get("/env/proj/main/versions", &dev)).await;
    assert_eq!(status, 200);
    assert_eq!(page["next_before"], Value::Null, "{page}");
    let versions = &page["versions"];
    let numbers: Vec<u64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![2, 1]);
    assert_eq!(versions[1]["keys"], json!(["A", "B"]));
    assert!(versions[0].get("ciphertext").is_none());

    let (status, page) = send(server.get("/env/proj", &dev)).await;
    assert_eq!(status, 200);
    assert_eq!(page["next_after"], Value::Null, "{page}");
    let branches = page["branches"].as_array().unwrap();
    assert_eq!(branches.len(), 2);
    assert_eq!(branches[0]["branch"], "dev");
    assert_eq!(branches[1]["branch"], "main");
    assert_eq!(branches[1]["version"], 2);
    assert_eq!(branches[1]["key_count"], 2);
}
}

on_each_backend! {
async fn missing_things_are_404_and_empty_lists(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);
    assert_error(
        &send(server.get("/env/proj/main", &dev)).await,
        404,
        "not_found",
    );
    assert_error(
        &send(server.get("/env/proj/main/keys", &dev)).await,
        404,
        "not_found",
    );
    assert_eq!(
        send(server.get("/env/proj/main/versions", &dev)).await,
        (200, json!({"versions": [], "next_before": null}))
    );
    assert_eq!(
        send(server.get("/env/proj", &dev)).await,
        (200, json!({"branches": [], "next_after": null}))
    );
    server.push(&dev, "proj", "main", &["A"], None).await;
    assert_error(
        &send(server.get("/env/proj/main?version=7", &dev)).await,
        404,
        "not_found",
    );
    assert_error(
        &send(server.get("/env/proj/main?version=abc", &dev)).await,
        400,
        "bad_request",
    );
    assert_error(&send(server.get("/nowhere", &dev)).await, 404, "not_found");
    assert_error(
        &send(server.get("/env/proj/main/keys/extra", &dev)).await,
        404,
        "not_found",
    );
    let put = server
        .client
        .put(format!("{}/env/proj/main", server.url))
        .bearer_auth(&dev);
    assert_error(&send(put).await, 405, "method_not_allowed");
}
}

on_each_backend! {
async fn stale_and_wrong_base_versions_conflict(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);
    // A base version on a branch that has none.
    let answer = server.push(&dev, "proj", "main", &["A"], Some(3)).await;
    assert_error(&answer, 409, "conflict");
    assert!(answer.1.get("current_version").is_none());

    assert_eq!(server.push(&dev, "proj", "main", &["A"], None).await.0, 201);
    assert_eq!(
        server.push(&dev, "proj", "main", &["A"], Some(1)).await.0,
        201
    );
    for base in [None, Some(1), Some(5)] {
        let answer = server.push(&dev, "proj", "main", &["A"], base).await;
        assert_error(&answer, 409, "conflict");
        assert_eq!(answer.1["current_version"], 2, "base {base:?}");
    }
    // Replaying an accepted push changes nothing.
    assert_eq!(
        server.push(&dev, "proj", "main", &["A"], Some(1)).await.0,
        409
    );
    let (_, keys) = send(server.get("/env/proj/main/keys", &dev)).await;
    assert_eq!(keys["version"], 2);
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400() {
    let server = TestServer::start().await;
    let dev = token("developer", &["proj"]);
    let push = |body: Value| server.post("/env/proj/main", &dev, &body);
    let age = ciphertext();

    // Not an age file, and an age file with its header damaged.
    let answer = send(push(
        json!({"ciphertext": "hello", "keys": [], "base_version": null}),
    ))
    .await;
    assert_error(&answer, 400, "bad_request");
    assert!(answer.1["message"].as_str().unwrap().contains("ciphertext"));
    let damaged = age.replacen(
        "-----BEGIN AGE ENCRYPTED FILE-----\n",
        "-----BEGIN AGE ENCRYPTED FILE-----\nAAAA",
        1,
    );
    let answer = send(push(
        json!({"ciphertext": damaged, "keys": [], "base_version": null}),
    ))
    .await;
    assert_error(&answer, 400, "bad_request");

    for keys in [
        json!(["GOOD", "BAD KEY"]),
        json!(["A=B"]),
        json!([""]),
        json!(["TAB\tKEY"]),
        json!(["K".repeat(257)]),
        json!(["DUP", "DUP"]),
    ] {
        let answer = send(push(
            json!({"ciphertext": age, "keys": keys, "base_version": null}),
        ))
        .await;
        assert_error(&answer, 400, "bad_request");
        assert!(
            answer.1["message"].as_str().unwrap().starts_with("keys["),
            "{}",
            answer.1
        );
    }

    let answer = send(push(json!({"keys": [], "base_version": null}))).await;
    assert_error(&answer, 400, "bad_request");
    assert!(answer.1["message"].as_str().unwrap().contains("ciphertext"));
    let answer = send(push(
        json!({"ciphertext": age, "keys": "A", "base_version": null}),
    ))
    .await;
    assert_error(&answer, 400, "bad_request");
    let answer = send(push(
        json!({"ciphertext": age, "keys": [], "base_version": -1}),
    ))
    .await;
    assert_error(&answer, 400, "bad_request");
    let not_json = server
        .client
        .post(format!("{}/env/proj/main", server.url))
        .bearer_auth(&dev)
        .body("{not json");
    assert_error(&send(not_json).await, 400, "bad_request");
    // Nothing was stored by any of them.
    assert_error(
        &send(server.get("/env/proj/main", &dev)).await,
        404,
        "not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_400() {
    let server = TestServer::start().await;
    let owner = token("owner", &[]);
    let long_branch = "b".repeat(256);
    let long_project = "p".repeat(129);
    let bad_branches = [
        "a..b",
        "-x",
        "x.lock",
        "a%00b",
        "a%0Ab",
        "a%20b",
        "%2Fa",
        "a%2F",
        "a%2F%2Fb",
        "a%2F..%2Fb",
        "%FF%FE",
        long_branch.as_str(),
    ];
    for branch in bad_branches {
        for path in [
            format!("/env/proj/{branch}"),
            format!("/env/proj/{branch}/keys"),
            format!("/env/proj/{branch}/versions"),
        ] {
            let answer = send(server.get(&path, &owner)).await;
            assert_eq!(answer.0, 400, "{path}: {}", answer.1);
            assert_error(&answer, 400, "bad_request");
        }
        let answer = server.push(&owner, "proj", branch, &["A"], None).await;
        assert_error(&answer, 400, "bad_request");
    }
    for project in [
        "a..b",
        "a%2Fb",
        "%C3%A9",
        "a%00",
        "a%20b",
        long_project.as_str(),
    ] {
        assert_error(
            &send(server.get(&format!("/env/{project}"), &owner)).await,
            400,
            "bad_request",
        );
        assert_error(
            &send(server.get(&format!("/env/{project}/main"), &owner)).await,
            400,
            "bad_request",
        );
        assert_error(
            &send(server.get(&format!("/audit/{project}"), &owner)).await,
            400,
            "bad_request",
        );
        let answer = server.push(&owner, project, "main", &["A"], None).await;
        assert_error(&answer, 400, "bad_request");
    }
    // Dot segments sent verbatim (ordinary clients normalise them away before sending).
    for path in [
        "/env/proj/..",
        "/env/proj/../keys",
        "/env/../main",
        "/env/proj/%2E%2E",
        "/env/proj/%2e.",
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {owner}\r\nConnection: close\r\n\r\n"
        );
        let (status, body) = server.raw(request.into_bytes()).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    assert_eq!(
        send(server.get("/env/proj", &owner)).await,
        (200, json!({"branches": [], "next_after": null}))
    );
    // Decoded once only: `%252e%252e` is the literal (valid) branch name `%2e%2e`.
    assert_eq!(
        server
            .push(&owner, "proj", "%252e%252e", &["A"], None)
            .await
            .0,
        201
    );
    let (_, page) = send(server.get("/env/proj", &owner)).await;
    assert_eq!(page["branches"][0]["branch"], "%2e%2e");
}

on_each_backend! {
async fn encoded_branch_names_round_trip_and_address_one_record(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);
    let long = format!("feature/{}", "x".repeat(247));
    assert_eq!(long.len(), 255);
    for (i, branch) in [
        "feature/login",
        "a/b/c",
        "feature/ü",
        "日本/ブランチ",
        long.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        let encoded = encode(branch);
        let key = format!("KEY_{i}");
        let answer = server.push(&dev, "proj", &encoded, &[&key], None).await;
        assert_eq!(answer.0, 201, "{branch}: {}", answer.1);
        // Lower-case escapes name the same record.
        let lower = encoded.to_lowercase();
        let (status, env) = send(server.get(&format!("/env/proj/{lower}"), &dev)).await;
        assert_eq!(status, 200, "{branch}: {env}");
        assert_eq!(env["keys"], json!([key]));
        let (status, keys) = send(server.get(&format!("/env/proj/{encoded}/keys"), &dev)).await;
        assert_eq!(
            (status, keys["version"].clone()),
            (200, json!(1)),
            "{branch}"
        );
        // A second push on the same name is version 2 of the same record.
        let answer = server.push(&dev, "proj", &encoded, &[&key], Some(1)).await;
        assert_eq!(answer, (201, json!({ "version": 2 })), "{branch}");
    }
    let (_, page) = send(server.get("/env/proj", &dev)).await;
    let names: Vec<&str> = page["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["branch"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"feature/ü"), "{names:?}");
    assert!(names.contains(&"日本/ブランチ"), "{names:?}");
    assert!(names.contains(&long.as_str()));
    // NFC and NFD spellings are different branches (no normalisation, as in git).
    let nfd = encode("feature/u\u{308}");
    assert_error(
        &send(server.get(&format!("/env/proj/{nfd}"), &dev)).await,
        404,
        "not_found",
    );
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413_and_unsized_bodies_411() {
    let server = TestServer::start_with(|s| s.max_body = 64 * 1024).await;
    let dev = token("developer", &["proj"]);
    // Declared too large: refused from the headers alone.
    let request = format!(
        "POST /env/proj/main HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {dev}\r\n\
         Content-Type: application/json\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = server.raw(request.into_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    // A real oversized body through an ordinary client.
    let big = json!({"ciphertext": "x".repeat(70 * 1024), "keys": [], "base_version": null});
    let answer = send(server.post("/env/proj/main", &dev, &big)).await;
    assert_error(&answer, 413, "payload_too_large");
    // Chunked, no Content-Length: refused without being buffered.
    let request = format!(
        "POST /env/proj/main HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {dev}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    );
    let (status, body) = server.raw(request.into_bytes()).await;
    assert_eq!(status, 411, "{body}");
    assert!(body.contains("length_required"), "{body}");
    // Under the limit still works.
    assert_eq!(server.push(&dev, "proj", "main", &["A"], None).await.0, 201);
}

/// A client that sends its whole oversized body before it reads reads the 413: the server
/// answers from the headers, then reads and drops what still comes instead of closing over
/// it (a close over unread bytes is a reset, which can destroy the answer unread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_sent_whole_still_gets_its_413() {
    use std::io::{Read, Write};
    let server = TestServer::start_with(|s| s.max_body = 64 * 1024).await;
    let dev = token("developer", &["proj"]);
    let addr = server.addr;
    let answers = tokio::task::spawn_blocking(move || {
        (0..5)
            .map(|_| {
                // Half a megabyte: far more than the socket buffers hold, so most of it is
                // still coming when the server has answered.
                let body = vec![b'x'; 512 * 1024];
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                let head = format!(
                    "POST /env/proj/main HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {dev}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                let sent = stream.write_all(&body);
                let mut answer = Vec::new();
                let read = stream.read_to_end(&mut answer);
                let answer = String::from_utf8_lossy(&answer).into_owned();
                format!("{sent:?} {read:?} {answer}")
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for answer in answers {
        assert!(answer.starts_with("Ok(()) Ok("), "{answer}");
        assert!(answer.contains("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload_too_large"), "{answer}");
    }
}

on_each_backend! {
async fn audit_is_owner_only_paginated_and_holds_no_ciphertext(backend: Backend) {
    let server = TestServer::on(backend).await;
    let owner = token("owner", &[]);
    let dev = token("developer", &["proj"]);
    server.push(&dev, "proj", "main", &["A", "B"], None).await;
    server
        .push(&dev, "proj", "main", &["A", "C"], Some(1))
        .await;
    server.push(&dev, "proj", "main", &["A"], Some(1)).await; // conflict
    send(server.get("/env/proj/main", &dev)).await; // pull
    send(server.get("/env/proj/main?version=9", &dev)).await; // pull, not found
    send(server.get("/audit/proj", &dev)).await; // forbidden

    let (status, page) = send(server.get("/audit/proj", &owner)).await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("audit", "forbidden"),
            ("pull", "not_found"),
            ("pull", "ok"),
            ("push", "conflict"),
            ("push", "ok"),
            ("push", "ok"),
        ]
    );
    assert_eq!(page["next_before"], Value::Null);
    let second_push = &events[4];
    assert_eq!(second_push["actor"], "developer@example.com");
    assert_eq!(second_push["project"], "proj");
    assert_eq!(second_push["branch"], "main");
    assert_eq!(second_push["version"], 2);
    let detail: Value = serde_json::from_str(second_push["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["added"], json!(["C"]));
    assert_eq!(detail["removed"], json!(["B"]));
    assert_eq!(detail["ciphertext_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(events[2]["version"], 2);

    // Pages of two, newest first, following next_before.
    let mut ids = Vec::new();
    let mut path = "/audit/proj?limit=2".to_owned();
    loop {
        let (status, page) = send(server.get(&path, &owner)).await;
        assert_eq!(status, 200);
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        ids.extend(events.iter().map(|e| e["id"].as_u64().unwrap()));
        match page["next_before"].as_u64() {
            Some(before) => path = format!("/audit/proj?limit=2&before={before}"),
            None => break,
        }
    }
    let all: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, all);
    assert_error(
        &send(server.get("/audit/proj?limit=0", &owner)).await,
        400,
        "bad_request",
    );
    assert_error(
        &send(server.get("/audit/proj?limit=501", &owner)).await,
        400,
        "bad_request",
    );

    // Neither the API's view nor the table itself holds a ciphertext or a token.
    let blob = ciphertext();
    let body_line = blob.lines().nth(1).unwrap();
    assert!(body_line.len() > 20);
    let rows: Vec<String> = server
        .store
        .rows("SELECT COALESCE(actor,'') || action || COALESCE(project,'') || COALESCE(branch,'') || outcome || COALESCE(detail,'') FROM audit")
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    assert!(rows.len() >= 6);
    for text in rows
        .iter()
        .map(String::as_str)
        .chain([page.to_string().as_str()])
    {
        assert!(!text.contains(body_line), "{text}");
        assert!(!text.contains("BEGIN AGE"), "{text}");
        assert!(!text.contains(&dev) && !text.contains(&owner), "{text}");
        assert!(!text.contains(dev.split('.').nth(2).unwrap()), "{text}");
    }
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_returns_after_shutdown_and_leaves_a_sound_database() {
    let server = TestServer::start().await;
    let dev = token("developer", &["proj"]);
    assert_eq!(server.push(&dev, "proj", "main", &["A"], None).await.0, 201);
    let (addr, db) = (server.addr, server.db.clone());
    let dir = server.stop().await;
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let versions: i64 = conn
        .query_row("SELECT COUNT(*) FROM versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, 1);
    drop(dir);
}

on_each_backend! {
/// Every number in a query that does not fit (SQLite's integers are i64) or is
/// not a number gets 400 with the JSON error, never a 500.
async fn numbers_that_do_not_fit_are_400_with_the_json_error(backend: Backend) {
    let server = TestServer::on(backend).await;
    let owner = token("owner", &[]);
    assert_eq!(
        server.push(&owner, "proj", "main", &["A"], None).await.0,
        201
    );
    for path in [
        "/env/proj/main?version=9223372036854775808",
        "/env/proj/main?version=18446744073709551615",
        "/env/proj/main?version=18446744073709551616",
        "/env/proj/main?version=-1",
        "/env/proj/main?version=1.5",
        "/env/proj/main?version=",
        "/env/proj/main/versions?before=18446744073709551615",
        "/env/proj/main/versions?before=9223372036854775808",
        "/env/proj/main/versions?limit=0",
        "/env/proj/main/versions?limit=101",
        "/env/proj/main/versions?limit=4294967296",
        "/env/proj?limit=1001",
        "/env/proj?limit=-1",
        "/env/proj?after=a..b",
        "/audit/proj?before=18446744073709551615",
        "/audit/proj?limit=501",
        "/audit?before=9223372036854775808",
        "/audit?limit=99999999999999999999",
    ] {
        let answer = send(server.get(path, &owner)).await;
        assert_error(&answer, 400, "bad_request");
        let message = answer.1["message"].as_str().unwrap();
        assert!(
            ["version", "before", "limit", "after"]
                .iter()
                .any(|p| message.starts_with(p)),
            "{path}: {message}"
        );
    }
    // The largest number that fits is a number like any other.
    assert_error(
        &send(server.get("/env/proj/main?version=9223372036854775807", &owner)).await,
        404,
        "not_found",
    );
    let (status, page) =
        send(server.get("/env/proj/main/versions?before=9223372036854775807", &owner)).await;
    assert_eq!(
        (status, page["versions"][0]["version"].clone()),
        (200, json!(1))
    );
}
}

on_each_backend! {
/// `/versions` pages newest first by `before`, `GET /env/{project}` pages
/// branches in name order by `after`; following the cursors gives every row once.
async fn versions_and_branches_are_paged_by_their_cursors(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);
    for v in 0..25 {
        let base = if v == 0 { None } else { Some(v) };
        assert_eq!(server.push(&dev, "proj", "main", &["A"], base).await.0, 201);
    }
    for branch in ["b", "a", "feature%2Fz", "c"] {
        assert_eq!(server.push(&dev, "proj", branch, &["A"], None).await.0, 201);
    }

    let mut pages = Vec::new();
    let mut path = "/env/proj/main/versions?limit=10".to_owned();
    loop {
        let (status, page) = send(server.get(&path, &dev)).await;
        assert_eq!(status, 200, "{page}");
        let numbers: Vec<u64> = page["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        pages.push(numbers);
        match page["next_before"].as_u64() {
            Some(next) => path = format!("/env/proj/main/versions?limit=10&before={next}"),
            None => break,
        }
    }
    let newest_first = |from: u64, to: u64| (to..=from).rev().collect::<Vec<u64>>();
    assert_eq!(
        pages,
        vec![newest_first(25, 16), newest_first(15, 6), newest_first(5, 1)]
    );
    // The default page is 20 versions.
    let (_, page) = send(server.get("/env/proj/main/versions", &dev)).await;
    assert_eq!(page["versions"].as_array().unwrap().len(), 20, "{page}");
    assert_eq!(page["next_before"], 6);

    let mut names = Vec::new();
    let mut path = "/env/proj?limit=2".to_owned();
    loop {
        let (status, page) = send(server.get(&path, &dev)).await;
        assert_eq!(status, 200, "{page}");
        let branches = page["branches"].as_array().unwrap();
        assert!(branches.len() <= 2);
        names.push(
            branches
                .iter()
                .map(|b| b["branch"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        );
        match page["next_after"].as_str() {
            Some(next) => path = format!("/env/proj?limit=2&after={}", encode(next)),
            None => break,
        }
    }
    assert_eq!(
        names,
        vec![vec!["a", "b"], vec!["c", "feature/z"], vec!["main"]]
    );
    let (_, page) = send(server.get("/env/proj?after=feature%2Fz", &dev)).await;
    assert_eq!(page["branches"][0]["version"], 25);

    // The default page is 100 branches: 100 more, written to the store directly (a
    // hundred pushes would only be slower), make 105.
    server
        .store
        .exec(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
             INSERT INTO versions (project, branch, version, ciphertext, keys, key_count,
                 pushed_by, pushed_at)
             SELECT 'proj', 'more/' || i, 1, 'x', '[]', 0, 'dev@example.com',
                 '2026-01-01T00:00:00.000Z' FROM n",
        )
        .await
        .unwrap();
    let (status, page) = send(server.get("/env/proj", &dev)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["branches"].as_array().unwrap().len(), 100);
    assert!(page["next_after"].is_string(), "{page}");
}
}

on_each_backend! {
/// A page of versions stops early rather than pass 4 MiB of key names, so an
/// answer stays bounded whatever the quotas are, and the cursor still reaches every version.
async fn a_page_of_versions_stops_at_its_byte_budget(backend: Backend) {
    let server = TestServer::on_with(backend, |s| {
        s.max_body = 16 << 20;
        s.quotas.max_keys = 100_000;
        s.quotas.max_key_len = 256;
    })
    .await;
    let dev = token("developer", &["proj"]);
    // 18 000 names of 250 bytes: about 4.6 MB of names per version.
    let keys: Vec<String> = (0..18_000).map(|i| format!("{i:0>250}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    for base in [None, Some(1), Some(2)] {
        assert_eq!(server.push(&dev, "proj", "big", &keys, base).await.0, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/env/proj/big/versions?limit=100".to_owned();
    loop {
        let response = server.get(&path, &dev).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(text.len() < 8 << 20, "a page of {} bytes", text.len());
        let page: Value = serde_json::from_str(&text).unwrap();
        let versions = page["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1, "one version of this size per page");
        seen.push(versions[0]["version"].as_u64().unwrap());
        match page["next_before"].as_u64() {
            Some(next) => path = format!("/env/proj/big/versions?limit=100&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![3, 2, 1]);
}
}

on_each_backend! {
/// A push over the key quota is a 413, a key name over the length quota a 400,
/// both with the JSON error and nothing stored; the quotas are the server's settings.
async fn key_quotas_refuse_a_push_with_a_clear_error_and_store_nothing(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);
    let many: Vec<String> = (0..1001).map(|i| format!("K{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let answer = server.push(&dev, "proj", "main", &many, None).await;
    assert_error(&answer, 413, "too_many_keys");
    assert_eq!(
        answer.1["message"],
        "the push lists 1001 keys; this server accepts at most 1000 per version"
    );
    let long = "K".repeat(129);
    let answer = server.push(&dev, "proj", "main", &["A", &long], None).await;
    assert_error(&answer, 400, "bad_request");
    assert_eq!(
        answer.1["message"],
        "keys[1]: the key name is 129 bytes; this server accepts at most 128"
    );
    assert!(!answer.1.to_string().contains(&long));
    assert_error(
        &send(server.get("/env/proj/main", &dev)).await,
        404,
        "not_found",
    );
    // At the quotas exactly, the push is accepted.
    let mut at_quota = many[..1000].to_vec();
    let longest = "L".repeat(128);
    at_quota[0] = &longest;
    assert_eq!(
        server.push(&dev, "proj", "main", &at_quota, None).await.0,
        201
    );

    // Configured lower: the server's own numbers.
    let strict = TestServer::on_with(backend, |s| {
        s.quotas.max_keys = 2;
        s.quotas.max_key_len = 8;
    })
    .await;
    assert_error(
        &strict
            .push(&dev, "proj", "main", &["A", "B", "C"], None)
            .await,
        413,
        "too_many_keys",
    );
    assert_error(
        &strict
            .push(&dev, "proj", "main", &["ABCDEFGHI"], None)
            .await,
        400,
        "bad_request",
    );
    assert_eq!(
        strict
            .push(&dev, "proj", "main", &["ABCDEFGH", "B"], None)
            .await
            .0,
        201
    );
}
}

on_each_backend! {
/// Value fingerprints go with their version through push, pull, keys and
/// versions; a push without them (an old client) reads back without the field at all.
async fn fingerprints_go_with_their_version_and_absent_stays_absent(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["proj"]);
    let first = json!({"": fp(0), "A": fp(1), "B": fp(2)});
    let third = json!({"": fp(0), "A": fp(1), "B": fp(3)});
    let push = |keys: &'static [&'static str], base, prints: Value| {
        let (server, dev) = (&server, &dev);
        async move { server.push_with(dev, "proj", "main", keys, base, &prints).await }
    };
    assert_eq!(push(&["A", "B"], None, first.clone()).await.0, 201);
    assert_eq!(push(&["A", "B"], Some(1), Value::Null).await.0, 201);

    let (status, v1) = send(server.get("/env/proj/main?version=1", &dev)).await;
    assert_eq!((status, &v1["fingerprints"]), (200, &first), "{v1}");
    let (_, latest) = send(server.get("/env/proj/main", &dev)).await;
    assert_eq!(latest["version"], 2);
    assert!(latest.get("fingerprints").is_none(), "{latest}");
    let (_, keys) = send(server.get("/env/proj/main/keys", &dev)).await;
    assert_eq!(keys, json!({"version": 2, "keys": ["A", "B"]}));

    assert_eq!(push(&["A", "B"], Some(2), third.clone()).await.0, 201);
    let (_, keys) = send(server.get("/env/proj/main/keys", &dev)).await;
    assert_eq!(
        keys,
        json!({"version": 3, "keys": ["A", "B"], "fingerprints": third})
    );
    let (_, latest) = send(server.get("/env/proj/main", &dev)).await;
    assert_eq!(latest["fingerprints"], third);
    let (status, page) = send(server.get("/env/proj/main/versions", &dev)).await;
    assert_eq!(status, 200, "{page}");
    let prints: Vec<Option<&Value>> = page["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.get("fingerprints"))
        .collect();
    assert_eq!(prints, [Some(&third), None, Some(&first)]);
    // A branch with no key at all carries only the key's id.
    assert_eq!(
        server
            .push_with(&dev, "proj", "empty", &[], None, &json!({"": fp(0)}))
            .await
            .0,
        201
    );
    let (_, keys) = send(server.get("/env/proj/empty/keys", &dev)).await;
    assert_eq!(keys, json!({"version": 1, "keys": [], "fingerprints": {"": fp(0)}}));
    assert!(matches!(
        server.store.verify().await,
        envsync_server::store::chain::Verdict::Intact { .. }
    ));
}
}

/// Fingerprints that do not fit the push's keys (one missing, one too many, not
/// 32 lowercase hex, not a string) are a 400 naming the problem, never the fingerprint;
/// nothing is stored. `null` is the same as leaving them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprints_that_do_not_fit_the_keys_are_400() {
    let server = TestServer::start().await;
    let dev = token("developer", &["proj"]);
    let long = "K".repeat(3000);
    let upper = "0123456789ABCDEF0123456789ABCDEF";
    for (prints, says) in [
        (
            json!({"": fp(0), "A": fp(1)}),
            "fingerprints: no fingerprint for B",
        ),
        (json!({"A": fp(1), "B": fp(2)}), "fingerprints: no key id"),
        (
            json!({"": fp(0), "A": fp(1), "B": fp(2), "C": fp(3)}),
            "fingerprints: 1 of them are for names not in keys",
        ),
        (
            json!({"": fp(0), "A": fp(1), "B": fp(2), long.clone(): fp(3)}),
            "fingerprints: 1 of them are for names not in keys",
        ),
        // A name not in keys with a bad fingerprint: still counted, never repeated.
        (
            json!({"": fp(0), "A": fp(1), "B": fp(2), long.clone(): "abc"}),
            "fingerprints: 1 of them are for names not in keys",
        ),
        (
            json!({"": fp(0), "A": fp(1), "B": upper}),
            "fingerprints: the fingerprint of B is not 32 lowercase hex characters",
        ),
        (
            json!({"": fp(0), "A": fp(1), "B": "abc"}),
            "fingerprints: the fingerprint of B is not 32 lowercase hex characters",
        ),
        (json!({"": fp(0), "A": fp(1), "B": 7}), "the push body: "),
        (json!(["A", "B"]), "the push body: "),
    ] {
        let answer = server
            .push_with(&dev, "proj", "main", &["A", "B"], None, &prints)
            .await;
        assert_error(&answer, 400, "bad_request");
        let message = answer.1["message"].as_str().unwrap();
        assert!(message.starts_with(says), "{message}");
        for shown in [upper, "0000000000", "abc", &long[..100]] {
            assert!(!message.contains(shown), "{message}");
        }
    }
    assert_error(
        &send(server.get("/env/proj/main", &dev)).await,
        404,
        "not_found",
    );
    let body = json!({
        "ciphertext": ciphertext(),
        "keys": ["A"],
        "base_version": null,
        "fingerprints": null,
    });
    assert_eq!(
        send(server.post("/env/proj/main", &dev, &body)).await.0,
        201
    );
    let (_, keys) = send(server.get("/env/proj/main/keys", &dev)).await;
    assert!(keys.get("fingerprints").is_none(), "{keys}");
}

on_each_backend! {
/// A page of versions counts the fingerprints' bytes in its budget as it counts
/// the key names': versions whose names alone would fit two to a page come one to a page
/// once their fingerprints are counted.
async fn a_page_of_versions_counts_fingerprints_in_its_byte_budget(backend: Backend) {
    let server = TestServer::on_with(backend, |s| {
        s.max_body = 16 << 20;
        s.quotas.max_keys = 100_000;
        s.quotas.max_key_len = 256;
    })
    .await;
    let dev = token("developer", &["proj"]);
    // 10 000 names of 150 bytes: about 1.5 MB of names and 1.9 MB of fingerprints each.
    let keys: Vec<String> = (0..10_000).map(|i| format!("{i:0>150}")).collect();
    let mut prints: serde_json::Map<String, Value> =
        keys.iter().zip(1..).map(|(k, i)| (k.clone(), json!(fp(i)))).collect();
    prints.insert(String::new(), json!(fp(0)));
    let prints = Value::Object(prints);
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    for base in [None, Some(1), Some(2)] {
        let (status, body) = server.push(&dev, "proj", "bare", &keys, base).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = server
            .push_with(&dev, "proj", "printed", &keys, base, &prints)
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let sizes = |branch: &'static str| {
        let (server, dev) = (&server, &dev);
        async move {
            let mut sizes = Vec::new();
            let mut path = format!("/env/proj/{branch}/versions?limit=100");
            loop {
                let (status, page) = send(server.get(&path, dev)).await;
                assert_eq!(status, 200);
                let versions = page["versions"].as_array().unwrap();
                sizes.push(versions.len());
                match page["next_before"].as_u64() {
                    Some(next) => {
                        path = format!("/env/proj/{branch}/versions?limit=100&before={next}");
                    }
                    None => break,
                }
            }
            sizes
        }
    };
    assert_eq!(sizes("bare").await, [2, 1]);
    assert_eq!(sizes("printed").await, [1, 1, 1]);
}
}
