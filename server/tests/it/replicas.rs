//! Several servers on one PostgreSQL database: racing writers spread over three
//! replicas, a revocation seen by every replica within a second, the first owner token
//! printed once, a replica killed mid-push, `copy` from SQLite to PostgreSQL and back,
//! and database URLs that never show their password.

use crate::common::*;
use envsync_server::store::chain::Verdict;
use serde_json::{Value, json};
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ENV: &[(&str, &str)] = &[("ENVSYNC_JWT_SECRET", SECRET)];

/// `n` replicas on `db`, started at the same time.
fn replicas(db: &TestDb, n: usize) -> Vec<Binary> {
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let arg = db.arg.clone();
            std::thread::spawn(move || Binary::start(&arg, ENV))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// What a killed replica printed after its listening line.
fn rest_of_stdout(server: &mut Binary) -> String {
    server.kill();
    let mut rest = String::new();
    server.stdout.read_to_string(&mut rest).unwrap();
    rest
}

/// Runs the binary to completion with `args`: (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envsync-server"));
    cmd.args(args)
        .env_remove("ENVSYNC_JWT_SECRET")
        .env_remove("ENVSYNC_DB")
        .env_remove("ENVSYNC_JWT_SECRET_FILE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// A push loop that compare-and-swaps until it has `pushes` versions: the versions it got
/// and any status other than 201 and 409.
async fn cas_writer(url: String, token: String, w: usize, pushes: usize) -> (Vec<u64>, Vec<u16>) {
    let client = reqwest::Client::new();
    let mut base: Option<u64> = None;
    let (mut accepted, mut other) = (Vec::new(), Vec::new());
    for attempt in 0..pushes * 200 {
        if accepted.len() == pushes {
            break;
        }
        let body = json!({"ciphertext": ciphertext(), "keys": [format!("W{w}_{attempt}")], "base_version": base});
        let (status, answer) = send(client.post(&url).bearer_auth(&token).json(&body)).await;
        match status {
            201 => {
                let v = answer["version"].as_u64().unwrap();
                accepted.push(v);
                base = Some(v);
            }
            409 => base = answer["current_version"].as_u64(),
            s => other.push(s),
        }
    }
    (accepted, other)
}

/// 16 writers compare-and-swapping on one branch, spread over three replicas,
/// with readers on all three: versions 1..N without a gap, no 5xx, one intact chain; the
/// first owner token printed by exactly one replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_database_serve_racing_writers_without_a_gap() {
    const WRITERS: usize = 16;
    const PUSHES: usize = 10;
    const READERS: usize = 12;
    let db = TestDb::new(Backend::Postgres).await;
    let mut servers = replicas(&db, 3);
    let dev = token("developer", &["proj"]);
    let readonly = token("readonly", &["proj"]);
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("{}/env/proj/main", s.url))
        .collect();
    let seed = send(
        reqwest::Client::new()
            .post(&urls[0])
            .bearer_auth(&dev)
            .json(&json!({"ciphertext": ciphertext(), "keys": ["SEED"], "base_version": null})),
    )
    .await;
    assert_eq!(seed.0, 201, "{}", seed.1);

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(cas_writer(urls[w % 3].clone(), dev.clone(), w, PUSHES)))
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (url, token) = (urls[r % 3].clone(), readonly.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut last, mut bad) = (0, Vec::new());
                for _ in 0..30 {
                    let (status, env) = send(client.get(&url).bearer_auth(&token)).await;
                    if status != 200 {
                        bad.push(status);
                        continue;
                    }
                    let v = env["version"].as_u64().unwrap();
                    assert!(v >= last, "a reader saw the version go back");
                    last = v;
                }
                bad
            })
        })
        .collect();
    let mut accepted = vec![1u64];
    for task in writers {
        let (versions, other) = task.await.unwrap();
        assert!(other.is_empty(), "pushes answered {other:?}");
        assert_eq!(versions.len(), PUSHES, "a writer gave up");
        accepted.extend(versions);
    }
    for task in readers {
        let bad = task.await.unwrap();
        assert!(bad.is_empty(), "pulls answered {bad:?}");
    }
    let total = (1 + WRITERS * PUSHES) as u64;
    accepted.sort_unstable();
    assert_eq!(accepted, (1..=total).collect::<Vec<_>>());
    // Every replica lists the same versions.
    for server in &servers {
        let versions = all_versions(
            &reqwest::Client::new(),
            &format!("{}/env/proj/main/versions", server.url),
            &dev,
        )
        .await;
        let listed: Vec<u64> = versions
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        assert_eq!(listed, (1..=total).rev().collect::<Vec<_>>());
    }
    let verdict = db.verify().await;
    assert!(matches!(verdict, Verdict::Intact { .. }), "{verdict}");
    for server in &servers {
        let log = server.stderr();
        assert!(!log.contains("status=5"), "a 5xx in the access log:\n{log}");
        assert!(!log.contains("ERROR"), "errors in the server log:\n{log}");
    }
    // The three started together on an empty database: one printed the owner token.
    let printed: Vec<String> = servers.iter_mut().map(rest_of_stdout).collect();
    let announcing: Vec<&String> = printed
        .iter()
        .filter(|out| out.starts_with("owner token"))
        .collect();
    assert_eq!(announcing.len(), 1, "{printed:?}");
    assert_eq!(
        printed.iter().filter(|out| out.is_empty()).count(),
        2,
        "{printed:?}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM audit WHERE action = 'token.mint'")
            .await,
        1
    );
    // The printed token works on every replica of a later start.
    let owner = announcing[0].lines().nth(1).unwrap().to_owned();
    let again = replicas(&db, 2);
    for server in &again {
        let (status, who) = send(
            reqwest::Client::new()
                .get(format!("{}/whoami", server.url))
                .bearer_auth(&owner),
        )
        .await;
        assert_eq!(status, 200, "{who}");
        assert_eq!(who["role"], "owner");
    }
}

