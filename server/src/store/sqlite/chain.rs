//! The hash chains of [`crate::store::chain`] on SQLite: reading a chain's last row inside
//! the writer's transaction, migration 2 (which hashed the rows that existed before it into
//! the old single chain), migration 3 (chains per project), and the read-only walk
//! `audit verify` runs on a database file.

use crate::store::StoreError;
use crate::store::chain::{
    COLUMNS, GENESIS, HEADS, Hash, OLD_HEAD, StoredRow, Verdict, Walk, stored_hash,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;

/// The position and hash of the last row of `project`'s chain (`None`: the server's), or
/// `(0, the old chain's last hash)` for a chain with no row yet. Run inside the writer's
/// transaction, so no other writer can slip a row in between.
pub(super) fn tail(conn: &Connection, project: Option<&str>) -> Result<(i64, Hash), StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT id, seq, hash FROM audit WHERE project IS ?1 AND seq IS NOT NULL
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![project], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })
        .optional()?;
    match row {
        Some((id, seq, hash)) => Ok((seq, stored_hash(id, hash.as_deref())?)),
        None => Ok((0, old_head(conn)?.map_or(GENESIS, |(_, hash)| hash))),
    }
}

/// The id and hash of the last row of the old single chain (rows without `seq`), if any.
fn old_head(conn: &Connection) -> Result<Option<(i64, Hash)>, StoreError> {
    let row = conn
        .prepare_cached(OLD_HEAD)?
        .query_row([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
        })
        .optional()?;
    row.map(|(id, hash)| Ok((id, stored_hash(id, hash.as_deref())?)))
        .transpose()
}

/// The last row of every chain, in id order (the old chain's when there is no other).
pub(super) fn heads(conn: &Connection) -> Result<Vec<(u64, Hash)>, StoreError> {
    let mut stmt = conn.prepare_cached(HEADS)?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
    })?;
    let mut heads = Vec::new();
    for row in rows {
        let (id, hash) = row?;
        heads.push((
            u64::try_from(id).unwrap_or(0),
            stored_hash(id, hash.as_deref())?,
        ));
    }
    if heads.is_empty()
        && let Some((id, hash)) = old_head(conn)?
    {
        heads.push((u64::try_from(id).unwrap_or(0), hash));
    }
    Ok(heads)
}

/// Migration 3: chains per project. The rows already there stay the old single chain (no
/// `seq`); every project's chain starts from its last hash.
pub(super) fn migrate_to_chains(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "ALTER TABLE audit ADD COLUMN seq INTEGER;
         CREATE INDEX audit_old_chain ON audit (id) WHERE seq IS NULL;",
    )?;
    Ok(())
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
        let mut stmt = conn.prepare(&format!("SELECT {} FROM audit ORDER BY id", columns(2)))?;
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

/// [`COLUMNS`] as a database of schema version `schema` has them (before migration 3,
/// no `seq`; before migration 2, no `hash`).
fn columns(schema: i64) -> &'static str {
    match schema {
        ..2 => "id, NULL, at, actor, action, project, branch, version, outcome, detail, NULL",
        2 => "id, NULL, at, actor, action, project, branch, version, outcome, detail, hash",
        _ => COLUMNS,
    }
}

/// A row selected as [`COLUMNS`].
pub(super) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        id: r.get(0)?,
        seq: r.get(1)?,
        at: r.get(2)?,
        actor: r.get(3)?,
        action: r.get(4)?,
        project: r.get(5)?,
        branch: r.get(6)?,
        version: r.get(7)?,
        outcome: r.get(8)?,
        detail: r.get(9)?,
        hash: r.get(10)?,
    })
}

/// Walks the audit chains of the database file at `path`, read-only (never creating or
/// migrating it), in one snapshot.
pub fn verify(path: &Path, anchors: Vec<(u64, Hash)>) -> Result<Verdict, StoreError> {
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
    let verdict = verify_in(&conn, schema, anchors);
    let _ = conn.execute_batch("COMMIT");
    verdict
}

/// The walk, on a connection already inside a read transaction, of a database of schema
/// version `schema`.
pub(super) fn verify_in(
    conn: &Connection,
    schema: i64,
    anchors: Vec<(u64, Hash)>,
) -> Result<Verdict, StoreError> {
    let mut walk = Walk::new(anchors);
    {
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM audit ORDER BY id",
            columns(schema)
        ))?;
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
    // (Before migration 4 there is no fingerprints column: every version has none.)
    let fingerprints = if schema < 4 { "NULL" } else { "fingerprints" };
    let mut stmt = conn.prepare(&format!(
        "SELECT project, branch, version, ciphertext, {fingerprints} FROM versions ORDER BY id"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (project, branch, version, ciphertext, prints): (
            String,
            String,
            i64,
            String,
            Option<String>,
        ) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        if let Some(bad) =
            accounts.check(&project, &branch, version, &ciphertext, prints.as_deref())
        {
            return Ok(bad);
        }
    }
    Ok(verdict)
}
