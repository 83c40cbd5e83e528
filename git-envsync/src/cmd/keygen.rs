//! `git envsync keygen`: makes the age X25519 identity for team-key mode.

use crate::cli::Global;
use crate::config;
use crate::crypto;
use crate::error::{CliError, Result};
use crate::fsutil;
use crate::out;
use envsync_common::secret::ExposeSecret;
use std::process::ExitCode;

/// Make your age identity for team-key mode ($XDG_CONFIG_HOME/envsync/identity.txt, 0600)
/// and print its public key, which teammates add with `git envsync members add`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_global: &Global, _args: Args) -> Result<ExitCode> {
    let path = crypto::identity_path()?;
    if path.exists() {
        let public = public_key()?;
        return Err(CliError::refused(format!(
            "{} already exists (public key {public})",
            path.display()
        ))
        .hint("keep it: replacing it would lock you out of every file sealed to it"));
    }
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        identity.to_string().expose_secret()
    );
    fsutil::private_dir(&config::config_dir()?)?;
    fsutil::write_atomic(&path, text.as_bytes(), 0o600)?;
    out::say(&format!("Identity written to {}", path.display()));
    out::print(&format!("{public}\n"));
    Ok(ExitCode::SUCCESS)
}

/// The public key of the user's identity.
pub fn public_key() -> Result<String> {
    let identities = crypto::load_identities(&crypto::identity_path()?)?;
    identities
        .first()
        .map(|i| i.to_public().to_string())
        .ok_or_else(|| CliError::usage("the identity file holds no key"))
}
