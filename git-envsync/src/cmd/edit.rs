//! `git envsync edit`: opens the env file in the user's editor, then offers to push.

use crate::cli::Global;
use crate::context::Context;
use crate::error::{CliError, Result};
use crate::out;
use anyhow::Context as _;
use clap::{Args as _, FromArgMatches as _};
use envsync_common::envdoc::Document;
use envsync_common::secret::ct_eq;
use std::io::IsTerminal;
use std::process::{Command, ExitCode};

/// Open the env file in $VISUAL or $EDITOR (else vi), then offer to push the changes.
///
/// Refused when the file holds another branch's env. After a change, asks whether to push
/// (y/N) when run in a terminal; --push pushes without asking; otherwise it says how to
/// push. The file is kept at mode 0600 whatever the editor does.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Push the changes without asking.
    #[arg(long)]
    push: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    super::set::check_owner(&ctx, "editing it")?;
    let before = super::set::read_document(&ctx)?;
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_owned());
    // As git runs it: through the shell, so that EDITOR may carry arguments.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg(&editor)
        .arg(ctx.env.path())
        .status()
        .with_context(|| format!("cannot start the editor ({editor})"))?;
    if !status.success() {
        return Err(CliError::refused(format!(
            "the editor ({editor}) failed ({status}); nothing was pushed"
        )));
    }
    let after = crate::sync::read_env(&ctx)?
        .ok_or_else(|| CliError::refused(format!("{} is gone after editing", ctx.env_display())))?;
    let old = before.to_bytes();
    if ct_eq(old.expose(), after.expose()) {
        out::say(&format!("No changes to {}", ctx.env_display()));
        return Ok(ExitCode::SUCCESS);
    }
    // Editors that save by rename write a new file with the umask's mode.
    ctx.env.make_private()?;
    let edited = Document::parse(after.expose()).map_err(|e| {
        CliError::usage(format!("{}: {e}", ctx.env_display()))
            .hint("fix that line (git envsync edit), then git envsync push; nothing was pushed")
    })?;
    out::say(&format!(
        "Edited {}: {}",
        ctx.env_display(),
        changes(&before, &edited)
    ));
    let push = args.push || (ask_terminal() && confirm(&ctx.branch)?);
    if !push {
        out::say("Not pushed: git envsync push shares the changes");
        return Ok(ExitCode::SUCCESS);
    }
    // `push` itself, as `git envsync push` would run it with the same global flags.
    let command = super::push::Args::augment_args(clap::Command::new("push"));
    let matches = command
        .try_get_matches_from(["push"])
        .map_err(|e| CliError::usage(e.to_string()))?;
    let push_args = super::push::Args::from_arg_matches(&matches)
        .map_err(|e| CliError::usage(e.to_string()))?;
    super::push::run(global, push_args)
}

/// The keys added, removed and changed, by name: `+NEW -OLD ~CHANGED`.
fn changes(before: &Document, after: &Document) -> String {
    let old = before.variables();
    let new = after.variables();
    let mut parts = Vec::new();
    for (key, value) in &new {
        match old.iter().find(|(k, _)| k == key) {
            None => parts.push(format!("+{key}")),
            Some((_, was)) if !ct_eq(was.expose(), value.expose()) => {
                parts.push(format!("~{key}"));
            }
            Some(_) => {}
        }
    }
    for (key, _) in &old {
        if !new.iter().any(|(k, _)| k == key) {
            parts.push(format!("-{key}"));
        }
    }
    if parts.is_empty() {
        "layout only, no value changed".to_owned()
    } else {
        parts.join(" ")
    }
}

fn ask_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks on the terminal whether to push; anything but y or yes is no.
fn confirm(branch: &str) -> Result<bool> {
    crate::prompt::confirm(&format!(
        "Push the changes to {} now? [y/N] ",
        out::clean(branch)
    ))
}
