//! `envsync-bench server --db postgres://…` (or `--pg`, which starts a throwaway cluster
//! the way the tests do): the PostgreSQL store next to its physical limit, with one and
//! with two replicas.
//!
//! The servers are the release `envsync-server` binary, one process per replica (as they
//! would be deployed), on one fresh database each scenario; 64 clients split evenly over
//! the replicas push (each to its own branch), pull and read key lists. Next to them, in
//! the same run, the raw rate of the same PostgreSQL: a push's version row and audit row
//! per `BEGIN … COMMIT`, one durable commit each (`synchronous_commit` on), sequentially
//! from one connection, measured before and after the servers (the better is the
//! baseline). Pushes run twice: to one project (as the SQLite run), then spread over eight
//! projects. While they run, `pg_stat_activity` is sampled for backends waiting on an
//! advisory lock (a chain's): how often one writer's batch waits for another's.

use crate::lab::bin;
use crate::server::{KEYS, Measured, PROJECT, Run, drive, pusher, reader};
use anyhow::{Context, Result, anyhow, bail};
use envsync_tests::ServerProcess;
use envsync_tests::pg as cluster;
use envsync_tests::procfs::RssSampler;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const ROUNDS: usize = 3;

/// A release server on a PostgreSQL database (the kit's [`ServerProcess`]), killed on
/// drop.
struct Replica {
    process: ServerProcess,
    /// The owner token, printed by the first server on an empty database.
    token: Option<String>,
}

impl Replica {
    /// Starts a server; `first` on an empty database, where it prints the owner token.
    fn start(db: &str, first: bool) -> Result<Replica> {
        let mut process = ServerProcess::spawn(
            Command::new(bin("envsync-server")?)
                .env("ENVSYNC_JWT_SECRET", envsync_tests::SECRET)
                .env("RUST_LOG", "warn")
                .env_remove("ENVSYNC_LOG")
                .args(["--addr", "127.0.0.1:0", "--db", db])
                .stdin(Stdio::null())
                .stderr(Stdio::inherit()),
        )
        .map_err(|e| anyhow!("start envsync-server: {e}"))?;
        let mut token = None;
        // The first server on an empty database announces the owner token on two lines
        // (the others print nothing more, so only the first is read from).
        if first {
            let next = process.next_line();
            if !next.starts_with("owner token") {
                bail!("the first server did not print the owner token: {next:?}");
            }
            token = Some(process.next_line().trim().to_owned());
        }
        Ok(Replica { process, token })
    }
}

/// One scenario's figures.
struct Scenario {
    replicas: usize,
    runs: Vec<Run>,
    rss_kb: Vec<u64>,
    /// Per push run (one project, then eight): samples taken, and how many saw a writer
    /// waiting on a chain's lock.
    lock_samples: Vec<(u64, u64)>,
}

/// Projects the second push run spreads its clients over.
const PROJECTS: usize = 8;

/// Runs the PostgreSQL part of `envsync-bench server` and prints its report.
pub fn run(url: Option<&str>, quick: bool, blob: Arc<String>) -> Result<()> {
    let cluster = match url {
        Some(url) => cluster::existing(url),
        None => cluster::start(),
    }
    .map_err(|e| anyhow!("no PostgreSQL for the bench: {e}"))?;
    let scale = if quick { 10 } else { 1 };
    let (pushes, reads, commits) = (6000 / scale, 15000 / scale, 2000 / scale);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()?;
    let (raw, scenarios) = rt.block_on(async {
        let before = raw_rate(&cluster, &blob, commits).await?;
        let mut scenarios = Vec::new();
        for replicas in [1, 2] {
            scenarios.push(scenario(&cluster, replicas, &blob, pushes, reads).await?);
        }
        let after = raw_rate(&cluster, &blob, commits).await?;
        println!("raw PostgreSQL commit rate before {before:.0}/s, after {after:.0}/s");
        Ok::<_, anyhow::Error>((before.max(after), scenarios))
    })?;
    print(&scenarios, raw);
    Ok(())
}

