//! `envsync-bench hooks`: what the git hooks add to `git commit` and `git checkout`,
//! against plain git on an identical repository in the same run.
//!
//! - `git commit` (env unchanged) with pre-commit + post-commit vs without hooks;
//! - `git checkout` between two branches whose envs are already current: the same env on
//!   both (nothing to write), and different envs (restored from the sealed local copy);
//! - the same with the server down (connection refused) and with a server that accepts
//!   connections and never answers: the worst case a hook can cost.

use crate::lab::{self, LabRepo, LabServer, Stats, header, measure, measure_pair, row, time};
use anyhow::{Result, bail};
use std::net::TcpListener;

pub fn run(args: Vec<String>) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(bad) = args.iter().find(|a| *a != "--quick") {
        bail!("unknown argument '{bad}' (usage: envsync-bench hooks [--quick])");
    }
    let n = if quick { 5 } else { 30 };
    let dir = tempfile::tempdir()?;
    let mut server = LabServer::start(dir.path())?;
    let sample = lab::sample_env()?;

    let plain = LabRepo::new(dir.path(), "plain", &server, "hooks")?;
    let mut hooked = LabRepo::new(dir.path(), "hooked", &server, "hooks")?;
    hooked.envsync(&["hooks", "install"])?;
    for repo in [&plain, &hooked] {
        repo.write_env(&sample)?;
        repo.git(&["branch", "same"])?;
        repo.git(&["branch", "other"])?;
    }
    // main and `same` share one env; `other` has its own.
    hooked.envsync(&["push"])?;
    hooked.envsync(&["push", "--branch", "same"])?;
    hooked.git(&["checkout", "-q", "other"])?;
    hooked.write_env(&format!("{sample}OTHER_ONLY=1\n"))?;
    hooked.envsync(&["push"])?;
    hooked.git(&["checkout", "-q", "main"])?;

    // Plain and hooked runs alternate, so both see the same load on a shared machine.
    let commit = |plain: &LabRepo, hooked: &LabRepo| -> Result<(Stats, Stats)> {
        let run = |repo: &LabRepo| {
            time(&mut repo.git_cmd(&["commit", "-q", "--allow-empty", "-m", "bench"]))
        };
        measure_pair(n, |_| run(plain), |_| run(hooked))
    };
    let checkout =
        |plain: &LabRepo, hooked: &LabRepo, a: &str, b: &str| -> Result<(Stats, Stats)> {
            let run = |repo: &LabRepo, i: usize| {
                let to = if i.is_multiple_of(2) { b } else { a };
                time(&mut repo.git_cmd(&["checkout", "-q", to]))
            };
            measure_pair(n, |i| run(plain, i), |i| run(hooked, i))
        };
    let report = |what: &str, with: &Stats, without: &Stats, target: &str| {
        row(
            what,
            &with.show(),
            &without.show(),
            &format!("+{:.1} ms", with.ms() - without.ms()),
            target,
        );
    };

    header("git hooks, whole git command, server up, env unchanged");
    let (c_plain, c_hooked) = commit(&plain, &hooked)?;
    report(
        "git commit with pre-commit + post-commit",
        &c_hooked,
        &c_plain,
        "≤ +10 ms",
    );
    // What is left of the commit's cost: the one process pre-commit starts, next to the
    // same binary doing nothing but starting and exiting.
    let (start, pre_commit) = measure_pair(
        n,
        |_| hooked.envsync(&["--version"]),
        |_| hooked.envsync(&["hook", "pre-commit"]),
    )?;
    report(
        "git-envsync hook pre-commit alone (baseline: git-envsync --version)",
        &pre_commit,
        &start,
        "",
    );
    let (s_plain, s_hooked) = checkout(&plain, &hooked, "main", "same")?;
    report(
        "git checkout, same env on both branches",
        &s_hooked,
        &s_plain,
        "≤ +20 ms",
    );
    let (o_plain, o_hooked) = checkout(&plain, &hooked, "main", "other")?;
    report(
        "git checkout, env restored from the local copy",
        &o_hooked,
        &o_plain,
        "≤ +20 ms",
    );

    header("git hooks when the server is not there");
    let runs = if quick { 2 } else { 5 };
    server.kill();
    let down_commit = measure(runs, |_| {
        time(&mut hooked.git_cmd(&["commit", "-q", "--allow-empty", "-m", "down"]))
    })?;
    let down_checkout = measure(runs, |i| {
        let to = if i % 2 == 0 { "other" } else { "main" };
        time(&mut hooked.git_cmd(&["checkout", "-q", to]))
    })?;
    report(
        "git commit, server refusing connections",
        &down_commit,
        &c_plain,
        "≤ +1.6 s",
    );
    report(
        "git checkout, server refusing connections",
        &down_checkout,
        &o_plain,
        "≤ +1.6 s",
    );

    let silent = TcpListener::bind("127.0.0.1:0")?;
    hooked.api = format!("http://{}", silent.local_addr()?);
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().collect();
        drop(held);
    });
    let silent_commit = measure(runs, |_| {
        time(&mut hooked.git_cmd(&["commit", "-q", "--allow-empty", "-m", "silent"]))
    })?;
    let silent_checkout = measure(runs, |i| {
        let to = if i % 2 == 0 { "other" } else { "main" };
        time(&mut hooked.git_cmd(&["checkout", "-q", to]))
    })?;
    report(
        "git commit, server never answering",
        &silent_commit,
        &c_plain,
        "≤ +1.6 s",
    );
    report(
        "git checkout, server never answering",
        &silent_checkout,
        &o_plain,
        "≤ +1.6 s",
    );
    Ok(())
}
