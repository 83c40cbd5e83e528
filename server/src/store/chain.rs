//! The audit log's hash chains, the same on every backend: what makes an edited, deleted,
//! reordered or inserted audit row detectable by `envsync-server audit verify`.
//!
//! Each project has its own chain, and events of no project (token mints and revocations,
//! refusals outside a project) form the server's chain. A row carries its position in its
//! chain (`seq`: 1, 2, 3…) and `hash = SHA-256(hash of the previous row of the same chain
//! || canonical encoding of this row)`. The encoding is, field by field in this order —
//! `id`, `seq`, `at`, `actor`, `action`, `project`, `branch`, `version`, `outcome`,
//! `detail` — either `0x00` for NULL, `0x01` + length (u64, big-endian) + the UTF-8 bytes
//! for text, or `0x02` + the value (i64, big-endian) for an integer; the whole preceded by
//! the domain tag `envsync-audit-v2\0`. Anyone can re-implement the check from this
//! paragraph.
//!
//! Before chains were per project (schema version 2 of a SQLite database), every row was
//! in one chain, with ids 1, 2, 3… and no `seq`, encoded without `seq` under the tag
//! `envsync-audit-v1\0`. Such rows stay as they are: they are walked first, as that one
//! chain, and the first row of every project's chain chains from the last of them (or
//! from 32 zero bytes when there are none), so a change to them breaks every chain.
//!
//! Why one chain per project: the next row of a chain must be computed from the row
//! before it, so appending to a chain is serialised. With one chain for everything, every
//! write of every server on a shared PostgreSQL database waited for every other
//! (measured in `docs/storage.md`); with a chain per project, only writes to the same
//! project do (which the compare-and-swap on its branches needs anyway).
//!
//! A backend computes the hash inside the transaction that appends the row, with nothing
//! else appending to that chain meanwhile, so each chain is as atomic as its rows. A plain
//! hash chain proves the log is the one that was written *unless* someone rewrote every
//! hash after the point they changed, or cut the newest rows of a chain off: `audit verify`
//! prints the head of every chain (`head ID:HASH`, the last row's id and hash), and heads
//! kept elsewhere (`--anchor ID:HASH`, repeatable) turn a rewrite or a truncation into a
//! detected one. The server logs the heads at start and at an interval for the same
//! purpose.
//!
//! Once the chains hold, verification also accounts for every version: each must have its
//! accepted-push row (`action = 'push'`, `outcome = 'ok'`, same project, branch and
//! version) whose detail records the SHA-256 of the version's ciphertext. A version slipped
//! into the table, or a ciphertext changed, behind the server's back has none. A version
//! pushed with value fingerprints has them covered the same way: its row's detail also
//! records `fingerprints_sha256`, the SHA-256 of the `fingerprints` column's text (the
//! canonical JSON the server stored), and the column must match it; a row without that
//! field (every push without fingerprints, and every push from before they existed)
//! accounts only for a version whose column is NULL. So fingerprints edited, added or
//! removed behind the server's back — which would make clients show wrong "changed
//! values" — are found, and no row written before needed to change.
//!
//! This module holds the encodings and the walk over rows; each backend feeds it its rows
//! in id order ([`Walk`]) and its versions ([`Accounts`]) from one snapshot.

