//! Storage behind one trait, with two backends: SQLite (embedded, the default) and
//! PostgreSQL (several stateless servers on one database).
//!
//! Every method is one domain operation and returns a boxed future, so the trait stays
//! object-safe (`Arc<dyn Store>`) and an implementation is free to do its work on whatever
//! thread it likes. Operations that change state or read a ciphertext write their audit
//! event in the same transaction as the change; that is part of the contract of
//! [`Store::push`], [`Store::pull`], [`Store::record`], [`Store::add_token`] and
//! [`Store::revoke_token`].
//!
//! What does not depend on the backend lives here: [`Database`] (which store `--db`
//! names), [`audit`] (typed actions and outcomes), [`events`] (the audit rows each operation
//! writes), [`chain`] (the audit chain's encoding and its walk), [`rows`] (stored rows as
//! API types, and pages), and [`copy`] (moving everything from one store to another). Each backend
//! keeps its driver's types inside its own module: [`sqlite`], [`postgres`].

pub mod audit;
pub mod chain;
pub mod copy;
pub mod events;
pub mod postgres;
pub mod rows;
pub mod sqlite;

pub use audit::{Action, Outcome};
pub use postgres::{PgStore, PgTarget};
pub use sqlite::SqliteStore;

use chain::{Hash, StoredRow, Verdict};
use envsync_common::api::{
    AuditPage, BranchesPage, EnvResponse, Fingerprints, KeysResponse, TokenInfo, VersionsPage,
};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use thiserror::Error;

/// The future every [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a storage operation did not succeed. `Other` carries a description for the log
/// only; it is never shown to a client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: the latest version is {current:?}")]
    Conflict { current: Option<u64> },
    /// A write could not be made durable: the disk (or the file size limit) is full, or
    /// the write or its sync failed. Nothing of the request was kept; reads still work.
    #[error("storage full or failing: {0}")]
    Full(String),
    #[error("storage error: {0}")]
    Other(String),
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Other(format!("stored JSON: {e}"))
    }
}

/// A push to store: the new version's blob, key names and value fingerprints,
/// compare-and-swapped on `base_version`.
#[derive(Clone)]
pub struct NewPush {
    pub actor: String,
    /// The `jti` of the token that pushed, for the audit row.
    pub jti: String,
    pub project: String,
    pub branch: String,
    pub ciphertext: String,
    pub keys: Vec<String>,
    pub base_version: Option<u64>,
    /// One fingerprint per name of `keys` (checked by the handler), or `None` from a
    /// client that sends none.
    pub fingerprints: Option<Fingerprints>,
}

impl NewPush {
    /// The fingerprints as they are stored: the canonical JSON text of the map (names in
    /// bytewise order, no whitespace), which the push's audit row hashes.
    pub fn stored_fingerprints(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .fingerprints
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?)
    }
}

/// Stored fingerprints (a JSON object, or NULL) as the API shows them.
pub fn read_fingerprints(stored: Option<&str>) -> Result<Option<Fingerprints>, StoreError> {
    Ok(stored.map(serde_json::from_str).transpose()?)
}

impl fmt::Debug for NewPush {
    // The ciphertext is not a secret in the clear, but it never belongs in a log line; nor
    // do the fingerprints (they tell which values are equal): a count only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPush")
            .field("actor", &self.actor)
            .field("jti", &self.jti)
            .field("project", &self.project)
            .field("branch", &self.branch)
            .field(
                "ciphertext",
                &format_args!("[{} bytes]", self.ciphertext.len()),
            )
            .field("keys", &self.keys)
            .field("base_version", &self.base_version)
            .field(
                "fingerprints",
                &self.fingerprints.as_ref().map(|f| Count(f.len())),
            )
            .finish()
    }
}

/// How many of something there are, for a `Debug` that must not show them: `[N]`.
struct Count(usize);

impl fmt::Debug for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0)
    }
}

/// A read of one version's ciphertext (the latest when `version` is `None`).
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub actor: String,
    /// The `jti` of the token that pulled, for the audit row.
    pub jti: String,
    pub project: String,
    pub branch: String,
    pub version: Option<u64>,
}

