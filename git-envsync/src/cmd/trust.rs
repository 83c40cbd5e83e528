//! `git envsync trust`: review the project settings in `.envsync.toml` and consent to them.
//!
//! Shows every setting the first time, and what changed since the last trusted settings
//! after that; asks on a terminal, or takes `--yes`. Until then every command refuses and
//! every hook does nothing (see [`crate::trust`]).

use crate::cli::Global;
use crate::config::{PROJECT_FILE, ProjectConfig};
use crate::error::{CliError, Result};
use crate::git::Repo;
use crate::out;
use crate::trust::TrustStore;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Review the settings in .envsync.toml and trust them for this clone.
///
/// The settings decide where your secrets go (server, project, env file, members), and a
/// branch can change them; envsync acts on them only once you have trusted them here.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trust without asking (after reviewing the settings some other way).
    #[arg(long, short = 'y')]
    yes: bool,
}

pub fn run(_global: &Global, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover()?;
    let config = ProjectConfig::load(&repo.root)?;
    let store = TrustStore::new(repo.common_dir());
    if store.is_trusted(&config)? {
        out::say(&format!(
            "{PROJECT_FILE} is already trusted here (project {})",
            config.project
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let (title, lines) = match store.last()? {
        Some(old) => (
            format!("{PROJECT_FILE} changed since you last trusted it:"),
            config.changes_from(&old),
        ),
        None => (
            format!("{PROJECT_FILE} asks envsync to use these settings:"),
            config.describe(),
        ),
    };
    let mut text = format!("{title}\n");
    for line in &lines {
        text.push_str(&format!("  {line}\n"));
    }
    out::print(&text);
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::usage("not trusted: no terminal to ask on")
                .hint("review the settings above, then run git envsync trust --yes"));
        }
        if !crate::prompt::confirm("Trust these settings for this clone? [y/N] ")? {
            return Err(CliError::refused("not trusted; nothing changed"));
        }
    }
    store.trust(&config)?;
    out::say(&format!(
        "Trusted {PROJECT_FILE} (project {})",
        config.project
    ));
    Ok(ExitCode::SUCCESS)
}
