//! `git envsync agent --dir DIR`: the passphrase agent itself, started by `unlock` (not for
//! direct use; see [`crate::agent`]).

use crate::agent::{AgentDir, daemon};
use crate::cli::Global;
use crate::error::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run the passphrase agent (started by git envsync unlock).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agent's directory (0700): its socket, pid file and lock.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

pub fn run(_global: &Global, args: Args) -> Result<ExitCode> {
    daemon::run(AgentDir { path: args.dir })?;
    Ok(ExitCode::SUCCESS)
}
