//! `envsync-bench load`: the full-size load run of docs/testing.md E2 against the release
//! server binary on loopback, with its checks and its figures.
//!
//! 16 writers push to ONE branch, each compare-and-swapping (on 409 it takes the current
//! version from the answer and tries again) until it has 200 accepted pushes; at the same
//! time 64 readers pull that branch 500 times each. Then it checks, and exits non-zero if
//! any check fails: zero 5xx, zero `database is locked` (answers and server log), accepted
//! pushes = final version with no gaps in `/versions`, every reader saw versions only go
//! forward, the audit chain is intact (`envsync-server audit verify`), and it reports the
//! server's peak RSS (`/proc/<pid>/status`). `--quick` runs a tenth of it. The test suite
//! runs a scaled version of the same checks on the debug build (`server/tests/it/load.rs`).

use crate::lab::LabServer;
use anyhow::{Result, bail};
use envsync_tests::procfs::{self, RssSampler};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Plan {
    writers: usize,
    pushes: usize,
    readers: usize,
    pulls: usize,
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    accepted: Vec<u64>,
    conflicts: usize,
    /// Status codes other than the expected ones (201/409 for pushes, 200 for pulls).
    unexpected: Vec<u16>,
    transport_errors: usize,
    went_back: usize,
    push_latency: Vec<Duration>,
    pull_latency: Vec<Duration>,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        self.accepted.extend(other.accepted);
        self.conflicts += other.conflicts;
        self.unexpected.extend(other.unexpected);
        self.transport_errors += other.transport_errors;
        self.went_back += other.went_back;
        self.push_latency.extend(other.push_latency);
        self.pull_latency.extend(other.pull_latency);
    }
}

pub fn run(args: Vec<String>) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(bad) = args.iter().find(|a| *a != "--quick") {
        bail!("unknown argument '{bad}' (usage: envsync-bench load [--quick])");
    }
    let scale = if quick { 10 } else { 1 };
    let plan = Plan {
        writers: 16,
        pushes: 200 / scale,
        readers: 64,
        pulls: 500 / scale,
    };
    let mut server = LabServer::start()?;
    let writer_token = server.token("developer", "load")?;
    let reader_token = server.token("readonly", "load")?;
    let url = format!("{}/env/load/main", server.url);
    let blob = Arc::new(crate::server::sample_ciphertext()?);
    println!(
        "envsync-bench load: release server on loopback, {} cores; {} writers x {} pushes on one branch, {} readers x {} pulls{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        plan.writers,
        plan.pushes,
        plan.readers,
        plan.pulls,
        if quick { " (--quick)" } else { "" }
    );

    let sampler = RssSampler::start(server.pid(), true);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let mut seen = runtime.block_on(drive(&plan, &url, &writer_token, &reader_token, blob))?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_kb = sampler.stop();
    let hwm = procfs::status_kb(server.pid(), "VmHWM:").unwrap_or(0);

    // Every version, following `/versions` pages.
    let listed = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut listed = Vec::new();
        let mut before: Option<u64> = None;
        loop {
            let mut page_url = format!("{url}/versions?limit=100");
            if let Some(b) = before {
                page_url.push_str(&format!("&before={b}"));
            }
            let page: serde_json::Value = client
                .get(page_url)
                .bearer_auth(&reader_token)
                .send()
                .await?
                .json()
                .await?;
            let versions = page["versions"].as_array().cloned().unwrap_or_default();
            listed.extend(versions.iter().filter_map(|v| v["version"].as_u64()));
            match page["next_before"].as_u64() {
                Some(next) if before.is_none_or(|b| next < b) => before = Some(next),
                _ => break,
            }
        }
        anyhow::Ok(listed)
    })?;
    server.kill();
    let log = std::fs::read_to_string(&server.stderr_log).unwrap_or_default();
    let verify_started = Instant::now();
    let verify = std::process::Command::new(crate::lab::bin("envsync-server")?)
        .args(["audit", "verify", "--db"])
        .arg(&server.db)
        .output()?;
    let verify_ms = verify_started.elapsed().as_secs_f64() * 1e3;
    let verdict = String::from_utf8_lossy(&verify.stdout).trim().to_owned();

    let total = 1 + plan.writers * plan.pushes;
    seen.accepted.sort_unstable();
    let expected: Vec<u64> = (1..=total as u64).collect();
    let server_errors = seen.unexpected.iter().filter(|s| **s >= 500).count();
    let locked = log.matches("database is locked").count();
    let attempts = total + seen.conflicts;
    let pulls = plan.readers * plan.pulls;
    // One row per push attempt and per pull, plus the two offline token mints.
    let rows = attempts + pulls + 2;
    let rss_mb = peak_kb.max(hwm) as f64 / 1024.0;
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| wall time | {seconds:.1} s |");
    println!(
        "| accepted pushes | {total} ({:.0}/s) |",
        total as f64 / seconds
    );
    println!(
        "| push attempts (409 then retry) | {attempts} ({} conflicts, {:.0}/s) |",
        seen.conflicts,
        attempts as f64 / seconds
    );
    println!("| pulls | {pulls} ({:.0}/s) |", pulls as f64 / seconds);
    println!(
        "| push attempt latency p50 / p99 | {} / {} ms |",
        ms(&mut seen.push_latency, 0.5),
        ms(&mut seen.push_latency, 0.99)
    );
    println!(
        "| pull latency p50 / p99 | {} / {} ms |",
        ms(&mut seen.pull_latency, 0.5),
        ms(&mut seen.pull_latency, 0.99)
    );
    println!("| 5xx answers | {server_errors} |");
    println!(
        "| other unexpected answers, transport errors | {}, {} |",
        seen.unexpected.len() - server_errors,
        seen.transport_errors
    );
    println!("| `database is locked` in the server log | {locked} |");
    println!(
        "| accepted = final version, no gaps | {} |",
        yes(seen.accepted == expected && listed.iter().rev().copied().eq(expected.iter().copied()))
    );
    println!("| readers saw a version go back | {} |", seen.went_back);
    println!("| server peak RSS | {rss_mb:.1} MB |");
    println!(
        "| audit verify ({rows} rows expected) | {} ({verify_ms:.0} ms) |",
        verdict.lines().next().unwrap_or("")
    );

    let mut failures = Vec::new();
    if server_errors > 0 || !seen.unexpected.is_empty() || seen.transport_errors > 0 {
        failures.push("unexpected answers or transport errors");
    }
    if locked > 0 {
        failures.push("database is locked");
    }
    if seen.accepted != expected || !listed.iter().rev().copied().eq(expected.iter().copied()) {
        failures.push("accepted pushes are not exactly the versions 1..=N");
    }
    if seen.went_back > 0 {
        failures.push("a reader saw the version go back");
    }
    if !verify.status.success()
        || verdict.lines().next() != Some(format!("ok ({rows} rows)").as_str())
    {
        failures.push("the audit chain does not verify with one row per request");
    }
    if !failures.is_empty() {
        bail!("load run failed: {}", failures.join("; "));
    }
    Ok(())
}

