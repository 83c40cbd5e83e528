//! `git envsync log`: the branch's version history, keys added and removed per version.

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::error::Result;
use crate::out;
use crate::sync::key_changes;
use serde_json::json;
use std::process::ExitCode;

/// Show the branch's versions: who pushed them, when, and which keys came and went.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(global: &Global, _args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let api = ctx.api(Timeouts::COMMAND)?;
    let versions = api
        .versions(&ctx.config.project, &ctx.branch)
        .map_err(|e| api.fail(e))?;
    let empty = Vec::new();
    let rows: Vec<_> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let older = versions.get(i + 1).map_or(&empty, |o| &o.keys);
            let (added, removed) = key_changes(older, &v.keys);
            (v, added, removed)
        })
        .collect();

    if global.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(v, added, removed)| {
                json!({
                    "version": v.version, "pushed_by": v.pushed_by, "pushed_at": v.pushed_at,
                    "keys": v.keys.len(), "added": added, "removed": removed,
                })
            })
            .collect();
        out::json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        out::say(&format!("{} has no versions on the server", ctx.branch));
    }
    let mut text = String::new();
    for (v, added, removed) in rows {
        text.push_str(&format!(
            "version {}  {}  {}  ({} keys)\n",
            v.version,
            v.pushed_at,
            v.pushed_by,
            v.keys.len()
        ));
        for k in added {
            text.push_str(&format!("    + {k}\n"));
        }
        for k in removed {
            text.push_str(&format!("    - {k}\n"));
        }
    }
    out::print(&text);
    Ok(ExitCode::SUCCESS)
}
