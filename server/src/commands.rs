//! What each `envsync-server` command does, as library functions the binary calls after
//! parsing its command line: [`serve`], [`mint_offline`], [`verify_audit`] and [`copy`].
//!
//! Each returns a typed [`StartupError`] that carries its hint and exit code; the binary
//! only prints what these return. Nothing here reads the process environment or the
//! command line: the caller hands over the database, where the JWT secret may be found,
//! and a lookup of every other setting by its `ENVSYNC_*` name.

use crate::auth::Minted;
use crate::config::{self, ConfigError, MAX_TOKEN_TTL, Settings};
use crate::secret::{self, JwtSecret, SecretSources};
use crate::startup::StartupError;
use crate::store::{self, Database, chain};
use crate::tls::Tls;
use crate::{Server, connections};
use envsync_common::api::{Role, parse_ttl};
use std::future::Future;
use std::io::Write;
use tokio::signal::unix::{SignalKind, signal};

/// Lifetime of the owner token printed on first start.
const FIRST_TOKEN_TTL: u64 = 90 * 86_400;

/// A setting by its `ENVSYNC_*` name: the flag, else the variable, else nothing.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The settings from a lookup, checked.
fn settings(db: Database, secret: JwtSecret, lookup: Lookup<'_>) -> Result<Settings, StartupError> {
    let mut settings = Settings::new(db, secret);
    settings.apply_env(lookup)?;
    Ok(settings)
}

/// `--db` (or `ENVSYNC_DB`), parsed. A URL that cannot be used is a setting error (exit 2)
/// whose message never repeats the URL; `flag` names where it came from when that helps.
pub fn database(text: &str, flag: Option<&str>) -> Result<Database, StartupError> {
    Database::parse(text).map_err(|e| {
        let message = match flag {
            Some(flag) => format!("{flag}: {e}"),
            None => e.to_string(),
        };
        ConfigError::Database(message).into()
    })
}

/// Where and how `envsync-server` serves.
pub struct ServeOptions<'a> {
    /// `HOST:PORT` to bind; port 0 picks a free port.
    pub addr: &'a str,
    pub db: Database,
    pub secrets: SecretSources,
    pub settings: Lookup<'a>,
}

impl std::fmt::Debug for ServeOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("addr", &self.addr)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

/// Starts the server and serves until `shutdown` completes. Writes the
/// `envsync-server listening on …` line to `out` once the address is bound, then (on a first
/// start) the owner token; both flushed at once, as scripts wait for them.
pub async fn serve(
    options: ServeOptions<'_>,
    mut out: impl Write,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let ServeOptions {
        addr,
        db,
        secrets,
        settings: lookup,
    } = options;
    // A server needs more descriptors than the usual soft limit of 1024: one per client.
    let (soft, hard) = connections::raise_nofile_limit();
    tracing::debug!(?soft, ?hard, "open-file limit");
    // A write past RLIMIT_FSIZE (`ulimit -f`) raises SIGXFSZ, which kills the process by
    // default. With a handler installed the write fails with EFBIG instead, and the push
    // that made it gets a 507 while reads go on (as PostgreSQL ignores SIGXFSZ). tokio's
    // handler stays installed for the life of the process, so the stream is dropped.
    if let Err(e) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
        tracing::warn!(error = %e, "cannot catch SIGXFSZ; a file size limit would stop the server");
    }
    // The certificate and key are checked before anything is created: a first start that
    // stopped on them after writing the secret would never print its owner token.
    if let Some(files) = config::tls_files(lookup)? {
        Tls::load(&files)?;
    }
    let secret::Bootstrap { secret, generated } = secret::bootstrap(&secrets, &db).await?;
    let settings = settings(db.clone(), secret, lookup)?;
    let listen = |cause| StartupError::Listen {
        addr: addr.to_owned(),
        cause,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
    let bound = listener.local_addr().map_err(listen)?;
    let server = Server::open(settings).await.map_err(StartupError::open)?;

    // Caught before the address is announced: SIGHUP's default would end the server.
    let scheme = match server.tls() {
        Some(tls) => {
            let hangups = signal(SignalKind::hangup()).map_err(StartupError::Signal)?;
            tokio::spawn(reload_on_hangup(tls.clone(), hangups));
            "https"
        }
        None => "http",
    };
    writeln!(out, "envsync-server listening on {scheme}://{bound}")
        .and_then(|()| out.flush())
        .map_err(StartupError::Output)?;
    // The first owner token: when this start generated the secret (SQLite), or when this
    // server is the one that claimed the first start of a shared database.
    let first = generated
        || (db.is_shared()
            && server
                .store()
                .claim_first_start()
                .await
                .map_err(StartupError::ClaimFirstStart)?);
    if first {
        let minted = server
            .mint(
                "envsync-server",
                "owner@localhost",
                Role::Owner,
                Vec::new(),
                FIRST_TOKEN_TTL,
            )
            .await
            .map_err(StartupError::Mint)?;
        let kept = match &db {
            Database::File(path) => {
                format!("secret saved in {}", secret::secret_path(path).display())
            }
            Database::Memory => "secret kept in memory only".to_owned(),
            Database::Postgres(_) => "printed once for every server on this database".to_owned(),
        };
        writeln!(
            out,
            "owner token (expires {}; {kept}; mint more with `envsync-server token`):\n{}",
            minted.info.expires_at,
            minted.token.expose()
        )
        .and_then(|()| out.flush())
        .map_err(StartupError::Output)?;
    }
    drop(out);
    tracing::info!(addr = %bound, "serving");
    server
        .serve(listener, shutdown)
        .await
        .map_err(StartupError::Serve)
}

