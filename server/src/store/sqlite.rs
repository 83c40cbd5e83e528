//! The rusqlite [`Store`]: WAL, durable commits, one writer thread with group commit.
//!
//! A SQLite connection never runs on an async worker:
//! - **Writes** (and ciphertext reads, which write an audit event) go through a channel to
//!   one dedicated writer thread. It takes every request queued at that moment and runs
//!   them in ONE `BEGIN IMMEDIATE` transaction, each inside its own `SAVEPOINT`, so every
//!   push is still compare-and-swapped on its own base version and one failure never
//!   spoils its neighbours. One `COMMIT` (one fsync with `synchronous=FULL`) then covers the
//!   whole batch, and only after it do the callers get their answers: an acknowledged push
//!   is on disk. This is what lets pushes under load outrun one-commit-per-push.
//! - **Plain reads** run on `spawn_blocking` with a small pool of read connections, which
//!   WAL lets run beside the writer. A `:memory:` database exists only inside the writer's
//!   connection, so there its reads go through the writer too.
//!
//! Versions and audit rows are append-only: triggers refuse `UPDATE` and `DELETE`.

use super::{AuditQuery, Event, NewPush, PullRequest, Store, StoreError, StoreFuture};
use envsync_common::api::{
    AuditEvent, AuditPage, BranchInfo, EnvResponse, KeysResponse, Role, TokenInfo, VersionInfo,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A throwaway in-memory database (`:memory:`).
    Memory,
    File(PathBuf),
}

impl Database {
    /// `:memory:` or a file path.
    pub fn parse(text: &str) -> Database {
        if text == ":memory:" {
            Database::Memory
        } else {
            Database::File(PathBuf::from(text))
        }
    }
}

/// How long a connection waits for a lock held by another process (an offline `token`
/// command, a backup) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most requests committed together. Bounds the latency of the first one in a batch.
const MAX_BATCH: usize = 256;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;
/// Longest wait for a batch to fill up (see `write_loop`).
const MAX_LINGER: Duration = Duration::from_millis(2);
const LINGER_STEP: Duration = Duration::from_micros(50);
/// Requests waiting for the writer; senders wait (asynchronously) when it is full.
const QUEUE_DEPTH: usize = 4096;
/// Read connections, and so reads running at once: more would only queue for the same
/// cores, and every extra connection costs a schema parse and a statement cache.
const READERS: usize = 4;

/// Numbered migrations; `PRAGMA user_version` holds how many have been applied.
const MIGRATIONS: &[&str] = &[
    // 1: versions, audit, tokens.
    "CREATE TABLE versions (
        id INTEGER PRIMARY KEY,
        project TEXT NOT NULL,
        branch TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version > 0),
        ciphertext TEXT NOT NULL,
        keys TEXT NOT NULL,
        key_count INTEGER NOT NULL,
        pushed_by TEXT NOT NULL,
        pushed_at TEXT NOT NULL,
        UNIQUE (project, branch, version)
    );
    CREATE TRIGGER versions_append_only_update BEFORE UPDATE ON versions
        BEGIN SELECT RAISE(ABORT, 'versions are append-only'); END;
    CREATE TRIGGER versions_append_only_delete BEFORE DELETE ON versions
        BEGIN SELECT RAISE(ABORT, 'versions are append-only'); END;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        project TEXT,
        branch TEXT,
        version INTEGER,
        outcome TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX audit_by_project ON audit (project, id);
    CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE tokens (
        jti TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        project_ids TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT
    );",
];