/// One push's rows per `BEGIN … COMMIT`, sequentially, after a warm-up.
async fn raw_rate(cluster: &cluster::Cluster, blob: &str, commits: usize) -> Result<f64> {
    let url = cluster.try_database().await.map_err(|e| anyhow!(e))?;
    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE versions (id BIGSERIAL PRIMARY KEY, project TEXT NOT NULL,
             branch TEXT NOT NULL, version BIGINT NOT NULL, ciphertext TEXT NOT NULL,
             keys TEXT NOT NULL, key_count BIGINT NOT NULL, pushed_by TEXT NOT NULL,
             pushed_at TEXT NOT NULL, UNIQUE (project, branch, version));
             CREATE TABLE audit (id BIGINT PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL,
             action TEXT NOT NULL, project TEXT, branch TEXT, version BIGINT,
             outcome TEXT NOT NULL, detail TEXT, hash BYTEA NOT NULL);",
        )
        .await?;
    let keys = serde_json::to_string(KEYS)?;
    let hash = vec![0u8; 32];
    let warmup = (commits / 2).max(300) as i64;
    let mut start = Instant::now();
    for version in 1..=warmup + commits as i64 {
        if version == warmup + 1 {
            start = Instant::now();
        }
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO versions (project, branch, version, ciphertext, keys, key_count,
                 pushed_by, pushed_at)
             VALUES ($1, 'main', $2, $3, $4, $5, 'bench', '2025-01-01T00:00:00.000Z')",
            &[&PROJECT, &version, &blob, &keys, &(KEYS.len() as i64)],
        )
        .await?;
        tx.execute(
            "INSERT INTO audit (id, at, actor, action, project, branch, version, outcome,
                 detail, hash)
             VALUES ($1, '2025-01-01T00:00:00.000Z', 'bench', 'push', $2, 'main', $1, 'ok',
                 '{}', $3)",
            &[&version, &PROJECT, &hash],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(commits as f64 / start.elapsed().as_secs_f64())
}

async fn scenario(
    cluster: &cluster::Cluster,
    replicas: usize,
    blob: &Arc<String>,
    pushes: usize,
    reads: usize,
) -> Result<Scenario> {
    let db = cluster.try_database().await.map_err(|e| anyhow!(e))?;
    let mut servers = Vec::new();
    for i in 0..replicas {
        servers.push(Replica::start(&db, i == 0)?);
    }
    let token = Arc::new(
        servers
            .iter()
            .find_map(|s| s.token.clone())
            .context("no server printed the owner token")?,
    );
    let urls: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| s.process.url.clone()).collect());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;
    let target = |i: usize| format!("{}/env/{PROJECT}/read-target", urls[i % urls.len()]);
    let answer = http
        .post(target(0))
        .bearer_auth(&*token)
        .json(&serde_json::json!({"ciphertext": &**blob, "keys": KEYS, "base_version": null}))
        .send()
        .await?;
    if answer.status() != 201 {
        bail!("seeding the read target: {}", answer.status());
    }
    // Warm the pools (HTTP and the servers' database connections).
    for i in 0..replicas {
        drive(16, 500, reader(http.clone(), target(i), token.clone(), 200)).await;
    }
    let samplers: Vec<RssSampler> = servers
        .iter()
        .map(|s| RssSampler::start(s.process.pid(), true))
        .collect();

    let mut runs = Vec::new();
    let mut lock_samples = Vec::new();
    // Pushes to one project (as the SQLite run), then spread over eight: each project has
    // its own audit chain, so its own lock.
    for projects in [1, PROJECTS] {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let lock_watch = tokio::spawn(watch_lock(db.clone(), stop.clone(), samples.clone()));
        let push = drive(CLIENTS, pushes, |client, budget, total| {
            let project = if projects == 1 {
                PROJECT.to_owned()
            } else {
                format!("{PROJECT}{}", client % projects)
            };
            let url = format!(
                "{}/env/{project}/push-{replicas}-{client}",
                urls[client % urls.len()]
            );
            pusher(
                http.clone(),
                url,
                token.clone(),
                blob.clone(),
                budget,
                total,
            )
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        lock_watch.await??;
        let name = if projects == 1 {
            "push".to_owned()
        } else {
            format!("push, {projects} projects")
        };
        runs.push(push.named(&name, CLIENTS, pushes));
        lock_samples.push((
            samples.0.load(Ordering::Relaxed),
            samples.1.load(Ordering::Relaxed),
        ));
    }
    for (name, suffix) in [("pull", ""), ("keys", "/keys")] {
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            let per = reads / ROUNDS;
            let urls = urls.clone();
            let (http, token) = (http.clone(), token.clone());
            rounds.push(
                drive(CLIENTS, per, move |client, budget, total| {
                    let url = format!(
                        "{}/env/{PROJECT}/read-target{suffix}",
                        urls[client % urls.len()]
                    );
                    reader(http.clone(), url, token.clone(), 200)(client, budget, total)
                })
                .await,
            );
        }
        runs.push(Measured::merge(rounds).named(name, CLIENTS, reads));
    }
    let rss_kb = samplers.into_iter().map(RssSampler::stop).collect();
    drop(servers);
    Ok(Scenario {
        replicas,
        runs,
        rss_kb,
        lock_samples,
    })
}