/// A token revoked on replica A is refused (401) by replica C within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_replica_is_refused_by_every_replica_within_a_second() {
    let db = TestDb::new(Backend::Postgres).await;
    let servers = replicas(&db, 3);
    let (a, c) = (&servers[0], &servers[2]);
    let client = reqwest::Client::new();
    let owner = token("owner", &[]);
    let (status, minted) = send(
        client
            .post(format!("{}/tokens", a.url))
            .bearer_auth(&owner)
            .json(&json!({"email": "leaver@example.com", "role": "developer", "project_ids": ["proj"]})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let leaver = minted["token"].as_str().unwrap().to_owned();
    let jti = minted["jti"].as_str().unwrap().to_owned();
    for server in &servers {
        let (status, _) = send(
            client
                .get(format!("{}/whoami", server.url))
                .bearer_auth(&leaver),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = send(
        client
            .delete(format!("{}/tokens/{jti}", a.url))
            .bearer_auth(&owner),
    )
    .await;
    assert_eq!(status, 204);
    let revoked = Instant::now();
    // A refuses at once (its own list); C learns of it from the database.
    let (status, _) = send(client.get(format!("{}/whoami", a.url)).bearer_auth(&leaver)).await;
    assert_eq!(status, 401);
    for replica in [c, &servers[1]] {
        loop {
            let (status, body) = send(
                client
                    .get(format!("{}/env/proj/main/keys", replica.url))
                    .bearer_auth(&leaver),
            )
            .await;
            if status == 401 {
                assert_eq!(body["message"], "the token has been revoked");
                break;
            }
            assert_eq!(status, 404, "{body}");
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "replica {} still accepts the revoked token after a second",
                replica.url
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// SIGKILL of a replica in the middle of pushes loses no acknowledged push; the
/// other replica serves every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_push_loses_no_acknowledged_push() {
    let db = TestDb::new(Backend::Postgres).await;
    let mut servers = replicas(&db, 2);
    let dev = token("developer", &["proj"]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acked: Vec<u64> = Vec::new();
    let mut base: Option<u64> = None;
    for iteration in 0..8u64 {
        let url = format!("{}/env/proj/main", servers[0].url);
        let count = Arc::new(AtomicUsize::new(0));
        let pusher = {
            let (client, dev, count) = (client.clone(), dev.clone(), count.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut base = base;
                for i in 0..500 {
                    let body = json!({"ciphertext": ciphertext(), "keys": [format!("K{i}")], "base_version": base});
                    let Ok(response) = client.post(&url).bearer_auth(&dev).json(&body).send().await
                    else {
                        break;
                    };
                    let status = response.status().as_u16();
                    let Ok(answer) = response.json::<Value>().await else {
                        break;
                    };
                    match status {
                        201 => {
                            let v = answer["version"].as_u64().unwrap();
                            got.push(v);
                            base = Some(v);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        409 => base = answer["current_version"].as_u64(),
                        other => panic!("push answered {other}: {answer}"),
                    }
                }
                (got, base)
            })
        };
        // Kill after 1–4 acknowledged pushes, 0–3 ms into whatever comes next.
        let after = 1 + (iteration % 4) as usize;
        let started = Instant::now();
        while count.load(Ordering::SeqCst) < after {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no pushes acknowledged"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(Duration::from_micros(iteration * 400)).await;
        servers[0].kill();
        let (got, next) = pusher.await.unwrap();
        acked.extend(got);
        base = next;
        // The surviving replica has every acknowledged version.
        let listed: Vec<u64> = all_versions(
            &client,
            &format!("{}/env/proj/main/versions", servers[1].url),
            &dev,
        )
        .await
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
        for v in &acked {
            assert!(
                listed.contains(v),
                "iteration {iteration}: acknowledged version {v} lost"
            );
        }
        let max = listed.first().copied().unwrap_or(0);
        assert_eq!(listed.len() as u64, max, "gaps: {listed:?}");
        servers[0] = Binary::start(&db.arg, ENV);
    }
    assert!(acked.len() >= 8);
    let verdict = db.verify().await;
    assert!(matches!(verdict, Verdict::Intact { .. }), "{verdict}");
}

/// What a server shows of its data: `/versions` of each branch, `/audit`, `/tokens`.
async fn snapshot(url: &str) -> (Vec<Value>, Vec<Value>, Value) {
    let client = reqwest::Client::new();
    let owner = token("owner", &[]);
    let mut versions = Vec::new();
    for branch in ["main", "feature%2Fx"] {
        versions.extend(
            all_pages(
                &client,
                &format!("{url}/env/proj/{branch}/versions"),
                &owner,
                "versions",
            )
            .await,
        );
    }
    let audit = all_pages(&client, &format!("{url}/audit"), &owner, "events").await;
    let (status, tokens) = send(client.get(format!("{url}/tokens")).bearer_auth(&owner)).await;
    assert_eq!(status, 200);
    (versions, audit, tokens)
}

/// `copy` from a populated SQLite database to PostgreSQL and back gives the same
/// `/versions`, `/audit` and `audit verify` head; a non-empty target is refused unless
/// `--replace`; a revoked token stays revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_moves_everything_to_postgres_and_back_with_the_chain_intact() {
    let sqlite = TestDb::new(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    let owner = token("owner", &[]);
    let dev = token("developer", &["proj"]);
    let revoked_jti;
    let before = {
        let server = Binary::start(&sqlite.arg, ENV);
        let mut base = None;
        for i in 0..12 {
            let branch = if i % 3 == 0 { "feature%2Fx" } else { "main" };
            let base_here = if branch == "main" { base } else { None };
            let (status, body) = send(
                client
                    .post(format!("{}/env/proj/{branch}", server.url))
                    .bearer_auth(&dev)
                    .json(&json!({"ciphertext": ciphertext(), "keys": [format!("K{i}")], "base_version": base_here})),
            )
            .await;
            if branch == "main" {
                assert_eq!(status, 201, "{body}");
                base = body["version"].as_u64();
            }
        }
        assert_eq!(
            send(
                client
                    .get(format!("{}/env/proj/main", server.url))
                    .bearer_auth(&dev)
            )
            .await
            .0,
            200
        );
        assert_eq!(
            send(
                client
                    .get(format!("{}/audit", server.url))
                    .bearer_auth(&dev)
            )
            .await
            .0,
            403
        );
        let (_, minted) = send(
            client
                .post(format!("{}/tokens", server.url))
                .bearer_auth(&owner)
                .json(&json!({"email": "gone@example.com", "role": "readonly", "project_ids": ["proj"]})),
        )
        .await;
        revoked_jti = minted["jti"].as_str().unwrap().to_owned();
        let revoked_token = minted["token"].as_str().unwrap().to_owned();
        let (status, _) = send(
            client
                .delete(format!("{}/tokens/{revoked_jti}", server.url))
                .bearer_auth(&owner),
        )
        .await;
        assert_eq!(status, 204);
        let snapshot = snapshot(&server.url).await;
        (snapshot, revoked_token)
    };
    let (before, revoked_token) = before;
    let (code, sqlite_head, err) = run(&["audit", "verify", "--db", &sqlite.arg], &[]);
    assert_eq!(code, 0, "{err}");

    // SQLite → PostgreSQL.
    let pg = TestDb::new(Backend::Postgres).await;
    let (code, out, err) = run(&["copy", "--from", &sqlite.arg, "--to", &pg.arg], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out, sqlite_head,
        "the copy's verdict and head are the source's"
    );
    assert!(err.contains("copied 1 tokens, 9 versions"), "{err}");
    assert!(!err.contains('\r'), "a progress bar on a pipe: {err:?}");
    let (code, pg_head, _) = run(&["audit", "verify", "--db", &pg.arg], &[]);
    assert_eq!((code, &pg_head), (0, &sqlite_head));
    {
        let server = Binary::start(&pg.arg, ENV);
        let after = snapshot(&server.url).await;
        assert_eq!(after, before);
        let (status, body) = send(
            client
                .get(format!("{}/env/proj/main/keys", server.url))
                .bearer_auth(&revoked_token),
        )
        .await;
        assert_eq!(status, 401, "{body}");
        // It goes on from the copied chain.
        assert_eq!(
            send(
                client
                    .get(format!("{}/env/proj/main", server.url))
                    .bearer_auth(&dev)
            )
            .await
            .0,
            200
        );
    }
    let (code, grown, _) = run(&["audit", "verify", "--db", &pg.arg], &[]);
    assert_eq!(code, 0, "{grown}");
    assert_ne!(grown, sqlite_head);

    // A target holding data is refused, then replaced when told.
    let (code, out, err) = run(&["copy", "--from", &sqlite.arg, "--to", &pg.arg], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.starts_with("error: the target postgres://"), "{err}");
    assert!(
        err.contains("already holds data") && err.contains("hint: pass --replace"),
        "{err}"
    );
    let (code, out, err) = run(
        &["copy", "--from", &sqlite.arg, "--to", &pg.arg, "--replace"],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, sqlite_head);

    // PostgreSQL → a new SQLite file.
    let back = sqlite.path.with_file_name("back.db");
    let back_arg = back.display().to_string();
    let (code, out, err) = run(&["copy", "--from", &pg.arg, "--to", &back_arg], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, sqlite_head);
    let server = Binary::start(&back_arg, ENV);
    assert_eq!(snapshot(&server.url).await, before);
    let audit_ids: Vec<u64> = before.1.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(audit_ids.first(), Some(&(audit_ids.len() as u64)));
    assert!(
        before
            .2
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["jti"] == revoked_jti && t["revoked"] == true)
    );
}

/// A database URL may hold a password: it is never printed, in an error, a log
/// or `--help`; a PostgreSQL store without a shared secret is refused with a hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_urls_never_show_their_password() {
    const PASSWORD: &str = "pw-sentinel-4c1d";
    // Nothing listens on port 1 of the loopback address: the connection is refused.
    let url = format!("postgres://envsync:{PASSWORD}@127.0.0.1:1/envsync");
    for (args, env, code) in [
        (vec!["--addr", "127.0.0.1:0", "--db", &url], ENV.to_vec(), 1),
        (vec!["audit", "verify", "--db", &url], vec![], 2),
        (
            vec!["token", "--email", "a@b", "--role", "owner", "--db", &url],
            ENV.to_vec(),
            1,
        ),
        (
            vec!["copy", "--from", &url, "--to", "/nonexistent/x.db"],
            vec![],
            1,
        ),
        (
            vec!["--addr", "127.0.0.1:0"],
            vec![
                ("ENVSYNC_DB", url.as_str()),
                ("ENVSYNC_LOG", "trace"),
                ENV[0],
            ],
            1,
        ),
    ] {
        let (got, out, err) = run(&args, &env);
        assert_eq!(got, code, "{args:?}: {out}{err}");
        assert!(
            err.lines().any(|l| l.starts_with("error: ")),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("postgres://envsync@127.0.0.1:1/envsync"),
            "{args:?}: {err}"
        );
        assert!(
            !out.contains(PASSWORD) && !err.contains(PASSWORD),
            "{args:?}: {out}{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, help, _) = run(&["--help"], &[("ENVSYNC_DB", url.as_str())]);
    assert_eq!(code, 0);
    assert!(!help.contains(PASSWORD), "{help}");
    // A URL that cannot be parsed: one line, exit 2, not repeated.
    let bad = format!("postgres://envsync:{PASSWORD}@127.0.0.1:1/envsync?sslmode=bogus");
    let (code, out, err) = run(&["--addr", "127.0.0.1:0", "--db", &bad], ENV);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.starts_with("error: ENVSYNC_DB: "), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    // Replicas must share a secret: without one, a PostgreSQL store is refused.
    let db = TestDb::new(Backend::Postgres).await;
    let (code, out, err) = run(&["--addr", "127.0.0.1:0", "--db", &db.arg], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("needs the JWT secret every server on it shares"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
    assert!(out.is_empty());
}

/// Each project has its own audit chain, so its own lock: while one project's
/// chain is locked (as a batch of another server holds it), pushes to another project go
/// through, and the locked project's push waits, then lands; every chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_s_chain_lock_holds_up_no_other_project() {
    use envsync_server::store::postgres::lane;
    let server = Arc::new(TestServer::on(Backend::Postgres).await);
    // A project whose writes go to another writer lane than "busy"'s.
    let free = (0..)
        .map(|i| format!("free{i}"))
        .find(|p| lane(Some(p)) != lane(Some("busy")))
        .unwrap();
    let dev = token("developer", &["busy", &free]);
    // Another server's batch on project "busy", holding its chain's lock.
    let (mut holder, connection) =
        tokio_postgres::connect(&server.store.arg, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let tx = holder.transaction().await.unwrap();
    // The class of the chains' locks (`CHAIN_LOCKS` in the writer), keyed by the project.
    tx.execute(
        "SELECT pg_advisory_xact_lock(1701738033, hashtext('busy'))",
        &[],
    )
    .await
    .unwrap();
    let waiting = {
        let (server, dev) = (server.clone(), dev.clone());
        tokio::spawn(async move { server.push(&dev, "busy", "main", &["A"], None).await })
    };
    for base in [None, Some(1), Some(2)] {
        let answer = server.push(&dev, &free, "main", &["A"], base).await;
        assert_eq!(answer.0, 201, "{}", answer.1);
    }
    assert!(!waiting.is_finished(), "a push went through a locked chain");
    tx.rollback().await.unwrap();
    let answer = waiting.await.unwrap();
    assert_eq!(answer, (201, json!({"version": 1})));
    // Two project chains and no server chain: one head each.
    let Verdict::Intact { rows: 4, heads } = server.store.verify().await else {
        panic!("not intact")
    };
    assert_eq!(heads.len(), 2);
}

/// A PostgreSQL database where a commit would not be durable (`synchronous_commit = off`
/// for its sessions) is refused at start: exit 1, one `error:` line naming the setting
/// and how to turn it back on, and the same for `token`, which opens the store too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_without_durable_commits_is_refused_at_start() {
    let pg = TestDb::new(Backend::Postgres).await;
    pg.exec(
        "DO $$ BEGIN
             EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', current_database());
         END $$;",
    )
    .await
    .unwrap();
    for args in [
        vec!["--addr", "127.0.0.1:0", "--db", &pg.arg],
        vec![
            "token", "--email", "a@b", "--role", "owner", "--db", &pg.arg,
        ],
    ] {
        let (code, out, err) = run(&args, ENV);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {err}");
        assert!(
            errors[0].contains("synchronous_commit is off")
                && errors[0].contains("would not be durable")
                && errors[0].contains("SET synchronous_commit = on"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(
        pg.count("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'audit'")
            .await,
        0
    );
}

/// PostgreSQL audit ids come from a sequence and may have gaps (an insert rolled back
/// still took its number). `copy` to SQLite keeps the ids as they are: the copy verifies
/// with the source's head, and a server on it goes on chaining after the highest id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_from_postgres_whose_audit_ids_have_gaps_verifies_and_goes_on() {
    let pg = TestDb::new(Backend::Postgres).await;
    let client = reqwest::Client::new();
    let dev = token("developer", &["proj"]);
    let push = |url: &str, base: Option<u64>| {
        client
            .post(format!("{url}/env/proj/main"))
            .bearer_auth(&dev)
            .json(&json!({"ciphertext": ciphertext(), "keys": ["A"], "base_version": base}))
    };
    {
        let server = Binary::start(&pg.arg, ENV);
        assert_eq!(send(push(&server.url, None)).await.0, 201);
        // A push whose audit insert fails is rolled back, its id taken all the same.
        pg.fail_audit_inserts(true).await;
        assert_eq!(send(push(&server.url, Some(1))).await.0, 500);
        pg.fail_audit_inserts(false).await;
        pg.exec("SELECT nextval('audit_ids')").await.unwrap();
        assert_eq!(send(push(&server.url, Some(1))).await.0, 201);
    }
    let ids: Vec<i64> = pg
        .rows("SELECT id FROM audit ORDER BY id")
        .await
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    // Two pushes, and the first owner token this first start minted.
    assert_eq!(ids.len(), 3);
    let highest = *ids.last().unwrap();
    assert!(highest > ids.len() as i64, "no gap: {ids:?}");
    let (code, head, err) = run(&["audit", "verify", "--db", &pg.arg], &[]);
    assert_eq!(code, 0, "{head}{err}");

    let sqlite = TestDb::new(Backend::Sqlite).await;
    let (code, out, err) = run(&["copy", "--from", &pg.arg, "--to", &sqlite.arg], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, head, "the copy's verdict and head are the source's");
    let copied: Vec<i64> = sqlite
        .rows("SELECT id FROM audit ORDER BY id")
        .await
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(copied, ids);
    {
        let server = Binary::start(&sqlite.arg, ENV);
        assert_eq!(send(push(&server.url, Some(2))).await.0, 201);
    }
    let (code, out, err) = run(&["audit", "verify", "--db", &sqlite.arg], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok (4 rows)\nhead "), "{out}");
    assert_eq!(
        sqlite.count("SELECT MAX(id) FROM audit").await,
        highest + 1,
        "the next row follows the highest id"
    );
}