async fn drive(
    plan: &Plan,
    url: &str,
    writer_token: &str,
    reader_token: &str,
    blob: Arc<String>,
) -> Result<Seen> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.writers + plan.readers)
        .timeout(Duration::from_secs(30))
        .build()?;
    let seed = http
        .post(url)
        .bearer_auth(writer_token)
        .json(&serde_json::json!({"ciphertext": &*blob, "keys": ["SEED"], "base_version": null}))
        .send()
        .await?;
    if seed.status() != 201 {
        bail!("seeding the branch: {}", seed.status());
    }
    let mut tasks = Vec::new();
    for w in 0..plan.writers {
        let (http, url, token, blob) = (
            http.clone(),
            url.to_owned(),
            writer_token.to_owned(),
            blob.clone(),
        );
        let pushes = plan.pushes;
        tasks.push(tokio::spawn(async move {
            writer(http, url, token, blob, w, pushes).await
        }));
    }
    for _ in 0..plan.readers {
        let (http, url, token) = (http.clone(), url.to_owned(), reader_token.to_owned());
        let pulls = plan.pulls;
        tasks.push(tokio::spawn(async move {
            reader(http, url, token, pulls).await
        }));
    }
    let mut seen = Seen {
        accepted: vec![1],
        ..Seen::default()
    };
    for task in tasks {
        seen.merge(task.await?);
    }
    Ok(seen)
}

async fn writer(
    http: reqwest::Client,
    url: String,
    token: String,
    blob: Arc<String>,
    w: usize,
    pushes: usize,
) -> Seen {
    let mut seen = Seen::default();
    let mut base: Option<u64> = None;
    // Bounded: a writer that cannot get its pushes in after this many tries is a failure.
    for attempt in 0..pushes * 500 {
        if seen.accepted.len() == pushes {
            break;
        }
        let body = serde_json::json!({
            "ciphertext": &*blob, "keys": [format!("W{w}_{attempt}")], "base_version": base,
        });
        let t = Instant::now();
        let answer = match http.post(&url).bearer_auth(&token).json(&body).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                r.json::<serde_json::Value>().await.map(|v| (status, v))
            }
            Err(e) => Err(e),
        };
        seen.push_latency.push(t.elapsed());
        match answer {
            Ok((201, v)) => match v["version"].as_u64() {
                Some(version) => {
                    seen.accepted.push(version);
                    base = Some(version);
                }
                None => seen.unexpected.push(201),
            },
            Ok((409, v)) => {
                seen.conflicts += 1;
                base = v["current_version"].as_u64();
            }
            Ok((status, _)) => seen.unexpected.push(status),
            Err(_) => seen.transport_errors += 1,
        }
    }
    seen
}

async fn reader(http: reqwest::Client, url: String, token: String, pulls: usize) -> Seen {
    let mut seen = Seen::default();
    let mut last = 0;
    for _ in 0..pulls {
        let t = Instant::now();
        let answer = match http.get(&url).bearer_auth(&token).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                r.json::<serde_json::Value>().await.map(|v| (status, v))
            }
            Err(e) => Err(e),
        };
        seen.pull_latency.push(t.elapsed());
        match answer {
            Ok((200, v)) => {
                let version = v["version"].as_u64().unwrap_or(0);
                seen.went_back += usize::from(version < last);
                last = version;
            }
            Ok((status, _)) => seen.unexpected.push(status),
            Err(_) => seen.transport_errors += 1,
        }
    }
    seen
}

fn ms(samples: &mut [Duration], q: f64) -> String {
    if samples.is_empty() {
        return "-".into();
    }
    samples.sort_unstable();
    let i = ((samples.len() as f64 * q) as usize).min(samples.len() - 1);
    format!("{:.2}", samples[i].as_secs_f64() * 1e3)
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}
