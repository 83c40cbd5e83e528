//! `envsync-bench`: benchmarks of envsync, one subcommand per area.
//!
//! `envsync-bench server` measures the HTTP API against its physical limits (see
//! `server.rs`). Each subcommand lives in its own module with a `run(args)`; add one by
//! adding a module and a line to the dispatch below.

mod cli;
mod dashboard;
mod hooks;
mod lab;
mod load;
mod pg;
mod report;
mod server;

use std::process::ExitCode;

const USAGE: &str = "usage: envsync-bench <subcommand>\n\nsubcommands:\n  server    push/pull/keys throughput and latency at 1, 16 and 64 clients, against raw SQLite and bare warp;\n            --pg (a throwaway cluster) or --db postgres://… adds the PostgreSQL store, 1 and 2 replicas\n  load      16 CAS-looping writers x 200 pushes and 64 readers x 500 pulls on one branch; checks and figures\n  cli       git envsync diff/status/push/pull/rotate as whole processes, scrypt split out, team-key mode\n  hooks     what the git hooks add to git commit and git checkout, server up, down and silent\n  dashboard the web dashboard drawing a 50-branch x 200-key matrix in headless Chromium\n  report    all of the above, written to BENCHMARKS.md with the machine it ran on\n\nbuild first: cargo build --release -p git-envsync -p envsync-server -p envsync-bench";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("server") => server::run(args.collect()),
        Some("cli") => cli::run(args.collect()),
        Some("hooks") => hooks::run(args.collect()),
        Some("dashboard") => dashboard::run(args.collect()),
        Some("load") => load::run(args.collect()),
        Some("report") => report::run(args.collect()),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(anyhow::anyhow!("unknown subcommand '{other}'\n{USAGE}")),
        None => Err(anyhow::anyhow!("no subcommand\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
