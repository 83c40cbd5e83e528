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
/// When the server has a version this clone has not seen, its changes are merged into the
/// file key by key first (your layout kept, the file before saved as a backup), then the
/// result is pushed; a key both sides changed stops the push (exit 1) for
/// `git envsync merge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Push even if the server has versions this clone has not seen (replacing them).
    #[arg(long, conflicts_with = "no_merge")]
    force: bool,
    /// When the server moved past the version your edits started from, refuse instead of
    /// merging its latest version into the file first.
    #[arg(long)]
    no_merge: bool,
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
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, true)?;
    let merge = if args.no_merge {
        sync::Merge::Never
    } else {
        sync::Merge::Keep
    };
    let outcome = sync::push(&ctx, &api, &mut keyring, &ctx.branch, args.force, merge)?;
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
            merged,
        } => {
            if let Some((theirs, incoming)) = &merged {
                out::say(&format!(
                    "Merged {} version {theirs} into {} first ({})",
                    ctx.branch,
                    ctx.env_display(),
                    if incoming.is_empty() {
                        "nothing new".to_owned()
                    } else {
                        format!("came in: {}", incoming.join(", "))
                    }
                ));
            }
            for key in &duplicates {
                out::say(&format!(
                    "warning: {key} appears more than once in {}; the last value wins",
                    ctx.env_display()
                ));
            }
            if global.json {
                out::json(&json!({
                    "pushed": true, "version": version, "added": added, "removed": removed,
                    "merged": merged.as_ref().map(|(v, keys)| json!({"version": v, "incoming": keys})),
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
