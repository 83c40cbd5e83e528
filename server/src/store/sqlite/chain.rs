//! The audit log's hash chain: what makes an edited, deleted, reordered or inserted audit
//! row detectable by `envsync-server audit verify`.
//!
//! Each row carries `hash = SHA-256(previous row's hash || canonical encoding of this
//! row)`, the first row chaining from 32 zero bytes. The encoding covers every column but
//! the hash, the `id` included, so moving a row or its fields to another place breaks the
//! chain at that place. It is, field by field in this order — `id`, `at`, `actor`,
//! `action`, `project`, `branch`, `version`, `outcome`, `detail` — either `0x00` for NULL,
//! `0x01` + length (u64, big-endian) + the UTF-8 bytes for text, or `0x02` + the value
//! (i64, big-endian) for an integer; the whole preceded by the domain tag
//! `envsync-audit-v1\0`. Anyone can re-implement the check from this paragraph.
//!
//! The hash is computed in the writer's transaction, from the row before it as that
//! transaction sees it, so the chain is as atomic as the row itself. A plain hash chain
//! proves the log is the one that was written *unless* someone rewrote every hash after
//! the point they changed: `audit verify` prints the head (last id and hash), and a head
//! kept elsewhere (`--anchor ID:HASH`) turns a rewrite or a truncation into a detected one.
//! The server logs the head at start and at an interval for the same purpose.
//!
//! Once the chain holds, [`verify`] also accounts for every version: each must have its
//! accepted-push row (`action = 'push'`, `outcome = 'ok'`, same project, branch and
//! version) whose detail records the SHA-256 of the version's ciphertext. A version slipped
//! into the table, or a ciphertext changed, behind the server's back has none.

use super::super::{Event, StoreError};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// A SHA-256 hash of the chain.
pub type Hash = [u8; 32];

/// What the first row chains from.
pub const GENESIS: Hash = [0; 32];

const DOMAIN: &[u8] = b"envsync-audit-v1\0";

/// One audit row's fields as they are hashed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Row<'a> {
    pub id: i64,
    pub at: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub project: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub version: Option<i64>,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
}

impl<'a> Row<'a> {
    pub(super) fn of(id: i64, at: &'a str, e: &'a Event) -> Result<Row<'a>, StoreError> {
        Ok(Row {
            id,
            at,
            actor: &e.actor,
            action: &e.action,
            project: e.project.as_deref(),
            branch: e.branch.as_deref(),
            version: e
                .version
                .map(i64::try_from)
                .transpose()
                .map_err(|_| StoreError::Other("audit version out of range".into()))?,
            outcome: &e.outcome,
            detail: e.detail.as_deref(),
        })
    }

    /// `SHA-256(prev || DOMAIN || encoding)`.
    pub(super) fn hash(&self, prev: &Hash) -> Hash {
        let mut h = Sha256::new();
        h.update(prev);
        h.update(DOMAIN);
        int(&mut h, Some(self.id));
        text(&mut h, Some(self.at));
        text(&mut h, Some(self.actor));
        text(&mut h, Some(self.action));
        text(&mut h, self.project);
        text(&mut h, self.branch);
        int(&mut h, self.version);
        text(&mut h, Some(self.outcome));
        text(&mut h, self.detail);
        h.finalize().into()
    }
}

fn text(h: &mut Sha256, value: Option<&str>) {
    match value {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
    }
}

fn int(h: &mut Sha256, value: Option<i64>) {
    match value {
        None => h.update([0u8]),
        Some(v) => {
            h.update([2u8]);
            h.update(v.to_be_bytes());
        }
    }
}

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

fn bad_hash(id: i64) -> StoreError {
    StoreError::Other(format!(
        "audit row {id} has no valid hash; run `envsync-server audit verify`"
    ))
}