/// An audit event to append. Never holds a ciphertext or a token: `detail` is for key
/// names, a token's `jti` and similar non-secret context.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: String,
    pub action: Action,
    pub project: Option<String>,
    pub branch: Option<String>,
    pub version: Option<u64>,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

impl Event {
    /// An event of no project, branch, version or detail.
    pub fn new(actor: impl Into<String>, action: Action, outcome: Outcome) -> Event {
        Event {
            actor: actor.into(),
            action,
            project: None,
            branch: None,
            version: None,
            outcome,
            detail: None,
        }
    }
}

/// One page request of the audit log, newest first.
#[derive(Debug, Clone, Copy)]
pub struct AuditQuery<'a> {
    /// `None`: every event (token events have no project).
    pub project: Option<&'a str>,
    pub limit: u32,
    /// Only events with an id below this one.
    pub before: Option<u64>,
}

impl AuditQuery<'_> {
    /// The page size, at least 1.
    pub fn page_size(&self) -> u32 {
        self.limit.max(1)
    }

    /// The id every event of the page is below.
    pub fn below(&self) -> i64 {
        below(self.before)
    }
}

/// A `before` cursor as the bound of a query (`i64::MAX` for none; the handlers refuse
/// numbers past `i64::MAX`).
fn below(before: Option<u64>) -> i64 {
    before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX))
}

/// Most bytes of key names and fingerprints (as stored, JSON) one page of versions holds:
/// a page ends early, after at least one version, rather than pass it. With the default
/// key quotas a full page of [`VersionsPage::MAX_LIMIT`] versions stays well under it; it
/// is what bounds an answer when the quotas are raised or older versions hold more keys.
pub const PAGE_KEY_BYTES: usize = 4 << 20;

/// Most bytes of stored text (see [`rows::event_bytes`]) one page of audit events holds: a
/// page ends early, after at least one event, rather than pass it. A push's event names
/// the keys it added and removed, so with the default key quotas one event can hold a few
/// hundred KB and a page of [`AuditPage::MAX_LIMIT`] of them tens of MB; this keeps every
/// answer a few MB, well under what a client accepts.
pub const AUDIT_PAGE_BYTES: usize = 4 << 20;

/// One page of a branch's versions, newest first.
#[derive(Debug, Clone)]
pub struct VersionsQuery {
    pub project: String,
    pub branch: String,
    pub limit: u32,
    /// Only versions below this one.
    pub before: Option<u64>,
}

impl VersionsQuery {
    /// The version every version of the page is below.
    pub fn below(&self) -> i64 {
        below(self.before)
    }
}

/// One page of a project's branches, in name order.
#[derive(Debug, Clone)]
pub struct BranchesQuery {
    pub project: String,
    pub limit: u32,
    /// Only branches whose name sorts after this one.
    pub after: Option<String>,
}

