//! `git envsync merge`: resolves a merge that stopped on conflicts (a pull or push whose
//! edits and the server's latest version both changed a key).

use crate::cli::Global;
use crate::context::Context;
use crate::error::{CliError, Result};
use crate::merging::{self, Merged, Pending};
use crate::out;
use crate::worktree::TreeFile;
use std::process::ExitCode;

/// Resolve a merge that stopped on conflicts: keep your value or take theirs per key, or
/// edit both in a merge file; then the env file holds the merge, an edit of the server's
/// latest version that git envsync push publishes.
///
/// Without options, shows the merge in progress.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    /// Keep your value (or your removal) of these keys.
    #[arg(long, value_name = "KEY", num_args = 1.., conflicts_with_all = ["edit", "continue_", "abort"])]
    ours: Vec<String>,
    /// Take the server's value (or its removal) of these keys.
    #[arg(long, value_name = "KEY", num_args = 1.., conflicts_with_all = ["edit", "continue_", "abort"])]
    theirs: Vec<String>,
    /// Write the merge into <env file>.merge (0600), for you to edit: the changes that did
    /// not conflict applied, and both sides of every conflicting key between markers; then
    /// git envsync merge --continue.
    #[arg(long, conflicts_with_all = ["continue_", "abort"])]
    edit: bool,
    /// Finish after --edit: the edited merge file becomes the env file.
    #[arg(long = "continue", conflicts_with = "abort")]
    continue_: bool,
    /// Forget the merge; the env file stays as it is.
    #[arg(long)]
    abort: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let merge_file = TreeFile::new(&ctx.repo.root, &format!("{}.merge", ctx.config.env_file))?;
    let Some(mut pending) = merging::pending(&ctx)? else {
        return Err(
            CliError::refused(format!("no merge in progress on {}", ctx.branch))
                .hint("a pull or push that meets a conflict starts one"),
        );
    };
    if args.abort {
        merging::abort(&ctx)?;
        // Never through a link (a checkout may have made a directory on the way one).
        let _ = merge_file.remove();
        out::say(&format!(
            "Merge forgotten; {} is as it was",
            ctx.env_display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    if args.edit {
        let text = merging::edit_file(&ctx, &pending)?;
        merge_file.write(&text, 0o600)?;
        out::say(&format!(
            "Wrote both sides of {} into {}: keep what you want for each, remove the marker lines, then git envsync merge --continue",
            keys(&pending),
            merge_file.display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    if args.continue_ {
        let edited = merge_file.read()?.ok_or_else(|| {
            CliError::refused(format!(
                "there is no {} to continue from",
                merge_file.display()
            ))
            .hint("git envsync merge --edit writes it; or choose with --ours/--theirs")
        })?;
        let merged = merging::continue_with(&ctx, &pending, edited.expose())?;
        let _ = merge_file.remove();
        return done(&ctx, global, &merged);
    }
    let all = keys(&pending);
    for (names, side) in [(&args.ours, "ours"), (&args.theirs, "theirs")] {
        for name in names {
            let conflict = pending
                .conflicts
                .iter_mut()
                .find(|c| c.key == *name)
                .ok_or_else(|| {
                    CliError::usage(format!("{name} is not in conflict (the conflicts: {all})"))
                })?;
            conflict.take = Some(side.to_owned());
        }
    }
    if args.ours.is_empty() && args.theirs.is_empty() {
        show(global, &ctx, &pending);
        return Ok(ExitCode::SUCCESS);
    }
    if pending.conflicts.iter().any(|c| c.take.is_none()) {
        merging::save_choices(&ctx, &pending)?;
        show(global, &ctx, &pending);
        return Ok(ExitCode::SUCCESS);
    }
    let merged = merging::finish(&ctx, &pending)?;
    done(&ctx, global, &merged)
}

fn keys(pending: &Pending) -> String {
    pending
        .conflicts
        .iter()
        .map(|c| c.key.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn show(global: &Global, ctx: &Context, pending: &Pending) {
    if global.json {
        out::json(&serde_json::json!({
            "branch": pending.branch,
            "theirs_version": pending.theirs_version,
            "theirs_by": pending.theirs_by,
            "conflicts": pending.conflicts.iter().map(|c| serde_json::json!({
                "key": c.key, "ours": c.ours, "theirs": c.theirs, "take": c.take,
            })).collect::<Vec<_>>(),
        }));
        return;
    }
    let mut text = format!(
        "Merging {} version {} (pushed by {}) into {}:\n",
        ctx.branch,
        pending.theirs_version,
        pending.theirs_by,
        ctx.env_display()
    );
    for c in &pending.conflicts {
        text.push_str(&format!(
            "  {}: yours {}, theirs {}{}\n",
            c.key,
            c.ours,
            c.theirs,
            c.take
                .as_ref()
                .map(|t| format!(" -> taking {t}"))
                .unwrap_or_else(|| " -> not chosen yet".to_owned())
        ));
    }
    out::print(&text);
}

fn done(ctx: &Context, global: &Global, merged: &Merged) -> Result<ExitCode> {
    if let Some(backup) = &merged.backup {
        out::say(&format!(
            "Saved the file before the merge to {}",
            backup.display()
        ));
    }
    if global.json {
        out::json(&serde_json::json!({"merged": true, "version": merged.version}));
    } else {
        out::say(&format!(
            "Merged {} version {} into {}; git envsync push publishes the result",
            ctx.branch,
            merged.version,
            ctx.env_display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
