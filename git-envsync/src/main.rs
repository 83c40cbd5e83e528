//! `git-envsync`, the binary behind `git envsync …`.
//!
//! `main` parses the command line, runs one command and turns its result into an exit
//! code in one place: errors print as `error: …` and `hint: …` on stderr.

mod cli;
mod client;
mod cmd;
mod config;
mod context;
mod crypto;
mod drift;
mod error;
mod fsutil;
mod git;
mod hooks;
mod out;
mod state;
mod sync;

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {}", err.message());
            if let Some(hint) = &err.hint {
                let _ = writeln!(stderr, "hint: {hint}");
            }
            err.exit_code()
        }
    }
}
