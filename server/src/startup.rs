//! Why `envsync-server` refused to start (or one of its subcommands to begin): one typed
//! [`StartupError`] per failure, carrying what failed, the hint that fixes it and the exit
//! code, so the binary never guesses either from an error's text.
//!
//! Messages name files, addresses, variables and databases (a PostgreSQL URL as its
//! redacted `Display` shows it), never a secret, a token or a password.

use crate::ServerError;
use crate::config::ConfigError;
use crate::secret::SecretError;
use crate::store::StoreError;
use crate::tls::TlsError;
use std::fmt;
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Where a refused JWT secret was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `ENVSYNC_JWT_SECRET`.
    Env,
    /// The file `--jwt-secret-file` (`ENVSYNC_JWT_SECRET_FILE`) names.
    File(PathBuf),
    /// `<db>.jwt.secret`, beside a SQLite database.
    BesideDatabase(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env => f.write_str("ENVSYNC_JWT_SECRET"),
            SecretSource::File(path) | SecretSource::BesideDatabase(path) => {
                write!(f, "the JWT secret in {}", path.display())
            }
        }
    }
}

/// Why the server (or `token`, or `copy`) did not start. The binary prints the message as
/// one `error:` line (with its causes, as `{:#}` on an `anyhow::Error` chains them), then
/// [`StartupError::hint`] as a `hint:` line, and exits with [`StartupError::exit_code`].
#[derive(Debug, Error)]
pub enum StartupError {
    /// A setting that cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A secret was found but cannot be used (too short, a placeholder, unreadable).
    #[error("{from} is refused")]
    SecretRefused {
        from: SecretSource,
        #[source]
        cause: SecretError,
    },
    /// `--jwt-secret-file` names a file that does not exist.
    #[error("the JWT secret file {} does not exist", path.display())]
    SecretFileMissing { path: PathBuf },
    /// A SQLite database holds data but no secret is given or kept beside it: a new one
    /// would invalidate every token issued for it.
    #[error(
        "the database holds data but its JWT secret is missing: {} does not exist and ENVSYNC_JWT_SECRET is unset, and a new secret would invalidate every token issued for it",
        file.display()
    )]
    SecretLost { file: PathBuf },
    /// A PostgreSQL store, which servers share, with no secret given.
    #[error(
        "a PostgreSQL store needs the JWT secret every server on it shares: set ENVSYNC_JWT_SECRET or ENVSYNC_JWT_SECRET_FILE"
    )]
    SharedSecretRequired,
    /// `token` on a SQLite database whose secret is nowhere.
    #[error("no JWT secret: ENVSYNC_JWT_SECRET is unset and {} does not exist", file.display())]
    NoSecret { file: PathBuf },
    /// `token` on a PostgreSQL database with no secret given.
    #[error(
        "no JWT secret: set ENVSYNC_JWT_SECRET or ENVSYNC_JWT_SECRET_FILE to the secret the servers use"
    )]
    NoSharedSecret,
    /// A first start could not draw or keep its new secret.
    #[error(transparent)]
    NewSecret(SecretError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The address cannot be bound (taken, not an address, not ours).
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        cause: io::Error,
    },
    /// The database cannot be opened, read or migrated.
    #[error("cannot open the database")]
    OpenDatabase {
        #[source]
        cause: ServerError,
    },
    /// `copy` into a target that holds data, without `--replace`. `target` is the
    /// database's redacted `Display`.
    #[error("the target {target} already holds data")]
    TargetHoldsData { target: String },
    /// A command line that cannot be used (beyond what clap checks).
    #[error("{0}")]
    Usage(String),
    /// The async runtime could not be built.
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    /// A signal the server must catch (SIGHUP, to reload its certificate) cannot be.
    #[error("cannot catch SIGHUP")]
    Signal(#[source] io::Error),
    /// The address line or the first owner token could not be written out.
    #[error("cannot write to standard output")]
    Output(#[source] io::Error),
    /// A server on a shared database could not learn whether its start is the first.
    #[error("cannot claim the first start")]
    ClaimFirstStart(#[source] StoreError),
    /// A token could not be minted (the first owner token, or `token`).
    #[error("cannot mint the token")]
    Mint(#[source] ServerError),
    /// The server stopped serving with an error.
    #[error("the server stopped")]
    Serve(#[source] ServerError),
    /// `audit verify` could not read the log.
    #[error("cannot read the audit log")]
    ReadLog(#[source] StoreError),
    /// A step of `copy` failed; `what` says which, naming databases as their redacted
    /// `Display` shows them.
    #[error("{what}")]
    Copy {
        what: String,
        #[source]
        cause: StoreError,
    },
    /// The copy's chains do not verify as the source's do.
    #[error("the copy does not verify as its source does (copy: {copy}; source: {expected})")]
    CopyDiffers { copy: String, expected: String },
    /// The source's audit log is broken, and so is the copy.
    #[error("the source's audit log does not verify; the copy is as broken as it is")]
    SourceBroken,
}

impl StartupError {
    /// A failure of `Server::open` (or of reading the database before it): a certificate
    /// read there is still a TLS failure, anything else the database's.
    pub fn open(cause: ServerError) -> StartupError {
        match cause {
            ServerError::Tls(e) => StartupError::Tls(e),
            cause => StartupError::OpenDatabase { cause },
        }
    }

    /// How to fix it, when there is a fix to name.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            StartupError::Config(_) => Some(
                "envsync-server --help lists every setting with its flag, variable and default",
            ),
            StartupError::SecretRefused {
                from: SecretSource::Env,
                ..
            } => Some(
                "unset ENVSYNC_JWT_SECRET to let the server generate one, or set it to e.g. the output of `head -c 48 /dev/urandom | base64`",
            ),
            StartupError::SecretRefused {
                cause: SecretError::Read { .. },
                ..
            } => Some("make the file readable by the server's user (and by no one else)"),
            StartupError::SecretRefused { .. } => Some(
                "replace it with a long random one (every token signed with the old one stops working): head -c 48 /dev/urandom | base64 > FILE && chmod 600 FILE",
            ),
            StartupError::SecretFileMissing { .. } => Some(
                "point ENVSYNC_JWT_SECRET_FILE at the file the servers share, or write one: head -c 48 /dev/urandom | base64 > FILE && chmod 600 FILE",
            ),
            StartupError::SecretLost { .. } => Some(
                "restore <db>.jwt.secret from a backup, or set ENVSYNC_JWT_SECRET to the secret its tokens were signed with; to start over on purpose (every token stops working), write a new one: head -c 48 /dev/urandom | base64 > <db>.jwt.secret && chmod 600 <db>.jwt.secret",
            ),
            StartupError::SharedSecretRequired => Some(
                "write one secret for all of them, e.g. head -c 48 /dev/urandom | base64 > /etc/envsync/jwt.secret, and point each at it with ENVSYNC_JWT_SECRET_FILE",
            ),
            StartupError::NoSecret { .. } => Some(
                "start the server once with the same --db to create one, or set ENVSYNC_JWT_SECRET",
            ),
            StartupError::Listen { .. } => {
                Some("pick another address with --addr HOST:PORT (port 0 picks a free port)")
            }
            StartupError::TargetHoldsData { .. } => {
                Some("pass --replace to erase the target first, or copy into an empty database")
            }
            StartupError::SourceBroken => Some(
                "envsync-server audit verify --db <source> names the first bad row; copy from a backup that verifies",
            ),
            // The message already says what to set, or names the file and what is wrong
            // with it; there is no one fix to add.
            StartupError::NoSharedSecret
            | StartupError::Usage(_)
            | StartupError::Runtime(_)
            | StartupError::Signal(_)
            | StartupError::Output(_)
            | StartupError::ClaimFirstStart(_)
            | StartupError::Mint(_)
            | StartupError::Serve(_)
            | StartupError::ReadLog(_)
            | StartupError::Copy { .. }
            | StartupError::CopyDiffers { .. }
            | StartupError::NewSecret(_)
            | StartupError::Tls(_)
            | StartupError::OpenDatabase { .. } => None,
        }
    }

    /// 2 for a setting or a command line that cannot be used, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) | StartupError::Usage(_) => 2,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message as the binary prints it: each cause after a colon.
    fn line(e: &StartupError) -> String {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }

    fn not_found() -> io::Error {
        io::Error::from(io::ErrorKind::NotFound)
    }

    #[test]
    fn each_failure_has_its_own_hint() {
        let hint = |e: StartupError| e.hint().unwrap_or("(none)");
        let db = PathBuf::from("/srv/envsync.db.jwt.secret");
        assert!(
            hint(StartupError::Config(ConfigError::Empty(
                "ENVSYNC_JWT_ISSUER"
            )))
            .starts_with("envsync-server --help lists every setting")
        );
        assert!(
            hint(StartupError::SecretRefused {
                from: SecretSource::Env,
                cause: SecretError::TooShort { len: 3 },
            })
            .starts_with("unset ENVSYNC_JWT_SECRET")
        );
        assert!(
            hint(StartupError::SecretRefused {
                from: SecretSource::BesideDatabase(db.clone()),
                cause: SecretError::TooShort { len: 3 },
            })
            .starts_with("replace it with a long random one")
        );
        assert!(
            hint(StartupError::SecretRefused {
                from: SecretSource::File(db.clone()),
                cause: SecretError::Read {
                    path: db.clone(),
                    cause: io::Error::from(io::ErrorKind::PermissionDenied),
                },
            })
            .starts_with("make the file readable")
        );
        assert!(
            hint(StartupError::SecretFileMissing { path: db.clone() })
                .starts_with("point ENVSYNC_JWT_SECRET_FILE at")
        );
        let lost = hint(StartupError::SecretLost { file: db.clone() });
        assert!(
            lost.starts_with("restore <db>.jwt.secret") && lost.contains("ENVSYNC_JWT_SECRET"),
            "{lost}"
        );
        assert!(
            hint(StartupError::SharedSecretRequired)
                .starts_with("write one secret for all of them")
        );
        assert!(
            hint(StartupError::NoSecret { file: db.clone() })
                .starts_with("start the server once with the same --db")
        );
        assert!(
            hint(StartupError::Listen {
                addr: "127.0.0.1:80".into(),
                cause: io::Error::from(io::ErrorKind::AddrInUse),
            })
            .starts_with("pick another address with --addr")
        );
        assert!(
            hint(StartupError::TargetHoldsData {
                target: "postgres://envsync@db/envsync".into()
            })
            .starts_with("pass --replace")
        );
        for quiet in [
            StartupError::NoSharedSecret,
            StartupError::NewSecret(SecretError::Random("no device".into())),
            StartupError::Tls(TlsError::NoKey { path: db.clone() }),
            StartupError::open(ServerError::Store(StoreError::Other("locked".into()))),
        ] {
            assert_eq!(quiet.hint(), None, "{quiet:?}");
        }
    }

    #[test]
    fn only_a_setting_or_a_command_line_exits_2() {
        assert_eq!(
            StartupError::Config(ConfigError::Empty("ENVSYNC_DB")).exit_code(),
            2
        );
        assert_eq!(StartupError::Usage("--ttl: bad".into()).exit_code(), 2);
        for e in [
            StartupError::SharedSecretRequired,
            StartupError::SecretLost {
                file: "x.jwt.secret".into(),
            },
            StartupError::Listen {
                addr: "nowhere".into(),
                cause: not_found(),
            },
            StartupError::Tls(TlsError::NoCertificate {
                path: "cert.pem".into(),
            }),
        ] {
            assert_eq!(e.exit_code(), 1, "{e:?}");
        }
    }

    /// The lines the binary's tests (and operators' scripts) look for.
    #[test]
    fn messages_read_as_before() {
        assert_eq!(
            line(&StartupError::SecretRefused {
                from: SecretSource::Env,
                cause: SecretError::TooShort { len: 9 },
            }),
            "ENVSYNC_JWT_SECRET is refused: the JWT secret is 9 bytes long; at least 32 are required"
        );
        assert_eq!(
            line(&StartupError::SecretRefused {
                from: SecretSource::BesideDatabase("/srv/e.db.jwt.secret".into()),
                cause: SecretError::TooShort { len: 9 },
            }),
            "the JWT secret in /srv/e.db.jwt.secret is refused: the JWT secret is 9 bytes long; at least 32 are required"
        );
        assert_eq!(
            line(&StartupError::Listen {
                addr: "nowhere".into(),
                cause: io::Error::other("invalid socket address"),
            }),
            "cannot listen on nowhere: invalid socket address"
        );
        assert_eq!(
            line(&StartupError::open(ServerError::Store(StoreError::Other(
                "unable to open database file".into()
            )))),
            "cannot open the database: storage error: unable to open database file"
        );
        assert!(
            line(&StartupError::SecretLost {
                file: "/srv/envsync.db.jwt.secret".into()
            })
            .starts_with(
                "the database holds data but its JWT secret is missing: /srv/envsync.db.jwt.secret does not exist"
            )
        );
        assert_eq!(
            line(&StartupError::NoSecret {
                file: "/srv/envsync.db.jwt.secret".into()
            }),
            "no JWT secret: ENVSYNC_JWT_SECRET is unset and /srv/envsync.db.jwt.secret does not exist"
        );
        assert_eq!(
            line(&StartupError::TargetHoldsData {
                target: "postgres://envsync@db:5432/envsync".into()
            }),
            "the target postgres://envsync@db:5432/envsync already holds data"
        );
    }

    #[test]
    fn a_certificate_failure_while_opening_stays_a_tls_failure() {
        let e = StartupError::open(ServerError::Tls(TlsError::NoKey {
            path: "key.pem".into(),
        }));
        assert!(matches!(e, StartupError::Tls(_)), "{e:?}");
        assert_eq!(
            line(&e),
            "the TLS key file key.pem holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"
        );
    }
}
