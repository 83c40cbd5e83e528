//! `git envsync mv OLD NEW`: after `git branch -m OLD NEW`, copies OLD's env to NEW as a
//! new version (verified like any read), and keeps OLD's. If the env file held OLD's
//! env, it now holds NEW's, edits included.

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::crypto::Keyring;
use crate::error::{CliError, Result};
use crate::fsutil;
use crate::git;
use crate::out;
use crate::state::FileState;
use crate::sync;
use std::process::ExitCode;

/// Copy a branch's env to another branch name as a new version (after git branch -m);
/// the old one is kept.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// The branch whose env to copy.
    old: String,
    /// The branch to copy it to.
    new: String,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    git::check_branch(&args.old)?;
    git::check_branch(&args.new)?;
    if args.old == args.new {
        return Err(CliError::usage("the two branch names are the same"));
    }
    let ctx = Context::load(global)?;
    let api = ctx.api(Timeouts::COMMAND)?;
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, true)?;
    let fetched = sync::fetch_source(&ctx, &api, &mut keyring, &args.old)?;
    let latest = sync::latest_version(&ctx, &api, &args.new)?;
    let mut branch = ctx.state.branch(&args.new)?;
    let version = sync::push_version(
        &ctx,
        &api,
        &mut keyring,
        &mut branch,
        fetched.content.expose(),
        latest,
        sync::Writer::Team,
    )?;
    // The file follows the rename: it is NEW's now, and its edits are edits to NEW.
    if let Some(file) = ctx.state.file()?
        && file.branch == args.old
    {
        ctx.state.set_file(&FileState {
            // Edits made while another branch was checked out stay marked: moving the
            // server's env does not make them this branch's.
            away: file.away.clone(),
            ..FileState::synced(
                fsutil::sha256_hex(fetched.content.expose()),
                &args.new,
                version,
                ctx.config.digest(),
            )
        })?;
    }
    out::say(&format!(
        "Copied {} version {} to {} as version {version} ({} is kept)",
        args.old, fetched.version, args.new, args.old
    ));
    Ok(ExitCode::SUCCESS)
}
