//! `git envsync lock`: makes the agent forget passphrases.

use crate::agent::client;
use crate::cli::Global;
use crate::config::ProjectConfig;
use crate::error::{CliError, Result};
use crate::git::Repo;
use crate::out;
use serde_json::json;
use std::process::ExitCode;

/// Make the passphrase agent forget: every project's passphrase (the agent then exits),
/// or with --this-project only this repository's.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    /// Forget only the passphrase of this repository's project.
    #[arg(long)]
    this_project: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let project = if args.this_project {
        let repo = Repo::discover()?;
        Some(ProjectConfig::load(&repo.root)?.project)
    } else {
        None
    };
    let forgotten = client::forget(project.as_deref())
        .map_err(|e| CliError::refused(format!("cannot reach the agent: {e:#}")))?;
    if global.json {
        out::json(&json!({
            "running": forgotten.is_some(),
            "forgotten": forgotten.unwrap_or(0),
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let line = match (forgotten, &project) {
        (None, _) => "Nothing to forget: no agent is running".to_owned(),
        (Some(0), Some(p)) => format!("The agent held no passphrase for {p}"),
        (Some(_), Some(p)) => format!("Forgot the passphrase of {p}"),
        (Some(0), None) => "The agent held no passphrase; it has stopped".to_owned(),
        (Some(n), None) => format!(
            "Forgot {n} passphrase{}; the agent has stopped",
            if n == 1 { "" } else { "s" }
        ),
    };
    out::say(&line);
    Ok(ExitCode::SUCCESS)
}
