//! Owner scope: an owner token with `project_ids` owns those projects only — the
//! tokens it mints, lists and revokes, the audit log it reads, the projects it reads and
//! writes; an owner token without any administers the server. Every route against every
//! role, as a table.

use crate::common::*;
use serde_json::{Value, json};

/// The callers: an administrator, an owner of p1, and p1's developer and readonly tokens.
const ROLES: [(&str, &str, &[&str]); 4] = [
    ("admin", "owner", &[]),
    ("owner-p1", "owner", &["p1"]),
    ("dev-p1", "developer", &["p1"]),
    ("ro-p1", "readonly", &["p1"]),
];

/// A route and the status each of [`ROLES`] gets, in that order.
struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    expect: [u16; 4],
}

fn case(what: &'static str, method: &'static str, path: &'static str, expect: [u16; 4]) -> Case {
    Case {
        what,
        method,
        path,
        body: None,
        expect,
    }
}

fn mint(what: &'static str, role: &str, projects: &[&str], expect: [u16; 4]) -> Case {
    Case {
        what,
        method: "POST",
        path: "/tokens",
        body: Some(json!({"email": "new@example.com", "role": role, "project_ids": projects})),
        expect,
    }
}

async fn call(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", server.url);
    let request = match method {
        "GET" => server.client.get(url),
        "POST" => server.client.post(url),
        "DELETE" => server.client.delete(url),
        other => panic!("method {other}"),
    }
    .bearer_auth(token);
    let request = match body {
        Some(body) => request.json(body),
        None => request,
    };
    send(request).await
}

/// Mints a recorded token through the API as the administrator; returns its jti.
async fn recorded(server: &TestServer, admin: &str, role: &str, projects: &[&str]) -> String {
    let body = json!({"email": "victim@example.com", "role": role, "project_ids": projects});
    let (status, minted) = send(server.post("/tokens", admin, &body)).await;
    assert_eq!(status, 201, "{minted}");
    minted["jti"].as_str().unwrap().to_owned()
}