/// Samples every 5 ms whether a backend of `db` waits on an advisory lock (a chain's: the
/// servers take no other while serving).
async fn watch_lock(
    db: String,
    stop: Arc<AtomicBool>,
    samples: Arc<(AtomicU64, AtomicU64)>,
) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let stmt = client
        .prepare(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND wait_event = 'advisory'",
        )
        .await?;
    while !stop.load(Ordering::Relaxed) {
        let waiting: i64 = client.query_one(&stmt, &[]).await?.try_get(0)?;
        samples.0.fetch_add(1, Ordering::Relaxed);
        if waiting > 0 {
            samples.1.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn print(scenarios: &[Scenario], raw: f64) {
    println!();
    println!(
        "{:<30} {:>7} {:>9} {:>7} {:>11} {:>9} {:>9}",
        "PostgreSQL scenario", "clients", "requests", "errors", "req/s", "p50 ms", "p99 ms"
    );
    for s in scenarios {
        for run in &s.runs {
            println!(
                "{:<30} {:>7} {:>9} {:>7} {:>11.0} {:>9.2} {:>9.2}",
                format!(
                    "{} ({} replica{})",
                    run_name(run),
                    s.replicas,
                    if s.replicas == 1 { "" } else { "s" }
                ),
                CLIENTS,
                run.requests,
                run.errors,
                run.rate(),
                run.p50.as_secs_f64() * 1e3,
                run.p99.as_secs_f64() * 1e3,
            );
        }
    }
    println!(
        "{:<30} {:>7} {:>9} {:>7} {:>11.0}",
        "raw PostgreSQL commit", 1, "", 0, raw
    );
    println!("(pull and keys: {ROUNDS} rounds each, req/s is the median round's)");
    println!();
    for s in scenarios {
        let push = s
            .runs
            .iter()
            .find(|r| run_name(r) == "push")
            .map_or(0.0, Run::rate);
        let ratio = push / raw;
        let rss: Vec<String> = s
            .rss_kb
            .iter()
            .map(|kb| format!("{:.1} MB", *kb as f64 / 1024.0))
            .collect();
        let waits: Vec<String> = s
            .lock_samples
            .iter()
            .zip(["1 project", "8 projects"])
            .map(|((taken, waiting), what)| {
                format!(
                    "{:.0}% ({what})",
                    *waiting as f64 * 100.0 / (*taken).max(1) as f64
                )
            })
            .collect();
        println!(
            "{} replica{}: push@64 / raw PostgreSQL commit rate: {ratio:.2}x (target >= 1.0x) {}; server peak RSS {}; a writer waiting on a chain's lock in {} of the samples",
            s.replicas,
            if s.replicas == 1 { "" } else { "s" },
            if ratio >= 1.0 { "ok" } else { "BELOW TARGET" },
            rss.join(" + "),
            waits.join(", "),
        );
    }
    let errors: usize = scenarios
        .iter()
        .flat_map(|s| s.runs.iter())
        .map(|r| r.errors)
        .sum();
    println!("errors (non-2xx or transport) in the PostgreSQL runs: {errors}");
}

fn run_name(run: &Run) -> &str {
    run.name.as_str()
}
