//! The audit log's hash chain, the same on every backend: what makes an edited, deleted,
//! reordered or inserted audit row detectable by `envsync-server audit verify`.
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
//! A backend computes the hash inside the transaction that appends the row, from the row
//! before it as that transaction sees it (and with nothing else appending meanwhile), so
//! the chain is as atomic as the row itself; ids run 1, 2, 3… without gaps. A plain hash
//! chain proves the log is the one that was written *unless* someone rewrote every hash
//! after the point they changed: `audit verify` prints the head (last id and hash), and a
//! head kept elsewhere (`--anchor ID:HASH`) turns a rewrite or a truncation into a
//! detected one. The server logs the head at start and at an interval for the same
//! purpose.
//!
//! Once the chain holds, verification also accounts for every version: each must have its
//! accepted-push row (`action = 'push'`, `outcome = 'ok'`, same project, branch and
//! version) whose detail records the SHA-256 of the version's ciphertext. A version slipped
//! into the table, or a ciphertext changed, behind the server's back has none.
//!
//! This module holds the encoding and the walk over rows; each backend feeds it its rows
//! in id order ([`Walk`]) and its versions ([`Accounts`]) from one snapshot.

use super::{Event, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;

/// A SHA-256 hash of the chain.
pub type Hash = [u8; 32];

/// What the first row chains from.
pub const GENESIS: Hash = [0; 32];

const DOMAIN: &[u8] = b"envsync-audit-v1\0";

/// One audit row's fields as they are hashed.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
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
    /// The row an event becomes as row `id`, written at `at`.
    pub fn of(id: i64, at: &'a str, e: &'a Event) -> Result<Row<'a>, StoreError> {
        Ok(Row {
            id,
            at,
            actor: &e.actor,
            action: e.action.as_str(),
            project: e.project.as_deref(),
            branch: e.branch.as_deref(),
            version: e
                .version
                .map(i64::try_from)
                .transpose()
                .map_err(|_| StoreError::Other("audit version out of range".into()))?,
            outcome: e.outcome.as_str(),
            detail: e.detail.as_deref(),
        })
    }

    /// `SHA-256(prev || DOMAIN || encoding)`.
    pub fn hash(&self, prev: &Hash) -> Hash {
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

/// A row read back from a backend, hash included (`None` when the column is NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub project: Option<String>,
    pub branch: Option<String>,
    pub version: Option<i64>,
    pub outcome: String,
    pub detail: Option<String>,
    pub hash: Option<Vec<u8>>,
}

impl StoredRow {
    pub fn row(&self) -> Row<'_> {
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

/// A stored hash as a [`Hash`], if it is one.
pub fn to_hash(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

/// The error of a head row without a usable hash.
pub fn bad_hash(id: i64) -> StoreError {
    StoreError::Other(format!(
        "audit row {id} has no valid hash; run `envsync-server audit verify`"
    ))
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

/// A walk over the audit rows in id order. Feed it every row with [`Walk::row`] until that
/// returns `false` (the chain broke), then take the verdict with [`Walk::finish`]. It also
/// gathers what the accepted pushes recorded, for [`Accounts`].
#[derive(Debug)]
pub struct Walk {
    prev: Hash,
    last: u64,
    anchor: Option<(u64, Hash)>,
    anchored: bool,
    broken: Option<Verdict>,
    accounts: Accounts,
}

impl Walk {
    /// `anchor` is a head recorded earlier: that row must still be there with that hash.
    pub fn new(anchor: Option<(u64, Hash)>) -> Walk {
        Walk {
            prev: GENESIS,
            last: 0,
            anchor,
            anchored: false,
            broken: None,
            accounts: Accounts::default(),
        }
    }

    /// Takes the next row; `false` once the chain is broken (later rows change nothing).
    pub fn row(&mut self, stored: &StoredRow) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let id = u64::try_from(stored.id).unwrap_or(0);
        let last = self.last;
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
            self.broken = Some(Verdict::Broken {
                row: last + 1,
                problem,
            });
            return false;
        }
        let Some(hash) = stored.hash.as_deref().and_then(to_hash) else {
            self.broken = Some(Verdict::Broken {
                row: id,
                problem: Problem::NoHash,
            });
            return false;
        };
        if hash != stored.row().hash(&self.prev) {
            self.broken = Some(Verdict::Broken {
                row: id,
                problem: Problem::Mismatch,
            });
            return false;
        }
        if let Some((anchor_id, anchor_hash)) = self.anchor
            && anchor_id == id
        {
            if hash != anchor_hash {
                self.broken = Some(Verdict::Broken {
                    row: id,
                    problem: Problem::Anchor,
                });
                return false;
            }
            self.anchored = true;
        }
        if stored.action == "push" && stored.outcome == "ok" {
            self.accounts.record(stored);
        }
        self.prev = hash;
        self.last = id;
        true
    }

    /// The chain's verdict, and what it recorded of the versions (meaningful only when
    /// the verdict is [`Verdict::Intact`]).
    pub fn finish(self) -> (Verdict, Accounts) {
        if let Some(broken) = self.broken {
            return (broken, self.accounts);
        }
        if let Some((anchor_id, _)) = self.anchor
            && !self.anchored
        {
            let verdict = Verdict::Broken {
                row: anchor_id,
                problem: Problem::Anchor,
            };
            return (verdict, self.accounts);
        }
        let verdict = Verdict::Intact {
            rows: self.last,
            head: (self.last > 0).then_some((self.last, self.prev)),
        };
        (verdict, self.accounts)
    }
}

/// What the accepted-push rows recorded, by version: the ciphertext hashes (normally one).
#[derive(Debug, Default)]
pub struct Accounts {
    recorded: HashMap<(String, String, i64), Vec<Option<String>>>,
}

impl Accounts {
    fn record(&mut self, row: &StoredRow) {
        let Some(version) = row.version else { return };
        let hash = row
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|d| d.get("ciphertext_sha256")?.as_str().map(str::to_owned));
        let key = (
            row.project.clone().unwrap_or_default(),
            row.branch.clone().unwrap_or_default(),
            version,
        );
        self.recorded.entry(key).or_default().push(hash);
    }