/// Reads the certificate and key again on every SIGHUP. New connections get the new
/// certificate, open ones keep theirs; files that cannot be used leave the old one.
async fn reload_on_hangup(tls: Tls, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(fingerprint) => tracing::info!(%fingerprint, "TLS certificate reloaded"),
            Err(e) => tracing::error!("TLS certificate not reloaded, the old one stays: {e}"),
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}

/// The token `envsync-server token` mints.
#[derive(Debug)]
pub struct MintRequest<'a> {
    pub email: &'a str,
    pub role: Role,
    pub projects: &'a [String],
    /// As typed: 3600, 90m, 12h, 30d, 8w.
    pub ttl: &'a str,
}

/// `token`: mints a token with the secret the servers of `db` sign with, without a server.
pub async fn mint_offline(
    db: Database,
    secrets: &SecretSources,
    lookup: Lookup<'_>,
    request: &MintRequest<'_>,
) -> Result<Minted, StartupError> {
    if db == Database::Memory {
        return Err(StartupError::Usage(
            "`token` needs the server's database file, not :memory:".into(),
        ));
    }
    let secret = secrets.required(&db)?;
    let ttl = parse_ttl(request.ttl).map_err(|e| StartupError::Usage(format!("--ttl: {e}")))?;
    if ttl > MAX_TOKEN_TTL {
        return Err(StartupError::Usage(format!(
            "--ttl is over the maximum of {} days",
            MAX_TOKEN_TTL / 86_400
        )));
    }
    for project in request.projects {
        envsync_common::names::validate_project(project)
            .map_err(|e| StartupError::Usage(format!("--project '{project}': invalid {e}")))?;
    }
    let email = envsync_common::names::check_email(request.email)
        .map_err(|e| StartupError::Usage(format!("--{e}")))?;
    let mut settings = settings(db, secret, lookup)?;
    // Minting serves nothing: the certificate and key (perhaps unreadable to whoever mints)
    // are not read.
    settings.tls = None;
    let server = Server::open(settings).await.map_err(StartupError::open)?;
    server
        .mint(
            "envsync-server token",
            email,
            request.role,
            request.projects.to_vec(),
            ttl,
        )
        .await
        .map_err(StartupError::Mint)
}

/// `audit verify`: the verdict of every chain of `db`, checked against `anchors` (`ID:HASH`
/// as printed on `head` lines). An error means the log could not be read.
pub async fn verify_audit(
    db: Database,
    anchors: &[String],
) -> Result<chain::Verdict, StartupError> {
    if db == Database::Memory {
        return Err(StartupError::Usage(
            "`audit verify` needs a database file or URL, not :memory:".into(),
        ));
    }
    let anchors = anchors
        .iter()
        .map(|text| {
            chain::parse_anchor(text).ok_or_else(|| {
                StartupError::Usage(format!(
                    "--anchor must be ID:HASH as printed on a `head` line, not '{text}'"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    db.verify(anchors).await.map_err(StartupError::ReadLog)
}

/// What [`copy`] did.
#[derive(Debug)]
pub struct Copied {
    /// The target held data that `--replace` erased first.
    pub erased: bool,
    pub counts: store::Counts,
    /// The copy's verdict, the same as its source's.
    pub verdict: chain::Verdict,
    /// The source was a SQLite file, whose JWT secret sits beside it.
    pub from_file: bool,
    /// Both databases as their redacted `Display` shows them.
    pub from: String,
    pub to: String,
}

/// `copy --from A --to B [--replace]`: everything A holds into B, then both verified; the
/// copy's verdict (its heads) must be the source's.
pub async fn copy(
    from: &str,
    to: &str,
    replace: bool,
    progress: impl FnMut(store::copy::Progress),
) -> Result<Copied, StartupError> {
    let from = database(from, Some("--from"))?;
    let to = database(to, Some("--to"))?;
    if from == Database::Memory || to == Database::Memory {
        return Err(StartupError::Usage(
            "`copy` needs a database file or URL on both sides, not :memory:".into(),
        ));
    }
    if from == to {
        return Err(StartupError::Usage(
            "--from and --to name the same database".into(),
        ));
    }
    if let Database::File(path) = &from
        && !path.exists()
    {
        return Err(StartupError::Usage(format!(
            "no database at {}",
            path.display()
        )));
    }
    let step = |what: String| move |cause| StartupError::Copy { what, cause };
    let erased = to
        .holds_data()
        .await
        .map_err(step("cannot read the target".into()))?;
    if erased {
        if !replace {
            return Err(StartupError::TargetHoldsData {
                target: to.to_string(),
            });
        }
        to.erase()
            .await
            .map_err(step("cannot erase the target".into()))?;
    }
    let source = from
        .open()
        .await
        .map_err(step(format!("cannot open {from}")))?;
    let target = to.open().await.map_err(step(format!("cannot open {to}")))?;
    let counts = store::copy::copy(source.as_ref(), target.as_ref(), progress)
        .await
        .map_err(step(format!(
            "the copy into {to} stopped (run it again with --replace)"
        )))?;
    let (expected, verdict) =
        tokio::try_join!(source.verify(Vec::new()), target.verify(Vec::new()))
            .map_err(step("cannot verify the copy".into()))?;
    if verdict != expected {
        return Err(StartupError::CopyDiffers {
            copy: verdict.to_string(),
            expected: expected.to_string(),
        });
    }
    if !matches!(verdict, chain::Verdict::Intact { .. }) {
        return Err(StartupError::SourceBroken);
    }
    Ok(Copied {
        erased,
        counts,
        verdict,
        from_file: matches!(from, Database::File(_)),
        from: from.to_string(),
        to: to.to_string(),
    })
}
