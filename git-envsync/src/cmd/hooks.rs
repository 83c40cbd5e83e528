//! `git envsync hooks install|uninstall`.

use crate::cli::Global;
use crate::cmd::run_hook::Autopush;
use crate::error::Result;
use crate::git::Repo;
use crate::hook_blocks::{self, Change, HOOKS};
use crate::out;
use clap::Subcommand;
use std::process::ExitCode;

/// Install or remove the git hooks (post-checkout, pre-commit, post-commit).
///
/// envsync owns a marked block inside each hook file; any other hook in the file is kept
/// and still runs. core.hooksPath and linked work trees are respected.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Install the hooks (running it again changes nothing).
    Install {
        /// Also take over hooks written in another language (kept as <hook>.envsync-backup).
        #[arg(long)]
        force: bool,
    },
    /// Remove envsync's block from each hook (and the file when nothing else is left).
    Uninstall,
}

pub fn run(_global: &Global, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover()?;
    let dir = hook_blocks::hooks_dir(&repo)?;
    // All or nothing: refuse before touching any file.
    if let Action::Install { force: false } = args.action {
        for (name, _) in HOOKS {
            hook_blocks::check_installable(&dir.join(name))?;
        }
    }
    for (name, block) in HOOKS {
        let path = dir.join(name);
        let change = match args.action {
            Action::Install { force } => hook_blocks::install(&path, block, force)?,
            Action::Uninstall => hook_blocks::uninstall(&path)?,
        };
        let what = match change {
            Change::Created => "installed".to_owned(),
            Change::Updated => "updated".to_owned(),
            Change::Unchanged => "already installed".to_owned(),
            Change::AddedToExisting => "added to the existing hook".to_owned(),
            Change::ReplacedForeign(backup) => {
                format!(
                    "installed; the previous hook is kept as {}",
                    backup.display()
                )
            }
            Change::Removed => "removed (the rest of the hook is kept)".to_owned(),
            Change::RemovedFile => "removed".to_owned(),
            Change::Absent => "not installed".to_owned(),
        };
        out::say(&format!("{name}: {what} ({})", path.display()));
    }
    if matches!(args.action, Action::Install { .. }) {
        let setting = repo
            .config_string("envsync.autopush")
            .unwrap_or_else(|| "true".to_owned());
        let fix = "change it with git config envsync.autopush true|commit|checkout|false";
        // The hooks' own reading of the setting, so what is said here is what they do.
        match Autopush::of(&repo) {
            Ok(autopush) => out::say(&format!(
                "envsync.autopush = {setting}: the hooks push your edits to the env file {}; {fix}",
                autopush.when()
            )),
            Err(bad) => out::say(&format!("{bad}: the hooks push nothing; {fix}")),
        }
    }
    Ok(ExitCode::SUCCESS)
}
