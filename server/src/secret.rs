//! The JWT signing secret: checking it, generating one on first start, and the 0600 file
//! beside the database that keeps it between starts.
//!
//! The secret is used as given (its bytes are the HMAC key), so the generated file's one
//! line can be copied into `ENVSYNC_JWT_SECRET` unchanged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use envsync_common::secret::SecretBytes;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Shortest secret accepted, in bytes (the HS256 key size).
pub const MIN_SECRET_LEN: usize = 32;

/// A JWT signing secret. `Debug` never shows it.
#[derive(Clone)]
pub struct JwtSecret(SecretBytes);

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JwtSecret([redacted], {} bytes)", self.0.len())
    }
}

/// Why a secret was refused or could not be loaded. Never contains the secret.
#[derive(Debug, Error)]
pub enum SecretError {
    #[error("the JWT secret is {len} bytes long; at least {MIN_SECRET_LEN} are required")]
    TooShort { len: usize },
    #[error("the JWT secret looks like a placeholder ({reason}); use a long random value")]
    Placeholder { reason: &'static str },
    #[error("cannot read the secret file {}: {cause}", path.display())]
    Read { path: PathBuf, cause: io::Error },
    #[error("cannot write the secret file {}: {cause}", path.display())]
    Write { path: PathBuf, cause: io::Error },
    #[error("no source of randomness: {0}")]
    Random(String),
}

/// Common placeholder spellings; a secret starting with one of these was not chosen with care.
const PLACEHOLDER_PREFIXES: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "secret",
    "your-",
    "your_",
    "yoursecret",
    "replace",
    "example",
    "placeholder",
    "insecure",
    "default",
    "password",
    "dummy",
    "todo",
    "xxxx",
];

impl JwtSecret {
    /// Accepts a secret of at least [`MIN_SECRET_LEN`] bytes that is not a placeholder.
    pub fn new(bytes: Vec<u8>) -> Result<JwtSecret, SecretError> {
        let secret = SecretBytes::new(bytes);
        check(secret.expose())?;
        Ok(JwtSecret(secret))
    }

    /// A fresh random secret: 48 random bytes, base64url-encoded (64 ASCII characters).
    pub fn generate() -> Result<JwtSecret, SecretError> {
        // A random text can start with a placeholder word ("todo…") about once in a
        // million draws: draw again rather than refuse.
        let mut last = None;
        for _ in 0..8 {
            match JwtSecret::new(random_text(48)?.into_bytes()) {
                Ok(secret) => return Ok(secret),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| SecretError::Random("no secret drawn".into())))
    }

    /// The key bytes, for signing and verifying only.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }
}

fn check(bytes: &[u8]) -> Result<(), SecretError> {
    if bytes.len() < MIN_SECRET_LEN {
        return Err(SecretError::TooShort { len: bytes.len() });
    }
    let lower = String::from_utf8_lossy(bytes).to_ascii_lowercase();
    if PLACEHOLDER_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err(SecretError::Placeholder {
            reason: "it starts with a well-known placeholder word",
        });
    }
    if ["changeme", "change-me", "change_me", "placeholder"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return Err(SecretError::Placeholder {
            reason: "it contains a well-known placeholder word",
        });
    }
    let mut seen = [false; 256];
    bytes.iter().for_each(|&b| seen[usize::from(b)] = true);
    if seen.iter().filter(|&&s| s).count() < 8 {
        return Err(SecretError::Placeholder {
            reason: "it uses fewer than 8 distinct characters",
        });
    }
    Ok(())
}

/// `n` random bytes as base64url without padding.
pub(crate) fn random_text(n: usize) -> Result<String, SecretError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(&bytes))
}

/// Where the generated secret of database `db` is kept: `<db>.jwt.secret`.
pub fn secret_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".jwt.secret");
    PathBuf::from(name)
}

/// Reads a secret file; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<JwtSecret>, SecretError> {
    let text = match fs::read(path) {
        Ok(text) => SecretBytes::new(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(cause) => {
            return Err(SecretError::Read {
                path: path.to_owned(),
                cause,
            });
        }
    };
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the secret file is readable by other users; chmod 600 it");
    }
    let trimmed = text.expose().trim_ascii().to_vec();
    JwtSecret::new(trimmed).map(Some)
}

/// Writes a secret file with mode 0600: temp file, fsync, rename, fsync of the directory.
pub fn store(path: &Path, secret: &JwtSecret) -> Result<(), SecretError> {
    let err = |cause| SecretError::Write {
        path: path.to_owned(),
        cause,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(secret.expose())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        err(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_short_and_placeholder_secrets() {
        assert!(matches!(
            JwtSecret::new(b"short".to_vec()),
            Err(SecretError::TooShort { len: 5 })
        ));
        for bad in [
            "changeme-changeme-changeme-changeme",
            "secret-key-for-production-use-1234567",
            "your-256-bit-secret-goes-here-please",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abababababababababababababababababab",
        ] {
            assert!(
                matches!(
                    JwtSecret::new(bad.as_bytes().to_vec()),
                    Err(SecretError::Placeholder { .. })
                ),
                "{bad}"
            );
        }
        assert!(JwtSecret::new(b"k3Jd9-Qm2vX7pL0aZ4rT8yW1nB6cF5hG".to_vec()).is_ok());
    }

    #[test]
    fn generated_secret_is_redacted_and_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = secret_path(&dir.path().join("envsync.db"));
        assert!(path.to_string_lossy().ends_with("envsync.db.jwt.secret"));
        assert!(load(&path).unwrap().is_none());
        let secret = JwtSecret::generate().unwrap();
        assert_eq!(secret.expose().len(), 64);
        let shown = format!("{secret:?}");
        assert!(shown.contains("[redacted]"));
        assert!(!shown.contains(std::str::from_utf8(secret.expose()).unwrap()));
        store(&path, &secret).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap().unwrap().expose(), secret.expose());
    }
}
