//! `git envsync copy --from BRANCH`: seeds a branch with another branch's env, as a new
//! version (verified like any read, pushed with compare-and-swap); the source is kept.

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::crypto::Keyring;
use crate::error::{CliError, Result};
use crate::git;
use crate::out;
use crate::sync::{self, Fetched, PullOptions};
use envsync_common::envfile;
use serde_json::json;
use std::process::ExitCode;

/// Copy another branch's latest env to this branch (or --branch) as its next version.
///
/// The source is read and verified like any pull, and kept. The target's earlier versions
/// stay in its history (git envsync rollback N). When the env file holds the target's env
/// it is updated too; refused when it has edits that were never pushed.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// The branch whose env to copy.
    #[arg(long, value_name = "BRANCH")]
    from: String,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    git::check_branch(&args.from)?;
    let ctx = Context::load(global)?;
    let target = ctx.branch.clone();
    if args.from == target {
        return Err(
            CliError::usage(format!("{target} is both the source and the target"))
                .hint("pass --branch TARGET to copy into another branch"),
        );
    }
    // The file holds the target's env (a file never synced counts as the checked-out
    // branch's, as for push): it follows the copy, unless it has edits that a later push
    // would make on top of the copy's version, undoing it without anyone noticing.
    let holds_target = match ctx.state.file()? {
        Some(file) => file.branch == target,
        None => global.branch.is_none(),
    };
    let follows = match sync::read_env(&ctx)? {
        Some(bytes) if holds_target => {
            if sync::has_local_edits(&ctx, bytes.expose())? {
                return Err(CliError::refused(format!(
                    "{} has edits to {target}'s env that were never pushed; not copying over them",
                    ctx.env_display()
                ))
                .hint("push them first (git envsync push), or pull --force to drop them (a backup is saved)"));
            }
            true
        }
        _ => false,
    };

    let api = ctx.api(Timeouts::COMMAND)?;
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, true)?;
    let fetched = sync::fetch_source(&ctx, &api, &mut keyring, &args.from)?;
    let latest = sync::latest_version(&ctx, &api, &target)?;
    let mut branch = ctx.state.branch(&target)?;
    if latest.is_none() && branch.seen > 0 {
        return Err(sync::lost(&target, branch.seen));
    }
    let version = sync::push_version(
        &ctx,
        &api,
        &mut keyring,
        &mut branch,
        fetched.content.expose(),
        latest,
        sync::Writer::Team,
    )?;
    if follows {
        let keys = envfile::keys(fetched.content.expose())
            .map(|k| k.names)
            .map_err(|e| CliError::refused(format!("the copied env does not parse: {e}")))?;
        // Already sealed locally by the push: written as a cached read.
        let copied = Fetched {
            content: fetched.content,
            from: target.clone(),
            version,
            server_keys: keys,
            cached: true,
            signer: None,
            // The push recorded how it was sealed.
            sealed: None,
        };
        sync::write_fetched(&ctx, copied, PullOptions::default())?;
    }
    if global.json {
        out::json(&json!({
            "from": args.from, "from_version": fetched.version,
            "branch": target, "version": version, "file_updated": follows,
        }));
    } else {
        let earlier = match latest {
            Some(v) => format!("; its version {v} stays in its history"),
            None => String::new(),
        };
        let file = if follows {
            format!("; {} now holds it", ctx.env_display())
        } else {
            String::new()
        };
        out::say(&format!(
            "Copied {} version {} to {target} as version {version} ({} is kept{earlier}){file}",
            args.from, fetched.version, args.from
        ));
    }
    Ok(ExitCode::SUCCESS)
}
