//! `envsync-bench server`: the HTTP API under load, next to its two physical limits.
//!
//! From one process, on loopback only, with bounded request counts:
//! - the envsync server (in-process, on its own runtime, temp-file database with WAL and
//!   `synchronous=FULL`) under push, pull and keys load at 1, 16 and 64 concurrent clients:
//!   throughput and p50/p99 latency;
//! - baseline (a): the same SQLite insert-and-commit loop without HTTP, one row per durable
//!   commit — what one-commit-per-push could reach at best on this disk;
//! - baseline (b): a bare warp route returning a small JSON, at 64 clients — the HTTP
//!   stack's limit on this machine.
//!
//! It then prints the ratios the server is held to: pushes@64 ≥ 1.0× the raw commit rate
//! (group commit is how), pulls@64 ≥ 50% of bare warp, and resident memory ≤ 50 MB during
//! the 64-client runs. `--quick` runs a tenth of the requests (a smoke test, not figures).

use anyhow::{Context, Result, bail};
use envsync_common::api::Role;
use envsync_common::envelope::{Binding, Seal, seal};
use envsync_common::secret::SecretString;
use envsync_server::config::Settings;
use envsync_server::secret::JwtSecret;
use envsync_server::store::SqliteStore;
use envsync_server::{Database, Server};
use envsync_tests::procfs::{self, RssSampler};
use rusqlite::{Connection, params};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use warp::Filter;

pub(crate) const PROJECT: &str = "bench";
pub(crate) const KEYS: &[&str] = &[
    "DATABASE_URL",
    "API_KEY",
    "STRIPE_SECRET",
    "REDIS_URL",
    "SENTRY_DSN",
    "DEBUG",
    "LOG_LEVEL",
    "FEATURE_FLAGS",
];
const CONCURRENCY: &[usize] = &[1, 16, 64];
/// Interleaved rounds of pull, keys and bare warp at 64 clients.
const ROUNDS: usize = 5;

/// Requests per run at each concurrency (scaled down by `--quick`).
struct Plan {
    pushes: [usize; 3],
    reads: [usize; 3],
    raw_commits: usize,
}

pub fn run(args: Vec<String>) -> Result<()> {
    const USAGE: &str = "usage: envsync-bench server [--quick] [--pg | --db postgres://…]";
    let mut quick = false;
    // The PostgreSQL part: None = not asked for, Some(None) = a throwaway cluster.
    let mut pg: Option<Option<String>> = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--pg" => pg = Some(None),
            "--db" => match args.next() {
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    pg = Some(Some(url))
                }
                _ => bail!("--db takes a postgres:// URL ({USAGE})"),
            },
            other => bail!("unknown argument '{other}' ({USAGE})"),
        }
    }
    if let Ok(filter) = std::env::var("ENVSYNC_LOG") {
        // e.g. ENVSYNC_LOG=envsync_server::store=trace shows each write batch's size.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let scale = if quick { 10 } else { 1 };
    let plan = Plan {
        pushes: [1500 / scale, 6000 / scale, 12000 / scale],
        reads: [4000 / scale, 20000 / scale, 30000 / scale],
        raw_commits: 3000 / scale,
    };
    let dir = tempfile::tempdir().context("temp dir")?;
    let blob = Arc::new(sample_ciphertext()?);
    println!(
        "envsync-bench server: loopback, {} cores, ciphertext {} bytes, {} key names{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        blob.len(),
        KEYS.len(),
        if quick {
            " (--quick: not figures to quote)"
        } else {
            ""
        }
    );

    // Baseline (a) first, on a quiet machine.
    let raw_rate = raw_commit_rate(&dir.path().join("raw.db"), &blob, plan.raw_commits)?;

    // The servers get their own runtime (two workers), like a separate process would.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()?;
    let db = dir.path().join("envsync.db");
    let (url, token, store) = server_rt.block_on(start_envsync(&db))?;
    let bare_url = server_rt.block_on(start_bare_warp())?;

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()?;
    let report = client_rt.block_on(measure(
        &plan,
        &url,
        &bare_url,
        &token,
        blob.clone(),
        &store,
    ))?;
    // Again after the load, on a fresh file: the disk's sync latency drifts with whatever
    // else the machine does, and the better of the two is the harder baseline to beat.
    let raw_after = raw_commit_rate(&dir.path().join("raw-after.db"), &blob, plan.raw_commits)?;
    println!("raw commit rate before {raw_rate:.0}/s, after {raw_after:.0}/s");
    let raw_rate = raw_rate.max(raw_after);
    print_report(&report, raw_rate);
    drop(client_rt);
    server_rt.shutdown_timeout(Duration::from_secs(2));
    if let Some(url) = pg {
        println!();
        println!(
            "PostgreSQL store: release envsync-server processes on one database, 64 clients split over the replicas"
        );
        crate::pg::run(url.as_deref(), quick, blob)?;
    }
    Ok(())
}

