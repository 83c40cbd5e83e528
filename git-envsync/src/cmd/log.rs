//! `git envsync log`: the branch's version history, keys added and removed per version,
//! and (from value fingerprints, without decrypting) the keys whose values changed.
//!
//! Who pushed a version is the server's claim (the email in the pusher's token). In
//! team-key mode each version is also opened and its signature checked against the
//! trusted members, so the log shows who really wrote it, or that nobody in the config
//! did.

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::crypto::{self, Keyring};
use crate::error::Result;
use crate::fingerprints;
use crate::out;
use crate::sync::key_changes;
use crate::sync::{self, ReadRules};
use envsync_common::api::VersionInfo;
use serde_json::json;
use std::process::ExitCode;

/// Show the branch's versions: who pushed them, when, and which keys came and went; in
/// team-key mode, also which member signed each (verified by opening it).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Team-key mode: do not open the versions to check their signatures.
    #[arg(long)]
    no_verify: bool,
}

/// What the signature of one version says.
fn signed_by(
    ctx: &Context,
    api: &crate::client::Api,
    keyring: &mut Keyring,
    version: u64,
) -> String {
    let rules = ReadRules {
        old_version_asked: true,
        ..ReadRules::default()
    };
    match sync::fetch_version(ctx, api, keyring, &ctx.branch, Some(version), rules) {
        Ok(Some(read)) => match read.signer {
            Some(member) => format!("signed by {member}"),
            None => "unsigned (from before signatures)".to_owned(),
        },
        Ok(None) => "gone from the server".to_owned(),
        Err(e) => format!("NOT VERIFIED: {}", e.message()),
    }
}

/// Which values a version changed from the one before it.
enum Changed {
    Values(Vec<String>),
    /// Made with another fingerprint key (a rotation): not comparable.
    NewKey,
    /// No fingerprints on one side (the first version, one from before them, or off).
    Unknown,
}

impl Changed {
    fn of(version: &VersionInfo, older: Option<&VersionInfo>) -> Changed {
        let (Some(new), Some(old)) = (
            version.fingerprints.as_ref(),
            older.and_then(|o| o.fingerprints.as_ref()),
        ) else {
            return Changed::Unknown;
        };
        match fingerprints::changed(Some(new), Some(old)) {
            Some(keys) => Changed::Values(keys),
            None => Changed::NewKey,
        }
    }
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let api = ctx.api(Timeouts::COMMAND)?;
    let versions = api
        .versions(&ctx.config.project, &ctx.branch)
        .map_err(|e| api.fail(e))?;
    let empty = Vec::new();
    // Team mode, with this user's identity: open each version to say who signed it.
    let verify = ctx.config.team_mode()
        && !args.no_verify
        && crypto::identity_path().is_ok_and(|p| p.exists());
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, true)?;
    let rows: Vec<_> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let older = versions.get(i + 1);
            let (added, removed) = key_changes(older.map_or(&empty, |o| &o.keys), &v.keys);
            let changed = Changed::of(v, older);
            let signer = verify.then(|| signed_by(&ctx, &api, &mut keyring, v.version));
            (v, added, removed, changed, signer)
        })
        .collect();

    if global.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(v, added, removed, changed, signer)| {
                json!({
                    "version": v.version, "pushed_by": v.pushed_by, "pushed_at": v.pushed_at,
                    "keys": v.keys.len(), "added": added, "removed": removed,
                    "changed": match changed {
                        Changed::Values(keys) => Some(keys),
                        _ => None,
                    },
                    "new_fingerprint_key": matches!(changed, Changed::NewKey),
                    "signature": signer,
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
    for (v, added, removed, changed, signer) in rows {
        text.push_str(&format!(
            "version {}  {}  {}  ({} keys){}\n",
            v.version,
            out::timestamp(&v.pushed_at),
            v.pushed_by,
            v.keys.len(),
            signer.map(|s| format!("  {s}")).unwrap_or_default()
        ));
        for k in added {
            text.push_str(&format!("    + {k}\n"));
        }
        for k in removed {
            text.push_str(&format!("    - {k}\n"));
        }
        match changed {
            Changed::Values(keys) => {
                for k in keys {
                    text.push_str(&format!("    ~ {k}\n"));
                }
            }
            Changed::NewKey => text.push_str("    (new fingerprint key: values not compared)\n"),
            Changed::Unknown => {}
        }
    }
    out::print(&text);
    Ok(ExitCode::SUCCESS)
}
