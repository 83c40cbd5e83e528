//! `git envsync keygen`: makes the keys of team-key mode, the age X25519 identity that
//! decrypts and the Ed25519 key that signs what you push.

use crate::cli::Global;
use crate::config;
use crate::crypto;
use crate::error::{CliError, Result};
use crate::fsutil;
use crate::out;
use envsync_common::secret::ExposeSecret;
use envsync_common::signing::SigningKey;
use std::process::ExitCode;

/// Make your team-mode keys ($XDG_CONFIG_HOME/envsync/identity.txt and signing.key, both
/// 0600) and print the public line teammates add with `git envsync members add NAME LINE`:
/// your age public key and your signing key.
///
/// A key that already exists is kept (replacing it would lock you out of every file
/// sealed to it); only a missing one is made.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_global: &Global, _args: Args) -> Result<ExitCode> {
    let identity_path = crypto::identity_path()?;
    let signing_path = crypto::signing_key_path()?;
    let had_identity = identity_path.exists();
    let had_signing = signing_path.exists();
    if had_identity && had_signing {
        return Err(CliError::refused(format!(
            "{} and {} already exist (public: {})",
            identity_path.display(),
            signing_path.display(),
            public_line()?
        ))
        .hint("keep them: replacing them would lock you out of every file sealed to you"));
    }
    fsutil::private_dir(&config::config_dir()?)?;
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    if !had_identity {
        let identity = age::x25519::Identity::generate();
        let text = format!(
            "# created: {created}\n# public key: {}\n{}\n",
            identity.to_public(),
            identity.to_string().expose_secret()
        );
        fsutil::write_atomic(&identity_path, text.as_bytes(), 0o600)?;
        out::say(&format!("Identity written to {}", identity_path.display()));
    }
    if !had_signing {
        let key = SigningKey::generate()
            .map_err(|e| CliError::refused(format!("cannot make a signing key: {e}")))?;
        let text = zeroize::Zeroizing::new(format!(
            "# envsync signing key (Ed25519): signs the versions you push. Keep it private.\n# created: {created}\n# public key: {}\n{}\n",
            key.public(),
            *key.to_secret_line()
        ));
        fsutil::write_atomic(&signing_path, text.as_bytes(), 0o600)?;
        out::say(&format!(
            "Signing key written to {}",
            signing_path.display()
        ));
    }
    out::print(&format!("{}\n", public_line()?));
    Ok(ExitCode::SUCCESS)
}

/// The user's public keys as one line: `age1… ed25519:…`.
pub fn public_line() -> Result<String> {
    Ok(format!("{} {}", public_key()?, signing_public()?))
}

/// The public key of the user's identity.
pub fn public_key() -> Result<String> {
    let identities = crypto::load_identities(&crypto::identity_path()?)?;
    identities
        .first()
        .map(|i| i.to_public().to_string())
        .ok_or_else(|| CliError::usage("the identity file holds no key"))
}

/// The public half of the user's signing key.
pub fn signing_public() -> Result<String> {
    Ok(crypto::load_signing_key()?.public().to_string())
}
