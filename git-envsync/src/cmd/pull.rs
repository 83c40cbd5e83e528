//! `git envsync pull`: fetches, decrypts, verifies and writes the branch's env file.

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::crypto::Keyring;
use crate::error::{CliError, Result};
use crate::out;
use crate::sync::{self, PullOptions, PullOutcome};
use serde_json::json;
use std::process::ExitCode;

/// Fetch the branch's env, decrypt it locally and write the env file (mode 0600).
///
/// A branch with no env yet falls back to default_branch. Local edits that were never
/// pushed are not overwritten unless --force, which saves a backup first.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Replace local edits (a backup is saved next to the file first).
    #[arg(long)]
    force: bool,
    /// Take this version instead of the latest.
    #[arg(long, value_name = "N")]
    version: Option<u64>,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let api = ctx.api(Timeouts::COMMAND)?;
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, true)?;
    let opts = PullOptions {
        force: args.force,
        version: args.version,
        fallback: args.version.is_none(),
    };
    let file = ctx.env_display();
    // Unpushed edits to this branch's env, and the server moved on: merge its latest in.
    if !args.force
        && args.version.is_none()
        && let Some(theirs) = moved_past_edits(&ctx, &api)?
    {
        let merged = crate::merging::merge_latest(&ctx, &api, &mut keyring, theirs, true)?;
        if let Some(backup) = &merged.backup {
            out::say(&format!(
                "Saved the file before the merge to {}",
                backup.display()
            ));
        }
        if global.json {
            out::json(&json!({
                "written": !merged.already, "branch": ctx.branch, "version": merged.version,
                "merged": !merged.already, "incoming": merged.incoming,
            }));
        } else if merged.already {
            out::say(&format!(
                "{file} is up to date with {} version {}",
                ctx.branch, merged.version
            ));
        } else {
            out::say(&format!(
                "Merged {} version {} into {file}, your edits kept ({}); git envsync push publishes the result",
                ctx.branch,
                merged.version,
                if merged.incoming.is_empty() {
                    "nothing new came in".to_owned()
                } else {
                    format!("came in: {}", merged.incoming.join(", "))
                }
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    match sync::pull(&ctx, &api, &mut keyring, opts)? {
        PullOutcome::NoEnv => {
            let also = match &ctx.config.default_branch {
                Some(d) if *d != ctx.branch => format!(" (nor does {d})"),
                _ => String::new(),
            };
            return Err(CliError::refused(format!(
                "{} has no env on the server yet{also}",
                ctx.branch
            ))
            .hint("push one with git envsync push"));
        }
        PullOutcome::Unchanged { from, version } => {
            if global.json {
                out::json(&json!({"written": false, "branch": from, "version": version}));
            } else {
                out::say(&format!(
                    "{file} is up to date with {from} version {version}"
                ));
            }
        }
        PullOutcome::Written {
            from,
            version,
            backup,
            ..
        } => {
            if let Some(backup) = &backup {
                out::say(&format!("Saved your local edits to {}", backup.display()));
            }
            if global.json {
                out::json(&json!({
                    "written": true, "branch": from, "version": version,
                    "backup": backup.map(|b| b.display().to_string()),
                }));
            } else if from != ctx.branch {
                out::say(&format!(
                    "{} has no env yet: pulled {from} version {version} into {file}",
                    ctx.branch
                ));
            } else {
                out::say(&format!("Pulled {from} version {version} into {file}"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The server's latest version of the branch, when the env file holds unpushed edits to
/// this branch's env and the server has moved past the version they started from.
fn moved_past_edits(ctx: &Context, api: &crate::client::Api) -> Result<Option<u64>> {
    let Some(current) = sync::read_env(ctx)? else {
        return Ok(None);
    };
    let Some(file) = ctx.state.file()?.filter(|f| f.branch == ctx.branch) else {
        return Ok(None);
    };
    if file.sha256 == crate::fsutil::sha256_hex(current.expose()) {
        return Ok(None);
    }
    let synced = ctx.state.branch(&ctx.branch)?.version;
    let latest = sync::latest_version(ctx, api, &ctx.branch)?;
    Ok(latest.filter(|l| synced.is_some_and(|s| *l > s)))
}
