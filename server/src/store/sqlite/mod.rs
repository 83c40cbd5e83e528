//! The rusqlite [`Store`]: WAL, durable commits, one writer thread with group commit.
//!
//! A SQLite connection never runs on an async worker:
//! - **Writes** (and ciphertext reads, which write an audit event) go through a channel to
//!   one dedicated writer thread. It takes every request queued at that moment and runs
//!   them in ONE `BEGIN IMMEDIATE` transaction, each inside its own `SAVEPOINT`, so every
//!   push is still compare-and-swapped on its own base version and one failure never
//!   spoils its neighbours. One `COMMIT` (one fsync with `synchronous=FULL`) then covers the
//!   whole batch, and only after it do the callers get their answers: an acknowledged push
//!   is on disk. This is what lets pushes under load outrun one-commit-per-push. (A batch
//!   made only of pulls is answered once its audit rows are in the WAL, which survives a
//!   crash of the process, and fsynced right after by a helper thread: see
//!   `writer::Durability`.)
//! - **Plain reads** go to two reader threads with their own connections, which WAL lets
//!   run beside the writer; each thread drains its queue in one read transaction, so a
//!   busy reader costs no thread hand-off per request. A `:memory:` database exists only
//!   inside the writer's connection, so there its reads go through the writer too.
//!
//! Versions and audit rows are append-only: triggers refuse `UPDATE` and `DELETE`. Each
//! audit row also carries a SHA-256 hash chained over the row before it, computed in the
//! writer's transaction, so a row edited, deleted, reordered or inserted behind the
//! server's back is found by [`chain::verify`].
//!
//! Files: `connection` opens and checks connections (a new database file is created 0600)
//! and migrates; `writer` is the writer thread; `queries` holds the SQL run inside its
//! transactions; `chain` hashes and verifies the audit log.

pub(crate) mod chain;
mod connection;
mod queries;
mod writer;

use super::chain::{self as audit_chain, Hash, StoredRow, Verdict};
use super::events::{mint_event, revoke_event};
use super::rows::{
    self, COUNTS, HOLDS_DATA, TOKEN_COLUMNS, TokenRow, VersionRow, next_page, versions_page,
};
use super::{
    AuditQuery, BranchesQuery, Counts, Database, Event, Import, NewPush, PullRequest, Store,
    StoreError, StoreFuture, StoredToken, StoredVersion, VersionsQuery,
};
use connection::{Readers, migrate, open_writer};
use envsync_common::api::{
    AuditPage, BranchInfo, BranchesPage, EnvResponse, KeysResponse, TokenInfo, VersionsPage,
};
use queries::{audit_page, insert_event, now, pull_version, push_version};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};
use writer::{Durability, Job, Task, write_loop};

/// One row of `tokens`, selected as [`TOKEN_COLUMNS`].
fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        jti: r.get(0)?,
        email: r.get(1)?,
        role: r.get(2)?,
        project_ids: r.get(3)?,
        issued_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

/// Whether the database file at `path` already holds versions, tokens or audit rows.
/// Read-only: never creates or migrates anything.
pub(crate) fn holds_data(path: &Path) -> Result<bool, StoreError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > 0 => {}
        _ => return Ok(false),
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::Other(format!("cannot open database {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let ours: bool = conn.query_row(
        "SELECT COUNT(*) = 3 FROM sqlite_master
         WHERE type = 'table' AND name IN ('versions', 'tokens', 'audit')",
        [],
        |r| r.get(0),
    )?;
    if !ours {
        return Ok(false);
    }
    Ok(conn.query_row(HOLDS_DATA, [], |r| r.get(0))?)
}

/// Walks the audit chain of the database file at `path`, read-only, in one snapshot (what
/// `audit verify` runs on a SQLite file).
pub fn verify_file(path: &Path, anchors: Vec<(u64, Hash)>) -> Result<Verdict, StoreError> {
    chain::verify(path, anchors)
}

/// Deletes the database file and its `-wal` and `-shm` files, if there are any.
pub(crate) fn erase(path: &Path) -> Result<(), StoreError> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Other(format!(
                    "cannot remove {}: {e}",
                    PathBuf::from(name).display()
                )));
            }
        }
    }
    Ok(())
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

