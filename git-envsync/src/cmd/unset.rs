//! `git envsync unset KEY…`: removes variables from the env file, layout kept.

use crate::cli::Global;
use crate::context::Context;
use crate::error::{CliError, Result};
use crate::out;
use std::process::ExitCode;

/// Remove variables from the env file, keeping the rest of its layout.
///
/// Every occurrence of each key goes, with its own lines; the comments and blank lines
/// around stay. Refused, with nothing written, when a key is not in the file. Nothing is pushed: git
/// envsync push (or the hooks) share the change.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    /// The names of the variables to remove.
    #[arg(required = true, value_name = "KEY")]
    keys: Vec<String>,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    for key in &args.keys {
        super::get::check_key(key)?;
    }
    let ctx = Context::load(global)?;
    super::set::check_owner(&ctx, "unset")?;
    let mut doc = super::set::read_document(&ctx)?;
    let mut removed: Vec<&str> = Vec::new();
    for key in &args.keys {
        if doc.unset(key) == 0 && !removed.contains(&key.as_str()) {
            return Err(CliError::refused(format!(
                "{key} is not in {}; nothing was changed",
                ctx.env_display()
            )));
        }
        if !removed.contains(&key.as_str()) {
            removed.push(key);
        }
    }
    ctx.env.write(doc.to_bytes().expose(), 0o600)?;
    out::say(&format!(
        "Updated {}: removed {} (not pushed yet: git envsync push shares it)",
        ctx.env_display(),
        removed.join(", ")
    ));
    Ok(ExitCode::SUCCESS)
}