    /// Checks one stored version; the verdict when it is not accounted for.
    pub fn check(
        &self,
        project: &str,
        branch: &str,
        version: i64,
        ciphertext: &str,
    ) -> Option<Verdict> {
        let key = (project.to_owned(), branch.to_owned(), version);
        let problem = match self.recorded.get(&key) {
            None => VersionProblem::NoPushRow,
            Some(hashes) => {
                let actual = hex(&Sha256::digest(ciphertext.as_bytes()).into());
                if hashes.iter().any(|h| h.as_deref() == Some(actual.as_str())) {
                    return None;
                } else if hashes.iter().all(Option::is_none) {
                    VersionProblem::NoHash
                } else {
                    VersionProblem::OtherCiphertext
                }
            }
        };
        let (project, branch, version) = key;
        Some(Verdict::Unaccounted {
            project,
            branch,
            version: u64::try_from(version).unwrap_or(0),
            problem,
        })
    }
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

    fn chained(n: i64) -> Vec<StoredRow> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|id| {
                let mut row = StoredRow {
                    id,
                    at: "2025-01-01T00:00:00.000Z".into(),
                    actor: "a".into(),
                    action: "pull".into(),
                    project: Some("p".into()),
                    branch: Some("main".into()),
                    version: Some(1),
                    outcome: "ok".into(),
                    detail: None,
                    hash: None,
                };
                prev = row.row().hash(&prev);
                row.hash = Some(prev.to_vec());
                row
            })
            .collect()
    }

    #[test]
    fn the_walk_finds_gaps_edits_and_anchors() {
        let rows = chained(5);
        let walk = |rows: &[StoredRow], anchor| {
            let mut walk = Walk::new(anchor);
            rows.iter().all(|r| walk.row(r));
            walk.finish().0
        };
        let Verdict::Intact {
            rows: 5,
            head: Some(head),
        } = walk(&rows, None)
        else {
            panic!("not intact")
        };
        assert!(matches!(walk(&rows, Some(head)), Verdict::Intact { .. }));
        assert!(matches!(
            walk(&rows[..4], Some(head)),
            Verdict::Broken {
                row: 5,
                problem: Problem::Anchor
            }
        ));
        let mut gap = rows.clone();
        gap.remove(2);
        assert!(matches!(
            walk(&gap, None),
            Verdict::Broken {
                row: 3,
                problem: Problem::Missing { from: 3, to: 3 }
            }
        ));
        let mut edited = rows.clone();
        edited[1].actor = "mallory".into();
        assert!(matches!(
            walk(&edited, None),
            Verdict::Broken {
                row: 2,
                problem: Problem::Mismatch
            }
        ));
    }
}
