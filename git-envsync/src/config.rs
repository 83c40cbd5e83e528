//! Configuration files: the project's `.envsync.toml` (committed, nothing secret), the older
//! `.envsync.json`, and the user's `$XDG_CONFIG_HOME/envsync/config.toml` (0600: server and
//! token, written by `login`).
//!
//! Precedence, highest first: command-line flag, environment (`ENVSYNC_API`,
//! `ENVSYNC_TOKEN`, `ENVSYNC_PASS`), `.envsync.toml`, user config. The resolution itself
//! happens once, in [`crate::context`].

use crate::error::{CliError, Result};
use crate::fsutil;
use anyhow::Context as _;
use envsync_common::names::validate_project;
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

pub const PROJECT_FILE: &str = ".envsync.toml";
pub const LEGACY_PROJECT_FILE: &str = ".envsync.json";

/// `.envsync.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectConfig {
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default = "default_env_file")]
    pub env_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    /// Team-key mode: age X25519 public keys, bare or named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<RecipientEntry>,
    /// scrypt work factor for new passphrase-mode files; never below the default (18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_factor: Option<u8>,
}

fn default_env_file() -> String {
    ".env".to_owned()
}

/// A recipient as written in `.envsync.toml`: `"age1…"` or `{ name = "alice", key = "age1…" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecipientEntry {
    Key(String),
    Named { name: String, key: String },
}

impl RecipientEntry {
    pub fn key(&self) -> &str {
        match self {
            RecipientEntry::Key(k) | RecipientEntry::Named { key: k, .. } => k,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            RecipientEntry::Key(_) => None,
            RecipientEntry::Named { name, .. } => Some(name),
        }
    }
}

#[derive(Deserialize)]
struct LegacyConfig {
    project_id: String,
}

impl ProjectConfig {
    pub fn new(project: String) -> Self {
        ProjectConfig {
            project,
            server: None,
            env_file: default_env_file(),
            default_branch: None,
            recipients: Vec::new(),
            work_factor: None,
        }
    }

    /// Loads `.envsync.toml`, or `.envsync.json` when there is no TOML file.
    pub fn load(root: &Path) -> Result<ProjectConfig> {
        let toml_path = root.join(PROJECT_FILE);
        let config = if let Some(bytes) = fsutil::read_optional(&toml_path)? {
            let text = String::from_utf8(bytes)
                .map_err(|_| CliError::usage(format!("{PROJECT_FILE} is not UTF-8")))?;
            toml::from_str::<ProjectConfig>(&text).map_err(|e| {
                CliError::usage(format!(
                    "{PROJECT_FILE}: {}",
                    e.message().lines().next().unwrap_or("invalid")
                ))
            })?
        } else if let Some(bytes) = fsutil::read_optional(&root.join(LEGACY_PROJECT_FILE))? {
            let legacy: LegacyConfig = serde_json::from_slice(&bytes)
                .map_err(|e| CliError::usage(format!("{LEGACY_PROJECT_FILE}: {e}")))?;
            ProjectConfig::new(legacy.project_id)
        } else {
            return Err(
                CliError::usage(format!("no {PROJECT_FILE} in {}", root.display()))
                    .hint("run git envsync init --project <ID> to set this repository up"),
            );
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        validate_project(&self.project)
            .map_err(|e| CliError::usage(format!("{PROJECT_FILE}: {e}")))?;
        env_file_path(Path::new(""), &self.env_file)?;
        if let Some(wf) = self.work_factor
            && wf < envsync_common::envelope::DEFAULT_WORK_FACTOR
        {
            return Err(CliError::usage(format!(
                "{PROJECT_FILE}: work_factor {wf} is below the minimum {}",
                envsync_common::envelope::DEFAULT_WORK_FACTOR
            )));
        }
        Ok(())
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string(self).context("cannot write the project configuration")
    }

    /// Writes `.envsync.toml` under `root`, keeping the comment lines that head the file.
    pub fn save(&self, root: &Path) -> Result<()> {
        let path = root.join(PROJECT_FILE);
        let old = fsutil::read_optional(&path)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let mut header: String = old
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        if header.is_empty() {
            header = "# envsync project settings: committed, holds nothing secret.\n".to_owned();
        }
        let text = header + &self.to_toml()?;
        fsutil::write_atomic(&path, text.as_bytes(), 0o644)?;
        Ok(())
    }
}

/// Joins the configured env file name onto the work tree root, refusing paths that leave it.
pub fn env_file_path(root: &Path, env_file: &str) -> Result<PathBuf> {
    let rel = Path::new(env_file);
    let inside = !env_file.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(CliError::usage(format!(
            "{PROJECT_FILE}: env_file '{env_file}' must be a relative path inside the repository"
        )));
    }
    Ok(root.join(rel))
}