/// A realistic blob: an eight-key `.env` sealed with age (passphrase mode, the cost of which
/// is the client's, not the server's).
pub(crate) fn sample_ciphertext() -> Result<String> {
    let env: String = KEYS
        .iter()
        .map(|k| format!("{k}=value-of-{k}-0123456789abcdef0123456789abcdef\n"))
        .collect();
    let passphrase = SecretString::from("bench passphrase".to_owned());
    Ok(seal(
        &Binding::new(PROJECT, "main", 1),
        env.as_bytes(),
        &Seal::Passphrase {
            passphrase: &passphrase,
            work_factor: 10,
        },
    )?)
}

/// Baseline (a): one push's rows per `BEGIN IMMEDIATE … COMMIT` (the version row and its
/// audit row, as the server writes them), WAL, `synchronous=FULL`. Timed after a warm-up
/// that runs past the first checkpoint, so the WAL is recycled in place as in a server
/// that has been up for a while (appending to a fresh WAL costs an extra journal commit
/// per sync on ext4, which would flatter the server).
fn raw_commit_rate(path: &Path, blob: &str, commits: usize) -> Result<f64> {
    let conn = Connection::open(path)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if mode != "wal" {
        bail!("raw baseline: journal_mode is {mode}");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE versions (id INTEGER PRIMARY KEY, project TEXT NOT NULL, branch TEXT NOT NULL,
         version INTEGER NOT NULL, ciphertext TEXT NOT NULL, keys TEXT NOT NULL,
         key_count INTEGER NOT NULL, pushed_by TEXT NOT NULL, pushed_at TEXT NOT NULL,
         UNIQUE (project, branch, version));
         CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
         actor TEXT NOT NULL, action TEXT NOT NULL, project TEXT, branch TEXT, version INTEGER,
         outcome TEXT NOT NULL, detail TEXT);",
    )?;
    let keys = serde_json::to_string(KEYS)?;
    let commit = |version: i64| -> Result<()> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.prepare_cached(
            "INSERT INTO versions (project, branch, version, ciphertext, keys, key_count, pushed_by, pushed_at)
             VALUES (?1, 'main', ?2, ?3, ?4, ?5, 'bench', '2025-01-01T00:00:00.000Z')",
        )?
        .execute(params![PROJECT, version, blob, keys, KEYS.len() as i64])?;
        conn.prepare_cached(
            "INSERT INTO audit (at, actor, action, project, branch, version, outcome, detail)
             VALUES ('2025-01-01T00:00:00.000Z', 'bench', 'push', ?1, 'main', ?2, 'ok', '{}')",
        )?
        .execute(params![PROJECT, version])?;
        conn.execute_batch("COMMIT")?;
        Ok(())
    };
    let warmup = (commits / 2).max(600) as i64;
    for version in 1..=warmup {
        commit(version)?;
    }
    let start = Instant::now();
    for version in warmup + 1..=warmup + commits as i64 {
        commit(version)?;
    }
    Ok(commits as f64 / start.elapsed().as_secs_f64())
}

async fn start_envsync(db: &Path) -> Result<(String, String, Arc<SqliteStore>)> {
    let secret = JwtSecret::generate()?;
    let database = Database::File(db.to_owned());
    let store = Arc::new(SqliteStore::open(&database)?);
    let server = Server::with_store(Settings::new(database, secret), store.clone()).await?;
    let minted = server
        .mint(
            "envsync-bench",
            "bench@localhost",
            Role::Owner,
            vec![],
            3600,
        )
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = server.serve(listener, std::future::pending()).await {
            eprintln!("server stopped: {e}");
        }
    });
    Ok((url, minted.token.expose().to_owned(), store))
}

/// Baseline (b): the smallest warp route, a GET answering a small JSON.
async fn start_bare_warp() -> Result<String> {
    let route = warp::path!("ping")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok", "version": "0.1.0"})));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(warp::serve(route).incoming(listener).run());
    Ok(url)
}

/// One measured run.
pub(crate) struct Run {
    /// Average requests per write transaction (pushes only).
    batch: Option<f64>,
    pub(crate) name: String,
    clients: usize,
    pub(crate) requests: usize,
    pub(crate) errors: usize,
    seconds: f64,
    /// Rates of the interleaved rounds this run was measured in (empty: one round).
    rounds: Vec<f64>,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

impl Run {
    /// Successful requests per second: the median round's when there were rounds.
    pub(crate) fn rate(&self) -> f64 {
        if self.rounds.is_empty() {
            return (self.requests - self.errors) as f64 / self.seconds;
        }
        let mut rates = self.rounds.clone();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    }
}

struct Report {
    runs: Vec<Run>,
    bare: Run,
    peak_rss_kb: u64,
    hwm_kb: u64,
}

async fn measure(
    plan: &Plan,
    url: &str,
    bare_url: &str,
    token: &str,
    blob: Arc<String>,
    store: &SqliteStore,
) -> Result<Report> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;
    let token = Arc::new(token.to_owned());
    let mut runs = Vec::new();

