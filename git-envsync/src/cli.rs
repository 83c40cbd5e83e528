//! The command line: global flags and the subcommand, parsed once by clap.

use crate::cmd::Command;
use clap::{Args, Parser};

/// Keep a team's .env files in sync per git branch, end-to-end encrypted with age.
///
/// The server stores only ciphertext and key names; your passphrase or identity never
/// leaves this machine.
#[derive(Debug, Parser)]
#[command(name = "git-envsync", bin_name = "git envsync", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Work on this branch instead of the checked-out one.
    #[arg(long, global = true, value_name = "NAME")]
    pub branch: Option<String>,
    /// Print data as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// The envsync server URL (overrides ENVSYNC_API and the config files).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
}