/// The rusqlite store. Dropping it lets the writer finish its batch and joins it.
pub struct SqliteStore {
    writer: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    readers: Option<Arc<ReaderPool>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("readers", &self.readers.as_ref().map(|r| r.path.clone()))
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
            Database::Memory => None,
            Database::File(path) => Some(Arc::new(ReaderPool {
                path: path.clone(),
                idle: Mutex::new(Vec::with_capacity(READERS)),
                permits: Arc::new(Semaphore::new(READERS)),
            })),
        };
        let wal = match db {
            Database::Memory => None,
            Database::File(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push("-wal");
                Some(PathBuf::from(name))
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("envsync-writer".into())
            .spawn(move || write_loop(conn, wal, rx))
            .map_err(|e| StoreError::Other(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            writer: Some(tx),
            thread: Some(thread),
            readers,
        })
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

    /// Runs `work` on a read connection, off the async workers.
    fn read<T, F>(&self, work: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(pool) = self.readers.clone() else {
            return self.write(work);
        };
        Box::pin(async move {
            // A permit per connection: at most READERS reads hold a blocking thread, and
            // each of them finds an open connection in the pool.
            let permit = pool
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| stopped())?;
            tokio::task::spawn_blocking(move || {
                let result = pool.run(work);
                drop(permit);
                result
            })
            .await
            .map_err(|e| StoreError::Other(format!("read task failed: {e}")))?
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
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
                    "SELECT version, keys FROM versions WHERE project = ?1 AND branch = ?2
                     ORDER BY version DESC LIMIT 1",
                )?
                .query_row(params![project, branch], |r| {
                    Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))
                })
                .optional()?;
            let (version, keys) = row.ok_or(StoreError::NotFound)?;
            Ok(KeysResponse {
                version,
                keys: serde_json::from_str(&keys)?,
            })
        })
    }

    fn versions(&self, project: String, branch: String) -> StoreFuture<'_, Vec<VersionInfo>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT version, keys, pushed_by, pushed_at FROM versions
                 WHERE project = ?1 AND branch = ?2 ORDER BY version DESC",
            )?;
            let rows = stmt.query_map(params![project, branch], |r| {
                Ok((
                    r.get::<_, u64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (version, keys, pushed_by, pushed_at) = row?;
                out.push(VersionInfo {
                    version,
                    keys: serde_json::from_str(&keys)?,
                    pushed_by,
                    pushed_at,
                });
            }
            Ok(out)
        })
    }

    fn branches(&self, project: String) -> StoreFuture<'_, Vec<BranchInfo>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT v.branch, v.version, v.key_count, v.pushed_by, v.pushed_at
                 FROM versions v
                 JOIN (SELECT branch, MAX(version) AS latest FROM versions
                       WHERE project = ?1 GROUP BY branch) l
                   ON v.branch = l.branch AND v.version = l.latest
                 WHERE v.project = ?1
                 ORDER BY v.branch",
            )?;
            let rows = stmt.query_map(params![project], |r| {
                Ok(BranchInfo {
                    branch: r.get(0)?,
                    version: r.get(1)?,
                    key_count: r.get(2)?,
                    pushed_by: r.get(3)?,
                    pushed_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn audit(&self, query: AuditQuery<'_>) -> StoreFuture<'_, AuditPage> {
        let project = query.project.map(str::to_owned);
        let limit = query.limit.max(1);
        let before = query.before.unwrap_or(i64::MAX as u64);
        self.read(move |conn| audit_page(conn, project.as_deref(), limit, before))
    }

    fn record(&self, event: Event) -> StoreFuture<'_, ()> {
        self.write(move |conn| insert_event(conn, &now(), &event))
    }

    fn add_token(&self, token: TokenInfo, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO tokens (jti, email, role, project_ids, issued_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                token.jti,
                token.email,
                token.role.as_str(),
                serde_json::to_string(&token.project_ids)?,
                token.issued_at,
                token.expires_at,
            ])?;
            let detail = serde_json::json!({
                "jti": token.jti,
                "email": token.email,
                "role": token.role,
                "project_ids": token.project_ids,
                "expires_at": token.expires_at,
            });
            insert_event(
                conn,
                &now(),
                &Event {
                    actor,
                    action: "token.mint".into(),
                    outcome: "ok".into(),
                    detail: Some(detail.to_string()),
                    ..Event::default()
                },
            )
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
            let outcome = if known.is_some() { "ok" } else { "not_found" };
            insert_event(
                conn,
                &at,
                &Event {
                    actor,
                    action: "token.revoke".into(),
                    outcome: outcome.into(),
                    detail: Some(serde_json::json!({ "jti": jti }).to_string()),
                    ..Event::default()
                },
            )?;
            known.map(|_| ()).ok_or(StoreError::NotFound)
        })
    }

    fn tokens(&self) -> StoreFuture<'_, Vec<TokenInfo>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT jti, email, role, project_ids, issued_at, expires_at, revoked_at IS NOT NULL
                 FROM tokens ORDER BY issued_at DESC, jti",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, bool>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (jti, email, role, projects, issued_at, expires_at, revoked) = row?;
                out.push(TokenInfo {
                    role: role
                        .parse::<Role>()
                        .map_err(|e| StoreError::Other(format!("token {jti}: {e}")))?,
                    jti,
                    email,
                    project_ids: serde_json::from_str(&projects)?,
                    issued_at,
                    expires_at,
                    revoked,
                });
            }
            Ok(out)
        })
    }

    fn revoked(&self) -> StoreFuture<'_, Vec<String>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT jti FROM tokens WHERE revoked_at IS NOT NULL")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

