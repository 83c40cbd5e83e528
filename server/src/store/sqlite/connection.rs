//! Opening connections: the writer's (WAL, `synchronous=FULL` and `busy_timeout` checked,
//! numbered migrations) and the pool of read connections.

use super::super::StoreError;
use super::Database;
use super::writer::exec;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a connection waits for a lock held by another process (an offline `token`
/// command, a backup) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;
/// Read connections, and so reads running at once: more would only queue for the same
/// cores, and every extra connection costs a schema parse and a statement cache.
pub(super) const READERS: usize = 4;

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

pub(super) fn open_writer(db: &Database) -> Result<Connection, StoreError> {
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

pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
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
pub(super) struct ReaderPool {
    pub(super) path: PathBuf,
    pub(super) idle: Mutex<Vec<Connection>>,
    pub(super) permits: Arc<Semaphore>,
}

impl ReaderPool {
    pub(super) fn run<T>(
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

pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}
