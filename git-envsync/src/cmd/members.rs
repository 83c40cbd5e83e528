//! `git envsync members add|remove|list`: the team-key members in `.envsync.toml`.
//!
//! Each member has an age public key (what is pushed is sealed to it) and a signing key
//! (what they push is accepted by teammates only when it verifies against it). Changing
//! the list changes settings this clone had trusted, so the command requires the current
//! settings to be trusted first and trusts what it writes.

use crate::cli::Global;
use crate::config::{PROJECT_FILE, ProjectConfig, RecipientEntry};
use crate::error::{CliError, Result};
use crate::git::Repo;
use crate::out;
use crate::state::State;
use crate::trust::TrustStore;
use clap::Subcommand;
use envsync_common::signing::SignerKey;
use std::process::ExitCode;
use std::str::FromStr;

/// Manage the project's members (team-key mode): who can decrypt what is pushed next, and
/// whose pushes are accepted.
///
/// Changes take effect for new pushes; run `git envsync rotate` to re-encrypt every
/// branch for the new set (after removing someone, also change the secrets they saw).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub output: crate::cli::JsonFlagBelow,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Add a member: a name (their email is a good name), their age public key and their
    /// signing key, as `git envsync keygen` prints them ("age1… ed25519:…", in one
    /// argument or two).
    Add {
        name: String,
        key: String,
        signer: Option<String>,
        /// The email their token carries, when NAME is not it (what the audit log shows
        /// them as; rotate uses it after a removal).
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
    },
    /// Remove a member by name (or by key).
    Remove { name: String },
    /// List the members.
    List,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover()?;
    let mut config = ProjectConfig::load(&repo.root)?;
    let trust = TrustStore::new(repo.common_dir());
    trust.require(&config)?;
    match args.action {
        Action::List => {
            if global.json {
                let list: Vec<_> = config.recipients.iter().map(describe).collect();
                out::json(&list);
            } else {
                let text: String = config
                    .recipients
                    .iter()
                    .map(|r| {
                        format!(
                            "{}  {}  {}\n",
                            r.key(),
                            r.signer().unwrap_or("(no signing key)"),
                            r.name().unwrap_or("-")
                        )
                    })
                    .collect();
                out::print(&text);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Add {
            name,
            key,
            signer,
            email,
        } => {
            let (key, signer) = split_keys(&key, signer)?;
            if let Some(existing) = config.recipients.iter().find(|r| {
                r.key() == key || r.name() == Some(name.as_str()) || r.signer() == Some(&signer)
            }) {
                return Err(CliError::refused(format!(
                    "{} is already a member ({})",
                    existing.label(),
                    existing.key()
                )));
            }
            let was_team = config.team_mode();
            let email = email.filter(|e| *e != name);
            let member = RecipientEntry::Named {
                name: name.clone(),
                key,
                signer: Some(signer),
                email: email.clone(),
            };
            config.recipients.push(member.clone());
            config.save(&repo.root)?;
            trust.trust(&config)?;
            out::say(&format!(
                "Added {name}; commit {PROJECT_FILE}, then run git envsync rotate so existing branches become readable to them"
            ));
            if !was_team {
                out::say("This moves the project from passphrase mode to team-key mode.");
            }
            // The audit log knows a member by their token's email: a name that is not
            // one leaves rotate's report on what they pulled, after a removal, empty.
            if email.is_none() && !looks_like_email(&name) {
                out::say(&format!(
                    "warning: no email for {name}: after a removal, rotate could not find what they pulled (add them with --email EMAIL, their token's)"
                ));
            }
            if global.json {
                out::json(&serde_json::json!({
                    "added": describe(&member),
                    "team_mode_started": !was_team,
                }));
            }
        }
        Action::Remove { name } => {
            let (gone, kept): (Vec<_>, Vec<_>) = config
                .recipients
                .iter()
                .cloned()
                .partition(|r| r.name() == Some(name.as_str()) || r.key() == name);
            if gone.is_empty() {
                return Err(CliError::refused(format!("no member named {name}")));
            }
            config.recipients = kept;
            if config.recipients.is_empty() {
                return Err(CliError::refused(
                    "cannot remove the last member: nobody could decrypt anything",
                ));
            }
            config.save(&repo.root)?;
            trust.trust(&config)?;
            // The next rotate reports what they pulled, without being told.
            let state = State::new(repo.git_dir(), &config.project);
            for member in &gone {
                state.remember_removed(member.label(), member.server_identity())?;
            }
            out::say(&format!(
                "Removed {name} from {PROJECT_FILE}; commit it, then run git envsync rotate: it re-encrypts every branch and lists the values {name} could read, to change"
            ));
            if global.json {
                out::json(&serde_json::json!({
                    "removed": gone.iter().map(describe).collect::<Vec<_>>(),
                    "members_left": config.recipients.len(),
                }));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A member for `--json`: name, age key, signing key, and the email the audit log knows
/// them by (`--email`, else the name when it is one; `null` when neither).
fn describe(member: &RecipientEntry) -> serde_json::Value {
    serde_json::json!({
        "name": member.name(),
        "key": member.key(),
        "signer": member.signer(),
        "email": Some(member.server_identity()).filter(|e| looks_like_email(e)),
    })
}

/// Whether a member's name reads as an email (`someone@host`): then it is what the
/// audit log shows them as, and no `--email` is needed.
fn looks_like_email(name: &str) -> bool {
    name.split_once('@').is_some_and(|(user, host)| {
        !user.is_empty() && !host.is_empty() && !name.chars().any(char::is_whitespace)
    })
}

/// The age key and the signing key, from `KEY SIGNER` or one `"KEY SIGNER"` argument.
fn split_keys(key: &str, signer: Option<String>) -> Result<(String, String)> {
    let mut words = key.split_whitespace();
    let age_key = words.next().unwrap_or_default().to_owned();
    let signer = match (words.next(), signer) {
        (Some(s), None) => s.to_owned(),
        (None, Some(s)) => s,
        (None, None) => {
            return Err(CliError::usage("a member needs a signing key too").hint(
                "pass the line git envsync keygen prints: members add NAME \"age1… ed25519:…\"",
            ));
        }
        (Some(_), Some(_)) => return Err(CliError::usage("two signing keys given")),
    };
    if words.next().is_some() {
        return Err(CliError::usage("expected an age key and a signing key"));
    }
    age::x25519::Recipient::from_str(&age_key).map_err(|e| {
        CliError::usage(format!("'{age_key}' is not an age X25519 public key ({e})"))
    })?;
    SignerKey::from_str(&signer).map_err(|e| CliError::usage(format!("'{signer}': {e}")))?;
    Ok((age_key, signer))
}
