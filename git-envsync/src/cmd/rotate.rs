//! `git envsync rotate`: re-encrypts the latest version of every branch for the current
//! recipients (or a new passphrase), each as a new version with compare-and-swap.
//!
//! Resumable: progress is kept in `.git/envsync/<project>/rotation.json`, and a second
//! run skips the branches whose rotated version is still the latest. With `--removed
//! NAME`, it ends with the key names that member pulled (from the audit log): the values
//! to change, since re-encryption cannot take back what someone has already read.

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::crypto::{self, Keyring};
use crate::error::{CliError, Result};
use crate::fingerprints;
use crate::fsutil;
use crate::out;
use crate::sync::{self, ReadRules};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

/// Re-encrypt every branch of the project for the current recipients or a new passphrase.
///
/// Reads with your current passphrase (ENVSYNC_PASS) or identity; in passphrase mode the
/// new passphrase comes from ENVSYNC_NEW_PASS or a prompt.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// A member removed before the last rotation (those removed since are remembered):
    /// list the keys they pulled, to be changed.
    #[arg(long, value_name = "NAME")]
    removed: Vec<String>,
    /// Stop after this many branches (run again to continue).
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
    /// Team mode: also re-sign versions that carry no signature at all (pushed before
    /// signatures existed). Check their content first: anyone with push access could
    /// have written an unsigned version.
    #[arg(long)]
    accept_unsigned: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    target: String,
    /// Branch → the version the rotation created.
    done: BTreeMap<String, u64>,
    /// The id of the new fingerprint key (kept sealed on this machine), so that a
    /// resumed rotation goes on with the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint_key: Option<String>,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let api = ctx.api(Timeouts::COMMAND)?;
    let mut reader = Keyring::new(&ctx.config, &ctx.keys, true)?;
    let mut writer = if ctx.config.recipients.is_empty() {
        Keyring::with_passphrase(&ctx.config, &ctx.keys, crypto::new_passphrase(&ctx.keys)?)?
    } else {
        Keyring::new(&ctx.config, &ctx.keys, true)?
    };
    let progress_path = ctx.state.dir().join("rotation.json");
    let mut progress: Progress = fsutil::read_optional(&progress_path)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|p: &Progress| p.target == writer.target())
        .unwrap_or_else(|| Progress {
            target: writer.target(),
            ..Progress::default()
        });

    let project = &ctx.config.project;
    // A new fingerprint key too: whoever could read before must not be able to tell the
    // new values' fingerprints. Kept before the first push, so a resumed rotation finds it.
    if ctx.config.fingerprints {
        let kept = fingerprints::local_key(&ctx).map(|k| k.id());
        if progress.fingerprint_key.is_none() || progress.fingerprint_key != kept {
            // (Branches a lost key's rotation already did keep that key's fingerprints.)
            progress.fingerprint_key = Some(fingerprints::fresh(&ctx, true)?.key.id());
        }
    }
    // Any passphrase prompt comes now, before the progress line takes the terminal.
    if !ctx.config.team_mode() {
        reader.verifier()?;
    }
    let branches = api.branches(project).map_err(|e| api.fail(e))?;
    let total = branches.len();
    let bar = out::Progress::start(total as u64);
    let mut rotated = 0;
    for (i, info) in branches.iter().enumerate() {
        let name = &info.branch;
        if progress.done.get(name) == Some(&info.version) {
            bar.say(&format!("[{}/{total}] {name}: already rotated", i + 1));
            bar.advance();
            continue;
        }
        if args.batch.is_some_and(|b| rotated >= b) {
            bar.finish();
            out::say(&format!(
                "stopped after {rotated} branch{}; run git envsync rotate again to continue",
                if rotated == 1 { "" } else { "es" }
            ));
            return Ok(ExitCode::SUCCESS);
        }
        bar.doing(&format!("rotating {name}"));
        // The same verified read as pull; the version is the one the listing named.
        let rules = ReadRules {
            allow_unsigned: args.accept_unsigned,
            passphrase_ok: true,
            key_replaced: true,
            ..ReadRules::default()
        };
        let read = sync::fetch_version(&ctx, &api, &mut reader, name, Some(info.version), rules)
            .map_err(|e| {
                let message = format!("{name}: {}", e.message());
                CliError {
                    error: anyhow::anyhow!(message),
                    ..e
                }
            })?
            .ok_or_else(|| CliError::refused(format!("{name} disappeared from the server")))?;
        if read.signer.is_none() && reader.team_mode() && args.accept_unsigned {
            bar.say(&format!(
                "{name}: version {} was not signed; re-signing it as yours (--accept-unsigned)",
                read.version
            ));
        }
        let mut branch = ctx.state.branch(name)?;
        let version = sync::push_version(
            &ctx,
            &api,
            &mut writer,
            &mut branch,
            read.content.expose(),
            Some(read.version),
            sync::Writer::Rotation,
        )?;
        progress.done.insert(name.clone(), version);
        let bytes = serde_json::to_vec_pretty(&progress).map_err(anyhow::Error::from)?;
        fsutil::write_state(&progress_path, &bytes)?;
        rotated += 1;
        bar.advance();
        if !bar.drawn() {
            out::say(&format!("[{}/{total}] {name}: version {version}", i + 1));
        }
    }
    bar.finish();
    out::say(&format!(
        "Rotated {rotated} branch{} of {project} for {}",
        if rotated == 1 { "" } else { "es" },
        writer.describe_target(&ctx.config)
    ));
    // The agent's copy is now the old passphrase: a hook must not seal with it.
    if !writer.team_mode()
        && let Ok(Some(1)) = crate::agent::client::forget(Some(&ctx.config.project))
    {
        out::say(&format!(
            "The agent forgot {project}'s old passphrase (git envsync unlock keeps the new one)"
        ));
    }
    // The members removed since the last rotation (remembered by `members remove`), and
    // any named here, each by the identity the audit log knows them by.
    let remembered = ctx.state.removed()?;
    let mut removed: Vec<String> = remembered.iter().map(|r| r.known_as.clone()).collect();
    for name in &args.removed {
        let identity = remembered
            .iter()
            .find(|r| r.name == *name)
            .map(|r| r.known_as.clone())
            .or_else(|| {
                ctx.config
                    .recipients
                    .iter()
                    .find(|m| m.name() == Some(name.as_str()))
                    .map(|m| m.server_identity().to_owned())
            })
            .unwrap_or_else(|| name.clone());
        if !removed.contains(&identity) {
            removed.push(identity);
        }
    }
    if !removed.is_empty() {
        checklist(&ctx, &api, &removed)?;
    }
    ctx.state.clear_removed()?;
    Ok(ExitCode::SUCCESS)
}

