//! `git envsync get KEY`: prints one value. Also the source rule that `get`, `export` and
//! `example` share ([`branch_env`]).

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::crypto::Keyring;
use crate::error::{CliError, Result};
use crate::out;
use crate::sync::{self, PullOptions};
use envsync_common::envdoc::Document;
use envsync_common::names::validate_key;
use envsync_common::secret::SecretBytes;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Print one variable's value to stdout, as it is (quotes removed, nothing expanded).
///
/// The value comes from the env file when it holds this branch's env (local edits
/// included), else from the branch's latest version on the server (verified; a branch
/// with no env yet reads default_branch's). Nothing else is printed to stdout, and no
/// line end is added unless stdout is a terminal. Exit 1 when the key is not set.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The variable's name.
    key: String,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    check_key(&args.key)?;
    let ctx = Context::load(global)?;
    let env = branch_env(&ctx, global)?;
    let doc = env.document()?;
    let value = doc
        .get(&args.key)
        .ok_or_else(|| CliError::refused(format!("{} is not set in {}", args.key, env.what)))?;
    out::raw(value.expose());
    if std::io::stdout().is_terminal() && !value.is_empty() {
        out::raw(b"\n");
    }
    Ok(ExitCode::SUCCESS)
}

/// A key name given on the command line. The name is not repeated when it is refused:
/// it may be a value typed in the wrong place.
pub(super) fn check_key(key: &str) -> Result<()> {
    validate_key(key).map_err(|e| {
        CliError::usage(format!("not a key name: {e}"))
            .hint("key names are 1 to 256 bytes, without whitespace, control characters or '='")
    })
}

/// A branch's env, and where it was read.
#[derive(Debug)]
pub(super) struct BranchEnv {
    pub content: SecretBytes,
    /// For messages: the env file's path, or `main v3 on the server`.
    pub what: String,
    /// Read from the env file (not the server).
    pub local: bool,
}

impl BranchEnv {
    pub fn document(&self) -> Result<Document> {
        Document::parse(self.content.expose()).map_err(|e| {
            let err = CliError::usage(format!("{}: {e}", self.what));
            if self.local {
                err.hint("fix that line; envsync reads the usual KEY=VALUE dotenv syntax")
            } else {
                err
            }
        })
    }
}

/// The source rule of the commands that show values: the env file when it holds the
/// branch's env (its owner in the local state is the branch; a file envsync never synced
/// counts as the checked-out branch's, as for `push`), else the branch's latest version
/// on the server, verified (falling back to `default_branch` when the branch has none).
pub(super) fn branch_env(ctx: &Context, global: &Global) -> Result<BranchEnv> {
    let owned = match ctx.state.file()? {
        Some(file) => file.branch == ctx.branch,
        None => global.branch.is_none(),
    };
    if owned && let Some(content) = sync::read_env(ctx)? {
        return Ok(BranchEnv {
            content,
            what: ctx.env_display(),
            local: true,
        });
    }
    let api = ctx.api(Timeouts::COMMAND)?;
    let mut keyring = Keyring::new(&ctx.config, true)?;
    let opts = PullOptions {
        fallback: true,
        ..PullOptions::default()
    };
    let fetched = sync::fetch(ctx, &api, &mut keyring, opts)?.ok_or_else(|| {
        CliError::refused(format!(
            "{} has no env on the server yet, and {} does not hold it",
            ctx.branch,
            ctx.env_display()
        ))
        .hint("push one with git envsync push")
    })?;
    Ok(BranchEnv {
        what: format!("{} v{} on the server", fetched.from, fetched.version),
        content: fetched.content,
        local: false,
    })
}
