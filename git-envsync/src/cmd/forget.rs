//! `git envsync forget`: wipes what this clone keeps of a branch (or of every branch)
//! under `.git/envsync/`: the last version synced, the cached key list, the sealed copy
//! of the plaintext and a merge in progress on it. The env file itself is left alone, and from then on counts as
//! never synced, so nothing replaces it unasked.

use crate::cli::Global;
use crate::config::ProjectConfig;
use crate::error::Result;
use crate::git::{self, Repo};
use crate::merging;
use crate::out;
use crate::state::State;
use crate::trust::TrustStore;
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
    // Which project's files are wiped is the project id's to say (validated: one path
    // segment, no `..`), so it must come from settings this clone trusted: a branch's
    // untrusted `.envsync.toml` naming another project must not choose what is wiped.
    // (No server is involved, so no more than the trust check of `Context::load`.)
    let repo = Repo::discover()?;
    let config = ProjectConfig::load(&repo.root)?;
    TrustStore::new(repo.common_dir()).require(&config)?;
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
    // A merge in progress on the branch goes too: it holds a sealed copy of its env.
    let merge = merging::forget(&state, &branch)?;
    let removed = state.forget_branch(&branch)? | merge;
    out::say(&if removed {
        format!("Forgot {branch} in this clone")
    } else {
        format!("Nothing to forget for {branch}")
    });
    Ok(ExitCode::SUCCESS)
}
