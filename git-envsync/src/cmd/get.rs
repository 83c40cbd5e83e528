//! `git envsync get KEY`: prints one value. Also the source rule that `get`, `export` and
//! `example` share ([`branch_env`]).

use crate::cli::Global;
use crate::context::Context;
use crate::crypto::Keyring;
use crate::error::{CliError, Result};
use crate::out;
use crate::sync::{self, EnvSource};
use envsync_common::envdoc::Document;
use envsync_common::names::validate_key;
use envsync_common::secret::SecretBytes;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Print one variable's value to stdout, as it is (quotes removed, nothing expanded).
///
/// The value comes from where run reads it: the env file when it holds this branch's env
/// (local edits included), else the branch's latest version on the server (verified; a
/// branch with no env yet reads default_branch's), else, with the server unreachable,
/// this clone's copy. Nothing else is printed to stdout, and no line end is added unless
/// stdout is a terminal. Exit 1 when the key is not set.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// The variable's name.
    key: String,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    check_key(&args.key)?;
    let ctx = Context::load(global)?;
    let env = branch_env(&ctx)?;
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
    /// For messages: the env file's path, or where else it was read.
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

/// The source rule of the commands that show values, `run`'s ([`sync::readable_env`]):
/// the env file when it holds the branch's env, else the branch's latest version on the
/// server, verified (`default_branch`'s when the branch has none), else, with the server
/// unreachable, this clone's sealed copy (said in one line on stderr).
pub(super) fn branch_env(ctx: &Context) -> Result<BranchEnv> {
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, true)?;
    let (content, source) = sync::readable_env(ctx, &mut keyring)?;
    let local = matches!(source, EnvSource::File);
    if matches!(source, EnvSource::Copy { .. }) {
        out::say(&format!("envsync: read from {source}"));
    }
    Ok(BranchEnv {
        content,
        what: if local {
            ctx.env_display()
        } else {
            source.to_string()
        },
        local,
    })
}