/// Prints, per branch, the key names the removed members pulled.
fn checklist(ctx: &Context, api: &crate::client::Api, removed: &[String]) -> Result<()> {
    let project = &ctx.config.project;
    let mut pulled: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut before = None;
    loop {
        let page = api
            .audit(
                project,
                500,
                before,
                &[("action", "pull"), ("outcome", "ok")],
            )
            .map_err(|e| api.fail(e))
            .map_err(|e| e.hint("listing what a removed member read needs an owner token"))?;
        for event in &page.events {
            if event.action == "pull"
                && event.outcome == "ok"
                && removed.contains(&event.actor)
                && let (Some(branch), Some(version)) = (&event.branch, event.version)
            {
                pulled.entry(branch.clone()).or_default().insert(version);
            }
        }
        // A page may end at the server's byte budget, or (filtered) hold no pull at all,
        // and still have more after it; each must move on, or a lying server keeps us here.
        match page.next_before {
            Some(next) if before.is_none_or(|b| next < b) => before = Some(next),
            _ => break,
        }
    }
    if pulled.is_empty() {
        out::print(&format!(
            "{} pulled nothing according to the audit log\n",
            removed.join(", ")
        ));
        return Ok(());
    }
    let mut text = format!(
        "Change these values: {} could read them\n",
        removed.join(", ")
    );
    for (branch, versions) in pulled {
        let history = api.versions(project, &branch).map_err(|e| api.fail(e))?;
        let keys: BTreeSet<&String> = history
            .iter()
            .filter(|v| versions.contains(&v.version))
            .flat_map(|v| &v.keys)
            .collect();
        let keys: Vec<&str> = keys.into_iter().map(String::as_str).collect();
        text.push_str(&format!("  {branch}: {}\n", keys.join(", ")));
    }
    out::print(&text);
    Ok(())
}
