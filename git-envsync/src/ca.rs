//! The extra certificate authority trusted beside the system's roots, for a server whose
//! certificate a private CA signed: where it is configured, and reading it.
//!
//! Which file, the first one set:
//! 1. `ENVSYNC_CA_FILE` (this process, any server);
//! 2. `ca_file` in the server's own section of the user configuration,
//!    `[servers."https://envsync.internal"]`, which `login --ca-file` writes;
//! 3. `ca_file` at the top of the user configuration (every server).
//!
//! A relative path in the configuration is taken from the configuration's directory. The
//! file is PEM, one or more certificates. It only matters for `https://` servers; a problem
//! with it is a configuration error (exit 2), found before any request is sent.

use crate::config::{self, UserConfig};
use crate::error::{CliError, Result};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};
use std::path::{Path, PathBuf};

/// The variable that names a CA file for every server.
pub const ENV: &str = "ENVSYNC_CA_FILE";

/// A CA file and the setting that named it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: PathBuf,
    pub from: String,
}

impl CaFile {
    pub fn new(path: impl Into<PathBuf>, from: impl Into<String>) -> CaFile {
        CaFile {
            path: path.into(),
            from: from.into(),
        }
    }

    /// The CA file for `server`, if one is configured (see the module documentation).
    pub fn resolve(user: &UserConfig, server: &str) -> Option<CaFile> {
        let dir = config::config_dir().unwrap_or_default();
        CaFile::pick(crate::context::env_nonempty(ENV), &dir, user, server)
    }

    /// [`CaFile::resolve`] with the variable's value and the configuration's directory given.
    fn pick(env: Option<String>, dir: &Path, user: &UserConfig, server: &str) -> Option<CaFile> {
        if let Some(path) = env {
            return Some(CaFile::new(path, ENV));
        }
        let in_config = |path: &Path| dir.join(path);
        if let Some(origin) = config::origin(server).ok()
            && let Some(path) = user.servers.get(&origin).and_then(|l| l.ca_file.as_deref())
        {
            return Some(CaFile::new(
                in_config(path),
                format!("ca_file of [servers.\"{origin}\"] in config.toml"),
            ));
        }
        user.ca_file
            .as_deref()
            .map(|path| CaFile::new(in_config(path), "ca_file in config.toml"))
    }

    /// The certificates of the file, each checked to be one a client can trust; a file
    /// that cannot be read, holds no certificate, or holds a broken one is refused.
    pub fn certificates(&self) -> Result<Vec<reqwest::Certificate>> {
        let fix = || format!("fix or unset {}", self.from);
        let bytes = std::fs::read(&self.path).map_err(|e| {
            CliError::usage(format!(
                "cannot read the CA file {} ({}): {e}",
                self.path.display(),
                self.from
            ))
            .hint(fix())
        })?;
        let ders = CertificateDer::pem_slice_iter(&bytes)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                CliError::usage(format!(
                    "the CA file {} ({}) is not valid PEM: {}",
                    self.path.display(),
                    self.from,
                    pem_problem(&e)
                ))
                .hint(fix())
            })?;
        if ders.is_empty() {
            return Err(CliError::usage(format!(
                "the CA file {} ({}) holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                self.path.display(),
                self.from
            ))
            .hint(fix()));
        }
        let mut roots = rustls::RootCertStore::empty();
        let mut certificates = Vec::with_capacity(ders.len());
        for (n, der) in ders.into_iter().enumerate() {
            if let Err(e) = roots.add(der.clone()) {
                return Err(CliError::usage(format!(
                    "certificate {} of the CA file {} ({}) cannot be trusted: {e}",
                    n + 1,
                    self.path.display(),
                    self.from
                ))
                .hint(fix()));
            }
            certificates.push(reqwest::Certificate::from_der(&der).map_err(|e| {
                CliError::usage(format!(
                    "certificate {} of the CA file {}: {e}",
                    n + 1,
                    self.path.display()
                ))
            })?);
        }
        Ok(certificates)
    }
}

/// What is wrong with a PEM file, in words: pem's own messages print bytes as numbers, a
/// line of the file quoted is no help either.
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a BEGIN line has no matching END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(_) => "a section is not valid base64".to_owned(),
        pem::Error::SectionTooLarge => "a section is too large".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_configuration_errors_naming_the_setting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = CaFile::new(dir.path().join("nope.pem"), "ENVSYNC_CA_FILE");
        let err = missing.certificates().expect_err("missing");
        assert_eq!(err.exit, crate::error::Exit::Usage);
        assert!(
            err.message().contains("nope.pem (ENVSYNC_CA_FILE)"),
            "{err}"
        );
        assert_eq!(err.hint.as_deref(), Some("fix or unset ENVSYNC_CA_FILE"));
        for (text, expected) in [
            ("", "holds no PEM certificate"),
            ("not a certificate\n", "holds no PEM certificate"),
            ("-----BEGIN CERTIFICATE-----\nMAMC\n", "is not valid PEM"),
            (
                "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
                "certificate 1 of the CA file",
            ),
        ] {
            let path = dir.path().join("ca.pem");
            std::fs::write(&path, text).expect("write");
            let err = CaFile::new(&path, "ca_file in config.toml")
                .certificates()
                .expect_err(text);
            assert!(err.message().contains(expected), "{text:?}: {err}");
            assert!(!err.message().contains('\n'), "{err}");
        }
    }

    #[test]
    fn the_variable_wins_then_the_server_s_section_then_the_top_level() {
        let dir = Path::new("/home/u/.config/envsync");
        let mut user: UserConfig = toml::from_str(
            "ca_file = \"all.pem\"\n[servers.\"https://a.example\"]\nca_file = \"/etc/ssl/a.pem\"\n",
        )
        .expect("config");
        let pick = |env: Option<&str>, user: &UserConfig, server: &str| {
            CaFile::pick(env.map(str::to_owned), dir, user, server)
        };
        assert_eq!(
            pick(Some("/tmp/ca.pem"), &user, "https://a.example/"),
            Some(CaFile::new("/tmp/ca.pem", ENV))
        );
        let a = pick(None, &user, "https://A.example:443").expect("a's");
        assert_eq!(a.path, Path::new("/etc/ssl/a.pem"));
        assert!(a.from.contains("[servers.\"https://a.example\"]"), "{a:?}");
        let other = pick(None, &user, "https://b.example").expect("top level");
        assert_eq!(other.path, dir.join("all.pem"));
        user.ca_file = None;
        assert_eq!(pick(None, &user, "https://b.example"), None);
        // Serialised back (what login does), both settings stay.
        let text = toml::to_string(&user).expect("toml");
        assert!(text.contains("ca_file = \"/etc/ssl/a.pem\""), "{text}");
    }
}
