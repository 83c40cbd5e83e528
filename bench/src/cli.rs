//! `envsync-bench cli`: whole-process timings of `git envsync` against a loopback server.
//!
//! - `diff` and `status` (no decryption), next to `git rev-parse` in the same repository;
//! - `push` and `pull` split into scrypt (timed in-process, same payload) and the rest;
//!   the rest is measured at work factor 10 so that scrypt's own noise does not swamp it,
//!   and the product default (18) is shown whole;
//! - a push that merges a teammate's version first, beside a plain push: at most one
//!   scrypt more in passphrase mode, and within the team-mode target;
//! - team-key mode with 20 recipients (no scrypt): `push`, `pull`;
//! - `rotate` of 100 branches in team-key mode.

use crate::lab::{self, LabRepo, LabServer, Stats, header, measure, row, time};
use anyhow::{Result, bail};
use envsync_common::envelope::{self, Binding, Seal};
use envsync_common::secret::SecretString;
use std::time::Instant;

pub fn run(args: Vec<String>) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(bad) = args.iter().find(|a| *a != "--quick") {
        bail!("unknown argument '{bad}' (usage: envsync-bench cli [--quick])");
    }
    let n = if quick { 5 } else { 30 };
    let dir = tempfile::tempdir()?;
    let server = LabServer::start()?;
    let sample = lab::sample_env()?;
    let alice = LabRepo::new(dir.path(), "alice", &server, "bench")?;
    alice.write_env(&sample)?;
    alice.envsync(&["push"])?;

    header("git envsync, whole process, loopback server, 50-key sample .env");
    let git = measure(n, |_| {
        time(&mut alice.git_cmd(&["rev-parse", "--abbrev-ref", "HEAD"]))
    })?;
    row("git rev-parse (baseline)", &git.show(), "", "", "");
    for cmd in ["diff", "status"] {
        let s = measure(n, |_| alice.envsync(&[cmd]))?;
        row(
            &format!("git envsync {cmd}"),
            &s.show(),
            &git.show(),
            &format!("+{:.1} ms", s.ms() - git.ms()),
            "≤ 15 ms",
        );
    }

    // scrypt alone, in-process, on the same payload.
    let scrypt = |wf: u8, runs: usize| -> Result<Stats> {
        let pass = SecretString::from(lab::PASS.to_owned());
        let binding = Binding::new("bench", "main", 1);
        measure(runs, |_| {
            let start = Instant::now();
            envelope::seal(
                &binding,
                sample.as_bytes(),
                &Seal::Passphrase {
                    passphrase: &pass,
                    work_factor: wf,
                },
            )?;
            Ok(start.elapsed())
        })
    };
    let scrypt10 = scrypt(10, n)?;
    let scrypt18 = scrypt(18, if quick { 2 } else { 5 })?;

    let mut bob = LabRepo::new(dir.path(), "bob", &server, "bench")?;
    bob.token = alice.token.clone();
    let push10 = measure(n, |i| {
        alice.write_env(&format!("{sample}# {i}\n"))?;
        alice.envsync(&["push"])
    })?;
    let pull10 = measure(n, |i| {
        alice.write_env(&format!("{sample}# pull {i}\n"))?;
        alice.envsync(&["push"])?;
        bob.envsync(&["pull"])
    })?;
    let unmoved = measure(n, |_| bob.envsync(&["pull"]))?;
    let merge10 = merge_push(&alice, &bob, n)?;
    let rest = |s: &Stats| format!("{:.1} ms", s.ms() - scrypt10.ms());
    row(
        "scrypt alone, work factor 10 (in-process)",
        &scrypt10.show(),
        "",
        "",
        "",
    );
    row(
        "push, work factor 10",
        &push10.show(),
        &scrypt10.show(),
        &format!("rest {}", rest(&push10)),
        "rest ≤ 15 ms",
    );
    row(
        "pull of a new version, work factor 10",
        &pull10.show(),
        &scrypt10.show(),
        &format!("rest {}", rest(&pull10)),
        "rest ≤ 15 ms",
    );
    row(
        "pull, nothing moved (no scrypt)",
        &unmoved.show(),
        &git.show(),
        &format!("+{:.1} ms", unmoved.ms() - git.ms()),
        "",
    );
    // A merge reads the teammate's version (a verified pull's work, one scrypt) and pushes:
    // nothing more. At work factor 10 the read's own costs (requests, fsyncs) show; at the
    // default 18 below, scrypt is all there is.
    row(
        "push that merges a teammate's version first, work factor 10",
        &merge10.show(),
        &format!("push + pull {:.1} ms", push10.ms() + pull10.ms()),
        &format!("{:+.1} ms", merge10.ms() - push10.ms() - pull10.ms()),
        "≤ push + pull",
    );

    let mut alice18 = alice;
    alice18.work_factor = None;
    bob.work_factor = None;
    let runs18 = if quick { 2 } else { 5 };
    let push18 = measure(runs18, |i| {
        alice18.write_env(&format!("{sample}# wf18 {i}\n"))?;
        alice18.envsync(&["push"])
    })?;
    let pull18 = measure(runs18, |i| {
        alice18.write_env(&format!("{sample}# wf18 pull {i}\n"))?;
        alice18.envsync(&["push"])?;
        bob.envsync(&["pull"])
    })?;
    let merge18 = merge_push(&alice18, &bob, runs18)?;
    row(
        "scrypt alone, work factor 18 (in-process)",
        &scrypt18.show(),
        "",
        "",
        "",
    );
    row(
        "push, work factor 18 (default)",
        &push18.show(),
        &scrypt18.show(),
        &format!("×{:.2}", push18.ms() / scrypt18.ms()),
        "",
    );
    row(
        "pull, work factor 18 (default)",
        &pull18.show(),
        &scrypt18.show(),
        &format!("×{:.2}", pull18.ms() / scrypt18.ms()),
        "",
    );
    row(
        "push that merges a teammate's version first, work factor 18",
        &merge18.show(),
        &format!("push {}", push18.show()),
        &format!(
            "+{:.2} scrypt",
            (merge18.ms() - push18.ms()) / scrypt18.ms()
        ),
        "≤ push + 1 scrypt",
    );

    team(dir.path(), &server, &sample, &git, quick)
}

