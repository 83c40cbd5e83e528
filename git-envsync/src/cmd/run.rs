//! `git envsync run -- CMD…`: decrypts into memory and runs a command with the variables
//! set. Never writes a file.

use crate::cli::Global;
use crate::context::Context;
use crate::crypto::Keyring;
use crate::error::{CliError, Result};
use crate::out;
use crate::sync;
use envsync_common::envfile;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

/// Run a command with the branch's variables set, without writing the env file.
///
/// The variables come from the env file when it holds this branch's env (your edits
/// included), else from the server's latest version (verified), else, with the server
/// unreachable, from this clone's copy; one line on stderr says which.
///
/// Values are taken as written (quotes removed, no $VAR expansion); the command's exit
/// code is passed through. envsync's own credentials (ENVSYNC_TOKEN, ENVSYNC_PASS,
/// ENVSYNC_NEW_PASS) are removed from the command's environment.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// The command and its arguments (after --).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<OsString>,
}

/// The variables through which envsync itself receives a secret.
pub const CREDENTIALS: [&str; 3] = ["ENVSYNC_TOKEN", "ENVSYNC_PASS", "ENVSYNC_NEW_PASS"];

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, true)?;
    let (content, source) = sync::readable_env(&ctx, &mut keyring)?;
    let entries = envfile::entries(content.expose())
        .map_err(|e| CliError::refused(format!("the env does not parse: {e}")))?;
    out::say(&format!("envsync run: variables from {source}"));

    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::usage("no command given"))?;
    let mut command = Command::new(program);
    command.args(rest);
    // envsync's own credentials are for envsync: the command gets the env file's
    // variables, never the token or passphrase that fetched them.
    for name in CREDENTIALS {
        command.env_remove(name);
    }
    for entry in &entries {
        if entry.value.expose().contains(&0) {
            return Err(CliError::refused(format!(
                "{} holds a NUL byte, which no environment variable can carry",
                entry.key
            )));
        }
        command.env(&entry.key, OsStr::from_bytes(entry.value.expose()));
    }
    // exec replaces this process: signals, the terminal and the exit code belong to the
    // command, exactly as if it had been started directly.
    let err = command.exec();
    // The shell's conventions: 127 for a command that does not exist, 126 for one that
    // cannot be run.
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    out::error(&format!("cannot run {}: {err}", program.to_string_lossy()));
    Ok(ExitCode::from(code))
}
