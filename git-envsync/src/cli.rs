//! The command line, parsed once by clap: `-q/--quiet` for every command, and each
//! command's own flags, among them the shared ones below where the command honours them
//! (`--branch`, `--json`, `--server`), gathered into one [`Global`] for the command.

use crate::cmd::Command;
use clap::{Args, Parser};

/// Keep a team's .env files in sync per git branch, end-to-end encrypted with age.
///
/// The server stores only ciphertext and key names; your passphrase or identity never
/// leaves this machine.
#[derive(Debug, Parser)]
#[command(name = "git-envsync", bin_name = "git envsync", version)]
pub struct Cli {
    /// Print only data and errors: no progress or result lines on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// `--branch`, for the commands that work on one branch.
#[derive(Debug, Clone, Default, Args)]
pub struct BranchFlag {
    /// Work on this branch instead of the checked-out one.
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
}

/// `--json`, for the commands that print data.
#[derive(Debug, Clone, Default, Args)]
pub struct JsonFlag {
    /// Print data as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--json` for a command with subcommands (`token list --json`, `members list --json`).
#[derive(Debug, Clone, Default, Args)]
pub struct JsonFlagBelow {
    /// Print data as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

impl From<&JsonFlagBelow> for JsonFlag {
    fn from(flag: &JsonFlagBelow) -> JsonFlag {
        JsonFlag { json: flag.json }
    }
}

/// `--server` for a command with subcommands (`token list --server URL`).
#[derive(Debug, Clone, Default, Args)]
pub struct ServerFlagBelow {
    /// The envsync server URL (overrides ENVSYNC_API and the config files).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
}

impl From<&ServerFlagBelow> for ServerFlag {
    fn from(flag: &ServerFlagBelow) -> ServerFlag {
        ServerFlag {
            server: flag.server.clone(),
        }
    }
}

/// `--server`, for the commands that talk to the server.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerFlag {
    /// The envsync server URL (overrides ENVSYNC_API and the config files).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

/// The shared flags as one command sees them (unset where it does not take them).
#[derive(Debug, Clone, Default)]
pub struct Global {
    pub branch: Option<String>,
    pub json: bool,
    pub server: Option<String>,
}

impl Global {
    pub fn of(
        scope: Option<&BranchFlag>,
        output: Option<&JsonFlag>,
        remote: Option<&ServerFlag>,
    ) -> Global {
        Global {
            branch: scope.and_then(|s| s.branch.clone()),
            json: output.is_some_and(|o| o.json),
            server: remote.and_then(|r| r.server.clone()),
        }
    }
}