/// The storage operations of the envsync server.
pub trait Store: Send + Sync + 'static {
    /// Appends a version if `base_version` is the branch's latest (`None` for a branch
    /// with no version), and audits the attempt either way. Returns the new version.
    fn push(&self, push: NewPush) -> StoreFuture<'_, u64>;

    /// Reads one version with its ciphertext, auditing the read.
    fn pull(&self, pull: PullRequest) -> StoreFuture<'_, EnvResponse>;

    /// The latest version's key names.
    fn keys(&self, project: String, branch: String) -> StoreFuture<'_, KeysResponse>;

    /// A page of a branch's versions, newest first, without ciphertexts (an empty page for
    /// a branch never pushed).
    fn versions(&self, query: VersionsQuery) -> StoreFuture<'_, VersionsPage>;

    /// A page of a project's branches with their latest versions, sorted by name.
    fn branches(&self, query: BranchesQuery) -> StoreFuture<'_, BranchesPage>;

    /// Up to `limit` names of projects that hold a version, in name order, after `after`.
    fn projects(&self, after: Option<String>, limit: u32) -> StoreFuture<'_, Vec<String>>;

    /// A page of the audit log.
    fn audit(&self, query: AuditQuery<'_>) -> StoreFuture<'_, AuditPage>;

    /// Appends one audit event on its own (a refused request, for instance).
    fn record(&self, event: Event) -> StoreFuture<'_, ()>;

    /// Records a minted token (never the token itself) and audits it.
    fn add_token(&self, token: TokenInfo, actor: String) -> StoreFuture<'_, ()>;

    /// Marks a token revoked and audits it; `NotFound` for an unknown `jti`. Revoking twice
    /// succeeds.
    fn revoke_token(&self, jti: String, actor: String) -> StoreFuture<'_, ()>;

    /// Every recorded token, newest first.
    fn tokens(&self) -> StoreFuture<'_, Vec<TokenInfo>>;

    /// One recorded token; `NotFound` for an unknown `jti`.
    fn token(&self, jti: String) -> StoreFuture<'_, TokenInfo>;

    /// The last row id and hash of every audit chain (see [`chain`]), in id order; empty
    /// while the log is.
    fn audit_heads(&self) -> StoreFuture<'_, Vec<(u64, Hash)>>;

    /// The `jti` of every revoked token, to fill the in-memory revocation list at start.
    fn revoked(&self) -> StoreFuture<'_, Vec<String>>;

    /// Walks the audit chains and accounts for every version, in one snapshot (see
    /// [`chain`]). `anchors` are heads recorded earlier.
    fn verify(&self, anchors: Vec<(u64, Hash)>) -> StoreFuture<'_, Verdict>;

    /// Whether the store holds any version, token or audit row.
    fn holds_data(&self) -> StoreFuture<'_, bool>;

    /// Counts of what [`copy`] moves.
    fn counts(&self) -> StoreFuture<'_, Counts>;

    /// Whether other servers may be using the same database at the same time (and so
    /// revoke tokens this one must learn about: see [`Store::revoked_after`]).
    fn is_shared(&self) -> bool {
        false
    }

    /// Revocations recorded after `cursor` (0 at first), and the cursor to ask from next
    /// time. Only a shared store has revocations made elsewhere; the default has none.
    fn revoked_after(&self, cursor: i64) -> StoreFuture<'_, (Vec<String>, i64)> {
        Box::pin(async move { Ok((Vec::new(), cursor)) })
    }

    /// Claims the first start of an empty shared database: `true` for exactly one caller
    /// ever, and only while the database holds no token and no version. The server that
    /// gets `true` prints the first owner token, once for every replica.
    fn claim_first_start(&self) -> StoreFuture<'_, bool> {
        Box::pin(async { Ok(false) })
    }

    /// Up to `limit` versions stored after the one with storage id `after`, in the order
    /// they were stored (for [`copy`]).
    fn export_versions(&self, after: i64, limit: u32) -> StoreFuture<'_, Vec<StoredVersion>>;

    /// Up to `limit` audit rows with an id above `after`, in id order, hashes included.
    fn export_audit(&self, after: i64, limit: u32) -> StoreFuture<'_, Vec<StoredRow>>;

    /// Every recorded token with its revocation time.
    fn export_tokens(&self) -> StoreFuture<'_, Vec<StoredToken>>;

    /// Appends rows exported from another store as they are (ids, times and hashes
    /// included), in one transaction. The target must not already hold rows with the same
    /// ids: [`copy`] starts from an empty store.
    fn import(&self, rows: Import) -> StoreFuture<'_, ()>;
}

/// How much a store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub versions: u64,
    pub audit: u64,
    /// Recorded tokens (their ids, never the tokens).
    pub jtis: u64,
}

/// A version as stored, for [`copy`]. `keys` is the stored JSON array, `fingerprints` the
/// stored JSON object (`None`: pushed without, or before they existed), both copied as
/// they are, byte for byte (the audit row hashes the fingerprints' text).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// Storage order (the insertion id); not kept by the target.
    pub id: i64,
    pub project: String,
    pub branch: String,
    pub version: i64,
    pub ciphertext: String,
    pub keys: String,
    pub key_count: i64,
    pub pushed_by: String,
    pub pushed_at: String,
    pub fingerprints: Option<String>,
}

