//! `git envsync diff`: key names, and which values changed (from fingerprints, never the
//! values), local vs server or branch vs branch. Needs no passphrase, so a readonly token
//! in CI can gate on drift.

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::drift::Drift;
use crate::error::{CliError, Result};
use crate::fingerprints;
use crate::out;
use crate::sync;
use envsync_common::api::KeysResponse;
use std::process::ExitCode;

/// Show which key names differ between the env file and the server (or two branches), and
/// which values changed, from value fingerprints, without decrypting anything.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Compare the branch's server keys with this branch's instead of the local file.
    #[arg(long, value_name = "BRANCH")]
    against: Option<String>,
    /// Exit with 1 when there is drift.
    #[arg(long)]
    exit_code: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let api = ctx.api(Timeouts::COMMAND)?;
    let project = &ctx.config.project;
    let server_keys = |branch: &str| -> Result<Option<KeysResponse>> {
        let keys = api.keys(project, branch).map_err(|e| api.fail(e))?;
        if let Some(k) = &keys {
            ctx.state.record_seen(branch, k.version, &k.keys)?;
        }
        Ok(keys)
    };

    let (drift, labels) = match &args.against {
        Some(other) => {
            crate::git::check_branch(other)?;
            let theirs = server_keys(other)?.ok_or_else(|| {
                CliError::refused(format!("{other} has no env on the server"))
                    .hint("git envsync status lists where this clone stands; the branch name may be misspelt")
            })?;
            let ours = server_keys(&ctx.branch)?;
            let changed = fingerprints::changed(
                ours.as_ref().and_then(|k| k.fingerprints.as_ref()),
                theirs.fingerprints.as_ref(),
            );
            let drift = Drift::new(ours.map(|k| k.keys).unwrap_or_default(), theirs.keys)
                .with_values(changed);
            let labels = (
                format!("Keys on {}", ctx.branch),
                format!("Keys on {other}"),
                format!("on {}", ctx.branch),
            );
            (drift, labels)
        }
        None => {
            if let Some(file) = ctx.state.file()?
                && file.branch != ctx.branch
            {
                out::say(&format!(
                    "note: {} holds {}, not {}",
                    ctx.env_display(),
                    file.holds(),
                    ctx.branch
                ));
            }
            let content = sync::read_env(&ctx)?;
            let local = match &content {
                Some(bytes) => sync::parse_keys(&ctx, bytes.expose())?.names,
                None => Vec::new(),
            };
            let server = server_keys(&ctx.branch)?;
            let changed = fingerprints::changed(
                content
                    .as_ref()
                    .and_then(|c| fingerprints::of_local(&ctx, c.expose()))
                    .as_ref(),
                server.as_ref().and_then(|k| k.fingerprints.as_ref()),
            );
            let drift =
                Drift::new(local, server.map(|k| k.keys).unwrap_or_default()).with_values(changed);
            let labels = (
                "Local keys".to_owned(),
                "Server keys".to_owned(),
                "locally".to_owned(),
            );
            (drift, labels)
        }
    };

    if global.json {
        out::json(&serde_json::json!({
            "branch": ctx.branch,
            "against": args.against,
            "left": drift.left,
            "right": drift.right,
            "missing": drift.missing,
            "extra": drift.extra,
            "changed": drift.changed,
            "in_sync": drift.in_sync(),
        }));
    } else {
        out::print(&drift.render(&labels.0, &labels.1, &labels.2));
    }
    Ok(if args.exit_code && !drift.in_sync() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
