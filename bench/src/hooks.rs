//! `envsync-bench hooks`: what the git hooks add to `git commit` and `git checkout`,
//! against plain git on an identical repository in the same run.
//!
//! - `git commit` (env unchanged) with pre-commit + post-commit vs without hooks;
//! - `git checkout` between two branches whose envs are already current: the same env on
//!   both (nothing to write), and different envs (restored from the sealed local copy);
//! - the same in team-key mode with 20 members: every hook under consent, pulls that
//!   verify a signature;
//! - the same with the server down (connection refused) and with a server that accepts
//!   connections and never answers: the worst case a hook can cost, first run and within
//!   the 30 s a failure is remembered;
//! - a cherry-pick of six commits with an edit pending against a server that never
//!   answers: about one network timeout in all, not one per commit.

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
    let mut server = LabServer::start()?;
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

    header("git hooks in team-key mode, 20 members: consent checked, pulls verify a signature");
    let team_plain = LabRepo::new(dir.path(), "team-plain", &server, "hooks-team")?;
    let team = LabRepo::new(dir.path(), "team-hooked", &server, "hooks-team")?;
    let mate = LabRepo::new(dir.path(), "team-mate", &server, "hooks-team")?;
    lab::team_of_20("hooks-team", &[&team, &mate])?;
    team.envsync(&["hooks", "install"])?;
    for repo in [&team_plain, &team] {
        repo.write_env(&sample)?;
        repo.git(&["branch", "other"])?;
    }
    team.envsync(&["push"])?;
    team.git(&["checkout", "-q", "other"])?;
    team.write_env(&format!("{sample}OTHER_ONLY=1\n"))?;
    team.envsync(&["push"])?;
    team.git(&["checkout", "-q", "main"])?;
    let (tc_plain, tc_hooked) = commit(&team_plain, &team)?;
    report(
        "git commit, team mode, env unchanged",
        &tc_hooked,
        &tc_plain,
        "≤ +10 ms",
    );
    let (to_plain, to_hooked) = checkout(&team_plain, &team, "main", "other")?;
    report(
        "git checkout, team mode, env restored from the local copy",
        &to_hooked,
        &to_plain,
        "≤ +20 ms",
    );
    // A teammate's new version on the other branch before each checkout to it: the hook
    // fetches it and checks its signature.
    let (tn_plain, tn_hooked) = measure_pair(
        n,
        |i| {
            let to = if i.is_multiple_of(2) { "other" } else { "main" };
            time(&mut team_plain.git_cmd(&["checkout", "-q", to]))
        },
        |i| {
            if i.is_multiple_of(2) {
                mate.write_env(&format!("{sample}OTHER_ONLY={i}\n"))?;
                mate.envsync(&["push", "--branch", "other", "--force"])?;
            }
            let to = if i.is_multiple_of(2) { "other" } else { "main" };
            time(&mut team.git_cmd(&["checkout", "-q", to]))
        },
    )?;
    report(
        "git checkout, team mode, other branch moved (fetch, verify signature)",
        &tn_hooked,
        &tn_plain,
        "",
    );

    // Six commits to cherry-pick later, made while the server answers.
    for repo in [&plain, &hooked] {
        repo.git(&["checkout", "-q", "-b", "picks"])?;
        for k in 0..6 {
            std::fs::write(repo.root.join(format!("pick-{k}")), "x")?;
            repo.git(&["add", "."])?;
            repo.git(&["commit", "-q", "-m", &format!("pick {k}")])?;
        }
        repo.git(&["checkout", "-q", "main"])?;
    }

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
    // A hook that finds no answer remembers it for 30 s (`.git/envsync/offline`); each
    // run below forgets it first, so it is the first hook run after the server went
    // silent: the worst case.
    let memo = hooked.root.join(".git/envsync/offline");
    let forget = || {
        let _ = std::fs::remove_file(&memo);
    };
    let silent_commit = measure(runs, |_| {
        forget();
        time(&mut hooked.git_cmd(&["commit", "-q", "--allow-empty", "-m", "silent"]))
    })?;
    let silent_checkout = measure(runs, |i| {
        forget();
        let to = if i % 2 == 0 { "other" } else { "main" };
        time(&mut hooked.git_cmd(&["checkout", "-q", to]))
    })?;
    report(
        "git commit, server never answering (first hook run)",
        &silent_commit,
        &c_plain,
        "≤ +1.6 s",
    );
    report(
        "git checkout, server never answering (first hook run)",
        &silent_checkout,
        &o_plain,
        "≤ +1.6 s",
    );
    let remembered = measure(runs, |_| {
        time(&mut hooked.git_cmd(&["commit", "-q", "--allow-empty", "-m", "silent"]))
    })?;
    report(
        "git commit, server never answering, within 30 s of the first failure",
        &remembered,
        &c_plain,
        "",
    );

    // Six commits cherry-picked with an edit pending: every commit's hooks would wait for
    // the silent server; remembered, only the first does.
    let base = |repo: &LabRepo| -> Result<String> {
        let out = repo.git_cmd(&["rev-parse", "HEAD"]).output()?;
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let (plain_base, hooked_base) = (base(&plain)?, base(&hooked)?);
    let pick = |repo: &LabRepo, at: &str| -> Result<std::time::Duration> {
        repo.git(&["reset", "-q", "--hard", at])?;
        forget();
        repo.write_env(&format!("{sample}PENDING=1\n"))?;
        time(&mut repo.git_cmd(&["cherry-pick", "main..picks"]))
    };
    let (pick_plain, pick_hooked) = measure_pair(
        runs,
        |_| pick(&plain, &plain_base),
        |_| pick(&hooked, &hooked_base),
    )?;
    report(
        "git cherry-pick of 6 commits, env edited, server never answering",
        &pick_hooked,
        &pick_plain,
        "≈ one timeout (≤ +1.6 s)",
    );
    Ok(())
}
