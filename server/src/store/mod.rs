//! Storage behind one trait: the seam where another database (PostgreSQL) can live later.
//!
//! Every method is one domain operation and returns a boxed future, so the trait stays
//! object-safe (`Arc<dyn Store>`) and an implementation is free to do its blocking work on
//! whatever thread it likes. Operations that change state or read a ciphertext write their
//! audit event in the same transaction as the change; that is part of the contract of
//! [`Store::push`], [`Store::pull`], [`Store::record`], [`Store::add_token`] and
//! [`Store::revoke_token`].

pub mod sqlite;

use envsync_common::api::{
    AuditPage, BranchesPage, EnvResponse, KeysResponse, TokenInfo, VersionsPage,
};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use thiserror::Error;

pub use sqlite::SqliteStore;

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

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi;
        // SQLite reports a write that hit ENOSPC, or a short write, as FULL, and any other
        // failed write, sync or file growth (EFBIG under RLIMIT_FSIZE, EIO) as one of these
        // IOERRs. A failed read is not a full disk: it stays `Other`.
        let full = e.sqlite_error().is_some_and(|err| {
            matches!(
                err.extended_code,
                ffi::SQLITE_FULL
                    | ffi::SQLITE_IOERR
                    | ffi::SQLITE_IOERR_WRITE
                    | ffi::SQLITE_IOERR_FSYNC
                    | ffi::SQLITE_IOERR_DIR_FSYNC
                    | ffi::SQLITE_IOERR_TRUNCATE
                    | ffi::SQLITE_IOERR_SHMSIZE
            )
        });
        if full {
            StoreError::Full(e.to_string())
        } else {
            StoreError::Other(e.to_string())
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Other(format!("stored JSON: {e}"))
    }
}

/// A push to store: the new version's blob and key names, compare-and-swapped on
/// `base_version`.
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
}

impl fmt::Debug for NewPush {
    // The ciphertext is not a secret in the clear, but it never belongs in a log line.
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
            .finish()
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
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub actor: String,
    pub action: String,
    pub project: Option<String>,
    pub branch: Option<String>,
    pub version: Option<u64>,
    pub outcome: String,
    pub detail: Option<String>,
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

/// Most bytes of key names (as stored, JSON) one page of versions holds: a page ends early,
/// after at least one version, rather than pass it. With the default key quotas a full
/// page of [`VersionsPage::MAX_LIMIT`] versions stays well under it; it is what bounds an
/// answer when the quotas are raised or older versions hold more keys.
pub const PAGE_KEY_BYTES: usize = 4 << 20;

/// One page of a branch's versions, newest first.
#[derive(Debug, Clone)]
pub struct VersionsQuery {
    pub project: String,
    pub branch: String,
    pub limit: u32,
    /// Only versions below this one.
    pub before: Option<u64>,
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

    /// The audit chain's last row id and hash; `None` while the log is empty.
    fn audit_head(&self) -> StoreFuture<'_, Option<(u64, [u8; 32])>>;

    /// The `jti` of every revoked token, to fill the in-memory revocation list at start.
    fn revoked(&self) -> StoreFuture<'_, Vec<String>>;
}
