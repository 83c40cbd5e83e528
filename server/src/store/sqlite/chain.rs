//! The hash chain of [`crate::store::chain`] on SQLite: reading the head inside the
//! writer's transaction, migration 2 (which hashed the rows that existed before it), and
//! the read-only walk `audit verify` runs on a database file.

use crate::store::StoreError;
use crate::store::chain::{GENESIS, Hash, StoredRow, Verdict, Walk, bad_hash, to_hash};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;

/// The id and hash of the last row, or `(0, GENESIS)` for an empty log. Run inside the
/// writer's transaction, so no other writer can slip a row in between.
pub(super) fn head(conn: &Connection) -> Result<(i64, Hash), StoreError> {
    let row = conn
        .prepare_cached("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
        })
        .optional()?;
    match row {
        None => Ok((0, GENESIS)),
        Some((id, Some(hash))) => Ok((id, to_hash(&hash).ok_or_else(|| bad_hash(id))?)),
        Some((id, None)) => Err(bad_hash(id)),
    }
}

/// Migration 2: adds the `hash` column, hashes the rows already there (in id order), and
/// refuses any later row without one. Runs inside the migration transaction.
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "ALTER TABLE audit ADD COLUMN hash BLOB;
         DROP TRIGGER audit_append_only_update;",
    )?;
    let mut prev = GENESIS;
    let mut rows = Vec::new();
    {
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY id"))?;
        let mut cursor = stmt.query([])?;
        while let Some(r) = cursor.next()? {
            let stored = read(r)?;
            prev = stored.row().hash(&prev);
            rows.push((stored.id, prev));
        }
    }
    let mut update = conn.prepare("UPDATE audit SET hash = ?2 WHERE id = ?1")?;
    for (id, hash) in &rows {
        update.execute(params![id, &hash[..]])?;
    }
    conn.execute_batch(
        "CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
             BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
         CREATE TRIGGER audit_needs_hash BEFORE INSERT ON audit
             WHEN NEW.hash IS NULL OR length(NEW.hash) != 32
             BEGIN SELECT RAISE(ABORT, 'an audit row needs its chain hash'); END;",
    )?;
    if !rows.is_empty() {
        tracing::info!(
            rows = rows.len(),
            "hashed the existing audit rows into a chain"
        );
    }
    Ok(())
}

pub(super) const COLUMNS: &str =
    "id, at, actor, action, project, branch, version, outcome, detail, hash";

/// A row selected as [`COLUMNS`].
pub(super) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        id: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        project: r.get(4)?,
        branch: r.get(5)?,
        version: r.get(6)?,
        outcome: r.get(7)?,
        detail: r.get(8)?,
        hash: r.get(9)?,
    })
}

/// Walks the audit chain of the database file at `path`, read-only (never creating or
/// migrating it), in one snapshot.
pub fn verify(path: &Path, anchor: Option<(u64, Hash)>) -> Result<Verdict, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Other(format!("cannot open database {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let schema: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if schema < 2 {
        return Err(StoreError::Other(format!(
            "{} has no audit chain yet (schema version {schema}); start envsync-server on it once to add one",
            path.display()
        )));
    }
    // One read transaction: the chain and the versions are checked in the same snapshot.
    conn.execute_batch("BEGIN")?;
    let verdict = verify_in(&conn, anchor);
    let _ = conn.execute_batch("COMMIT");
    verdict
}

/// The walk, on a connection already inside a read transaction.
pub(super) fn verify_in(
    conn: &Connection,
    anchor: Option<(u64, Hash)>,
) -> Result<Verdict, StoreError> {
    let mut walk = Walk::new(anchor);
    {
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY id"))?;
        let mut cursor = stmt.query([])?;
        while let Some(r) = cursor.next()? {
            if !walk.row(&read(r)?) {
                break;
            }
        }
    }
    let (verdict, accounts) = walk.finish();
    if !matches!(verdict, Verdict::Intact { .. }) {
        return Ok(verdict);
    }
    // Every version, in insertion order: the first one not accounted for is reported.
    let mut stmt =
        conn.prepare("SELECT project, branch, version, ciphertext FROM versions ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (project, branch, version, ciphertext): (String, String, i64, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        if let Some(bad) = accounts.check(&project, &branch, version, &ciphertext) {
            return Ok(bad);
        }
    }
    Ok(verdict)
}
