//! `git envsync forget`: wipes what this clone keeps of a branch (or of every branch)
//! under `.git/envsync/`: the last version synced, the cached key list and the sealed
//! copy of the plaintext. The env file itself is left alone, and from then on counts as
//! never synced, so nothing replaces it unasked.

use crate::cli::Global;
use crate::config::ProjectConfig;
use crate::error::Result;
use crate::git::{self, Repo};
use crate::out;
use crate::state::State;
use std::process::ExitCode;

/// Wipe this clone's sealed copies and state for the branch (--branch, default the
/// checked-out one), or for every branch with --all.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    /// Every branch of the project.
    #[arg(long)]
    all: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    // Forgetting needs no trust: it only removes this clone's own files, under a
    // directory named by the project id (validated: one path segment, no `..`).
    let repo = Repo::discover()?;
    let config = ProjectConfig::load(&repo.root)?;
    let state = State::new(repo.git_dir(), &config.project);
    if args.all {
        let removed = state.forget_all()?;
        let _ = std::fs::remove_file(repo.git_dir().join(super::run_hook::POST_COMMIT_NOTE));
        out::say(&if removed {
            format!("Forgot every branch of {} in this clone", config.project)
        } else {
            format!("Nothing to forget for {}", config.project)
        });
        return Ok(ExitCode::SUCCESS);
    }
    let branch = match &global.branch {
        Some(b) => {
            git::check_branch(b)?;
            b.clone()
        }
        None => repo.current_branch()?,
    };
    let removed = state.forget_branch(&branch)?;
    out::say(&if removed {
        format!("Forgot {branch} in this clone")
    } else {
        format!("Nothing to forget for {branch}")
    });
    Ok(ExitCode::SUCCESS)
}