/// `alice`'s push when `bob` pushed a disjoint edit since her last sync: she merges his
/// version into her file (one verified read of it), then pushes. Only her push is timed.
/// Both must be in sync with the branch's latest version when called.
fn merge_push(alice: &LabRepo, bob: &LabRepo, n: usize) -> Result<Stats> {
    let env = |repo: &LabRepo| std::fs::read_to_string(repo.root.join(".env"));
    measure(n, |i| {
        bob.envsync(&["pull"])?;
        bob.write_env(&format!("{}BOB_{i}=x\n", env(bob)?))?;
        bob.envsync(&["push"])?;
        alice.write_env(&format!("{}ALICE_{i}=x\n", env(alice)?))?;
        alice.envsync(&["push"])
    })
}

/// Team-key mode: 20 recipients, no scrypt.
fn team(
    dir: &std::path::Path,
    server: &LabServer,
    sample: &str,
    git: &Stats,
    quick: bool,
) -> Result<()> {
    let n = if quick { 5 } else { 30 };
    let project = "team";
    let alice = LabRepo::new(dir, "team-alice", server, project)?;
    let mut bob = LabRepo::new(dir, "team-bob", server, project)?;
    bob.token = alice.token.clone();
    // 20 members, each with an age key and a signing key: alice and bob for real, 18
    // more made here. Every push is signed, every pull checks the signature.
    let keys = lab::team_of_20(project, &[&alice, &bob])?;
    alice.write_env(sample)?;
    alice.envsync(&["push"])?;

    header("team-key mode, 20 members (signed pushes, verified pulls), whole process");
    let push = measure(n, |i| {
        alice.write_env(&format!("{sample}# {i}\n"))?;
        alice.envsync(&["push"])
    })?;
    let pull = measure(n, |i| {
        alice.write_env(&format!("{sample}# pull {i}\n"))?;
        alice.envsync(&["push"])?;
        bob.envsync(&["pull"])
    })?;
    let merge = merge_push(&alice, &bob, n)?;
    // Stock age (the reference Go implementation), same payload and recipients.
    let plain = dir.join("team-plain.env");
    std::fs::write(&plain, sample)?;
    let sealed = dir.join("team-sealed.age");
    let mut encrypt = std::process::Command::new("age");
    encrypt.args(["-e", "-a", "-o"]).arg(&sealed);
    for key in &keys {
        encrypt.args(["-r", key]);
    }
    encrypt.arg(&plain);
    let stock = which_age().then(|| {
        let enc = measure(n, |_| time(&mut encrypt))?;
        let identity = bob.home.join(".config/envsync/identity.txt");
        let dec = measure(n, |_| {
            time(
                std::process::Command::new("age")
                    .args(["-d", "-i"])
                    .arg(&identity)
                    .arg(&sealed),
            )
        })?;
        Ok::<_, anyhow::Error>((enc, dec))
    });
    let stock = stock.transpose()?;
    let cases = [
        ("push", push, stock.map(|s| ("age -e, 20 recipients", s.0))),
        (
            "pull of a new version",
            pull,
            stock.map(|s| ("age -d -i", s.1)),
        ),
    ];
    for (what, s, baseline) in cases {
        let (name, base) = baseline.unwrap_or(("git rev-parse", *git));
        row(
            what,
            &s.show(),
            &format!("{name}: {}", base.show()),
            &format!("×{:.1}", s.ms() / base.ms()),
            "≤ 20 ms",
        );
    }

    row(
        "push that merges a teammate's version first",
        &merge.show(),
        &format!("push {}", push.show()),
        &format!("+{:.1} ms", merge.ms() - push.ms()),
        "≤ 20 ms",
    );

    let branches = if quick { 20 } else { 100 };
    for b in 0..branches {
        alice.write_env(&format!("{sample}# branch {b}\n"))?;
        alice.envsync(&["push", "--branch", &format!("rotate-{b:03}")])?;
    }
    let progress = alice
        .root
        .join(".git/envsync")
        .join(project)
        .join("rotation.json");
    let rotate = measure(if quick { 1 } else { 3 }, |_| {
        let _ = std::fs::remove_file(&progress);
        alice.envsync(&["rotate"])
    })?;
    row(
        &format!("rotate, {} branches", branches + 1),
        &rotate.show(),
        "",
        &format!("{:.1} ms/branch", rotate.ms() / (branches + 1) as f64),
        "≤ 5 s for 100",
    );
    Ok(())
}

fn which_age() -> bool {
    std::process::Command::new("age")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
