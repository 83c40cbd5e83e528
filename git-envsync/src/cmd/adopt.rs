//! `git envsync adopt`: makes the env file the checked-out branch's own.
//!
//! After a checkout that could not bring the new branch's env (the server was down, a
//! version was refused) the file still holds the old branch's, and envsync will not push
//! it anywhere but there. `adopt` is the user saying "this content is now this branch's":
//! it becomes an edit of the branch, which the next push (or commit) publishes.

use crate::cli::Global;
use crate::context::Context;
use crate::error::{CliError, Result};
use crate::out;
use crate::state::{FileState, Source};
use crate::sync;
use std::process::ExitCode;

/// Make the env file the checked-out branch's own: the next push publishes it there.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(global: &Global, _args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    if sync::read_env(&ctx)?.is_none() {
        return Err(CliError::usage(format!(
            "there is no {} to adopt",
            ctx.env_display()
        )));
    }
    let old = ctx.state.file()?;
    if let Some(file) = &old
        && file.branch == ctx.branch
    {
        out::say(&format!(
            "{} already holds {}'s env",
            ctx.env_display(),
            ctx.branch
        ));
        return Ok(ExitCode::SUCCESS);
    }
    // Relative to what this clone last synced of the branch, the file is now an edit.
    let branch = ctx.state.branch(&ctx.branch)?;
    ctx.state.set_file(&FileState {
        sha256: branch.sha256.clone().unwrap_or_default(),
        branch: ctx.branch.clone(),
        version: branch.version,
        from: old.as_ref().map(|f| Source {
            branch: f.branch.clone(),
            version: f.version,
        }),
        config: Some(ctx.config.digest()),
    })?;
    out::say(&format!(
        "{} is now {}'s{}; git envsync push publishes it as its next version",
        ctx.env_display(),
        ctx.branch,
        old.map(|f| format!(" (it held {})", f.holds()))
            .unwrap_or_default()
    ));
    Ok(ExitCode::SUCCESS)
}
