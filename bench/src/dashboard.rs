//! `envsync-bench dashboard`: how long the web dashboard takes to draw a project's key
//! matrix of 50 branches × 200 keys in a real browser (the target is under 200 ms).
//!
//! The release `envsync-server` on loopback holds one project with 50 branches whose key
//! names differ the way real ones do (some missing, some only on a branch); Debian's
//! headless Chromium, driven over WebDriver (`envsync_tests::webdriver`), loads the page,
//! signs in once, and opens the matrix `RUNS` times, each a fresh page load. The figures
//! are the browser's own performance timings, which the page records:
//! - `envsync:matrix` — from the answer in hand to the table's first rows (more than a
//!   screenful) laid out and painted (the next frame after they are in the document): the
//!   render; `envsync:matrix:script` is its first part, building them in the document (the
//!   rest is style, layout, paint); `envsync:matrix:complete` — to the last row painted
//!   (the page adds the other rows on the next frame);
//! - `envsync:matrix:fetch` — the one request, from sending it to the parsed JSON;
//! - and the whole: from the navigation's start to the painted table.
//!
//! Also the page's own weight (HTML, CSS, JS and icon as embedded in the binary).

use crate::lab::{LabServer, Stats};
use anyhow::{Result, bail};
use envsync_tests::webdriver::Browser;
use serde_json::json;
use std::time::Duration;

const PROJECT: &str = "bench";
const BRANCHES: usize = 50;
const KEYS: usize = 200;
const RUNS: usize = 15;

pub fn run(args: Vec<String>) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(bad) = args.iter().find(|a| *a != "--quick") {
        bail!("unknown argument '{bad}' (usage: envsync-bench dashboard [--quick])");
    }
    let runs = if quick { 3 } else { RUNS };
    let server = LabServer::start()?;
    let token = server.token("developer", PROJECT)?;
    let blob = crate::server::sample_ciphertext()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(seed(&server.url, &token, &blob))?;

    let browser = Browser::start(1280, 900, "UTC");
    browser.goto(&format!("{}/", server.url));
    browser.type_into("#token", &token);
    browser.click("#signin-form button[type=submit]");
    browser.wait_for(
        "the signed-in page",
        "return !document.getElementById('who').hidden;",
        &[],
    );
    let mut render = Vec::new();
    let mut script = Vec::new();
    let mut complete = Vec::new();
    let mut fetch = Vec::new();
    let mut whole = Vec::new();
    // One warm-up load, then the measured ones.
    for run in 0..=runs {
        browser.goto(&format!("{}/?run={run}#/p/{PROJECT}/matrix", server.url));
        let t = browser.wait_for(
            "the painted matrix",
            "const m = performance.getEntriesByName('envsync:matrix');
             const c = performance.getEntriesByName('envsync:matrix:complete');
             const f = performance.getEntriesByName('envsync:matrix:fetch');
             const s = performance.getEntriesByName('envsync:matrix:script');
             const t = document.getElementById('matrix');
             if (m.length === 0 || c.length === 0 || f.length === 0 || s.length === 0 || !t) return null;
             return { render: m[0].duration, fetch: f[0].duration, script: s[0].duration,
                      complete: c[0].duration, whole: c[0].startTime + c[0].duration,
                      rows: t.tBodies[0].rows.length, columns: t.tHead.rows[0].cells.length - 1 };",
            &[],
        );
        let (rows, columns) = (t["rows"].as_u64(), t["columns"].as_u64());
        if rows != Some(KEYS as u64) || columns != Some(BRANCHES as u64) {
            bail!(
                "the matrix drawn is {rows:?} keys × {columns:?} branches, not {KEYS} × {BRANCHES}"
            );
        }
        if run == 0 {
            continue;
        }
        let ms = |v: &serde_json::Value| Duration::from_secs_f64(v.as_f64().unwrap_or(0.0) / 1e3);
        render.push(ms(&t["render"]));
        script.push(ms(&t["script"]));
        complete.push(ms(&t["complete"]));
        fetch.push(ms(&t["fetch"]));
        whole.push(ms(&t["whole"]));
    }
    drop(browser);
    let version = std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "envsync-bench dashboard: {BRANCHES} branches × {KEYS} keys ({} cells), {runs} page loads{}, {version}; load average {}",
        BRANCHES * KEYS,
        if quick {
            " (--quick: not figures to quote)"
        } else {
            ""
        },
        load.join(" ")
    );
    println!();
    println!("{:<44} median (min–max)", "what");
    let render = Stats::of(render);
    println!(
        "{:<44} {}",
        "render: answer → first rows painted",
        render.show()
    );
    println!(
        "{:<44} {}",
        "  of which script: building them",
        Stats::of(script).show()
    );
    let complete_shown = Stats::of(complete.clone());
    println!(
        "{:<44} {}",
        "answer → all 200 rows painted",
        complete_shown.show()
    );
    println!(
        "{:<44} {}",
        "fetch: GET /matrix/{p} → parsed JSON",
        Stats::of(fetch).show()
    );
    println!(
        "{:<44} {}",
        "navigation start → all rows painted",
        Stats::of(whole).show()
    );
    println!(
        "{:<44} {} bytes (HTML + CSS + JS + icon, uncompressed)",
        "page weight",
        envsync_server::dashboard::weight()
    );
    println!();
    let verdict = |d: Duration| {
        if d < Duration::from_millis(200) {
            "met"
        } else {
            "NOT met"
        }
    };
    let complete = Stats::of(complete);
    println!(
        "target: the matrix drawn within 200 ms — first rows {} ({:.0} ms), all rows {} ({:.0} ms)",
        verdict(render.median),
        render.ms(),
        verdict(complete.median),
        complete.ms()
    );
    Ok(())
}

/// Pushes `BRANCHES` branches: `main` with 190 of the 200 names, the others each missing a
/// few of main's and holding a few main lacks.
async fn seed(url: &str, token: &str, blob: &str) -> Result<()> {
    let client = reqwest::Client::new();
    for b in 0..BRANCHES {
        let branch = if b == 0 {
            "main".to_owned()
        } else {
            format!("feature%2Fbranch-{b:02}")
        };
        let keys: Vec<String> = (0..KEYS)
            .filter(|&k| {
                if b == 0 {
                    k < KEYS - 10
                } else {
                    (k + b) % 17 != 0 && (k < KEYS - 10 || (k + b) % 3 == 0)
                }
            })
            .map(|k| format!("SERVICE_{:02}_KEY_{k:03}", k % 23))
            .collect();
        let response = client
            .post(format!("{url}/env/{PROJECT}/{branch}"))
            .bearer_auth(token)
            .json(&json!({ "ciphertext": blob, "keys": keys, "base_version": null }))
            .send()
            .await?;
        if response.status() != 201 {
            bail!("push {branch}: {}", response.text().await?);
        }
    }
    Ok(())
}