/// Requests waiting for the writer; senders wait (asynchronously) when it is full.
const QUEUE_DEPTH: usize = 4096;

/// The rusqlite store. Dropping it lets the writer finish its batch and joins it.
pub struct SqliteStore {
    writer: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    readers: Option<Readers>,
    stats: Arc<WriterStats>,
}

/// What the writer has done so far: how well group commit is working.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed (or rolled back).
    pub batches: AtomicU64,
    /// Requests run inside them.
    pub requests: AtomicU64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("readers", &self.readers)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database, checks that WAL, `FULL`
    /// synchronous commits and a busy timeout are really in effect, and starts the writer.
    pub fn open(db: &Database) -> Result<SqliteStore, StoreError> {
        let conn = open_writer(db)?;
        migrate(&conn)?;
        let readers = match db {
            Database::File(path) => Some(Readers::start(path)?),
            _ => None,
        };
        let wal = match db {
            Database::File(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push("-wal");
                Some(PathBuf::from(name))
            }
            _ => None,
        };
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(WriterStats::default());
        let counters = stats.clone();
        let thread = std::thread::Builder::new()
            .name("envsync-writer".into())
            .spawn(move || write_loop(conn, wal, rx, &counters))
            .map_err(|e| StoreError::Other(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            writer: Some(tx),
            thread: Some(thread),
            readers,
            stats,
        })
    }

    /// Counters of the writer thread.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Runs `work` on the writer thread inside the current batch's transaction and answers
    /// once that transaction has committed and been synced to disk.
    fn write<T, F>(&self, work: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(Durability::Synced, work)
    }

    fn submit<T, F>(&self, durability: Durability, work: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Box::pin(async move {
            let writer = self.writer.as_ref().ok_or_else(stopped)?;
            let (reply, answer) = oneshot::channel();
            let job: Box<dyn Job> = Box::new(Task {
                work: Some(work),
                result: None,
                reply,
                durability,
            });
            writer.send(job).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
    }

    /// Runs `work` on a reader thread, off the async workers.
    fn read<T, F>(&self, work: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(readers) = &self.readers else {
            return self.write(work);
        };
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let job: Box<dyn Job> = Box::new(Task {
                work: Some(work),
                result: None,
                reply,
                durability: Durability::Written,
            });
            readers.queue().send(job).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.readers.take();
        // Closing the channel ends the writer loop after its current batch.
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Other("the database writer has stopped".into())
}

impl Store for SqliteStore {
    fn push(&self, push: NewPush) -> StoreFuture<'_, u64> {
        self.write(move |conn| push_version(conn, &push))
    }

    fn pull(&self, pull: PullRequest) -> StoreFuture<'_, EnvResponse> {
        self.submit(Durability::Written, move |conn| pull_version(conn, &pull))
    }

    fn keys(&self, project: String, branch: String) -> StoreFuture<'_, KeysResponse> {
        self.read(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT version, keys, fingerprints FROM versions
                     WHERE project = ?1 AND branch = ?2 ORDER BY version DESC LIMIT 1",
                )?
                .query_row(params![project, branch], |r| {
                    Ok((
                        r.get::<_, u64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })
                .optional()?;
            let (version, keys, fingerprints) = row.ok_or(StoreError::NotFound)?;
            rows::keys(version, &keys, fingerprints.as_deref())
        })
    }

    fn versions(&self, query: VersionsQuery) -> StoreFuture<'_, VersionsPage> {
        self.read(move |conn| {
            // One more row than asked tells whether there is a next page.
            let fetch = i64::from(query.limit) + 1;
            let mut stmt = conn.prepare_cached(
                "SELECT version, keys, pushed_by, pushed_at, fingerprints FROM versions
                 WHERE project = ?1 AND branch = ?2 AND version < ?3
                 ORDER BY version DESC LIMIT ?4",
            )?;
            let params = params![query.project, query.branch, query.below(), fetch];
            let rows = stmt.query_map(params, |r| {
                Ok(VersionRow {
                    version: r.get(0)?,
                    keys: r.get(1)?,
                    pushed_by: r.get(2)?,
                    pushed_at: r.get(3)?,
                    fingerprints: r.get(4)?,
                })
            })?;
            versions_page(query.limit, rows.map(|r| Ok(r?)))
        })
    }

    fn projects(&self, after: Option<String>, limit: u32) -> StoreFuture<'_, Vec<String>> {
        // A loose index scan over `UNIQUE (project, branch, version)`: one index seek per
        // project, whatever the number of versions.
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "WITH RECURSIVE p(name, n) AS (
                     SELECT (SELECT MIN(project) FROM versions WHERE project > ?1), 1
                     UNION ALL
                     SELECT (SELECT MIN(project) FROM versions WHERE project > p.name), n + 1
                     FROM p WHERE p.name IS NOT NULL AND n < ?2
                 )
                 SELECT name FROM p WHERE name IS NOT NULL",
            )?;
            let after = after.unwrap_or_default();
            let names = stmt
                .query_map(params![after, i64::from(limit)], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
    }

    fn branches(&self, query: BranchesQuery) -> StoreFuture<'_, BranchesPage> {
        self.read(move |conn| {
            let fetch = i64::from(query.limit) + 1;
            let mut stmt = conn.prepare_cached(
                "SELECT v.branch, v.version, v.key_count, v.pushed_by, v.pushed_at
                 FROM versions v
                 JOIN (SELECT branch, MAX(version) AS latest FROM versions
                       WHERE project = ?1 AND branch > ?2
                       GROUP BY branch ORDER BY branch LIMIT ?3) l
                   ON v.branch = l.branch AND v.version = l.latest
                 WHERE v.project = ?1
                 ORDER BY v.branch",
            )?;
            let after = query.after.unwrap_or_default();
            let rows = stmt.query_map(params![query.project, after, fetch], |r| {
                Ok(BranchInfo {
                    branch: r.get(0)?,
                    version: r.get(1)?,
                    key_count: r.get(2)?,
                    pushed_by: r.get(3)?,
                    pushed_at: r.get(4)?,
                })
            })?;
            let mut branches: Vec<BranchInfo> = rows.collect::<Result<_, _>>()?;
            let next_after = next_page(&mut branches, query.limit, |b| b.branch.clone());
            Ok(BranchesPage {
                branches,
                next_after,
            })
        })
    }

    fn audit(&self, query: AuditQuery<'_>) -> StoreFuture<'_, AuditPage> {
        let project = query.project.map(str::to_owned);
        let (limit, below) = (query.page_size(), query.below());
        self.read(move |conn| audit_page(conn, project.as_deref(), limit, below))
    }

    fn record(&self, event: Event) -> StoreFuture<'_, ()> {
        self.write(move |conn| insert_event(conn, &now(), &event))
    }

    fn add_token(&self, token: TokenInfo, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |conn| {
            insert_token(conn, &token, None)?;
            insert_event(conn, &now(), &mint_event(&token, actor))
        })
    }

    fn revoke_token(&self, jti: String, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |conn| {
            let at = now();
            let known = conn
                .prepare_cached("SELECT revoked_at IS NOT NULL FROM tokens WHERE jti = ?1")?
                .query_row(params![jti], |r| r.get::<_, bool>(0))
                .optional()?;
            if known == Some(false) {
                conn.prepare_cached("UPDATE tokens SET revoked_at = ?2 WHERE jti = ?1")?
                    .execute(params![jti, at])?;
            }
            insert_event(conn, &at, &revoke_event(&jti, actor, known.is_some()))?;
            known.map(|_| ()).ok_or(StoreError::NotFound)
        })
    }

    fn tokens(&self) -> StoreFuture<'_, Vec<TokenInfo>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY issued_at DESC, jti"
            ))?;
            let rows = stmt.query_map([], token_row)?;
            rows.map(|row| Ok(row?.parse()?.info)).collect()
        })
    }

    fn token(&self, jti: String) -> StoreFuture<'_, TokenInfo> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE jti = ?1"
            ))?
            .query_row(params![jti], token_row)
            .optional()?
            .ok_or(StoreError::NotFound)?
            .parse()
            .map(|t| t.info)
        })
    }

    fn audit_heads(&self) -> StoreFuture<'_, Vec<(u64, Hash)>> {
        self.read(chain::heads)
    }

    fn revoked(&self) -> StoreFuture<'_, Vec<String>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT jti FROM tokens WHERE revoked_at IS NOT NULL")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn verify(&self, anchors: Vec<(u64, Hash)>) -> StoreFuture<'_, Verdict> {
        // Readers run inside a read transaction: one snapshot for the whole walk.
        self.read(move |conn| chain::verify_in(conn, i64::MAX, anchors))
    }

    fn holds_data(&self) -> StoreFuture<'_, bool> {
        self.read(|conn| Ok(conn.query_row(HOLDS_DATA, [], |r| r.get(0))?))
    }

    fn counts(&self) -> StoreFuture<'_, Counts> {
        self.read(|conn| {
            Ok(conn.query_row(COUNTS, [], |r| {
                Ok(Counts {
                    versions: r.get(0)?,
                    audit: r.get(1)?,
                    jtis: r.get(2)?,
                })
            })?)
        })
    }

    fn export_versions(&self, after: i64, limit: u32) -> StoreFuture<'_, Vec<StoredVersion>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, project, branch, version, ciphertext, keys, key_count, pushed_by,
                        pushed_at, fingerprints
                 FROM versions WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit], |r| {
                Ok(StoredVersion {
                    id: r.get(0)?,
                    project: r.get(1)?,
                    branch: r.get(2)?,
                    version: r.get(3)?,
                    ciphertext: r.get(4)?,
                    keys: r.get(5)?,
                    key_count: r.get(6)?,
                    pushed_by: r.get(7)?,
                    pushed_at: r.get(8)?,
                    fingerprints: r.get(9)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn export_audit(&self, after: i64, limit: u32) -> StoreFuture<'_, Vec<StoredRow>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM audit WHERE id > ?1 ORDER BY id LIMIT ?2",
                audit_chain::COLUMNS
            ))?;
            let rows = stmt.query_map(params![after, limit], chain::read)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn export_tokens(&self) -> StoreFuture<'_, Vec<StoredToken>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY issued_at, jti"
            ))?;
            let rows = stmt.query_map([], token_row)?;
            rows.map(|row| row?.parse()).collect()
        })
    }

    fn import(&self, rows: Import) -> StoreFuture<'_, ()> {
        self.write(move |conn| {
            match &rows {
                Import::Versions(versions) => {
                    let mut stmt = conn.prepare_cached(
                        "INSERT INTO versions (project, branch, version, ciphertext, keys,
                             key_count, pushed_by, pushed_at, fingerprints)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?;
                    for v in versions {
                        stmt.execute(params![
                            v.project,
                            v.branch,
                            v.version,
                            v.ciphertext,
                            v.keys,
                            v.key_count,
                            v.pushed_by,
                            v.pushed_at,
                            v.fingerprints
                        ])?;
                    }
                }
                Import::Audit(audit) => {
                    let mut stmt = conn.prepare_cached(&format!(
                        "INSERT INTO audit ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                        audit_chain::COLUMNS
                    ))?;
                    for a in audit {
                        stmt.execute(params![
                            a.id, a.seq, a.at, a.actor, a.action, a.project, a.branch,
                            a.version, a.outcome, a.detail, a.hash
                        ])?;
                    }
                }
                Import::Tokens(tokens) => {
                    for t in tokens {
                        insert_token(conn, &t.info, t.revoked_at.as_deref())?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// Records a token (never the token itself).
fn insert_token(
    conn: &Connection,
    token: &TokenInfo,
    revoked_at: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO tokens (jti, email, role, project_ids, issued_at, expires_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        token.jti,
        token.email,
        token.role.as_str(),
        serde_json::to_string(&token.project_ids)?,
        token.issued_at,
        token.expires_at,
        revoked_at,
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    const BLOB: &str = "-----BEGIN AGE ENCRYPTED FILE-----\n(not checked at this layer)\n";

    fn push(branch: &str, base: Option<u64>) -> NewPush {
        NewPush {
            actor: "t@example.com".into(),
            jti: "jti-t".into(),
            project: "p".into(),
            branch: branch.into(),
            ciphertext: BLOB.into(),
            keys: vec!["A".into()],
            base_version: base,
            fingerprints: None,
        }
    }

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&Database::File(dir.path().join("t.db"))).unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_pushes_share_commits_and_each_is_compare_and_swapped() {
        let (_dir, store) = open();
        let store = Arc::new(store);
        // 64 pushes to 32 branches, two per branch on the same (empty) base: in whatever
        // batches they land, exactly one of each pair wins.
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.push(push(&format!("b{}", i % 32), None)).await })
            })
            .collect();
        let mut won = 0;
        let mut conflicts = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(1) => won += 1,
                Err(StoreError::Conflict { current: Some(1) }) => conflicts += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((won, conflicts), (32, 32));
        let stats = store.stats();
        let batches = stats.batches.load(Ordering::Relaxed);
        assert_eq!(stats.requests.load(Ordering::Relaxed), 64);
        assert!(
            batches < 64,
            "group commit never grouped: {batches} batches for 64 pushes"
        );
        for b in 0..32 {
            let page = store
                .versions(VersionsQuery {
                    project: "p".into(),
                    branch: format!("b{b}"),
                    limit: 10,
                    before: None,
                })
                .await
                .unwrap();
            assert_eq!(page.versions.len(), 1);
        }
        // Every attempt is audited: 32 ok and 32 conflicts.
        let page = store
            .audit(AuditQuery {
                project: Some("p"),
                limit: 500,
                before: None,
            })
            .await
            .unwrap();
        let ok = page.events.iter().filter(|e| e.outcome == "ok").count();
        let conflict = page
            .events
            .iter()
            .filter(|e| e.outcome == "conflict")
            .count();
        assert_eq!((ok, conflict), (32, 32));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_request_is_undone_without_spoiling_its_batch() {
        let (_dir, store) = open();
        let event = |actor: &str| Event {
            project: Some("p".into()),
            ..Event::new(
                actor,
                crate::store::Action::Keys,
                crate::store::Outcome::Forbidden,
            )
        };
        let failing = event("failing");
        let (bad, good) = tokio::join!(
            store.write(move |conn| {
                insert_event(conn, &now(), &failing)?;
                Err::<(), _>(StoreError::Other("injected failure".into()))
            }),
            store.record(event("good")),
        );
        assert_eq!(bad, Err(StoreError::Other("injected failure".into())));
        assert_eq!(good, Ok(()));
        let page = store
            .audit(AuditQuery {
                project: Some("p"),
                limit: 10,
                before: None,
            })
            .await
            .unwrap();
        let actors: Vec<&str> = page.events.iter().map(|e| e.actor.as_str()).collect();
        assert_eq!(actors, vec!["good"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn versions_and_audit_rows_are_append_only() {
        let (_dir, store) = open();
        store.push(push("main", None)).await.unwrap();
        for sql in [
            "UPDATE versions SET ciphertext = 'x'",
            "DELETE FROM versions",
            "UPDATE audit SET actor = 'someone else'",
            "DELETE FROM audit",
        ] {
            let result = store.write(move |conn| Ok(conn.execute(sql, [])?)).await;
            assert!(
                matches!(&result, Err(StoreError::Other(m)) if m.contains("append-only")),
                "{sql}: {result:?}"
            );
        }
        assert_eq!(
            store.keys("p".into(), "main".into()).await.unwrap().version,
            1
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_memory_database_serves_reads_through_the_writer() {
        let store = SqliteStore::open(&Database::Memory).unwrap();
        assert_eq!(store.push(push("main", None)).await, Ok(1));
        assert_eq!(store.push(push("main", Some(1))).await, Ok(2));
        assert_eq!(
            store.keys("p".into(), "main".into()).await.unwrap().version,
            2
        );
        let pulled = store
            .pull(PullRequest {
                actor: "t".into(),
                jti: "jti-t".into(),
                project: "p".into(),
                branch: "main".into(),
                version: Some(1),
            })
            .await
            .unwrap();
        assert_eq!(pulled.version, 1);
        let page = store
            .branches(BranchesQuery {
                project: "p".into(),
                limit: 10,
                after: None,
            })
            .await
            .unwrap();
        assert_eq!(page.branches.len(), 1);
    }
}