impl fmt::Debug for StoredVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredVersion")
            .field("project", &self.project)
            .field("branch", &self.branch)
            .field("version", &self.version)
            .field(
                "ciphertext",
                &format_args!("[{} bytes]", self.ciphertext.len()),
            )
            .finish_non_exhaustive()
    }
}

/// A token record as stored, for [`copy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub info: TokenInfo,
    pub revoked_at: Option<String>,
}

/// Rows for [`Store::import`].
#[derive(Debug, Clone)]
pub enum Import {
    Versions(Vec<StoredVersion>),
    Audit(Vec<StoredRow>),
    Tokens(Vec<StoredToken>),
}

/// Which store `--db` (`ENVSYNC_DB`) names: a SQLite file (the default), a throwaway
/// in-memory SQLite database, or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A throwaway in-memory SQLite database (`:memory:`).
    Memory,
    /// A SQLite database file.
    File(PathBuf),
    /// `postgres://…` or `postgresql://…`. Its `Debug` and `Display` never show a password.
    /// (Boxed: a parsed connection configuration is large, and settings are cloned.)
    Postgres(Box<PgTarget>),
}

impl Database {
    /// `:memory:`, a `postgres://` or `postgresql://` URL, or else a file path. A URL that
    /// cannot be used is an error that does not repeat it (it may hold a password).
    pub fn parse(text: &str) -> Result<Database, StoreError> {
        if text == ":memory:" {
            Ok(Database::Memory)
        } else if PgTarget::is_url(text) {
            PgTarget::parse(text).map(|t| Database::Postgres(Box::new(t)))
        } else {
            Ok(Database::File(PathBuf::from(text)))
        }
    }

    /// Whether servers elsewhere may share this database.
    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    /// Whether the database already holds versions, tokens or audit rows. Read-only: never
    /// creates, migrates or (for SQLite) checkpoints anything, so it can be asked before
    /// deciding whether a start is a first start.
    pub async fn holds_data(&self) -> Result<bool, StoreError> {
        match self {
            Database::Memory => Ok(false),
            Database::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || sqlite::holds_data(&path))
                    .await
                    .map_err(|e| StoreError::Other(format!("the check stopped: {e}")))?
            }
            Database::Postgres(target) => postgres::holds_data(target).await,
        }
    }

    /// Opens (creating if needed) and migrates the store.
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        match self {
            Database::Memory | Database::File(_) => {
                let db = self.clone();
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(&db))
                    .await
                    .map_err(|e| StoreError::Other(format!("opening stopped: {e}")))??;
                Ok(Arc::new(store))
            }
            Database::Postgres(target) => Ok(Arc::new(PgStore::open(target).await?)),
        }
    }

    /// Walks the audit chain read-only, without creating or migrating anything (what
    /// `envsync-server audit verify` runs; the servers may be running).
    pub async fn verify(&self, anchors: Vec<(u64, Hash)>) -> Result<Verdict, StoreError> {
        match self {
            Database::Memory => Err(StoreError::Other(
                "an in-memory database has nothing to verify".into(),
            )),
            Database::File(path) => {
                if !path.exists() {
                    return Err(StoreError::Other(format!(
                        "no database at {}",
                        path.display()
                    )));
                }
                let path = path.clone();
                tokio::task::spawn_blocking(move || sqlite::chain::verify(&path, anchors))
                    .await
                    .map_err(|e| StoreError::Other(format!("the walk stopped: {e}")))?
            }
            Database::Postgres(target) => postgres::verify(target, anchors).await,
        }
    }

    /// Removes every envsync table and row (what `copy --replace` does to its target).
    pub async fn erase(&self) -> Result<(), StoreError> {
        match self {
            Database::Memory => Ok(()),
            Database::File(path) => sqlite::erase(path),
            Database::Postgres(target) => postgres::erase(target).await,
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Memory => f.write_str(":memory:"),
            Database::File(path) => write!(f, "{}", path.display()),
            Database::Postgres(target) => write!(f, "{target}"),
        }
    }
}
