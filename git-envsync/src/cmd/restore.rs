//! `git envsync restore`: re-seeds a server that lost versions (restored from an old
//! backup, a new database) from this clone's sealed copies.
//!
//! The copy of each branch goes back as a new version numbered past the highest this
//! clone ever saw, so that other clones, which refuse a version older than one they saw,
//! accept it: the versions in between are pushed with the same content, each sealed and
//! bound to its own number.

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::crypto::Keyring;
use crate::error::{CliError, Result};
use crate::out;
use crate::sync;
use std::process::ExitCode;

/// Re-seed the server from this clone's copies after it lost versions (the branch given
/// with --branch, the checked-out one, or every branch this clone synced with --all).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Every branch this clone has a copy of.
    #[arg(long)]
    all: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let api = ctx.api(Timeouts::COMMAND)?;
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, true)?;
    let names: Vec<String> = if args.all {
        ctx.state
            .branches()?
            .into_iter()
            .filter(|b| b.version.is_some())
            .map(|b| b.branch)
            .collect()
    } else {
        vec![ctx.branch.clone()]
    };
    let mut restored = 0;
    for name in &names {
        let mut branch = ctx.state.branch(name)?;
        let copy = sync::fetch_offline(&ctx, name)?.ok_or_else(|| {
            CliError::refused(format!("this clone has no copy of {name} to restore"))
                .hint("a clone that synced it (git envsync status shows which) can restore it")
        })?;
        let latest = sync::latest_version(&ctx, &api, name)?;
        let seen = branch.seen.max(copy.version);
        if latest.is_some_and(|l| l >= seen) {
            out::say(&format!(
                "{name}: the server has version {} (this clone saw {seen}); nothing to restore",
                latest.unwrap_or_default()
            ));
            continue;
        }
        let mut base = latest;
        while base.is_none_or(|b| b <= seen) {
            let version = sync::push_version(
                &ctx,
                &api,
                &mut keyring,
                &mut branch,
                copy.content.expose(),
                base,
                sync::Writer::Team,
            )?;
            base = Some(version);
        }
        let version = base.unwrap_or_default();
        out::say(&format!(
            "{name}: restored this clone's version {} as version {version}",
            copy.version
        ));
        restored += 1;
    }
    out::say(&format!(
        "Restored {restored} branch{} of {}",
        if restored == 1 { "" } else { "es" },
        ctx.config.project
    ));
    Ok(ExitCode::SUCCESS)
}