use super::{Event, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;

/// A SHA-256 hash of the chain.
pub type Hash = [u8; 32];

/// What the first row chains from.
pub const GENESIS: Hash = [0; 32];

/// The tag of the single chain of old rows (no `seq`).
const DOMAIN_V1: &[u8] = b"envsync-audit-v1\0";
/// The tag of the per-project chains.
const DOMAIN: &[u8] = b"envsync-audit-v2\0";

/// One audit row's fields as they are hashed.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub id: i64,
    /// The position in its chain; `None` for a row of the old single chain.
    pub seq: Option<i64>,
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
    /// The row an event becomes as row `id`, position `seq` of its project's chain,
    /// written at `at`.
    pub fn of(id: i64, seq: i64, at: &'a str, e: &'a Event) -> Result<Row<'a>, StoreError> {
        Ok(Row {
            id,
            seq: Some(seq),
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

    /// `SHA-256(prev || DOMAIN || encoding)` (the old encoding for a row without `seq`).
    pub fn hash(&self, prev: &Hash) -> Hash {
        let mut h = Sha256::new();
        h.update(prev);
        match self.seq {
            Some(seq) => {
                h.update(DOMAIN);
                int(&mut h, Some(self.id));
                int(&mut h, Some(seq));
            }
            None => {
                h.update(DOMAIN_V1);
                int(&mut h, Some(self.id));
            }
        }
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
    pub seq: Option<i64>,
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
            seq: self.seq,
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

/// The stored hash of row `id` (`None`: the column is NULL), or the error of a row whose
/// hash is missing or of the wrong length.
pub fn stored_hash(id: i64, bytes: Option<&[u8]>) -> Result<Hash, StoreError> {
    bytes.and_then(to_hash).ok_or_else(|| bad_hash(id))
}

/// The columns of `audit`, in the order of [`StoredRow`]'s fields.
pub const COLUMNS: &str =
    "id, seq, at, actor, action, project, branch, version, outcome, detail, hash";

/// `id, hash` of the last row of every per-project chain (and the server's), in id order.
/// The same SQL on every backend.
pub const HEADS: &str = "SELECT id, hash FROM audit WHERE id IN
         (SELECT MAX(id) FROM audit WHERE seq IS NOT NULL GROUP BY project)
     ORDER BY id";

/// `id, hash` of the last row of the old single chain (rows without `seq`), if any.
pub const OLD_HEAD: &str = "SELECT id, hash FROM audit WHERE seq IS NULL ORDER BY id DESC LIMIT 1";

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
        /// The last row's id and hash of every chain, in id order: keep them elsewhere to
        /// anchor later checks.
        heads: Vec<(u64, Hash)>,
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
    /// Its value fingerprints are not the ones its accepted-push row records (or it has
    /// some and the row records none, or the other way round).
    OtherFingerprints,
}

/// How the chain breaks at a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Rows of the old single chain before this one are gone: its ids run without gaps
    /// from 1.
    Missing { from: u64, to: u64 },
    /// Rows of this row's chain before it are gone: positions `from` to `to`.
    Gap {
        project: Option<String>,
        from: u64,
        to: u64,
    },
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
            Verdict::Intact { rows, heads } => {
                write!(f, "ok ({rows} rows)")?;
                for (id, hash) in heads {
                    write!(f, "\nhead {id}:{}", hex(hash))?;
                }
                Ok(())
            }
            Verdict::Broken { row, problem } => {
                let what = match problem {
                    Problem::Missing { from, to } if from == to => {
                        format!("row {from} is missing (deleted)")
                    }
                    Problem::Missing { from, to } => {
                        format!("rows {from} to {to} are missing (deleted)")
                    }
                    Problem::Gap { project, from, to } => {
                        let chain = match project {
                            Some(p) => format!("the chain of project '{p}'"),
                            None => "the server's chain".to_owned(),
                        };
                        if from == to {
                            format!("position {from} of {chain} is missing (deleted)")
                        } else {
                            format!("positions {from} to {to} of {chain} are missing (deleted)")
                        }
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
                    VersionProblem::OtherFingerprints => {
                        "does not have the value fingerprints its accepted-push audit row \
                         records (changed behind the server's back)"
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

/// The SHA-256 of `text`'s bytes, in lower-case hex (what a push's audit row records of
/// its ciphertext and fingerprints).
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()).into())
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
/// returns `false` (a chain broke), then take the verdict with [`Walk::finish`]. It also
/// gathers what the accepted pushes recorded, for [`Accounts`].
#[derive(Debug)]
pub struct Walk {
    /// The old single chain: its last hash and id.
    old_prev: Hash,
    old_last: u64,
    /// Each project's chain (`None`: the server's): its last position, hash and id.
    chains: HashMap<Option<String>, (i64, Hash, u64)>,
    rows: u64,
    anchors: Vec<((u64, Hash), bool)>,
    broken: Option<Verdict>,
    accounts: Accounts,
}

impl Walk {
    /// `anchors` are heads recorded earlier: each row must still be there with its hash.
    pub fn new(anchors: Vec<(u64, Hash)>) -> Walk {
        Walk {
            old_prev: GENESIS,
            old_last: 0,
            chains: HashMap::new(),
            rows: 0,
            anchors: anchors.into_iter().map(|a| (a, false)).collect(),
            broken: None,
            accounts: Accounts::default(),
        }
    }

    fn fail(&mut self, row: u64, problem: Problem) -> bool {
        self.broken = Some(Verdict::Broken { row, problem });
        false
    }

    /// Takes the next row; `false` once a chain is broken (later rows change nothing).
    pub fn row(&mut self, stored: &StoredRow) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let id = u64::try_from(stored.id).unwrap_or(0);
        let Some(hash) = stored.hash.as_deref().and_then(to_hash) else {
            return self.fail(id, Problem::NoHash);
        };
        let expected = match stored.seq {
            None => {
                // A row of the old single chain: they come first, with ids from 1 without
                // a gap (rows were never deleted, and a rolled-back row freed its id).
                if !self.chains.is_empty() {
                    return self.fail(id, Problem::Mismatch);
                }
                let last = self.old_last;
                if id != last + 1 {
                    let problem = if id > last + 1 {
                        Problem::Missing {
                            from: last + 1,
                            to: id - 1,
                        }
                    } else {
                        Problem::Mismatch
                    };
                    return self.fail(last + 1, problem);
                }
                let expected = stored.row().hash(&self.old_prev);
                if hash == expected {
                    self.old_prev = hash;
                    self.old_last = id;
                }
                expected
            }
            Some(seq) => {
                let chain = stored.project.clone();
                let (last, prev) = self
                    .chains
                    .get(&chain)
                    .map_or((0, self.old_prev), |(s, h, _)| (*s, *h));
                if seq != last + 1 {
                    if seq > last + 1 {
                        let from = u64::try_from(last + 1).unwrap_or(0);
                        let to = u64::try_from(seq - 1).unwrap_or(0);
                        let project = chain;
                        return self.fail(id, Problem::Gap { project, from, to });
                    }
                    return self.fail(id, Problem::Mismatch);
                }
                let expected = stored.row().hash(&prev);
                if hash == expected {
                    self.chains.insert(chain, (seq, hash, id));
                }
                expected
            }
        };
        if hash != expected {
            return self.fail(id, Problem::Mismatch);
        }
        for ((anchor_id, anchor_hash), seen) in &mut self.anchors {
            if *anchor_id == id {
                if hash != *anchor_hash {
                    self.broken = Some(Verdict::Broken {
                        row: id,
                        problem: Problem::Anchor,
                    });
                    return false;
                }
                *seen = true;
            }
        }
        if stored.action == "push" && stored.outcome == "ok" {
            self.accounts.record(stored);
        }
        self.rows += 1;
        true
    }

    /// The chains' verdict, and what they recorded of the versions (meaningful only when
    /// the verdict is [`Verdict::Intact`]).
    pub fn finish(self) -> (Verdict, Accounts) {
        if let Some(broken) = self.broken {
            return (broken, self.accounts);
        }
        if let Some(((anchor_id, _), _)) = self.anchors.iter().find(|(_, seen)| !seen) {
            let verdict = Verdict::Broken {
                row: *anchor_id,
                problem: Problem::Anchor,
            };
            return (verdict, self.accounts);
        }
        let mut heads: Vec<(u64, Hash)> =
            self.chains.values().map(|(_, h, id)| (*id, *h)).collect();
        if heads.is_empty() && self.old_last > 0 {
            heads.push((self.old_last, self.old_prev));
        }
        heads.sort();
        let verdict = Verdict::Intact {
            rows: self.rows,
            heads,
        };
        (verdict, self.accounts)
    }
}

/// What one accepted-push row recorded of its version: the SHA-256 of its ciphertext and
/// of its fingerprints' text (each `None` when the detail has no such field).
#[derive(Debug)]
struct Recorded {
    ciphertext: Option<String>,
    fingerprints: Option<String>,
}

/// What the accepted-push rows recorded, by version (normally one row each).
#[derive(Debug, Default)]
pub struct Accounts {
    recorded: HashMap<(String, String, i64), Vec<Recorded>>,
}

impl Accounts {
    fn record(&mut self, row: &StoredRow) {
        let Some(version) = row.version else { return };
        let detail = row
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
        let field = |name: &str| {
            detail
                .as_ref()
                .and_then(|d| d.get(name)?.as_str().map(str::to_owned))
        };
        let key = (
            row.project.clone().unwrap_or_default(),
            row.branch.clone().unwrap_or_default(),
            version,
        );
        self.recorded.entry(key).or_default().push(Recorded {
            ciphertext: field("ciphertext_sha256"),
            fingerprints: field("fingerprints_sha256"),
        });
    }

    /// Checks one stored version (`fingerprints`: its column's text, `None` for NULL); the
    /// verdict when it is not accounted for.
    pub fn check(
        &self,
        project: &str,
        branch: &str,
        version: i64,
        ciphertext: &str,
        fingerprints: Option<&str>,
    ) -> Option<Verdict> {
        let key = (project.to_owned(), branch.to_owned(), version);
        let problem = match self.recorded.get(&key) {
            None => VersionProblem::NoPushRow,
            Some(rows) => {
                let actual = sha256_hex(ciphertext);
                let prints = fingerprints.map(sha256_hex);
                let same_blob = |r: &&Recorded| r.ciphertext.as_deref() == Some(actual.as_str());
                if rows
                    .iter()
                    .filter(same_blob)
                    .any(|r| r.fingerprints == prints)
                {
                    return None;
                } else if rows.iter().any(|r| same_blob(&r)) {
                    VersionProblem::OtherFingerprints
                } else if rows.iter().all(|r| r.ciphertext.is_none()) {
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
            seq: Some(1),
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
        assert_ne!(
            h,
            Row {
                seq: Some(2),
                ..base
            }
            .hash(&GENESIS)
        );
        assert_ne!(h, Row { seq: None, ..base }.hash(&GENESIS));
        assert_ne!(h, base.hash(&[1; 32]));
        assert_eq!(h, base.hash(&GENESIS));
    }

    #[test]
    fn a_push_row_accounts_for_its_ciphertext_and_its_fingerprints() {
        let prints = r#"{"A":"0123456789abcdef0123456789abcdef"}"#;
        let row = |version: i64, detail: serde_json::Value| StoredRow {
            id: version,
            seq: Some(version),
            at: "t".into(),
            actor: "a".into(),
            action: "push".into(),
            project: Some("p".into()),
            branch: Some("main".into()),
            version: Some(version),
            outcome: "ok".into(),
            detail: Some(detail.to_string()),
            hash: None,
        };
        let mut accounts = Accounts::default();
        // Version 1 pushed without fingerprints (or before they existed), 2 with.
        accounts.record(&row(
            1,
            serde_json::json!({"ciphertext_sha256": sha256_hex("c1")}),
        ));
        accounts.record(&row(
            2,
            serde_json::json!({
                "ciphertext_sha256": sha256_hex("c2"),
                "fingerprints_sha256": sha256_hex(prints),
            }),
        ));
        let problem = |version, ciphertext, fingerprints| match accounts.check(
            "p",
            "main",
            version,
            ciphertext,
            fingerprints,
        ) {
            None => None,
            Some(Verdict::Unaccounted { problem, .. }) => Some(problem),
            Some(other) => panic!("{other:?}"),
        };
        assert_eq!(problem(1, "c1", None), None);
        assert_eq!(problem(2, "c2", Some(prints)), None);
        let other = r#"{"A":"ffffffffffffffffffffffffffffffff"}"#;
        for (version, ciphertext, fingerprints, expected) in [
            (1, "c1", Some(prints), VersionProblem::OtherFingerprints),
            (2, "c2", None, VersionProblem::OtherFingerprints),
            (2, "c2", Some(other), VersionProblem::OtherFingerprints),
            (2, "c1", Some(prints), VersionProblem::OtherCiphertext),
            (3, "c2", Some(prints), VersionProblem::NoPushRow),
        ] {
            assert_eq!(
                problem(version, ciphertext, fingerprints),
                Some(expected.clone()),
                "{version} {ciphertext} {fingerprints:?}"
            );
        }
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
                    seq: Some(id),
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
        let walk = |rows: &[StoredRow], anchors: Vec<(u64, Hash)>| {
            let mut walk = Walk::new(anchors);
            rows.iter().all(|r| walk.row(r));
            walk.finish().0
        };
        let Verdict::Intact { rows: 5, heads } = walk(&rows, vec![]) else {
            panic!("not intact")
        };
        let head = heads[0];
        assert!(matches!(walk(&rows, vec![head]), Verdict::Intact { .. }));
        assert!(matches!(
            walk(&rows[..4], vec![head]),
            Verdict::Broken {
                row: 5,
                problem: Problem::Anchor
            }
        ));
        let mut gap = rows.clone();
        gap.remove(2);
        assert!(matches!(
            walk(&gap, vec![]),
            Verdict::Broken {
                row: 4,
                problem: Problem::Gap { from: 3, to: 3, .. }
            }
        ));
        let mut edited = rows.clone();
        edited[1].actor = "mallory".into();
        assert!(matches!(
            walk(&edited, vec![]),
            Verdict::Broken {
                row: 2,
                problem: Problem::Mismatch
            }
        ));
    }
}
