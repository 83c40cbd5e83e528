//! `git envsync push`: encrypts the env file and pushes it as the branch's next version.

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::crypto::Keyring;
use crate::error::{CliError, Result};
use crate::out;
use crate::sync::{self, PushOutcome};
use serde_json::json;
use std::process::ExitCode;

/// Encrypt the env file locally and push it as a new version of the branch.
///
/// Refused (exit 1) when the server has a version this clone has not seen.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Push even if the server has versions this clone has not seen.
    #[arg(long)]
    force: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    // The file's edits belong to the branch whose env it holds: pushing them to whichever
    // branch is checked out would give that branch another branch's env.
    if global.branch.is_none()
        && let Some(file) = ctx.state.file()?
        && file.branch != ctx.branch
    {
        return Err(CliError::refused(format!(
            "{} holds {}, not {}: pushing it here would give {} another branch's env",
            ctx.env_display(),
            file.holds(),
            ctx.branch,
            ctx.branch
        ))
        .hint(format!(
            "git envsync push --branch {} pushes it where it belongs; git envsync adopt makes it {}'s own",
            file.branch, ctx.branch
        )));
    }
    let api = ctx.api(Timeouts::COMMAND)?;
    let mut keyring = Keyring::new(&ctx.config, true)?;
    let outcome = sync::push(&ctx, &api, &mut keyring, &ctx.branch, args.force)?;
    match outcome {
        PushOutcome::UpToDate { version } => {
            if global.json {
                out::json(&json!({"pushed": false, "version": version}));
            } else {
                out::say(&format!(
                    "Nothing to push: {} is version {version} of {}",
                    ctx.env_display(),
                    ctx.branch
                ));
            }
        }
        PushOutcome::Pushed {
            version,
            added,
            removed,
            duplicates,
        } => {
            for key in &duplicates {
                out::say(&format!(
                    "warning: {key} appears more than once in {}; the last value wins",
                    ctx.env_display()
                ));
            }
            if global.json {
                out::json(&json!({
                    "pushed": true, "version": version, "added": added, "removed": removed,
                }));
            } else {
                let mut changes: Vec<String> = added.iter().map(|k| format!("+{k}")).collect();
                changes.extend(removed.iter().map(|k| format!("-{k}")));
                let changes = if changes.is_empty() || version == 1 {
                    String::new()
                } else {
                    format!(" ({})", changes.join(" "))
                };
                out::say(&format!(
                    "Pushed {} to {} as version {version}{changes}",
                    ctx.env_display(),
                    ctx.branch
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