pub use envsync_common::secret::Token;

/// `$XDG_CONFIG_HOME/envsync/config.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
}

/// `$XDG_CONFIG_HOME/envsync`, or `~/.config/envsync`. The contract pins the XDG layout on
/// every platform, so this is read from the environment rather than a platform crate.
pub fn config_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(".config"))
            .ok_or_else(|| CliError::usage("neither XDG_CONFIG_HOME nor HOME is set"))?,
    };
    Ok(base.join("envsync"))
}

impl UserConfig {
    pub fn path() -> Result<PathBuf> {
        Ok(config_dir()?.join("config.toml"))
    }

    pub fn load() -> Result<UserConfig> {
        let path = UserConfig::path()?;
        let Some(bytes) = fsutil::read_optional(&path)? else {
            return Ok(UserConfig::default());
        };
        let text = String::from_utf8_lossy(&bytes);
        toml::from_str(&text).map_err(|e| {
            CliError::usage(format!(
                "{}: {}",
                path.display(),
                e.message().lines().next().unwrap_or("invalid")
            ))
            .hint("fix the file or run git envsync login again")
        })
    }

    pub fn save(&self) -> Result<PathBuf> {
        let path = UserConfig::path()?;
        let dir = config_dir()?;
        fsutil::private_dir(&dir)?;
        let text = toml::to_string(self).context("cannot write the user configuration")?;
        fsutil::write_atomic(&path, text.as_bytes(), 0o600)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_prefix_and_debug() {
        assert_eq!(Token::new("Bearer abc").unwrap().expose(), "abc");
        assert_eq!(Token::new(" abc\n").unwrap().expose(), "abc");
        assert!(Token::new("Bearer ").is_none());
        assert_eq!(
            format!("{:?}", Token::new("abc").unwrap()),
            "Token([redacted])"
        );
    }

    #[test]
    fn project_config_forms() {
        let c: ProjectConfig = toml::from_str(
            r#"project = "p"
recipients = ["age1abc", { name = "alice", key = "age1def" }]"#,
        )
        .unwrap();
        assert_eq!(c.env_file, ".env");
        assert_eq!(c.recipients[0].key(), "age1abc");
        assert_eq!(c.recipients[1].name(), Some("alice"));
    }

    #[test]
    fn recipients_serialize_back() {
        let mut c = ProjectConfig::new("p".into());
        c.recipients = vec![
            RecipientEntry::Key("age1abc".into()),
            RecipientEntry::Named {
                name: "alice".into(),
                key: "age1def".into(),
            },
        ];
        let text = c.to_toml().unwrap();
        let back: ProjectConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.recipients, c.recipients);
    }

    #[test]
    fn env_file_stays_inside() {
        let root = Path::new("/repo");
        assert!(env_file_path(root, "config/.env").is_ok());
        for bad in ["", "../.env", "/etc/passwd", "a/../../b"] {
            assert!(env_file_path(root, bad).is_err(), "{bad}");
        }
    }
}
