//! Opening connections: the writer's (WAL, `synchronous=FULL` and `busy_timeout` checked,
//! numbered migrations) and the reader threads.

use super::chain;
use super::writer::{Job, exec};
use crate::store::{Database, StoreError};
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a connection waits for a lock held by another process (an offline `token`
/// command, a backup) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;
/// Reader threads (one per core of the machine this was sized on): more would only queue
/// for the same cores.
const READERS: usize = 2;
/// Reads waiting per reader thread.
const READ_QUEUE_DEPTH: usize = 1024;
/// Most reads run in one read transaction.
const READ_BATCH: usize = 64;

/// One schema step: plain SQL, or code for what SQL cannot do alone (hashing).
enum Migration {
    Sql(&'static str),
    Code(fn(&Connection) -> Result<(), StoreError>),
}

/// Numbered migrations; `PRAGMA user_version` holds how many have been applied. Each runs
/// in the one transaction that also bumps the version.
const MIGRATIONS: &[Migration] = &[
    // 1: versions, audit, tokens.
    Migration::Sql(
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
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        project TEXT,
        branch TEXT,
        version INTEGER,
        outcome TEXT NOT NULL,
        detail TEXT
    );
    -- Rows are never deleted (see the triggers), so rowids only grow: no AUTOINCREMENT
    -- (and its extra sqlite_sequence write per event) is needed for newest-first paging.
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
    ),
    // 2: the audit log's hash chain (existing rows are hashed in id order).
    Migration::Code(chain::migrate),
    // 3: a chain per project (existing rows stay the single chain they were).
    Migration::Code(chain::migrate_to_chains),
    // 4: value fingerprints: the canonical JSON object, NULL for a version pushed
    // without (and every version from before). Adding a column fires no trigger, so the
    // append-only ones stay as they are.
    Migration::Sql("ALTER TABLE versions ADD COLUMN fingerprints TEXT;"),
];

pub(super) fn open_writer(db: &Database) -> Result<Connection, StoreError> {
    let conn = match db {
        Database::Memory => Connection::open_in_memory()?,
        Database::File(path) => {
            create_private(path)?;
            Connection::open(path).map_err(|e| {
                StoreError::Other(format!("cannot open database {}: {e}", path.display()))
            })?
        }
        Database::Postgres(_) => {
            return Err(StoreError::Other(
                "a PostgreSQL URL is not a SQLite database".into(),
            ));
        }
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    let expected = match db {
        Database::Memory => "memory",
        _ => "wal",
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
    keep_statements_prepared(&conn)?;
    tracing::debug!(journal_mode = %mode, synchronous = "FULL", busy_timeout_ms = busy, "database opened");
    Ok(conn)
}

/// Creates the database file with mode 0600 when it does not exist yet: it holds every
/// ciphertext and the audit trail. SQLite gives its `-wal` and `-shm` files the mode of the
/// database file, so they are 0600 too. An existing file keeps the mode its owner chose,
/// with a warning when others may read it.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    "the database file is readable by other users; chmod 600 it (and its -wal and -shm files)"
                );
            }
            Ok(())
        }
        Err(e) => Err(StoreError::Other(format!(
            "cannot open database {}: {e}",
            path.display()
        ))),
    }
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
        for (index, step) in MIGRATIONS.iter().enumerate().skip(applied) {
            match step {
                Migration::Sql(sql) => conn.execute_batch(sql)?,
                Migration::Code(run) => run(conn)?,
            }
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
/// The reader threads of a file database, each with its own connection and queue;
/// requests are dealt out in turn.
pub(super) struct Readers {
    queues: Vec<mpsc::Sender<Box<dyn Job>>>,
    threads: Vec<JoinHandle<()>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Readers({})", self.queues.len())
    }
}

impl Readers {
    pub(super) fn start(path: &Path) -> Result<Readers, StoreError> {
        let mut readers = Readers {
            queues: Vec::with_capacity(READERS),
            threads: Vec::with_capacity(READERS),
            next: AtomicUsize::new(0),
        };
        for i in 0..READERS {
            let conn = open_reader(path)?;
            let (tx, rx) = mpsc::channel(READ_QUEUE_DEPTH);
            let thread = std::thread::Builder::new()
                .name(format!("envsync-reader-{i}"))
                .spawn(move || read_loop(conn, rx))
                .map_err(|e| StoreError::Other(format!("cannot start a reader thread: {e}")))?;
            readers.queues.push(tx);
            readers.threads.push(thread);
        }
        Ok(readers)
    }

