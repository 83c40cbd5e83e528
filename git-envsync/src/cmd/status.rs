//! `git envsync status`: one screen on where this clone stands.

use crate::cli::Global;
use crate::client::{ApiError, TOKEN_REJECTED, Timeouts};
use crate::context::Context;
use crate::drift::Drift;
use crate::error::Result;
use crate::fingerprints;
use crate::out;
use crate::sync;
use envsync_common::api::KeysResponse;
use reqwest::StatusCode;
use serde_json::json;
use std::process::ExitCode;

/// Show the project, branch, local file state, server version and drift.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
}

pub fn run(global: &Global, _args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let api = ctx.api(Timeouts::COMMAND)?;

    let content = sync::read_env(&ctx)?;
    let file = ctx.state.file()?;
    let (local_state, local_keys) = match &content {
        None => ("missing", None),
        Some(bytes) => {
            let keys = sync::parse_keys(&ctx, bytes.expose())?.names;
            let state = if file.is_none() {
                "never synced"
            } else if sync::has_local_edits(&ctx, bytes.expose())? {
                "edited"
            } else {
                "clean"
            };
            (state, Some(keys))
        }
    };
    // Whose env the file holds, when that is not simply the branch's.
    let holds = match &file {
        Some(f) if content.is_some() && f.branch != ctx.branch => {
            format!("; holds {}, not {}", f.holds(), ctx.branch)
        }
        Some(f) if content.is_some() && f.from.is_some() => format!("; holds {}", f.holds()),
        _ => String::new(),
    };

    let mut failure = None;
    let mut why = None;
    let (live, error) = sync::server_keys(&ctx, Some(&api), &ctx.branch);
    let branch = ctx.state.branch(&ctx.branch)?;
    let server = match error {
        None => live.map(|k| KeysResponse {
            version: k.version,
            keys: k.keys,
            fingerprints: k.fingerprints,
        }),
        Some(e) => {
            why = Some(match &e {
                ApiError::Status { status, .. } if *status == StatusCode::UNAUTHORIZED => {
                    TOKEN_REJECTED.to_owned()
                }
                ApiError::Status { status, .. } if *status == StatusCode::FORBIDDEN => {
                    format!("this token may not read {}", ctx.config.project)
                }
                ApiError::Status { status, .. } => format!("error {}", status.as_u16()),
                ApiError::Unreachable(_) | ApiError::TooLarge => "unreachable".to_owned(),
                ApiError::Tls(_) => "TLS handshake failed".to_owned(),
            });
            failure = Some(api.fail(e));
            None
        }
    };
    // A branch with no env of its own uses the default branch's.
    let fallback = match (&server, &failure, &ctx.config.default_branch) {
        (None, None, Some(default)) if *default != ctx.branch && branch.seen == 0 => api
            .keys(&ctx.config.project, default)
            .ok()
            .flatten()
            .map(|k| (default.clone(), k)),
        _ => None,
    };
    let server_state = match (&server, &why, branch.version) {
        (_, Some(why), _) => why.clone(),
        (None, None, _) if branch.seen > 0 => format!(
            "none, but this clone synced version {}: restored from an old backup? (git envsync restore)",
            branch.seen
        ),
        (None, None, _) => match &fallback {
            Some((default, k)) => format!("none; using {default} v{}", k.version),
            None => "none".to_owned(),
        },
        (Some(k), None, Some(mine)) if k.version == mine => format!("version {} (same)", k.version),
        (Some(k), None, Some(mine)) => format!(
            "version {} (newer than your {mine}: git envsync pull)",
            k.version
        ),
        (Some(k), None, None) => format!(
            "version {} (never synced here: git envsync pull)",
            k.version
        ),
    };
    // Drift against the live list, or the cached one when the server is unreachable.
    let server_keys = match (&server, &failure) {
        (Some(k), _) => Some(k.keys.clone()),
        (None, Some(_)) if branch.keys_version > 0 => Some(branch.keys.clone()),
        (None, None) => fallback.as_ref().map(|(_, k)| k.keys.clone()),
        _ => None,
    };
    // Changed values against the live latest version only (the fallback is another
    // branch's env: its values are expected to differ once edited).
    let changed = fingerprints::changed(
        content
            .as_ref()
            .and_then(|c| fingerprints::of_local(&ctx, c.expose()))
            .as_ref(),
        server.as_ref().and_then(|k| k.fingerprints.as_ref()),
    );
    let drift = match (&local_keys, server_keys) {
        (Some(local), Some(server)) => Some(Drift::new(local.clone(), server).with_values(changed)),
        _ => None,
    };
    let drift_line = match &drift {
        None => "n/a".to_owned(),
        Some(d) if d.in_sync() => "in sync".to_owned(),
        Some(d) => {
            let mut line = format!(
                "{} missing locally, {} extra locally",
                d.missing.len(),
                d.extra.len()
            );
            if let Some(changed) = d.changed.as_ref().filter(|c| !c.is_empty()) {
                line.push_str(&format!(", changed values: {}", changed.join(", ")));
            }
            line
        }
    };

    if global.json {
        out::json(&json!({
            "project": ctx.config.project,
            "branch": ctx.branch,
            "env_file": ctx.env_display(),
            "local": local_state,
            "holds": file.as_ref().filter(|_| content.is_some()).map(|f| f.holds()),
            "holds_branch": file.as_ref().filter(|_| content.is_some()).map(|f| &f.branch),
            "synced_version": branch.version,
            "server_version": server.as_ref().map(|k| k.version),
            "server_reachable": failure.is_none(),
            "server_error": why,
            "using": fallback.as_ref().map(|(b, k)| json!({"branch": b, "version": k.version})),
            "missing": drift.as_ref().map(|d| &d.missing),
            "extra": drift.as_ref().map(|d| &d.extra),
            "changed": drift.as_ref().and_then(|d| d.changed.as_ref()),
        }));
    } else {
        out::print(&format!(
            "Project: {}\nBranch:  {}\nFile:    {} ({local_state}{holds})\nServer:  {server_state}\nDrift:   {drift_line}\n",
            ctx.config.project,
            ctx.branch,
            ctx.env_display(),
        ));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}
