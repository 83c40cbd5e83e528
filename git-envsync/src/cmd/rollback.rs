//! `git envsync rollback N`: a new version whose content is version N's, so history stays
//! append-only.

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::crypto::Keyring;
use crate::error::{CliError, Result};
use crate::fsutil;
use crate::out;
use crate::state::FileState;
use crate::sync::{self, ReadRules};
use std::process::ExitCode;

/// Push an old version's content again as the branch's newest version.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// The version to bring back.
    version: u64,
    /// Push over a latest version this clone cannot verify (sealed in another mode or
    /// with another passphrase, or failing a check: a forged one nobody on the team can
    /// read), saying so; the passphrase is then checked against the default branch's
    /// latest, or a typed one asked twice.
    #[arg(long)]
    force: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let api = ctx.api(Timeouts::COMMAND)?;
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, true)?;
    let project = &ctx.config.project;

    let latest = api
        .keys(project, &ctx.branch)
        .map_err(|e| api.fail(e))?
        .ok_or_else(|| CliError::refused(format!("{} has no env on the server", ctx.branch)))?;
    // The latest is the base of the version pushed: a server that says it is older than
    // a version this clone has seen is rolled back (or lying), as pull would say.
    let seen = ctx.state.branch(&ctx.branch)?.seen;
    sync::check_not_rolled_back(seen, latest.version, &ctx.branch)?;
    if args.version > latest.version {
        return Err(CliError::usage(format!(
            "version {} of {} does not exist: the latest is {}",
            args.version, ctx.branch, latest.version
        )));
    }
    // The same verified read as pull: version echo, binding, key list, signature.
    let rules = ReadRules {
        old_version_asked: true,
        ..ReadRules::default()
    };
    let old = sync::fetch_version(
        &ctx,
        &api,
        &mut keyring,
        &ctx.branch,
        Some(args.version),
        rules,
    )?
    .ok_or_else(|| {
        CliError::refused(format!(
            "version {} of {} does not exist",
            args.version, ctx.branch
        ))
    })?;
    let content = old.content;

    // The local file follows unless it holds edits that were never pushed.
    let current = sync::read_env(&ctx)?;
    let keep_local = match &current {
        Some(cur) => sync::has_local_edits(&ctx, cur.expose())?,
        None => false,
    };
    let mut branch = ctx.state.branch(&ctx.branch)?;
    let version = sync::push_version(
        &ctx,
        &api,
        &mut keyring,
        &mut branch,
        content.expose(),
        Some(latest.version),
        if args.force {
            sync::Writer::Replacing
        } else {
            sync::Writer::Team
        },
    )?;
    out::say(&format!(
        "Rolled {} back to the content of version {} as version {version}",
        ctx.branch, args.version
    ));
    if keep_local {
        out::say(&format!(
            "{} has unpushed edits and was left as it is",
            ctx.env_display()
        ));
    } else {
        ctx.env.write(content.expose(), 0o600)?;
        ctx.state.set_file(&FileState::synced(
            fsutil::sha256_hex(content.expose()),
            &ctx.branch,
            version,
            ctx.config.digest(),
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