    // The branch every read targets.
    let target = format!("{url}/env/{PROJECT}/read-target");
    let answer = http
        .post(&target)
        .bearer_auth(&*token)
        .json(&serde_json::json!({"ciphertext": &*blob, "keys": KEYS, "base_version": null}))
        .send()
        .await?;
    if answer.status() != 201 {
        bail!("seeding the read target: {}", answer.status());
    }
    // Warm the connection pool and the server's caches.
    drive(
        64,
        2000,
        reader(http.clone(), target.clone(), token.clone(), 200),
    )
    .await;

    let sampler = RssSampler::start(std::process::id(), false);
    let mut bare = None;
    for (i, &clients) in CONCURRENCY.iter().enumerate() {
        sampler.set_active(clients == 64);
        let pushes = plan.pushes[i];
        let before = writer_counts(store);
        let run = drive(clients, pushes, |client, budget, total| {
            let http = http.clone();
            let url = format!("{url}/env/{PROJECT}/push-{clients}-{client}");
            let token = token.clone();
            let blob = blob.clone();
            async move { pusher(http, url, token, blob, budget, total).await }
        })
        .await;
        let after = writer_counts(store);
        let mut run = run.named("push", clients, pushes);
        run.batch = Some((after.1 - before.1) as f64 / (after.0 - before.0).max(1) as f64);
        runs.push(run);

        let reads = plan.reads[i];
        let keys_url = format!("{target}/keys");
        let bare_url = format!("{bare_url}/ping");
        // At 64 clients the reads are held to the bare route, so the three alternate in
        // rounds and each rate is the median round's: a noisy neighbour on the shared
        // machine then costs all three alike.
        let rounds = if clients == 64 { ROUNDS } else { 1 };
        let (mut pulls, mut keys, mut bares) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let per = reads / rounds;
            let run = |url: &str| {
                drive(
                    clients,
                    per,
                    reader(http.clone(), url.to_owned(), token.clone(), 200),
                )
            };
            pulls.push(run(&target).await);
            keys.push(run(&keys_url).await);
            if clients == 64 {
                bares.push(run(&bare_url).await);
            }
        }
        runs.push(Measured::merge(pulls).named("pull", clients, reads));
        runs.push(Measured::merge(keys).named("keys", clients, reads));
        if clients == 64 {
            bare = Some(Measured::merge(bares).named("bare warp GET", 64, reads));
        }
    }
    let peak_rss_kb = sampler.stop();
    Ok(Report {
        runs,
        bare: bare.context("no 64-client run")?,
        peak_rss_kb,
        hwm_kb: procfs::status_kb(std::process::id(), "VmHWM:").unwrap_or(0),
    })
}

/// What a client task reports: latencies and errors.
type Outcome = (Vec<Duration>, usize);

pub(crate) struct Measured {
    latencies: Vec<Duration>,
    errors: usize,
    seconds: f64,
    rounds: Vec<f64>,
}

impl Measured {
    /// Several rounds of one scenario as one run whose rate is the median round's.
    pub(crate) fn merge(rounds: Vec<Measured>) -> Measured {
        let mut all = Measured {
            latencies: Vec::new(),
            errors: 0,
            seconds: 0.0,
            rounds: Vec::new(),
        };
        for round in rounds {
            let ok = round.latencies.len().saturating_sub(round.errors);
            all.rounds.push(ok as f64 / round.seconds);
            all.latencies.extend(round.latencies);
            all.errors += round.errors;
            all.seconds += round.seconds;
        }
        all
    }

    pub(crate) fn named(mut self, name: &str, clients: usize, requests: usize) -> Run {
        self.latencies.sort_unstable();
        let pick = |q: f64| {
            let n = self.latencies.len();
            if n == 0 {
                return Duration::ZERO;
            }
            self.latencies[((n as f64 * q) as usize).min(n - 1)]
        };
        Run {
            batch: None,
            name: name.to_owned(),
            clients,
            requests,
            errors: self.errors,
            seconds: self.seconds,
            rounds: self.rounds,
            p50: pick(0.50),
            p99: pick(0.99),
        }
    }
}