fn to_hash(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
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
            let owned = Owned::read(r)?;
            prev = owned.row().hash(&prev);
            rows.push((owned.id, prev));
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

const COLUMNS: &str = "id, at, actor, action, project, branch, version, outcome, detail, hash";

/// A row read back from the table.
struct Owned {
    id: i64,
    at: String,
    actor: String,
    action: String,
    project: Option<String>,
    branch: Option<String>,
    version: Option<i64>,
    outcome: String,
    detail: Option<String>,
    hash: Option<Vec<u8>>,
}

impl Owned {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Owned> {
        Ok(Owned {
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

    fn row(&self) -> Row<'_> {
        Row {
            id: self.id,
            at: &self.at,
            actor: &self.actor,
            action: &self.action,
            project: self.project.as_deref(),
            branch: self.branch.as_deref(),
            version: self.version,
            outcome: &self.outcome,
            detail: self.detail.as_deref(),
        }
    }
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every row chains from the one before it.
    Intact {
        rows: u64,
        /// The last row's id and hash: keep them elsewhere to anchor later checks.
        head: Option<(u64, Hash)>,
    },
    /// The first row where the chain breaks.
    Broken { row: u64, problem: Problem },
    /// The chain holds, but a version is not accounted for by it: no accepted-push row
    /// records it with its ciphertext's SHA-256 (it was written, or changed, behind the
    /// server's back).
    Unaccounted {
        project: String,
        branch: String,
        version: u64,
        problem: VersionProblem,
    },
}

/// Why a version is not accounted for by the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionProblem {
    /// No accepted-push row names it.
    NoPushRow,
    /// Its accepted-push row records the SHA-256 of another ciphertext.
    OtherCiphertext,
    /// Its accepted-push row records no ciphertext hash at all.
    NoHash,
}

/// How the chain breaks at a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Rows before this one are gone: ids run without gaps from 1.
    Missing { from: u64, to: u64 },
    /// Its stored hash is not the hash of its fields and the row before it.
    Mismatch,
    /// It has no hash (or one of the wrong size).
    NoHash,
    /// The anchored row is absent (the log was truncated) or has another hash.
    Anchor,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Intact { rows, head: None } => write!(f, "ok ({rows} rows)"),
            Verdict::Intact {
                rows,
                head: Some((id, hash)),
            } => write!(f, "ok ({rows} rows)\nhead {id}:{}", hex(hash)),
            Verdict::Broken { row, problem } => {
                let what = match problem {
                    Problem::Missing { from, to } if from == to => {
                        format!("row {from} is missing (deleted)")
                    }
                    Problem::Missing { from, to } => {
                        format!("rows {from} to {to} are missing (deleted)")
                    }
                    Problem::Mismatch => format!(
                        "row {row} does not match its chain hash (edited, reordered, or a row \
                         before it was deleted or inserted)"
                    ),
                    Problem::NoHash => format!("row {row} has no chain hash (inserted)"),
                    Problem::Anchor => format!(
                        "row {row} is not the anchored row (the log was truncated or rewritten)"
                    ),
                };
                write!(f, "bad row {row}: {what}")
            }
            Verdict::Unaccounted {
                project,
                branch,
                version,
                problem,
            } => {
                let what = match problem {
                    VersionProblem::NoPushRow => {
                        "has no accepted-push audit row (written behind the server's back)"
                    }
                    VersionProblem::OtherCiphertext => {
                        "is not the ciphertext its accepted-push audit row records (changed \
                         behind the server's back)"
                    }
                    VersionProblem::NoHash => {
                        "has an accepted-push audit row that records no ciphertext hash"
                    }
                };
                write!(
                    f,
                    "bad version: project '{project}' branch '{branch}' version {version} {what}"
                )
            }
        }
    }
}

/// Lower-case hex.
pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `ID:HEX` as printed on the `head` line.
pub fn parse_anchor(text: &str) -> Option<(u64, Hash)> {
    let (id, hex) = text.trim().split_once(':')?;
    let id = id.parse().ok()?;
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, out) in hash.iter_mut().enumerate() {
        *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some((id, hash))
}

/// Walks the audit chain of the database file at `path`, read-only, in one snapshot.
/// `anchor` is a head recorded earlier: that row must still be there with that hash.
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
    let verdict = match walk(&conn, anchor) {
        Ok(intact @ Verdict::Intact { .. }) => {
            account_for_versions(&conn).map(|v| v.unwrap_or(intact))
        }
        other => other,
    };
    let _ = conn.execute_batch("COMMIT");
    verdict
}

