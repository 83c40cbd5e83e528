//! Consent for the committed configuration, in the manner of `direnv allow` and git's
//! `safe.directory`.
//!
//! `.envsync.toml` arrives with whatever branch is checked out, so anyone who can push a
//! branch can write it. Its settings decide where secrets go and come from (the server,
//! the project, the env file, the members and their keys, the work factor, the fallback
//! branch), so none of them takes effect until this clone's user has trusted that exact
//! set of settings with `git envsync trust` (or wrote it with `init` or `members`).
//! What was trusted is recorded, with the settings themselves so that a later change can
//! be shown, in `envsync/trust.json` under the repository's common git directory: linked
//! work trees share it, and no branch can write it.

use crate::config::{PROJECT_FILE, ProjectConfig};
use crate::error::{CliError, Result};
use crate::fsutil;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How many trusted settings are remembered (the newest win): enough for the configs of
/// every branch someone switches between.
const REMEMBERED: usize = 64;

/// This clone's record of trusted settings.
#[derive(Debug, Clone)]
pub struct TrustStore {
    path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TrustFile {
    trusted: Vec<Trusted>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Trusted {
    digest: String,
    at: String,
    settings: ProjectConfig,
}

impl TrustStore {
    /// The store of the repository whose common git directory is `common_dir`.
    pub fn new(common_dir: &Path) -> TrustStore {
        TrustStore {
            path: common_dir.join("envsync").join("trust.json"),
        }
    }

    fn load(&self) -> Result<TrustFile> {
        Ok(fsutil::read_optional(&self.path)?
            // A damaged record trusts nothing: the user is asked again.
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    pub fn is_trusted(&self, config: &ProjectConfig) -> Result<bool> {
        let digest = config.digest();
        Ok(self.load()?.trusted.iter().any(|t| t.digest == digest))
    }

    /// The settings trusted most recently, if any.
    pub fn last(&self) -> Result<Option<ProjectConfig>> {
        Ok(self.load()?.trusted.pop().map(|t| t.settings))
    }

    /// The env files every trusted setting named (for the plaintext guard).
    pub fn env_files(&self) -> Vec<String> {
        self.load()
            .map(|f| f.trusted.into_iter().map(|t| t.settings.env_file).collect())
            .unwrap_or_default()
    }

    /// Records `config` as trusted.
    pub fn trust(&self, config: &ProjectConfig) -> Result<()> {
        let mut file = self.load()?;
        let digest = config.digest();
        file.trusted.retain(|t| t.digest != digest);
        file.trusted.push(Trusted {
            digest,
            at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            settings: config.clone(),
        });
        let excess = file.trusted.len().saturating_sub(REMEMBERED);
        file.trusted.drain(..excess);
        if let Some(dir) = self.path.parent() {
            fsutil::private_dir(dir)?;
        }
        let bytes = serde_json::to_vec_pretty(&file).context("cannot encode the trust record")?;
        fsutil::write_atomic(&self.path, &bytes, 0o600)?;
        Ok(())
    }

    /// Fails, with what changed and how to consent, unless `config` is trusted.
    pub fn require(&self, config: &ProjectConfig) -> Result<()> {
        if self.is_trusted(config)? {
            return Ok(());
        }
        Err(self.untrusted(config)?)
    }

    /// The refusal for an untrusted `config`: one line naming what changed.
    pub fn untrusted(&self, config: &ProjectConfig) -> Result<CliError> {
        let error = match self.last()? {
            None => CliError::usage(format!(
                "this clone has not trusted {PROJECT_FILE} yet (project {})",
                config.project
            )),
            Some(old) => {
                let changes = config.changes_from(&old);
                let fields: Vec<&str> = changes
                    .iter()
                    .map(|c| c.split(':').next().unwrap_or_default())
                    .collect();
                CliError::usage(format!(
                    "{PROJECT_FILE} changed since this clone trusted it ({})",
                    if fields.is_empty() {
                        "settings".to_owned()
                    } else {
                        fields.join(", ")
                    }
                ))
            }
        };
        Ok(error.hint("review it with git envsync trust, which shows the settings and asks"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_is_per_settings_and_remembers_several() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::new(dir.path());
        let main = ProjectConfig::new("p".into());
        let mut evil = main.clone();
        evil.server = Some("http://203.0.113.9:80".into());
        assert!(!store.is_trusted(&main).unwrap());
        let err = store.require(&main).unwrap_err();
        assert_eq!(err.exit.code(), 2);
        assert!(err.message().contains("not trusted"), "{err}");

        store.trust(&main).unwrap();
        assert!(store.require(&main).is_ok());
        let err = store.require(&evil).unwrap_err();
        assert!(err.message().contains("changed since"), "{err}");
        assert!(err.message().contains("server"), "{err}");

        store.trust(&evil).unwrap();
        assert!(store.is_trusted(&main).unwrap() && store.is_trusted(&evil).unwrap());
        assert_eq!(store.last().unwrap(), Some(evil));
        let mode = std::fs::metadata(dir.path().join("envsync/trust.json")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
    }
}