// ---- the writer thread -------------------------------------------------------------------

/// When a request's answer may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// After the commit has been fsynced (`synchronous=FULL`): every state change.
    Synced,
    /// After the commit has been written to the WAL, which survives a crash of this
    /// process; a helper thread fsyncs it right after. Only for the audit row of a pull:
    /// the answer (a ciphertext already on disk) is not held for an fsync, which on a slow
    /// disk is most of a pull's cost, and the audit row reaches the disk one fsync later
    /// (only a power loss in that window could lose it). A batch holding any `Synced`
    /// request is committed with a full sync, as is everything that changes state.
    Written,
}

/// One request for the writer: run inside the batch, then answer after the commit.
trait Job: Send {
    fn durability(&self) -> Durability;
    /// Runs the work; `true` when it failed in a way that must undo its writes.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Sends the answer, or the commit's failure.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Task<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    durability: Durability,
}

impl<T, F> Job for Task<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A bug in one request must not take the writer (and every later request) down.
        let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Other("a storage operation panicked".into())));
        let undo = matches!(result, Err(StoreError::Other(_)));
        self.result = Some(result);
        undo
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match commit {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(StoreError::Other("request was not run".into()))),
            Err(e) => Err(e),
        };
        // The caller may have gone away (client disconnected); nothing to do then.
        let _ = self.reply.send(answer);
    }
}

fn write_loop(conn: Connection, wal: Option<PathBuf>, mut queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut wal = wal.map(WalSync::new);
    // Under steady load the callers answered by one commit come back while the next one is
    // being synced, so batches alternate between two halves of the clients, each paying a
    // full fsync. Lingering briefly (never more than half a commit's duration) until the
    // batch is as large as the previous one lets both halves share one sync, like
    // PostgreSQL's commit_delay. With one caller there is no linger at all.
    let mut previous = 1usize;
    let mut last_commit = Duration::ZERO;
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        drain(&mut queue, &mut batch);
        if previous > 1 && batch.len() < previous {
            let deadline = Instant::now() + (last_commit / 2).min(MAX_LINGER);
            while batch.len() < previous && Instant::now() < deadline {
                std::thread::sleep(LINGER_STEP);
                drain(&mut queue, &mut batch);
            }
        }
        // Only a batch of pull audits may skip the sync before answering, and only when
        // there is a WAL file to sync right after.
        let deferred = wal.is_some() && batch.iter().all(|j| j.durability() == Durability::Written);
        let started = Instant::now();
        let outcome = set_synchronous(&conn, !deferred).and_then(|()| run_batch(&conn, &mut batch));
        last_commit = started.elapsed();
        previous = batch.len();
        tracing::trace!(
            requests = batch.len(),
            deferred_sync = deferred,
            micros = last_commit.as_micros() as u64,
            "write batch committed"
        );
        if let Err(e) = &outcome {
            tracing::error!(error = %e, requests = batch.len(), "write batch rolled back");
        }
        for job in batch.drain(..) {
            job.finish(outcome.clone());
        }
        if deferred && let Some(wal) = wal.as_mut() {
            wal.sync();
        }
    }
    tracing::debug!("database writer stopped");
}

/// Switches the writer between `synchronous=FULL` (the default, asserted at start) and
/// `NORMAL` (commit written to the WAL, not fsynced) for the next transaction.
fn set_synchronous(conn: &Connection, full: bool) -> Result<(), StoreError> {
    exec(
        conn,
        if full {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        },
    )
}