/// Checks that every version has its accepted-push audit row, recording the SHA-256 of the
/// version's ciphertext; the first version that has none, in insertion order.
fn account_for_versions(conn: &Connection) -> Result<Option<Verdict>, StoreError> {
    type Key = (String, String, i64);
    // What the accepted pushes recorded, by version: the ciphertext hashes (normally one).
    let mut recorded: HashMap<Key, Vec<Option<String>>> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT project, branch, version, detail FROM audit
             WHERE action = 'push' AND outcome = 'ok' AND version IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let detail: Option<String> = r.get(3)?;
            let hash = detail
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|d| d.get("ciphertext_sha256")?.as_str().map(str::to_owned));
            let key = (
                r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                r.get(2)?,
            );
            recorded.entry(key).or_default().push(hash);
        }
    }
    let mut stmt =
        conn.prepare("SELECT project, branch, version, ciphertext FROM versions ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let key: Key = (r.get(0)?, r.get(1)?, r.get(2)?);
        let ciphertext: String = r.get(3)?;
        let problem = match recorded.get(&key) {
            None => Some(VersionProblem::NoPushRow),
            Some(hashes) => {
                let actual = hex(&Sha256::digest(ciphertext.as_bytes()).into());
                if hashes.iter().any(|h| h.as_deref() == Some(actual.as_str())) {
                    None
                } else if hashes.iter().all(Option::is_none) {
                    Some(VersionProblem::NoHash)
                } else {
                    Some(VersionProblem::OtherCiphertext)
                }
            }
        };
        if let Some(problem) = problem {
            let (project, branch, version) = key;
            return Ok(Some(Verdict::Unaccounted {
                project,
                branch,
                version: u64::try_from(version).unwrap_or(0),
                problem,
            }));
        }
    }
    Ok(None)
}

fn walk(conn: &Connection, anchor: Option<(u64, Hash)>) -> Result<Verdict, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY id"))?;
    let mut cursor = stmt.query([])?;
    let mut prev = GENESIS;
    let mut last: u64 = 0;
    let mut anchored = false;
    while let Some(r) = cursor.next()? {
        let owned = Owned::read(r)?;
        let id = u64::try_from(owned.id).unwrap_or(0);
        if id != last + 1 {
            // Ids are handed out one after the other from 1 (rows are never deleted, and a
            // rolled-back row frees its id for the next), so a gap is a deletion.
            let problem = if id > last + 1 {
                Problem::Missing {
                    from: last + 1,
                    to: id - 1,
                }
            } else {
                Problem::Mismatch
            };
            return Ok(Verdict::Broken {
                row: last + 1,
                problem,
            });
        }
        let Some(stored) = owned.hash.as_deref().and_then(to_hash) else {
            return Ok(Verdict::Broken {
                row: id,
                problem: Problem::NoHash,
            });
        };
        let expected = owned.row().hash(&prev);
        if stored != expected {
            return Ok(Verdict::Broken {
                row: id,
                problem: Problem::Mismatch,
            });
        }
        if let Some((anchor_id, anchor_hash)) = anchor
            && anchor_id == id
        {
            if stored != anchor_hash {
                return Ok(Verdict::Broken {
                    row: id,
                    problem: Problem::Anchor,
                });
            }
            anchored = true;
        }
        prev = stored;
        last = id;
    }
    if let Some((anchor_id, _)) = anchor
        && !anchored
    {
        return Ok(Verdict::Broken {
            row: anchor_id,
            problem: Problem::Anchor,
        });
    }
    Ok(Verdict::Intact {
        rows: last,
        head: (last > 0).then_some((last, prev)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_separates_fields_and_nulls() {
        let base = Row {
            id: 1,
            at: "t",
            actor: "a",
            action: "push",
            project: Some("p"),
            branch: None,
            version: Some(1),
            outcome: "ok",
            detail: None,
        };
        let h = base.hash(&GENESIS);
        // Moving bytes between adjacent fields, or NULL vs empty, changes the hash.
        assert_ne!(
            h,
            Row {
                actor: "",
                at: "ta",
                ..base
            }
            .hash(&GENESIS)
        );
        assert_ne!(
            h,
            Row {
                branch: Some(""),
                ..base
            }
            .hash(&GENESIS)
        );
        assert_ne!(
            h,
            Row {
                version: None,
                ..base
            }
            .hash(&GENESIS)
        );
        assert_ne!(h, Row { id: 2, ..base }.hash(&GENESIS));
        assert_ne!(h, base.hash(&[1; 32]));
        assert_eq!(h, base.hash(&GENESIS));
    }

    #[test]
    fn anchors_parse_as_printed() {
        let hash = [0xab; 32];
        let text = format!("17:{}", hex(&hash));
        assert_eq!(parse_anchor(&text), Some((17, hash)));
        for bad in [
            "",
            "17",
            "x:ab",
            "17:abc",
            &format!("17:{}", "g".repeat(64)),
        ] {
            assert_eq!(parse_anchor(bad), None, "{bad}");
        }
    }
}
