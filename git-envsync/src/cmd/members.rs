//! `git envsync members add|remove|list`: the team-key recipients in `.envsync.toml`.

use crate::cli::Global;
use crate::config::{PROJECT_FILE, ProjectConfig, RecipientEntry};
use crate::error::{CliError, Result};
use crate::git::Repo;
use crate::out;
use clap::Subcommand;
use std::process::ExitCode;
use std::str::FromStr;

/// Manage the project's recipients (team-key mode): who can decrypt what is pushed next.
///
/// Changes take effect for new pushes; run `git envsync rotate` to re-encrypt every
/// branch for the new set (after removing someone, also change the secrets they saw).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Add a member by name (their email is a good name) and age public key.
    Add { name: String, key: String },
    /// Remove a member by name (or by key).
    Remove { name: String },
    /// List the members.
    List,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover()?;
    let mut config = ProjectConfig::load(&repo.root)?;
    match args.action {
        Action::List => {
            if global.json {
                let list: Vec<_> = config
                    .recipients
                    .iter()
                    .map(|r| serde_json::json!({"name": r.name(), "key": r.key()}))
                    .collect();
                out::json(&list);
            } else {
                let text: String = config
                    .recipients
                    .iter()
                    .map(|r| format!("{}  {}\n", r.key(), r.name().unwrap_or("-")))
                    .collect();
                out::print(&text);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Add { name, key } => {
            age::x25519::Recipient::from_str(&key).map_err(|e| {
                CliError::usage(format!("'{key}' is not an age X25519 public key ({e})"))
            })?;
            if let Some(existing) = config
                .recipients
                .iter()
                .find(|r| r.key() == key || r.name() == Some(name.as_str()))
            {
                return Err(CliError::refused(format!(
                    "{} is already a member ({})",
                    existing.name().unwrap_or(existing.key()),
                    existing.key()
                )));
            }
            config.recipients.push(RecipientEntry::Named {
                name: name.clone(),
                key,
            });
            config.save(&repo.root)?;
            out::say(&format!(
                "Added {name}; run git envsync rotate so existing branches become readable to them"
            ));
        }
        Action::Remove { name } => {
            let before = config.recipients.len();
            config
                .recipients
                .retain(|r| r.name() != Some(name.as_str()) && r.key() != name);
            if config.recipients.len() == before {
                return Err(CliError::refused(format!("no member named {name}")));
            }
            if config.recipients.is_empty() {
                return Err(CliError::refused(
                    "cannot remove the last member: nobody could decrypt anything",
                ));
            }
            config.save(&repo.root)?;
            out::say(&format!(
                "Removed {name} from {PROJECT_FILE}; now run git envsync rotate --removed {name}, then change the secrets it lists"
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}
