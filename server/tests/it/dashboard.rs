//! The dashboard's routes: `GET /projects`, `GET /matrix/{project}`,
//! `GET /audit-chain`, the audit filters, and the embedded page with the headers every
//! response carries. Roles and owner scope are also in `scope.rs`'s table; here: what each
//! answer holds, its pages, and bad input.

use crate::common::*;
use envsync_server::Database;
use serde_json::{Value, json};
use std::collections::BTreeSet;

async fn get(server: &TestServer, path: &str, token: &str) -> (u16, Value) {
    send(server.get(path, token)).await
}

/// Pushes `keys` as the next version of `branch` (any base: reads it first).
async fn push(server: &TestServer, token: &str, project: &str, branch: &str, keys: &[&str]) {
    let (_, latest) = get(
        server,
        &format!("/env/{project}/{}/keys", encode(branch)),
        token,
    )
    .await;
    let base = latest["version"].as_u64();
    let (status, body) = server
        .push(token, project, &encode(branch), keys, base)
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_lists_what_each_token_may_read_with_its_last_push() {
    let server = TestServer::start().await;
    let admin = token("owner", &[]);
    push(&server, &admin, "beta", "main", &["A"]).await;
    push(&server, &admin, "alpha", "main", &["A"]).await;
    push(&server, &admin, "alpha", "feature/x", &["A", "B"]).await;
    push(&server, &admin, "alpha", "main", &["A", "C"]).await;

    // An administrator sees every project that holds a version, in name order.
    let (status, page) = get(&server, "/projects", &admin).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["next_after"], Value::Null);
    let projects = page["projects"].as_array().unwrap();
    assert_eq!(projects.len(), 2, "{page}");
    assert_eq!(projects[0]["project"], "alpha");
    assert_eq!(projects[0]["branch_count"], 2);
    // The last push is the latest in time, whatever the branch's name.
    assert_eq!(projects[0]["last_push"]["branch"], "main");
    assert_eq!(projects[0]["last_push"]["version"], 2);
    assert_eq!(projects[0]["last_push"]["pushed_by"], "owner@example.com");
    assert_eq!(projects[1]["project"], "beta");
    assert_eq!(projects[1]["branch_count"], 1);

    // Any other token sees its project_ids, those without a version too.
    for (role, ids) in [
        ("developer", &["beta", "gamma"][..]),
        ("readonly", &["gamma", "beta"][..]),
        ("owner", &["beta", "gamma"][..]),
    ] {
        let (status, page) = get(&server, "/projects", &token(role, ids)).await;
        assert_eq!(status, 200, "{page}");
        let names: Vec<&str> = page["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["project"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["beta", "gamma"], "{role}");
        assert_eq!(page["projects"][1]["branch_count"], 0);
        assert_eq!(page["projects"][1]["last_push"], Value::Null);
    }
    let (status, page) = get(&server, "/projects", &token("developer", &[])).await;
    assert_eq!((status, page["projects"].clone()), (200, json!([])));

    // Pages by name.
    let (_, first) = get(&server, "/projects?limit=1", &admin).await;
    assert_eq!(first["projects"][0]["project"], "alpha");
    assert_eq!(first["next_after"], "alpha");
    let (_, second) = get(&server, "/projects?limit=1&after=alpha", &admin).await;
    assert_eq!(second["projects"][0]["project"], "beta");
    assert_eq!(second["next_after"], Value::Null);
    let reader = token("readonly", &["c", "a", "b"]);
    let (_, page) = get(&server, "/projects?limit=2&after=a", &reader).await;
    assert_eq!(page["projects"][0]["project"], "b");
    assert_eq!(page["projects"][1]["project"], "c");
    assert_eq!(page["next_after"], Value::Null);

    // Bad input: one JSON error each.
    for bad in [
        "/projects?limit=0",
        "/projects?limit=201",
        "/projects?limit=x",
        "/projects?after=a%2F..",
        "/projects?after=..",
    ] {
        assert_error(&get(&server, bad, &admin).await, 400, "bad_request");
    }
    assert_error(
        &get(&server, "/projects", "nope").await,
        401,
        "unauthorized",
    );
}

/// The matrix's columns and cells as `branch → {key: cell}`.
fn cells(page: &Value) -> Vec<(String, String)> {
    let keys: Vec<&str> = page["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    page["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let cells = b["cells"].as_str().unwrap();
            assert_eq!(cells.chars().count(), keys.len(), "{page}");
            let marks: Vec<String> = keys
                .iter()
                .zip(cells.chars())
                .map(|(k, c)| format!("{k}={c}"))
                .collect();
            (b["branch"].as_str().unwrap().to_owned(), marks.join(" "))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_compares_every_branch_with_the_default_one() {
    let server = TestServer::start().await;
    let dev = token("developer", &["p"]);
    push(&server, &dev, "p", "main", &["A", "B"]).await;
    push(&server, &dev, "p", "main", &["A", "B", "C"]).await;
    push(&server, &dev, "p", "feature/x", &["A", "D"]).await;
    push(&server, &dev, "p", "aaa", &["B"]).await;

    let (status, page) = get(&server, "/matrix/p", &token("readonly", &["p"])).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["default_branch"], "main");
    assert_eq!(page["keys"], json!(["A", "B", "C", "D"]));
    assert_eq!(page["next_after"], Value::Null);
    assert_eq!(
        cells(&page),
        [
            ("main".to_owned(), "A=p B=p C=p D=.".to_owned()),
            ("aaa".to_owned(), "A=m B=p C=m D=.".to_owned()),
            ("feature/x".to_owned(), "A=p B=m C=m D=o".to_owned()),
        ]
    );
    let main = &page["branches"][0];
    assert_eq!(
        (main["version"].clone(), main["key_count"].clone()),
        (json!(2), json!(3))
    );
    assert_eq!(
        (main["missing"].clone(), main["only"].clone()),
        (json!(0), json!(0))
    );
    let feature = &page["branches"][2];
    assert_eq!(
        (feature["missing"].clone(), feature["only"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(feature["pushed_by"], "developer@example.com");

    // Another default, asked for by name.
    let (_, page) = get(&server, "/matrix/p?default=feature%2Fx", &dev).await;
    assert_eq!(page["default_branch"], "feature/x");
    assert_eq!(
        cells(&page)[0],
        ("feature/x".to_owned(), "A=p B=. C=. D=p".to_owned())
    );
    assert_error(
        &get(&server, "/matrix/p?default=nope", &dev).await,
        404,
        "not_found",
    );

    // Without main: master; without either: the first branch by name.
    let q = token("developer", &["q", "r", "s"]);
    push(&server, &q, "q", "alpha", &["A"]).await;
    push(&server, &q, "q", "master", &["M"]).await;
    let (_, page) = get(&server, "/matrix/q", &q).await;
    assert_eq!(page["default_branch"], "master");
    push(&server, &q, "r", "zeta", &["Z"]).await;
    push(&server, &q, "r", "beta", &["B"]).await;
    let (_, page) = get(&server, "/matrix/r", &q).await;
    assert_eq!(page["default_branch"], "beta");
    // A project with no env yet.
    let (status, page) = get(&server, "/matrix/s", &q).await;
    assert_eq!(status, 200);
    assert_eq!(
        page,
        json!({"default_branch": null, "keys": [], "branches": [], "next_after": null})
    );

    // Roles: a token without the project is refused, and the refusal audited.
    assert_error(
        &get(&server, "/matrix/p", &token("developer", &["q"])).await,
        403,
        "forbidden",
    );
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    let refused: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'matrix' AND outcome = 'forbidden'
             AND project = 'p'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(refused, 1);
    assert_error(
        &get(&server, "/matrix/p", "nope").await,
        401,
        "unauthorized",
    );

    // Bad input.
    for bad in [
        "/matrix/p?limit=0",
        "/matrix/p?limit=101",
        "/matrix/p?after=a..b",
        "/matrix/p?default=-x",
        "/matrix/p?default=a%00b",
        "/matrix/a%2F..",
    ] {
        // Each is refused as input before anything is looked up: a 404 here would mean a
        // bad name reached the store.
        let answer = get(&server, bad, &token("owner", &[])).await;
        assert_eq!(answer.0, 400, "{bad}: {}", answer.1);
        assert_error(&answer, 400, "bad_request");
    }
    assert_error(
        &get(&server, "/matrix/p?limit=0", &dev).await,
        400,
        "bad_request",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_pages_many_branches_each_page_with_the_default_first() {
    let server = TestServer::start().await;
    let dev = token("developer", &["p"]);
    push(&server, &dev, "p", "main", &["SHARED"]).await;
    let mut names = BTreeSet::new();
    for i in 0..7 {
        let branch = format!("b{i}");
        let own = format!("ONLY_{i}");
        push(&server, &dev, "p", &branch, &["SHARED", &own]).await;
        names.insert(branch);
    }
    // main sorts among them: it is on every page once, first, and never as another column.
    let mut seen = BTreeSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/matrix/p?limit=3&after={}", encode(a)),
            None => "/matrix/p?limit=3".to_owned(),
        };
        let (status, page) = get(&server, &path, &dev).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let columns = cells(&page);
        assert_eq!(columns[0].0, "main", "{page}");
        assert!(columns.len() <= 4, "{page}");
        for (branch, marks) in &columns[1..] {
            assert_ne!(branch, "main");
            assert!(seen.insert(branch.clone()), "{branch} twice");
            let n = &branch[1..];
            assert!(marks.contains(&format!("ONLY_{n}=o")), "{marks}");
            assert!(marks.contains("SHARED=p"), "{marks}");
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "endless pages");
    }
    assert_eq!(seen, names);
    assert_eq!(pages, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_page_stops_at_its_byte_budget() {
    let server = TestServer::start().await;
    let dev = token("developer", &["p"]);
    push(&server, &dev, "p", "main", &["A"]).await;
    // 40 branches of 1000 distinct 120-byte names: about 4.7 MB of names in all.
    for b in 0..40 {
        let keys: Vec<String> = (0..1000)
            .map(|k| format!("K{b:02}_{k:04}_{}", "x".repeat(110)))
            .collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        push(&server, &dev, "p", &format!("b{b:02}"), &refs).await;
    }
    let mut seen = 0;
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/matrix/p?limit=100&after={a}"),
            None => "/matrix/p?limit=100".to_owned(),
        };
        let response = server.get(&path, &dev).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(text.len() < 8 << 20, "a page of {} bytes", text.len());
        let page: Value = serde_json::from_str(&text).unwrap();
        pages += 1;
        seen += page["branches"].as_array().unwrap().len() - 1;
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, 40);
    assert!(pages >= 2, "the budget ended the first page early");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_state_is_the_audit_verify_walk() {
    let server = TestServer::start().await;
    let admin = token("owner", &[]);
    push(&server, &admin, "p", "main", &["A"]).await;
    push(&server, &admin, "p", "main", &["A", "B"]).await;
    let (status, state) = get(&server, "/audit-chain", &admin).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["ok"], true);
    let rows = state["rows"].as_u64().unwrap();
    assert!(rows >= 2, "{state}");
    assert_eq!(state["message"], format!("ok ({rows} rows)"));
    // The heads (the project's chain and the server's) are what `audit verify` prints,
    // and anchor it.
    let heads: Vec<&str> = state["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(!heads.is_empty(), "{state}");
    let mut verify = std::process::Command::new(env!("CARGO_BIN_EXE_envsync-server"));
    verify.args(["audit", "verify", "--db"]).arg(&server.db);
    for head in &heads {
        verify.args(["--anchor", head]);
    }
    let out = verify.output().unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{printed}");
    for head in &heads {
        assert!(printed.contains(&format!("head {head}")), "{printed}");
    }

    // Scoped owners, developers and readonly tokens are refused.
    for t in [
        token("owner", &["p"]),
        token("developer", &["p"]),
        token("readonly", &["p"]),
    ] {
        assert_error(&get(&server, "/audit-chain", &t).await, 403, "forbidden");
    }

    // Behind the server's back, a row is edited: the route names it, as verify does.
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_append_only_update;
         UPDATE audit SET actor = 'mallory@example.com' WHERE id = 2;",
    )
    .unwrap();
    let (status, state) = get(&server, "/audit-chain", &admin).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["ok"], false);
    assert_eq!(state["bad_row"], 2);
    assert!(
        state["message"]
            .as_str()
            .unwrap()
            .starts_with("bad row 2: row 2 does not match its chain hash"),
        "{state}"
    );
    assert!(state.get("heads").is_none(), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_server_walks_its_chain_and_lists_its_projects() {
    let server = TestServer::start_with(|s| s.database = Database::Memory).await;
    let admin = token("owner", &[]);
    push(&server, &admin, "mem-b", "main", &["A"]).await;
    push(&server, &admin, "mem-a", "main", &["A"]).await;
    let (status, state) = get(&server, "/audit-chain", &admin).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["ok"], true, "{state}");
    let (status, page) = get(&server, "/projects?limit=1", &admin).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["projects"][0]["project"], "mem-a");
    assert_eq!(page["next_after"], "mem-a");
    let (_, page) = get(&server, "/projects?after=mem-a", &admin).await;
    assert_eq!(page["projects"][0]["project"], "mem-b");
    assert_eq!(page["next_after"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_filters_match_exactly_and_page_through_the_log() {
    let server = TestServer::start().await;
    let admin = token("owner", &[]);
    let dev = token("developer", &["p"]);
    push(&server, &dev, "p", "main", &["A"]).await;
    push(&server, &dev, "p", "feature/x", &["A"]).await;
    push(&server, &dev, "p", "main", &["A", "B"]).await;
    let _ = server.push(&dev, "p", "main", &["A"], Some(1)).await; // a conflict
    assert_eq!(get(&server, "/audit/p", &dev).await.0, 403); // forbidden
    let _ = get(&server, "/env/p/main", &dev).await; // a pull

    let events = |page: &Value| -> Vec<(String, String, String)> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["branch"].as_str().unwrap_or("").to_owned(),
                    e["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let (_, page) = get(&server, "/audit/p?action=push&outcome=ok", &admin).await;
    assert_eq!(
        events(&page),
        [
            ("push".into(), "main".into(), "ok".into()),
            ("push".into(), "feature/x".into(), "ok".into()),
            ("push".into(), "main".into(), "ok".into()),
        ]
    );
    let (_, page) = get(&server, "/audit/p?branch=feature%2Fx", &admin).await;
    assert_eq!(
        events(&page),
        [("push".into(), "feature/x".into(), "ok".into())]
    );
    let (_, page) = get(&server, "/audit?outcome=conflict", &admin).await;
    assert_eq!(
        events(&page),
        [("push".into(), "main".into(), "conflict".into())]
    );
    let (_, page) = get(
        &server,
        "/audit?actor=developer%40example.com&action=audit",
        &admin,
    )
    .await;
    assert_eq!(
        events(&page),
        [("audit".into(), "".into(), "forbidden".into())]
    );
    let (_, page) = get(&server, "/audit?actor=nobody", &admin).await;
    assert_eq!(page, json!({"events": [], "next_before": null}));
    // Empty values are no filter.
    let (_, all) = get(&server, "/audit/p?action=&actor=", &admin).await;
    let (_, plain) = get(&server, "/audit/p", &admin).await;
    assert_eq!(all, plain);

    // One match per page, following next_before: the same three pushes, then the end.
    let mut found = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/audit/p?action=push&outcome=ok&limit=1&before={b}"),
            None => "/audit/p?action=push&outcome=ok&limit=1".to_owned(),
        };
        let (status, page) = get(&server, &path, &admin).await;
        assert_eq!(status, 200, "{page}");
        found.extend(events(&page));
        match page["next_before"].as_u64() {
            Some(b) => before = Some(b),
            None => break,
        }
        assert!(found.len() <= 3, "{found:?}");
    }
    assert_eq!(found.len(), 3, "{found:?}");

    // Bad filters: one JSON error each.
    let long = "a".repeat(321);
    for bad in [
        format!("/audit/p?actor={long}"),
        format!("/audit?action={long}"),
        "/audit/p?action=push%0D%0Aoutcome".to_owned(),
        "/audit/p?branch=a%0Ab".to_owned(),
        "/audit?outcome=%00".to_owned(),
    ] {
        assert_error(&get(&server, &bad, &admin).await, 400, "bad_request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_page_reads_a_bounded_part_of_the_log() {
    let server = TestServer::start().await;
    let admin = token("owner", &[]);
    push(&server, &admin, "p", "rare", &["A"]).await;
    // 6000 unrelated rows after it, written straight into the file (their chain hashes are
    // fake; this test is about reading, not the chain).
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
         INSERT INTO audit (at, actor, action, project, branch, version, outcome, detail, hash)
         SELECT '2026-01-01T00:00:00Z', 'noise@example.com', 'pull', 'p', 'main', 1, 'ok',
                NULL, zeroblob(32) FROM n;",
    )
    .unwrap();
    // The first answer stops after at most 5000 rows with no match but a cursor; following
    // it finds the push.
    let (status, first) = get(&server, "/audit/p?branch=rare", &admin).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["events"], json!([]));
    let next = first["next_before"]
        .as_u64()
        .expect("a cursor to go on from");
    let (_, second) = get(
        &server,
        &format!("/audit/p?branch=rare&before={next}"),
        &admin,
    )
    .await;
    assert_eq!(second["events"][0]["branch"], "rare", "{second}");
    assert_eq!(second["next_before"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_its_headers_and_so_is_every_answer() {
    let server = TestServer::start().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/icon.svg", "image/svg+xml"),
        ("/health", "application/json"),
        ("/no-such-route", "application/json"),
        ("/env/p/main", "application/json"),
    ] {
        let response = server
            .client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let content_type = headers["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
    // The page is the embedded file, byte for byte.
    let page = server
        .client
        .get(format!("{}/", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page, envsync_server::dashboard::ASSETS[0].body);
    // Other methods on the page are refused with the JSON error, not served.
    let (status, body) = send(server.client.post(format!("{}/", server.url)).body("x")).await;
    assert!(status == 404 || status == 405, "{status} {body}");
    assert!(body["error"].is_string(), "{body}");
}

on_each_backend! {
/// A key on both a branch and the default branch whose fingerprints differ is
/// `d` (counted in `differs`); the same fingerprint, or a version without fingerprints on
/// either side, stays `p`.
async fn the_matrix_marks_values_that_differ_from_the_default_branch(backend: Backend) {
    let server = TestServer::on(backend).await;
    let dev = token("developer", &["p"]);
    let push = |branch: &'static str, keys: &'static [&'static str], prints: Value| {
        let (server, dev) = (&server, &dev);
        async move {
            let (_, latest) = get(server, &format!("/env/p/{branch}/keys"), dev).await;
            let base = latest["version"].as_u64();
            let (status, body) = server
                .push_with(dev, "p", branch, keys, base, &prints)
                .await;
            assert_eq!(status, 201, "{body}");
        }
    };
    push(
        "main",
        &["A", "B", "C", "D"],
        json!({"": fp(0), "A": fp(1), "B": fp(2), "C": fp(3), "D": fp(4)}),
    )
    .await;
    push("same", &["A", "B", "C"], json!({"": fp(0), "A": fp(1), "B": fp(2), "C": fp(3)})).await;
    push("changed", &["A", "B", "E"], json!({"": fp(0), "A": fp(1), "B": fp(9), "E": fp(5)})).await;
    push("bare", &["A", "B"], Value::Null).await;

    let (status, page) = get(&server, "/matrix/p", &dev).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        cells(&page),
        [
            ("main".to_owned(), "A=p B=p C=p D=p E=.".to_owned()),
            ("bare".to_owned(), "A=p B=p C=m D=m E=.".to_owned()),
            ("changed".to_owned(), "A=p B=d C=m D=m E=o".to_owned()),
            ("same".to_owned(), "A=p B=p C=p D=m E=.".to_owned()),
        ]
    );
    let counts: Vec<(u64, u64, u64)> = page["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let n = |f: &str| b[f].as_u64().unwrap();
            (n("missing"), n("only"), n("differs"))
        })
        .collect();
    assert_eq!(counts, [(0, 0, 0), (2, 0, 0), (2, 1, 1), (1, 0, 0)]);

    // Compared with another default, the marks follow it.
    let (_, page) = get(&server, "/matrix/p?default=changed", &dev).await;
    assert_eq!(cells(&page)[2], ("main".to_owned(), "A=p B=d C=o D=o E=m".to_owned()));

    // The default branch's latest pushed without fingerprints: nothing to compare with.
    push("main", &["A", "B", "C", "D"], Value::Null).await;
    let (_, page) = get(&server, "/matrix/p", &dev).await;
    assert_eq!(cells(&page)[2], ("changed".to_owned(), "A=p B=p C=m D=m E=o".to_owned()));
    assert_eq!(page["branches"][2]["differs"], 0);
}
}