on_each_backend! {
async fn every_route_against_every_role_follows_the_owner_s_scope(backend: Backend) {
    let server = TestServer::on(backend).await;
    let tokens: Vec<String> = ROLES
        .iter()
        .map(|(_, role, projects)| token(role, projects))
        .collect();
    let admin = &tokens[0];
    for project in ["p1", "p2"] {
        assert_eq!(
            server.push(admin, project, "main", &["A"], None).await.0,
            201
        );
    }

    let push = |path: &'static str| Case {
        what: path,
        method: "POST",
        path,
        body: Some(json!({"ciphertext": ciphertext(), "keys": ["A"], "base_version": null})),
        expect: [0; 4],
    };
    let mut cases = vec![
        // Projects: an owner of p1 reads and writes p1 like an administrator, p2 not at all.
        Case {
            expect: [201, 201, 201, 403],
            ..push("/env/p1/push-test")
        },
        Case {
            expect: [201, 403, 403, 403],
            ..push("/env/p2/push-test")
        },
        case("pull p1", "GET", "/env/p1/main", [200, 200, 200, 200]),
        case("pull p2", "GET", "/env/p2/main", [200, 403, 403, 403]),
        case("keys p1", "GET", "/env/p1/main/keys", [200, 200, 200, 200]),
        case("keys p2", "GET", "/env/p2/main/keys", [200, 403, 403, 403]),
        case(
            "versions p1",
            "GET",
            "/env/p1/main/versions",
            [200, 200, 200, 200],
        ),
        case(
            "versions p2",
            "GET",
            "/env/p2/main/versions",
            [200, 403, 403, 403],
        ),
        case("branches p1", "GET", "/env/p1", [200, 200, 200, 200]),
        case("branches p2", "GET", "/env/p2", [200, 403, 403, 403]),
        // Audit: a project's log for its owners; the whole log for administrators.
        case("audit p1", "GET", "/audit/p1", [200, 200, 403, 403]),
        case("audit p2", "GET", "/audit/p2", [200, 403, 403, 403]),
        case("audit, every event", "GET", "/audit", [200, 403, 403, 403]),
        case("token list", "GET", "/tokens", [200, 200, 403, 403]),
        // The dashboard's routes: what each may read, and the chain for
        // administrators only (it spans every project).
        case("projects", "GET", "/projects", [200, 200, 200, 200]),
        case("matrix p1", "GET", "/matrix/p1", [200, 200, 200, 200]),
        case("matrix p2", "GET", "/matrix/p2", [200, 403, 403, 403]),
        case("audit chain", "GET", "/audit-chain", [200, 403, 403, 403]),
        case(
            "audit p1, filtered",
            "GET",
            "/audit/p1?action=push&outcome=ok",
            [200, 200, 403, 403],
        ),
        // Minting: an owner of p1 only for p1, never an unscoped token.
        mint(
            "mint developer p1",
            "developer",
            &["p1"],
            [201, 201, 403, 403],
        ),
        mint("mint owner p1", "owner", &["p1"], [201, 201, 403, 403]),
        mint(
            "mint developer p2",
            "developer",
            &["p2"],
            [201, 403, 403, 403],
        ),
        mint(
            "mint developer p1+p2",
            "developer",
            &["p1", "p2"],
            [201, 403, 403, 403],
        ),
        mint(
            "mint developer, no project",
            "developer",
            &[],
            [201, 403, 403, 403],
        ),
        mint("mint administrator", "owner", &[], [201, 403, 403, 403]),
    ];
    // Fresh push targets per role, so every push is a first push (base null).
    let mut answers = Vec::new();
    for case in cases.drain(..) {
        let mut got = [0u16; 4];
        for (i, token) in tokens.iter().enumerate() {
            let path = if case.method == "POST" && case.path.starts_with("/env/") {
                format!("{}-{i}", case.path)
            } else {
                case.path.to_owned()
            };
            let answer = call(&server, token, case.method, &path, case.body.as_ref()).await;
            if answer.0 >= 400 {
                assert_error(&answer, answer.0, answer.1["error"].as_str().unwrap());
            }
            got[i] = answer.0;
        }
        answers.push((case.what, got, case.expect));
    }

    // Revoking: each attempt on a token of its own, minted for it by the administrator.
    for (what, victim_role, victim_projects, expect) in [
        (
            "revoke developer p1",
            "developer",
            &["p1"][..],
            [204, 204, 403, 403],
        ),
        (
            "revoke developer p2",
            "developer",
            &["p2"][..],
            [204, 403, 403, 403],
        ),
        (
            "revoke developer p1+p2",
            "developer",
            &["p1", "p2"][..],
            [204, 403, 403, 403],
        ),
        (
            "revoke administrator",
            "owner",
            &[][..],
            [204, 403, 403, 403],
        ),
    ] {
        let mut got = [0u16; 4];
        for (i, token) in tokens.iter().enumerate() {
            let jti = recorded(&server, admin, victim_role, victim_projects).await;
            let answer = call(&server, token, "DELETE", &format!("/tokens/{jti}"), None).await;
            got[i] = answer.0;
        }
        answers.push((what, got, expect));
    }
    let wrong: Vec<String> = answers
        .iter()
        .filter(|(_, got, expect)| got != expect)
        .map(|(what, got, expect)| {
            format!("{what}: got {got:?}, expected {expect:?} for {ROLES:?}")
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // What an owner of p1 lists: only tokens limited to p1; the administrator sees all.
    let (_, listed) = call(&server, &tokens[1], "GET", "/tokens", None).await;
    let listed = listed.as_array().unwrap();
    assert!(!listed.is_empty());
    assert!(
        listed.iter().all(|t| t["project_ids"] == json!(["p1"])),
        "{listed:?}"
    );
    let (_, all) = call(&server, admin, "GET", "/tokens", None).await;
    assert!(all.as_array().unwrap().len() > listed.len());

    // What an owner of p1 reads of the audit log: p1's events only.
    let (_, page) = call(&server, &tokens[1], "GET", "/audit/p1?limit=500", None).await;
    assert!(
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["project"] == "p1")
    );

    // Refusals are audited like every 403, with the refused token's identity.
    let refused_mints = server
        .store
        .count(
            "SELECT COUNT(*) FROM audit WHERE action = 'token.mint' AND outcome = 'forbidden'
             AND actor = 'owner@example.com' AND detail LIKE '%jti-owner-p1%'",
        )
        .await;
    assert_eq!(refused_mints, 4, "the four mints out of p1's scope");
}
}

on_each_backend! {
async fn a_scoped_owner_cannot_widen_its_scope_through_the_tokens_it_mints(backend: Backend) {
    let server = TestServer::on(backend).await;
    let owner_p1 = token("owner", &["p1"]);
    // Minted for p1, the new owner token is as narrow as its maker…
    let (status, minted) = send(server.post(
        "/tokens",
        &owner_p1,
        &json!({"email": "co-owner@example.com", "role": "owner", "project_ids": ["p1"]}),
    ))
    .await;
    assert_eq!(status, 201, "{minted}");
    let co_owner = minted["token"].as_str().unwrap();
    assert_error(
        &send(server.get("/env/p2", co_owner)).await,
        403,
        "forbidden",
    );
    assert_error(
        &send(server.get("/audit", co_owner)).await,
        403,
        "forbidden",
    );
    assert_eq!(
        server.push(co_owner, "p1", "main", &["A"], None).await.0,
        201
    );
    // …and the request that would make it an administrator is refused, with nothing minted.
    let (_, before) = send(server.get("/tokens", &token("owner", &[]))).await;
    assert_error(
        &send(server.post(
            "/tokens",
            &owner_p1,
            &json!({"email": "x@example.com", "role": "owner", "project_ids": []}),
        ))
        .await,
        403,
        "forbidden",
    );
    let (_, after) = send(server.get("/tokens", &token("owner", &[]))).await;
    assert_eq!(before, after);
}
}
