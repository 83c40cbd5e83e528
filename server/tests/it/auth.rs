//! Tokens (B) and roles (C) against a real server.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

/// Every authenticated route, for "this token gets X everywhere" checks.
const READ_PATHS: &[&str] = &[
    "/env/proj/main",
    "/env/proj/main/keys",
    "/env/proj/main/versions",
    "/env/proj",
];

fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_401() {
    // Over a hundred refusals from one address: rate limiting (tested in `limits`) would
    // turn them into 429s, so it is off here.
    let server = TestServer::start_with(|s| s.auth_limit.max_failures = 0).await;
    let owner = token("owner", &[]);
    assert_eq!(
        server.push(&owner, "proj", "main", &["A"], None).await.0,
        201
    );

    let good = claims("owner", &[]);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        change(&mut c);
        sign(&c, SECRET, Algorithm::HS256)
    };
    let mut flipped = owner.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();

    let cases: Vec<(&str, String)> = vec![
        ("garbled", "not-a-jwt".into()),
        ("three garbled parts", "a.b.c".into()),
        (
            "alg none",
            unsigned(&json!({"alg": "none", "typ": "JWT"}), &good, ""),
        ),
        (
            "alg none with a signature",
            unsigned(&json!({"alg": "none", "typ": "JWT"}), &good, "c2ln"),
        ),
        (
            "wrong secret",
            sign(
                &good,
                "another-secret-0123456789abcdefghijklmnop",
                Algorithm::HS256,
            ),
        ),
        ("wrong algorithm", sign(&good, SECRET, Algorithm::HS512)),
        ("flipped signature", flipped),
        ("expired", with(&|c| c["exp"] = json!(now() - 120))),
        (
            "missing exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "exp as a string",
            with(&|c| c["exp"] = json!((now() + 3600).to_string())),
        ),
        ("exp as null", with(&|c| c["exp"] = Value::Null)),
        ("nbf as a string", with(&|c| c["nbf"] = json!("0"))),
        (
            "nbf in the future",
            with(&|c| c["nbf"] = json!(now() + 3600)),
        ),
        (
            "project_ids as a string",
            with(&|c| c["project_ids"] = json!("proj")),
        ),
        (
            "project_ids as null",
            with(&|c| c["project_ids"] = Value::Null),
        ),
        (
            "project_ids as an object",
            with(&|c| c["project_ids"] = json!({"proj": true})),
        ),
        (
            "project_ids with a number",
            with(&|c| c["project_ids"] = json!([1])),
        ),
        ("unknown role", with(&|c| c["role"] = json!("admin"))),
        (
            "missing jti",
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        (
            "missing email",
            with(&|c| {
                c.as_object_mut().unwrap().remove("email");
            }),
        ),
        // Headers and claims the server cannot check.
        (
            "crit header",
            with_header(
                &good,
                Header {
                    crit: Some(vec!["exp".into()]),
                    ..Header::new(Algorithm::HS256)
                },
            ),
        ),
        (
            "kid header",
            with_header(
                &good,
                Header {
                    kid: Some("key-1".into()),
                    ..Header::new(Algorithm::HS256)
                },
            ),
        ),
        (
            "jku header",
            with_header(
                &good,
                Header {
                    jku: Some("https://keys.example/jwks.json".into()),
                    ..Header::new(Algorithm::HS256)
                },
            ),
        ),
        (
            "typ other than JWT",
            with_header(
                &good,
                Header {
                    typ: Some("at+jwt".into()),
                    ..Header::new(Algorithm::HS256)
                },
            ),
        ),
        (
            "aud when none is configured",
            with(&|c| c["aud"] = json!("envsync")),
        ),
        (
            "iss when none is configured",
            with(&|c| c["iss"] = json!("someone")),
        ),
        ("an unknown claim", with(&|c| c["scope"] = json!("read"))),
    ];
    for (name, bad) in &cases {
        for path in READ_PATHS.iter().chain(&["/audit/proj", "/tokens"]) {
            let answer = send(server.get(path, bad)).await;
            assert_error(&answer, 401, "unauthorized");
            let message = answer.1["message"].as_str().unwrap();
            assert!(!message.contains(bad.as_str()), "{name}: {message}");
        }
        let answer = server.push(bad, "proj", "main", &["A"], Some(1)).await;
        assert_eq!(answer.0, 401, "{name}: {}", answer.1);
    }

    // No token, or not a bearer token.
    let none = server.client.get(format!("{}/env/proj/main", server.url));
    assert_error(&send(none).await, 401, "unauthorized");
    let basic = server
        .client
        .get(format!("{}/env/proj/main", server.url))
        .header("Authorization", "Basic b3duZXI6cGFzcw==");
    assert_error(&send(basic).await, 401, "unauthorized");
    let empty = server
        .client
        .get(format!("{}/env/proj/main", server.url))
        .header("Authorization", "Bearer ");
    assert_error(&send(empty).await, 401, "unauthorized");

    // No typ at all, or "JWT" in any case, is fine.
    for typ in [None, Some("jwt")] {
        let header = Header {
            typ: typ.map(str::to_owned),
            ..Header::new(Algorithm::HS256)
        };
        let answer = send(server.get("/env/proj/main", &with_header(&good, header))).await;
        assert_eq!(answer.0, 200, "typ {typ:?}: {}", answer.1);
    }
    let refused = send(server.get("/env/proj/main", &with(&|c| c["aud"] = json!("envsync")))).await;
    assert_eq!(
        refused.1["message"],
        "the token has an 'aud' claim, which this server is not configured to check"
    );
    let refused = send(server.get("/env/proj/main", &with(&|c| c["scope"] = json!("read")))).await;
    assert_eq!(
        refused.1["message"],
        "the token carries a claim this server cannot check ('scope')"
    );

    // Expired, but within the 30 s leeway: still accepted.
    let recent = with(&|c| c["exp"] = json!(now() - 5));
    assert_eq!(send(server.get("/env/proj/main", &recent)).await.0, 200);
    // Nothing changed through any of that.
    let (_, keys) = send(server.get("/env/proj/main/keys", &owner)).await;
    assert_eq!(keys["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_algorithm_issuer_and_audience_are_enforced() {
    let server = TestServer::start_with(|s| {
        s.jwt.algorithm = Algorithm::HS384;
        s.jwt.issuer = Some("envsync-test".into());
        s.jwt.audience = Some("envsync-api".into());
    })
    .await;
    let mut good = claims("owner", &[]);
    good["iss"] = json!("envsync-test");
    good["aud"] = json!("envsync-api");
    let ok = sign(&good, SECRET, Algorithm::HS384);
    assert_eq!(send(server.get("/env/proj", &ok)).await.0, 200);

    let variants: Vec<(&str, Value, Algorithm)> = vec![
        ("HS256 instead of HS384", good.clone(), Algorithm::HS256),
        ("no iss", without(&good, "iss"), Algorithm::HS384),
        (
            "other iss",
            with_field(&good, "iss", json!("someone-else")),
            Algorithm::HS384,
        ),
        ("no aud", without(&good, "aud"), Algorithm::HS384),
        (
            "other aud",
            with_field(&good, "aud", json!("other-api")),
            Algorithm::HS384,
        ),
    ];
    for (name, claims, alg) in variants {
        let bad = sign(&claims, SECRET, alg);
        let answer = send(server.get("/env/proj", &bad)).await;
        assert_eq!(answer.0, 401, "{name}: {}", answer.1);
    }
}

/// Signs `claims` with the test secret under a chosen header.
fn with_header(claims: &Value, header: Header) -> String {
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn without(claims: &Value, field: &str) -> Value {
    let mut c = claims.clone();
    c.as_object_mut().unwrap().remove(field);
    c
}

fn with_field(claims: &Value, field: &str, value: Value) -> Value {
    let mut c = claims.clone();
    c[field] = value;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_projects_are_enforced_and_refusals_audited() {
    let server = TestServer::start().await;
    let owner = token("owner", &[]);
    let dev = token("developer", &["proj"]);
    let other_dev = token("developer", &["other"]);
    let readonly = token("readonly", &["proj"]);
    let nobody = token("developer", &[]);

    assert_eq!(server.push(&dev, "proj", "main", &["A"], None).await.0, 201);
    // Owners may push anywhere.
    assert_eq!(
        server.push(&owner, "proj", "main", &["A"], Some(1)).await.0,
        201
    );

    // readonly reads but never writes.
    for path in READ_PATHS {
        assert_eq!(send(server.get(path, &readonly)).await.0, 200, "{path}");
    }
    let answer = server
        .push(&readonly, "proj", "main", &["A"], Some(2))
        .await;
    assert_error(&answer, 403, "forbidden");

    // A developer of another project, or of none, gets 403 on every route of this one.
    for who in [&other_dev, &nobody] {
        for path in READ_PATHS {
            assert_error(&send(server.get(path, who)).await, 403, "forbidden");
        }
        assert_error(
            &server.push(who, "proj", "main", &["A"], Some(2)).await,
            403,
            "forbidden",
        );
    }

    // Owner-only routes.
    let request = json!({"email": "x@example.com", "role": "owner", "project_ids": []});
    for who in [&dev, &readonly] {
        assert_error(
            &send(server.get("/audit/proj", who)).await,
            403,
            "forbidden",
        );
        assert_error(&send(server.get("/tokens", who)).await, 403, "forbidden");
        assert_error(
            &send(server.post("/tokens", who, &request)).await,
            403,
            "forbidden",
        );
        let delete = server
            .client
            .delete(format!("{}/tokens/some-jti", server.url))
            .bearer_auth(who);
        assert_error(&send(delete).await, 403, "forbidden");
    }
    // Nothing was written by the refused pushes.
    let (_, keys) = send(server.get("/env/proj/main/keys", &owner)).await;
    assert_eq!(keys["version"], 2);

    // Every 403 left an audit row with actor, action and target.
    let (_, page) = send(server.get("/audit/proj?limit=500", &owner)).await;
    let forbidden: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "forbidden")
        .collect();
    // 1 readonly push + 2 × (4 reads + 1 push) + 2 audit reads = 13 rows on project "proj".
    assert_eq!(forbidden.len(), 13, "{page}");
    assert!(
        forbidden
            .iter()
            .any(|e| e["actor"] == "readonly@example.com"
                && e["action"] == "push"
                && e["branch"] == "main")
    );
    assert!(forbidden.iter().all(|e| e["project"] == "proj"));
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    let token_refusals: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE outcome = 'forbidden' AND action LIKE 'token.%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(token_refusals, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_tokens_work_are_listed_and_revocation_is_immediate() {
    let server = TestServer::start().await;
    let owner = token("owner", &[]);
    let request = json!({
        "email": "dev@example.com",
        "role": "developer",
        "project_ids": ["proj"],
        "ttl": "1d",
    });
    let (status, minted) = send(server.post("/tokens", &owner, &request)).await;
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let jti = minted["jti"].as_str().unwrap().to_owned();
    assert!(minted["expires_at"].as_str().unwrap().ends_with('Z'));

    assert_eq!(
        server.push(&token, "proj", "main", &["A"], None).await.0,
        201
    );
    assert_error(
        &server.push(&token, "elsewhere", "main", &["A"], None).await,
        403,
        "forbidden",
    );

    let (status, list) = send(server.get("/tokens", &owner)).await;
    assert_eq!(status, 200);
    assert!(
        !list.to_string().contains(&token),
        "the token list holds a token"
    );
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["jti"] == jti.as_str())
        .unwrap();
    assert_eq!(row["email"], "dev@example.com");
    assert_eq!(row["role"], "developer");
    assert_eq!(row["project_ids"], json!(["proj"]));
    assert_eq!(row["revoked"], false);

    let delete = |jti: &str| {
        server
            .client
            .delete(format!("{}/tokens/{jti}", server.url))
            .bearer_auth(&owner)
    };
    assert_eq!(send(delete(&jti)).await, (204, Value::Null));
    assert_error(
        &send(server.get("/env/proj/main", &token)).await,
        401,
        "unauthorized",
    );
    assert_eq!(send(delete(&jti)).await.0, 204, "revoking twice is fine");
    assert_error(&send(delete("no-such-jti")).await, 404, "not_found");
    let (_, list) = send(server.get("/tokens", &owner)).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|t| t["jti"] == jti.as_str() && t["revoked"] == true)
    );

    // Revocation survives a restart: it is persisted, not only cached.
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    let revoked: Option<String> = conn
        .query_row(
            "SELECT revoked_at FROM tokens WHERE jti = ?1",
            [&jti],
            |r| r.get(0),
        )
        .unwrap();
    assert!(revoked.is_some());

    // Bad requests.
    for bad in [
        json!({"email": "", "role": "developer", "project_ids": []}),
        json!({"email": "a@b", "role": "admin", "project_ids": []}),
        json!({"email": "a@b", "role": "developer", "project_ids": ["a..b"]}),
        json!({"email": "a@b", "role": "developer", "project_ids": [], "ttl": "3x"}),
        json!({"email": "a@b", "role": "developer", "project_ids": [], "ttl": "9999d"}),
        json!({"role": "developer"}),
    ] {
        assert_error(
            &send(server.post("/tokens", &owner, &bad)).await,
            400,
            "bad_request",
        );
    }
    // The audit log has the mint and the revoke, with the jti but never the token.
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    let details: Vec<String> = conn
        .prepare(
            "SELECT action || ' ' || COALESCE(detail, '') FROM audit WHERE action LIKE 'token.%'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("token.mint") && d.contains(&jti))
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("token.revoke") && d.contains(&jti))
    );
    assert!(details.iter().all(|d| !d.contains(&token)));

    // The project-less events are in the whole-log view, owners only.
    let (status, all) = send(server.get("/audit?limit=500", &owner)).await;
    assert_eq!(status, 200, "{all}");
    let actions: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"token.mint") && actions.contains(&"token.revoke"),
        "{actions:?}"
    );
    assert!(!all.to_string().contains(&token));
    let dev = crate::common::token("developer", &["proj"]);
    assert_error(&send(server.get("/audit", &dev)).await, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_non_ascii_authorization_headers_are_refused_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let owner = token("owner", &[]);
    let huge = format!("Bearer {}", "a".repeat(64 * 1024));
    let request = format!(
        "GET /env/proj HTTP/1.1\r\nHost: x\r\nAuthorization: {huge}\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = server.raw(request.into_bytes()).await;
    assert!(status == 431 || status == 400, "{status} {body}");
    assert!(!body.contains(&huge[..200]));

    let mut request = b"GET /env/proj HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xc3\xa9t\xc3\xa9\r\nConnection: close\r\n\r\n".to_vec();
    let (status, body) = server.raw(request.clone()).await;
    assert!(status == 400 || status == 431, "{status} {body}");
    request.truncate(0);

    assert_eq!(send(server.get("/env/proj", &owner)).await.0, 200);
    let health = server.client.get(format!("{}/health", server.url));
    assert_eq!(send(health).await.0, 200);
}