/// Runs `clients` tasks sharing a budget of `total` requests; each task is
/// `client(i, budget, total)` and stops when `budget` reaches `total`.
pub(crate) async fn drive<F, Fut>(clients: usize, total: usize, client: F) -> Measured
where
    F: Fn(usize, Arc<AtomicUsize>, usize) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let budget = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(client(i, budget.clone(), total)))
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok((l, e)) => {
                latencies.extend(l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    Measured {
        latencies,
        errors,
        seconds: start.elapsed().as_secs_f64(),
        rounds: Vec::new(),
    }
}

/// A client task that GETs `url` until the budget is spent, expecting `status`.
pub(crate) fn reader(
    http: reqwest::Client,
    url: String,
    token: Arc<String>,
    status: u16,
) -> impl Fn(usize, Arc<AtomicUsize>, usize) -> std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>>
{
    move |_, budget, total| {
        let http = http.clone();
        let url = url.clone();
        let token = token.clone();
        Box::pin(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while budget.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let ok = match http.get(&url).bearer_auth(&*token).send().await {
                    Ok(r) => r.status().as_u16() == status && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                latencies.push(t.elapsed());
                errors += usize::from(!ok);
            }
            (latencies, errors)
        })
    }
}

/// Pushes to its own branch (so every push is accepted) until the budget is spent.
pub(crate) async fn pusher(
    http: reqwest::Client,
    url: String,
    token: Arc<String>,
    blob: Arc<String>,
    budget: Arc<AtomicUsize>,
    total: usize,
) -> Outcome {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut base: Option<u64> = None;
    while budget.fetch_add(1, Ordering::Relaxed) < total {
        let body = serde_json::json!({"ciphertext": &*blob, "keys": KEYS, "base_version": base});
        let t = Instant::now();
        let version = match http
            .post(&url)
            .bearer_auth(&*token)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status() == 201 => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["version"].as_u64()),
            _ => None,
        };
        latencies.push(t.elapsed());
        match version {
            Some(v) => base = Some(v),
            None => errors += 1,
        }
    }
    (latencies, errors)
}

/// (write transactions, requests run in them) so far.
fn writer_counts(store: &SqliteStore) -> (u64, u64) {
    let stats = store.stats();
    (
        stats.batches.load(Ordering::Relaxed),
        stats.requests.load(Ordering::Relaxed),
    )
}

fn print_report(report: &Report, raw_rate: f64) {
    println!();
    println!(
        "{:<16} {:>7} {:>9} {:>7} {:>11} {:>9} {:>9} {:>12}",
        "scenario", "clients", "requests", "errors", "req/s", "p50 ms", "p99 ms", "per commit"
    );
    for run in report.runs.iter().chain([&report.bare]) {
        println!(
            "{:<16} {:>7} {:>9} {:>7} {:>11.0} {:>9.2} {:>9.2} {:>12}",
            run.name,
            run.clients,
            run.requests,
            run.errors,
            run.rate(),
            run.p50.as_secs_f64() * 1e3,
            run.p99.as_secs_f64() * 1e3,
            run.batch
                .map_or(String::new(), |b| format!("{b:.1} pushes")),
        );
    }
    println!(
        "{:<16} {:>7} {:>9} {:>7} {:>11.0}",
        "raw SQLite commit", 1, "", 0, raw_rate
    );
    let at64 = |name: &str| {
        report
            .runs
            .iter()
            .find(|r| r.name == name && r.clients == 64)
            .map_or(0.0, Run::rate)
    };
    let bare = report.bare.rate();
    let verdict = |ok: bool| if ok { "ok" } else { "BELOW TARGET" };
    let push_ratio = at64("push") / raw_rate;
    let pull_ratio = at64("pull") / bare;
    let keys_ratio = at64("keys") / bare;
    let rss_mb = report.peak_rss_kb as f64 / 1024.0;
    println!(
        "(at 64 clients pull, keys and bare warp ran in {ROUNDS} interleaved rounds; req/s is the median round's)"
    );
    println!();
    println!(
        "push@64 / raw one-row-per-durable-commit rate: {push_ratio:.2}x  (target >= 1.0x, floor 0.7x) {}",
        verdict(push_ratio >= 1.0)
    );
    println!(
        "pull@64 / bare warp GET@64:                    {:.0}%   (target >= 50%) {}",
        pull_ratio * 100.0,
        verdict(pull_ratio >= 0.5)
    );
    println!(
        "keys@64 / bare warp GET@64:                    {:.0}%",
        keys_ratio * 100.0
    );
    println!(
        "peak RSS during the 64-client runs:            {rss_mb:.1} MB (whole bench process: server + clients; target <= 50 MB) {}",
        verdict(rss_mb <= 50.0)
    );
    println!(
        "VmHWM of the bench process:                    {:.1} MB",
        report.hwm_kb as f64 / 1024.0
    );
    let errors: usize = report.runs.iter().map(|r| r.errors).sum::<usize>() + report.bare.errors;
    println!("errors (non-2xx or transport) in all runs:     {errors}");
}