    /// The queue of the next reader in turn.
    pub(super) fn queue(&self) -> &mpsc::Sender<Box<dyn Job>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len();
        &self.queues[i]
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.queues.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Runs every queued read inside one read transaction (one snapshot, one WAL read lock)
/// and answers each as soon as it has run.
fn read_loop(conn: Connection, mut queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::new();
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        while batch.len() < READ_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let begun = exec(&conn, "BEGIN");
        for mut job in batch.drain(..) {
            match &begun {
                Ok(()) => {
                    job.run(&conn);
                    job.finish(Ok(()));
                }
                Err(e) => job.finish(Err(e.clone())),
            }
        }
        if begun.is_ok() && exec(&conn, "COMMIT").is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    keep_statements_prepared(&conn)?;
    Ok(conn)
}

/// Every statement a connection runs stays prepared: the statement cache holds all of them
/// (the default of 16 is smaller than the writer's set), and the query planner stability
/// guarantee stops SQLite (built with STAT4) from re-preparing a statement each time a
/// new value is bound to a parameter compared with an indexed column — which, without it,
/// is every execution of nearly every query here, each paying a parse and a query plan.
fn keep_statements_prepared(conn: &Connection) -> Result<(), StoreError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    #[test]
    fn migration_2_hashes_the_rows_already_there_into_a_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        // A database as schema version 1 left it, with audit rows and no hashes.
        {
            let conn = Connection::open(&path).unwrap();
            let Migration::Sql(v1) = &MIGRATIONS[0] else {
                panic!("migration 1 is SQL")
            };
            conn.execute_batch(v1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            for (actor, version) in [("a@x", Some(1)), ("b@x", None), ("c@x", Some(2))] {
                conn.execute(
                    "INSERT INTO audit (at, actor, action, project, branch, version, outcome)
                     VALUES ('2025-01-01T00:00:00.000Z', ?1, 'push', 'p', 'main', ?2, 'ok')",
                    rusqlite::params![actor, version],
                )
                .unwrap();
            }
        }
        assert!(
            chain::verify(&path, vec![]).is_err(),
            "no chain before migrating"
        );
        let conn = open_writer(&Database::File(path.clone())).unwrap();
        migrate(&conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 4);
        assert!(matches!(
            chain::verify(&path, vec![]).unwrap(),
            crate::store::chain::Verdict::Intact { rows: 3, .. }
        ));
        // New rows chain on, rows without a hash are refused, and the log stays append-only.
        let event =
            crate::store::Event::new("d@x", crate::store::Action::Pull, crate::store::Outcome::Ok);
        super::super::queries::insert_event(&conn, "2025-01-02T00:00:00.000Z", &event).unwrap();
        assert!(matches!(
            chain::verify(&path, vec![]).unwrap(),
            crate::store::chain::Verdict::Intact { rows: 4, .. }
        ));
        let refused = conn.execute(
            "INSERT INTO audit (at, actor, action, outcome) VALUES ('t', 'e', 'x', 'ok')",
            [],
        );
        assert!(format!("{refused:?}").contains("chain hash"), "{refused:?}");
        let refused = conn.execute("UPDATE audit SET actor = 'z' WHERE id = 1", []);
        assert!(
            format!("{refused:?}").contains("append-only"),
            "{refused:?}"
        );
        // Migrating again changes nothing.
        migrate(&conn).unwrap();
        assert!(matches!(
            chain::verify(&path, vec![]).unwrap(),
            crate::store::chain::Verdict::Intact { rows: 4, .. }
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migration_4_adds_fingerprints_and_older_versions_serve_without() {
        use crate::store::chain::{Verdict, VersionProblem};
        use crate::store::events::push_event;
        use crate::store::{NewPush, PullRequest, SqliteStore, Store, VersionsQuery};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old_push = NewPush {
            actor: "a@x".into(),
            jti: "j".into(),
            project: "p".into(),
            branch: "main".into(),
            ciphertext: "blob".into(),
            keys: vec!["A".into()],
            base_version: None,
            fingerprints: None,
        };
        // A database as schema version 3 left it, with a version and its accepted-push row.
        {
            let conn = Connection::open(&path).unwrap();
            for step in &MIGRATIONS[..3] {
                match step {
                    Migration::Sql(sql) => conn.execute_batch(sql).unwrap(),
                    Migration::Code(run) => run(&conn).unwrap(),
                }
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            let at = "2025-01-01T00:00:00.000Z";
            conn.execute(
                "INSERT INTO versions (project, branch, version, ciphertext, keys, key_count,
                     pushed_by, pushed_at)
                 VALUES ('p', 'main', 1, 'blob', '[\"A\"]', 1, 'a@x', ?1)",
                [at],
            )
            .unwrap();
            let event = push_event(&[], &old_push, 1, None);
            super::super::queries::insert_event(&conn, at, &event).unwrap();
        }
        // `audit verify` reads it as it is, before any server has migrated it.
        assert!(matches!(
            chain::verify(&path, vec![]).unwrap(),
            Verdict::Intact { rows: 1, .. }
        ));
        let store = SqliteStore::open(&Database::File(path.clone())).unwrap();
        let keys = store.keys("p".into(), "main".into()).await.unwrap();
        assert_eq!((keys.version, keys.fingerprints), (1, None));
        let pulled = store
            .pull(PullRequest {
                actor: "r@x".into(),
                jti: "j".into(),
                project: "p".into(),
                branch: "main".into(),
                version: None,
            })
            .await
            .unwrap();
        assert_eq!(
            (pulled.ciphertext.as_str(), pulled.fingerprints),
            ("blob", None)
        );
        // A push with fingerprints after the migration reads back with them; the old
        // version beside it still has none, and every version is accounted for.
        let fingerprints: envsync_common::api::Fingerprints = [(
            "B".to_owned(),
            "0123456789abcdef0123456789abcdef".to_owned(),
        )]
        .into();
        let new_push = NewPush {
            keys: vec!["B".into()],
            base_version: Some(1),
            fingerprints: Some(fingerprints.clone()),
            ..old_push
        };
        assert_eq!(store.push(new_push).await, Ok(2));
        let page = store
            .versions(VersionsQuery {
                project: "p".into(),
                branch: "main".into(),
                limit: 10,
                before: None,
            })
            .await
            .unwrap();
        let prints: Vec<_> = page
            .versions
            .iter()
            .map(|v| v.fingerprints.clone())
            .collect();
        assert_eq!(prints, [Some(fingerprints), None]);
        assert!(matches!(
            store.verify(vec![]).await.unwrap(),
            Verdict::Intact { rows: 3, .. }
        ));
        drop(store);
        assert!(matches!(
            chain::verify(&path, vec![]).unwrap(),
            Verdict::Intact { rows: 3, .. }
        ));
        // Fingerprints given to the old version behind the server's back are not its own.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TRIGGER versions_append_only_update;
             UPDATE versions SET fingerprints = '{}' WHERE version = 1;",
        )
        .unwrap();
        assert!(matches!(
            chain::verify(&path, vec![]).unwrap(),
            Verdict::Unaccounted {
                version: 1,
                problem: VersionProblem::OtherFingerprints,
                ..
            }
        ));
    }

    #[test]
    fn a_new_database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let conn = open_writer(&Database::File(path.clone())).unwrap();
        migrate(&conn).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", path.display());
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
    }

    #[test]
    fn statements_are_not_re_prepared_on_every_binding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = open_writer(&Database::File(path.clone())).unwrap();
        migrate(&writer).unwrap();
        for conn in [&writer, &open_reader(&path).unwrap()] {
            for branch in ["a", "b", "c", "d"] {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT version FROM versions WHERE project = ?1 AND branch = ?2
                         ORDER BY version DESC LIMIT 1",
                    )
                    .unwrap();
                let _ = stmt.query_row(["p", branch], |_| Ok(()));
                assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
            }
        }
    }
}
