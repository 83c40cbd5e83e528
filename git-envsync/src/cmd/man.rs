//! `git envsync man --dir DIR` (hidden): writes the manual pages, generated from the
//! command line's own definition, so they always match this binary. `install.sh` runs it.

use crate::cli::{Cli, Global};
use crate::error::{CliError, Result};
use crate::out;
use clap::CommandFactory;
use std::path::PathBuf;
use std::process::ExitCode;

/// Write the manual pages (git-envsync.1, git-envsync-push.1, …) into a directory.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for the pages, created if missing (install.sh: PREFIX/share/man/man1).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

pub fn run(_global: &Global, args: Args) -> Result<ExitCode> {
    let pages = envsync_common::manpage::pages(Cli::command())
        .map_err(|e| CliError::refused(format!("cannot render the manual pages: {e}")))?;
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| CliError::refused(format!("cannot create {}: {e}", args.dir.display())))?;
    let mut written = String::new();
    for page in pages {
        let path = args.dir.join(&page.file_name);
        std::fs::write(&path, &page.roff)
            .map_err(|e| CliError::refused(format!("cannot write {}: {e}", path.display())))?;
        written.push_str(&format!("{}\n", path.display()));
    }
    out::print(&written);
    Ok(ExitCode::SUCCESS)
}