/// The fsync after a deferred batch, on its own thread so the writer goes on with the next
/// batch meanwhile. Requests coalesce: one sync covers every commit written before it.
struct WalSync {
    state: Arc<(Mutex<WalState>, std::sync::Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct WalState {
    pending: bool,
    closing: bool,
}

impl WalSync {
    fn new(path: PathBuf) -> WalSync {
        let state = Arc::new((Mutex::new(WalState::default()), std::sync::Condvar::new()));
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("envsync-walsync".into())
            .spawn(move || wal_sync_loop(&path, &shared))
            .ok();
        WalSync { state, thread }
    }

    /// Asks for an fsync of the WAL as soon as possible.
    fn sync(&mut self) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap_or_else(|p| p.into_inner()).pending = true;
        wake.notify_one();
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap_or_else(|p| p.into_inner()).closing = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn wal_sync_loop(path: &Path, state: &(Mutex<WalState>, std::sync::Condvar)) {
    let (lock, wake) = state;
    let mut file: Option<std::fs::File> = None;
    loop {
        let closing = {
            let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
            while !s.pending && !s.closing {
                s = wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            let closing = s.closing && !s.pending;
            s.pending = false;
            closing
        };
        if closing {
            return;
        }
        if file.is_none() {
            file = std::fs::File::open(path).ok();
        }
        // fsync is per file, not per descriptor: our own handle syncs SQLite's writes.
        if !matches!(file.as_ref().map(std::fs::File::sync_data), Some(Ok(()))) {
            // Reopen next time; the next full commit or checkpoint syncs the WAL anyway.
            file = None;
            tracing::warn!(path = %path.display(), "could not fsync the WAL after a pull batch");
        }
    }
}

/// Moves every queued request into the batch, up to its size limit.
fn drain(queue: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// One transaction for the whole batch, one savepoint per request.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let result = batch
        .iter_mut()
        .try_for_each(|job| {
            exec(conn, "SAVEPOINT request")?;
            if job.run(conn) {
                exec(conn, "ROLLBACK TO request")?;
            }
            exec(conn, "RELEASE request")
        })
        .and_then(|()| exec(conn, "COMMIT"));
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

// ---- operations inside the writer's transaction -----------------------------------------

fn push_version(conn: &Connection, push: &NewPush) -> Result<u64, StoreError> {
    let at = now();
    let latest = conn
        .prepare_cached(
            "SELECT version, keys FROM versions WHERE project = ?1 AND branch = ?2
             ORDER BY version DESC LIMIT 1",
        )?
        .query_row(params![push.project, push.branch], |r| {
            Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    let current = latest.as_ref().map(|(v, _)| *v);
    let mut event = Event {
        actor: push.actor.clone(),
        action: "push".into(),
        project: Some(push.project.clone()),
        branch: Some(push.branch.clone()),
        ..Event::default()
    };
    if current != push.base_version {
        event.version = current;
        event.outcome = "conflict".into();
        event.detail = Some(serde_json::json!({ "base_version": push.base_version }).to_string());
        insert_event(conn, &at, &event)?;
        return Err(StoreError::Conflict { current });
    }
    let previous: Vec<String> = match &latest {
        Some((_, keys)) => serde_json::from_str(keys)?,
        None => Vec::new(),
    };
    let version = current.map_or(1, |v| v + 1);
    conn.prepare_cached(
        "INSERT INTO versions (project, branch, version, ciphertext, keys, key_count, pushed_by, pushed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        push.project,
        push.branch,
        version,
        push.ciphertext,
        serde_json::to_string(&push.keys)?,
        push.keys.len() as u64,
        push.actor,
        at,
    ])?;
    event.version = Some(version);
    event.outcome = "ok".into();
    event.detail = Some(key_changes(&previous, &push.keys));
    insert_event(conn, &at, &event)?;
    Ok(version)
}

fn pull_version(conn: &Connection, pull: &PullRequest) -> Result<EnvResponse, StoreError> {
    let at = now();
    let map = |r: &rusqlite::Row<'_>| {
        Ok((
            r.get::<_, u64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    };
    let row = match pull.version {
        Some(version) => conn
            .prepare_cached(
                "SELECT version, ciphertext, keys, pushed_by, pushed_at FROM versions
                 WHERE project = ?1 AND branch = ?2 AND version = ?3",
            )?
            .query_row(params![pull.project, pull.branch, version], map)
            .optional()?,
        None => conn
            .prepare_cached(
                "SELECT version, ciphertext, keys, pushed_by, pushed_at FROM versions
                 WHERE project = ?1 AND branch = ?2 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![pull.project, pull.branch], map)
            .optional()?,
    };
    let mut event = Event {
        actor: pull.actor.clone(),
        action: "pull".into(),
        project: Some(pull.project.clone()),
        branch: Some(pull.branch.clone()),
        version: pull.version,
        outcome: "not_found".into(),
        detail: None,
    };
    let Some((version, ciphertext, keys, pushed_by, pushed_at)) = row else {
        insert_event(conn, &at, &event)?;
        return Err(StoreError::NotFound);
    };
    event.version = Some(version);
    event.outcome = "ok".into();
    insert_event(conn, &at, &event)?;
    Ok(EnvResponse {
        version,
        ciphertext,
        keys: serde_json::from_str(&keys)?,
        pushed_by,
        pushed_at,
    })
}

fn insert_event(conn: &Connection, at: &str, e: &Event) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, action, project, branch, version, outcome, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        at, e.actor, e.action, e.project, e.branch, e.version, e.outcome, e.detail
    ])?;
    Ok(())
}

fn audit_page(
    conn: &Connection,
    project: Option<&str>,
    limit: u32,
    before: u64,
) -> Result<AuditPage, StoreError> {
    const COLUMNS: &str = "id, at, actor, action, project, branch, version, outcome, detail";
    let map = |r: &rusqlite::Row<'_>| {
        Ok(AuditEvent {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            project: r.get(4)?,
            branch: r.get(5)?,
            version: r.get(6)?,
            outcome: r.get(7)?,
            detail: r.get(8)?,
        })
    };
    // One more row than asked tells whether there is a next page.
    let fetch = i64::from(limit) + 1;
    let mut events: Vec<AuditEvent> = match project {
        Some(project) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit WHERE project = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![project, before, fetch], map)?
            .collect::<Result<_, _>>()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
            ))?
            .query_map(params![before, fetch], map)?
            .collect::<Result<_, _>>()?,
    };
    let next_before = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage {
        events,
        next_before,
    })
}

