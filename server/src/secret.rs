//! The JWT signing secret: checking it, generating one on first start, and the 0600 file
//! beside the database that keeps it between starts.
//!
//! The secret is used as given (its bytes are the HMAC key), so the generated file's one
//! line can be copied into `ENVSYNC_JWT_SECRET` unchanged.
//!
//! - [`SecretSources`] is where a server looks for its secret, in order:
//!   `ENVSYNC_JWT_SECRET`, the file `--jwt-secret-file` names, `<db>.jwt.secret`.
//! - [`bootstrap`] is what a start does with them: use the secret found, else refuse (a
//!   shared store, a database that holds data) or generate one and keep it.
//! - [`SecretSources::required`] is what `envsync-server token` does: use it or refuse.

use crate::ServerError;
use crate::startup::{SecretSource, StartupError};
use crate::store::Database;
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

/// Where a server finds an existing secret, in this order: the value of
/// `ENVSYNC_JWT_SECRET`, the file `--jwt-secret-file` names, then (SQLite) the file beside
/// the database. `Debug` never shows the value.
#[derive(Debug, Clone, Default)]
pub struct SecretSources {
    /// `ENVSYNC_JWT_SECRET`, when set (even to something that will be refused).
    pub value: Option<SecretBytes>,
    /// `--jwt-secret-file` (`ENVSYNC_JWT_SECRET_FILE`).
    pub file: Option<PathBuf>,
}

impl SecretSources {
    /// `ENVSYNC_JWT_SECRET` from the process environment, and the file flag's value.
    pub fn from_env(file: Option<PathBuf>) -> SecretSources {
        SecretSources {
            value: std::env::var_os("ENVSYNC_JWT_SECRET")
                .map(|v| SecretBytes::new(v.into_encoded_bytes())),
            file,
        }
    }

    /// The secret of the first source that has one; `Ok(None)` when none does. A source
    /// that has one that cannot be used is an error, not a reason to look further.
    pub fn existing(&self, db: &Database) -> Result<Option<JwtSecret>, StartupError> {
        if let Some(value) = &self.value {
            return JwtSecret::new(value.expose().to_vec())
                .map(Some)
                .map_err(|cause| StartupError::SecretRefused {
                    from: SecretSource::Env,
                    cause,
                });
        }
        if let Some(file) = &self.file {
            return match load(file) {
                Ok(Some(secret)) => Ok(Some(secret)),
                Ok(None) => Err(StartupError::SecretFileMissing { path: file.clone() }),
                Err(cause) => Err(StartupError::SecretRefused {
                    from: SecretSource::File(file.clone()),
                    cause,
                }),
            };
        }
        match db {
            Database::File(path) => {
                let file = secret_path(path);
                load(&file).map_err(|cause| StartupError::SecretRefused {
                    from: SecretSource::BesideDatabase(file),
                    cause,
                })
            }
            Database::Memory | Database::Postgres(_) => Ok(None),
        }
    }

    /// The secret, or a refusal naming where it was looked for: what minting offline
    /// (`envsync-server token`) needs, as it never generates one.
    pub fn required(&self, db: &Database) -> Result<JwtSecret, StartupError> {
        self.existing(db)?.ok_or_else(|| match db {
            Database::File(path) => StartupError::NoSecret {
                file: secret_path(path),
            },
            Database::Memory | Database::Postgres(_) => StartupError::NoSharedSecret,
        })
    }
}

/// The secret a server starts with.
#[derive(Debug)]
pub struct Bootstrap {
    pub secret: JwtSecret,
    /// This start generated it (an empty SQLite or `:memory:` database): the server
    /// announces the first owner token.
    pub generated: bool,
}

