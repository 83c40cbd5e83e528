//! The envsync server: a small HTTP API (warp) over SQLite (rusqlite, the default) or
//! PostgreSQL (tokio-postgres, for several servers on one database) that stores
//! ASCII-armored age ciphertext and the key *names* of each `.env` version, per project
//! and git branch. It never sees a secret value.
//!
//! - Use [`serve`] to run the API on a listener you bound (port 0 works), until a shutdown
//!   future completes. [`Server`] splits that in two when you need the store before
//!   serving (the binary mints its first owner token that way).
//! - [`routes::routes`] is the whole filter tree in one function; [`handlers`] are the plain
//!   async functions behind it; [`error::recover`] turns every rejection into
//!   `{"error","message"}` with its status.
//! - [`store::Store`] is the storage seam; [`store::Database`] is which backend `--db`
//!   names. [`store::SqliteStore`] implements it with WAL, durable commits and group
//!   commit on one writer thread; [`store::PgStore`] on a pool of PostgreSQL connections,
//!   with one writer per lane of projects and durability checked at start.
//! - [`connections`] is the accept loop `serve` runs: a cap on open connections (shedding
//!   the one idle for longest when full), header, idle and request timeouts, over plain TCP
//!   or [`tls`] (HTTPS with rustls, the certificate reloadable while serving).
//! - [`auth`] checks and mints JWTs; [`secret`] checks and keeps the signing secret, and
//!   [`secret::bootstrap`] finds or creates it when a server starts; [`limiter`] answers 429
//!   to a client address that keeps failing authentication.
//! - [`commands`] is what each `envsync-server` command does (serve, `token`,
//!   `audit verify`, `copy`), called by the binary once it has parsed its command line;
//!   [`startup::StartupError`] is every reason one refuses to start, with its hint and exit
//!   code.
//! - [`dashboard`] is the web page served at `/` (embedded files) and the security headers
//!   every response carries.
//! - [`store::chain`] is the audit log's hash chains (one per project) and the walk that
//!   verifies them, the same on both backends; [`store::Database::verify`] runs it
//!   read-only on either (what `envsync-server audit verify` does). [`store::copy`] moves
//!   everything from one store to another (`envsync-server copy`).

pub mod auth;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod error;
pub mod handlers;
pub mod limiter;
pub mod routes;
pub mod secret;
pub mod startup;
pub mod store;
pub mod tls;

pub use config::Settings;
pub use store::Database;

use auth::{Authenticator, Minted};
use envsync_common::api::Role;
use std::future::Future;
use std::sync::Arc;
use store::{Store, StoreError};
use thiserror::Error;

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    /// Failed authentications per client address.
    pub limiter: limiter::AuthLimiter,
    pub settings: Settings,
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Store")
    }
}

/// Why the server could not start or run.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mint(#[from] auth::MintError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// An opened server: store ready, revocation list loaded, certificate read (HTTPS), not
/// yet serving.
#[derive(Debug)]
pub struct Server {
    app: Arc<App>,
    tls: Option<tls::Tls>,
}

impl Server {
    /// Opens the store named by `settings` (migrating it) and loads the revocation list.
    pub async fn open(settings: Settings) -> Result<Server, ServerError> {
        let store = settings.database.open().await?;
        Server::with_store(settings, store).await
    }

    /// Builds a server over any [`Store`]; reads the certificate and key when
    /// `settings.tls` names them.
    pub async fn with_store(
        settings: Settings,
        store: Arc<dyn Store>,
    ) -> Result<Server, ServerError> {
        let tls = settings.tls.as_ref().map(tls::Tls::load).transpose()?;
        let auth = Authenticator::new(&settings.jwt);
        auth.revoke(store.revoked().await?);
        Ok(Server {
            app: Arc::new(App {
                store,
                auth,
                limiter: limiter::AuthLimiter::new(settings.auth_limit),
                settings,
            }),
            tls,
        })
    }

    /// The server's TLS when it serves HTTPS: [`tls::Tls::reload`] swaps its certificate
    /// while it serves (the binary does on SIGHUP).
    pub fn tls(&self) -> Option<&tls::Tls> {
        self.tls.as_ref()
    }

    /// The store this server runs on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.app.store
    }

    /// Mints a token and records it (never the token itself) in the store, audited as done
    /// by `actor`. What `envsync-server token` and the first start use.
    pub async fn mint(
        &self,
        actor: &str,
        email: &str,
        role: Role,
        project_ids: Vec<String>,
        ttl_secs: u64,
    ) -> Result<Minted, ServerError> {
        let minted = self.app.auth.mint(email, role, project_ids, ttl_secs)?;
        self.app
            .store
            .add_token(minted.info.clone(), actor.to_owned())
            .await?;
        Ok(minted)
    }

    /// Serves the API on `listener` until `shutdown` completes, then finishes the requests
    /// in flight: HTTPS when the server has a certificate, else plain HTTP. Connections
    /// are held within `settings.connections` (see [`connections`]), and the audit chain's head is logged now and every
    /// `settings.audit_head_interval`.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let routes = routes::routes(self.app.clone());
        let heads = tokio::spawn(log_audit_heads(
            self.app.store.clone(),
            self.app.settings.audit_head_interval,
        ));
        // Other servers on a shared database revoke tokens too: learn of them quickly.
        let revocations = self
            .app
            .store
            .is_shared()
            .then(|| tokio::spawn(follow_revocations(self.app.clone())));
        let service = warp::service(routes);
        let limits = self.app.settings.connections;
        match self.tls {
            Some(tls) => {
                tracing::info!(
                    cert = %tls.files().cert.display(),
                    fingerprint = %tls.fingerprint(),
                    "serving HTTPS"
                );
                connections::serve(service, listener, tls, limits, shutdown).await;
            }
            None => {
                connections::serve(service, listener, connections::Plain, limits, shutdown).await
            }
        }
        heads.abort();
        if let Some(task) = revocations {
            task.abort();
        }
        tracing::info!("envsync-server stopped");
        Ok(())
    }
}

/// Logs the head of every audit chain (`id:hash`, the form `audit verify --anchor` takes)
/// now and every `interval`, so that a log shipper keeps anchors outside the database.
async fn log_audit_heads(store: Arc<dyn Store>, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.audit_heads().await {
            Ok(heads) if heads.is_empty() => {
                tracing::info!(head = "none", "audit chain head (the log is empty)")
            }
            Ok(heads) => {
                for (id, hash) in heads {
                    let head = format!("{id}:{}", store::chain::hex(&hash));
                    tracing::info!(head = %head, "audit chain head");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the audit chain heads"),
        }
    }
}

/// How often a server on a shared database asks it for revocations made elsewhere: a
/// token revoked on one server is refused by every other within this (plus one query).
pub const REVOCATION_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Adds the revocations other servers record to this server's revocation list.
async fn follow_revocations(app: Arc<App>) {
    let mut cursor = 0;
    let mut ticks = tokio::time::interval(REVOCATION_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        match app.store.revoked_after(cursor).await {
            Ok((jtis, next)) => {
                if !jtis.is_empty() {
                    tracing::debug!(count = jtis.len(), "revocations learnt from the database");
                }
                app.auth.revoke(jtis);
                cursor = next;
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read revocations from the database");
                }
                failing = true;
            }
        }
    }
}

/// Opens the store and serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::open(settings)
        .await?
        .serve(listener, shutdown)
        .await
}