/// The audit detail of a push: which key names appeared and disappeared (names only).
fn key_changes(previous: &[String], keys: &[String]) -> String {
    let before: HashSet<&str> = previous.iter().map(String::as_str).collect();
    let after: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let added: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| !before.contains(k))
        .collect();
    let removed: Vec<&str> = previous
        .iter()
        .map(String::as_str)
        .filter(|k| !after.contains(k))
        .collect();
    serde_json::json!({ "added": added, "removed": removed }).to_string()
}

/// Now, as RFC 3339 UTC with millisecond precision.
pub(crate) fn now() -> String {
    crate::clock::rfc3339(time::OffsetDateTime::now_utc())
}

// ---- connections --------------------------------------------------------------------------

fn open_writer(db: &Database) -> Result<Connection, StoreError> {
    let conn = match db {
        Database::Memory => Connection::open_in_memory()?,
        Database::File(path) => Connection::open(path).map_err(|e| {
            StoreError::Other(format!("cannot open database {}: {e}", path.display()))
        })?,
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    let expected = match db {
        Database::Memory => "memory",
        Database::File(_) => "wal",
    };
    if !mode.eq_ignore_ascii_case(expected) {
        return Err(StoreError::Other(format!(
            "journal_mode is '{mode}', expected '{expected}' (is the filesystem able to hold a WAL?)"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    if synchronous != 2 {
        return Err(StoreError::Other(format!(
            "synchronous is {synchronous}, expected 2 (FULL)"
        )));
    }
    let busy: i64 = conn.pragma_query_value(None, "busy_timeout", |r| r.get(0))?;
    if busy <= 0 {
        return Err(StoreError::Other("busy_timeout is not set".into()));
    }
    // Every statement the writer runs stays prepared (the default cache of 16 is smaller
    // than the writer's set, and re-preparing costs a parse and a query plan).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    tracing::debug!(journal_mode = %mode, synchronous = "FULL", busy_timeout_ms = busy, "database opened");
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let result = (|| {
        let applied: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Other(format!(
                "the database has schema version {applied}, newer than this envsync-server knows ({})",
                MIGRATIONS.len()
            )));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", index + 1)?;
            tracing::info!(migration = index + 1, "applied database migration");
        }
        exec(conn, "COMMIT")
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Read connections for a file database, opened on demand and kept for reuse.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    fn run<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = work(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < READERS {
            idle.push(conn);
        }
        result
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}