/// The secret a server on `db` starts with: the one `sources` hold, else a new one for an
/// empty SQLite database (written to `<db>.jwt.secret`, mode 0600) or for `:memory:`.
///
/// A PostgreSQL store is refused without one (its servers must share it), and so is a
/// database that holds data: its secret was lost or the environment changed (a service
/// unit without `ENVSYNC_JWT_SECRET`, a moved file), and a new secret would silently
/// invalidate every token issued and print a fresh owner token to wherever stdout is
/// collected. The operator restores the secret, or replaces it knowingly.
pub async fn bootstrap(sources: &SecretSources, db: &Database) -> Result<Bootstrap, StartupError> {
    if let Some(secret) = sources.existing(db)? {
        return Ok(Bootstrap {
            secret,
            generated: false,
        });
    }
    let beside = match db {
        Database::Postgres(_) => return Err(StartupError::SharedSecretRequired),
        Database::Memory => None,
        Database::File(path) => {
            let file = secret_path(path);
            if db
                .holds_data()
                .await
                .map_err(|e| StartupError::open(ServerError::Store(e)))?
            {
                return Err(StartupError::SecretLost { file });
            }
            Some(file)
        }
    };
    let secret = JwtSecret::generate().map_err(StartupError::NewSecret)?;
    if let Some(file) = &beside {
        store(file, &secret).map_err(StartupError::NewSecret)?;
    }
    Ok(Bootstrap {
        secret,
        generated: true,
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

    const GOOD: &str = "k3Jd9-Qm2vX7pL0aZ4rT8yW1nB6cF5hG";

    fn given(value: &str) -> SecretSources {
        SecretSources {
            value: Some(SecretBytes::new(value.as_bytes().to_vec())),
            file: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_start_creates_the_secret_a_later_one_reads() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::File(dir.path().join("envsync.db"));
        let file = dir.path().join("envsync.db.jwt.secret");
        let first = bootstrap(&SecretSources::default(), &db).await.unwrap();
        assert!(first.generated);
        assert_eq!(
            load(&file).unwrap().unwrap().expose(),
            first.secret.expose()
        );
        let again = bootstrap(&SecretSources::default(), &db).await.unwrap();
        assert!(!again.generated);
        assert_eq!(again.secret.expose(), first.secret.expose());

        // :memory: generates one too, and writes nothing.
        let memory = bootstrap(&SecretSources::default(), &Database::Memory)
            .await
            .unwrap();
        assert!(memory.generated);
        assert!(!std::path::Path::new(":memory:.jwt.secret").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_given_secret_wins_and_a_bad_one_is_refused_by_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::File(dir.path().join("envsync.db"));
        let got = bootstrap(&given(GOOD), &db).await.unwrap();
        assert!(!got.generated);
        assert_eq!(got.secret.expose(), GOOD.as_bytes());
        assert!(!secret_path(&dir.path().join("envsync.db")).exists());

        let short = "not-long-enough-a-secret";
        let refused = bootstrap(&given(short), &db).await.unwrap_err();
        assert!(
            matches!(
                &refused,
                StartupError::SecretRefused {
                    from: SecretSource::Env,
                    cause: SecretError::TooShort { len: 24 },
                }
            ),
            "{refused:?}"
        );
        assert!(!format!("{refused:?} {refused}").contains(short));
        assert!(!format!("{:?}", given(short)).contains(short));

        // --jwt-secret-file: missing, then too short, then used.
        let path = dir.path().join("shared.secret");
        let from_file = SecretSources {
            value: None,
            file: Some(path.clone()),
        };
        assert!(matches!(
            from_file.existing(&db),
            Err(StartupError::SecretFileMissing { path: p }) if p == path
        ));
        fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            from_file.existing(&db),
            Err(StartupError::SecretRefused { from: SecretSource::File(p), .. }) if p == path
        ));
        fs::write(&path, format!("{GOOD}\n")).unwrap();
        let secret = from_file.required(&db).unwrap();
        assert_eq!(secret.expose(), GOOD.as_bytes());

        // A bad <db>.jwt.secret is refused, not replaced.
        let beside = secret_path(&dir.path().join("envsync.db"));
        fs::write(&beside, "short\n").unwrap();
        assert!(matches!(
            bootstrap(&SecretSources::default(), &db).await,
            Err(StartupError::SecretRefused { from: SecretSource::BesideDatabase(p), .. }) if p == beside
        ));
        assert_eq!(fs::read(&beside).unwrap(), b"short\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_with_data_and_no_secret_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("envsync.db");
        let db = Database::File(path.clone());
        let first = bootstrap(&SecretSources::default(), &db).await.unwrap();
        let server = crate::Server::open(crate::Settings::new(db.clone(), first.secret))
            .await
            .unwrap();
        server
            .mint(
                "test",
                "owner@localhost",
                envsync_common::api::Role::Owner,
                Vec::new(),
                60,
            )
            .await
            .unwrap();
        drop(server);
        let file = secret_path(&path);
        fs::remove_file(&file).unwrap();

        let refused = bootstrap(&SecretSources::default(), &db).await.unwrap_err();
        assert!(
            matches!(&refused, StartupError::SecretLost { file: f } if *f == file),
            "{refused:?}"
        );
        assert!(!file.exists(), "a new secret was written anyway");
        // `token` never generates one either.
        assert!(matches!(
            SecretSources::default().required(&db),
            Err(StartupError::NoSecret { file: f }) if f == file
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_store_needs_its_secret_given() {
        // Never connected to: the refusal comes first.
        let db = Database::parse("postgres://envsync:pw-sentinel@127.0.0.1:1/envsync").unwrap();
        let refused = bootstrap(&SecretSources::default(), &db).await.unwrap_err();
        assert!(
            matches!(refused, StartupError::SharedSecretRequired),
            "{refused:?}"
        );
        assert!(matches!(
            SecretSources::default().required(&db),
            Err(StartupError::NoSharedSecret)
        ));
        let got = bootstrap(&given(GOOD), &db).await.unwrap();
        assert!(!got.generated);
    }
}
