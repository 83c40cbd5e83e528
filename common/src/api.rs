//! The JSON bodies of the HTTP API, shared by the server and the CLI.
//!
//! Field names are the contract of `docs/protocol.md`; changing one is a breaking change for
//! every deployed client. Times are RFC 3339 strings in UTC. None of these types holds a
//! plaintext value: `ciphertext` is an armored age file and `keys` are names only.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// `GET /whoami`: who the presented token says you are (used by `git envsync login` to
/// check a token before saving it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub email: String,
    pub role: Role,
    pub project_ids: Vec<String>,
}

/// `POST /env/{project}/{branch}` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    /// An ASCII-armored age file.
    pub ciphertext: String,
    /// The key names in the plaintext, in file order, each once.
    pub keys: Vec<String>,
    /// The version this push was made on top of; `None` for a branch's first push.
    pub base_version: Option<u64>,
    /// Value fingerprints (see `crate::fingerprint`): key name → 32 lowercase hex
    /// characters, one for every name in `keys`. Absent when the pusher sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprints: Option<Fingerprints>,
}

/// Value fingerprints of one version: key name → fingerprint, and under
/// [`FINGERPRINT_KEY_ID`] the id of the key they were made with (fingerprints made with
/// different keys are not comparable).
pub type Fingerprints = BTreeMap<String, String>;

/// The entry of [`Fingerprints`] that holds the key's id: the empty name, never a key's.
pub const FINGERPRINT_KEY_ID: &str = "";

/// Whether `fingerprints` fits `keys`: the key id and one fingerprint for every name and
/// no other, each 32 lowercase hex characters. A problem names a name of `keys` (or the key
/// id), never a fingerprint, and never a name that is not in `keys`: those are counted, as
/// they could be anything, of any length.
pub fn fingerprints_fit(keys: &[String], fingerprints: &Fingerprints) -> Result<(), String> {
    let names: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let strangers = fingerprints
        .keys()
        .filter(|name| *name != FINGERPRINT_KEY_ID && !names.contains(name.as_str()))
        .count();
    if strangers > 0 {
        return Err(format!("{strangers} of them are for names not in keys"));
    }
    if let Some((name, _)) = fingerprints.iter().find(|(_, f)| {
        f.len() != 32
            || !f
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }) {
        let name = if name.is_empty() { "the key id" } else { name };
        return Err(format!(
            "the fingerprint of {name} is not 32 lowercase hex characters"
        ));
    }
    if !fingerprints.contains_key(FINGERPRINT_KEY_ID) {
        return Err("no key id (the entry named \"\")".to_owned());
    }
    if let Some(name) = keys.iter().find(|n| !fingerprints.contains_key(*n)) {
        return Err(format!("no fingerprint for {name}"));
    }
    Ok(())
}

/// `POST /env/{project}/{branch}` answer (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    pub version: u64,
}

/// `GET /env/{project}/{branch}[?version=N]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvResponse {
    pub version: u64,
    pub ciphertext: String,
    pub keys: Vec<String>,
    pub pushed_by: String,
    pub pushed_at: String,
    /// Value fingerprints (see `crate::fingerprint`): key name → 32 lowercase hex
    /// characters, one for every name in `keys`. Absent when the pusher sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprints: Option<Fingerprints>,
}

/// `GET /env/{project}/{branch}/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysResponse {
    pub version: u64,
    pub keys: Vec<String>,
    /// Value fingerprints (see `crate::fingerprint`): key name → 32 lowercase hex
    /// characters, one for every name in `keys`. Absent when the pusher sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprints: Option<Fingerprints>,
}

/// One row of `GET /env/{project}/{branch}/versions` (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: u64,
    pub keys: Vec<String>,
    pub pushed_by: String,
    pub pushed_at: String,
    /// Value fingerprints (see `crate::fingerprint`): key name → 32 lowercase hex
    /// characters, one for every name in `keys`. Absent when the pusher sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprints: Option<Fingerprints>,
}

/// `GET /env/{project}/{branch}/versions?limit=N&before=V`: a branch's versions, newest
/// first. Pass `next_before` back as `before` for the next (older) page; it is `null` on
/// the last page. A page holds at most `limit` versions, and fewer when their key names
/// pass the server's byte budget for one page (never fewer than one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionsPage {
    pub versions: Vec<VersionInfo>,
    pub next_before: Option<u64>,
}

impl VersionsPage {
    /// Versions per page when `limit` is not given.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// Largest `limit` accepted.
    pub const MAX_LIMIT: u32 = 100;
}

/// One row of `GET /env/{project}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchInfo {
    pub branch: String,
    pub version: u64,
    pub key_count: u64,
    pub pushed_by: String,
    pub pushed_at: String,
}

/// `GET /env/{project}?limit=N&after=BRANCH`: a project's branches in name order (bytewise),
/// each with its latest version. Pass `next_after` back as `after` for the next page; it is
/// `null` on the last page. The cursor is a branch name, so the page goes forward (`after`)
/// where the id-ordered, newest-first lists go back (`before`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchesPage {
    pub branches: Vec<BranchInfo>,
    pub next_after: Option<String>,
}

impl BranchesPage {
    /// Branches per page when `limit` is not given.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// Largest `limit` accepted.
    pub const MAX_LIMIT: u32 = 1000;
}

/// One audit event. `outcome` is `ok` or the error code that ended the request
/// (`forbidden`, `conflict`, `not_found`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: u64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub project: Option<String>,
    pub branch: Option<String>,
    pub version: Option<u64>,
    pub outcome: String,
    /// Extra non-secret context: key names added/removed, a token's jti, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `GET /audit/{project}?limit=N&before=ID`: newest first; pass `next_before` as
/// `before` to get the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next_before: Option<u64>,
}

impl AuditPage {
    /// Events per page when `limit` is not given.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest `limit` accepted.
    pub const MAX_LIMIT: u32 = 500;
}

/// A token's role. `owner` may do everything on every project; `developer` reads and
/// pushes its projects; `readonly` only reads its projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Readonly,
    Developer,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Readonly => "readonly",
            Role::Developer => "developer",
            Role::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "readonly" => Ok(Role::Readonly),
            "developer" => Ok(Role::Developer),
            "owner" => Ok(Role::Owner),
            _ => Err(format!(
                "unknown role '{s}' (expected owner, developer or readonly)"
            )),
        }
    }
}

/// `POST /tokens` request body. `ttl` is a duration such as `3600`, `"90m"`, `"12h"` or
/// `"30d"` (see [`parse_ttl`]); the server picks its default when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub email: String,
    pub role: Role,
    #[serde(default)]
    pub project_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Ttl>,
}

/// A time-to-live as it appears on the wire: seconds, or a string with a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ttl {
    Seconds(u64),
    Text(String),
}

impl Ttl {
    /// The duration in seconds, or why it is not one.
    pub fn seconds(&self) -> Result<u64, String> {
        match self {
            Ttl::Seconds(0) => Err("ttl must be at least one second".to_owned()),
            Ttl::Seconds(s) => Ok(*s),
            Ttl::Text(t) => parse_ttl(t),
        }
    }
}

/// Parses `30d`, `12h`, `90m`, `45s` or a bare number of seconds.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (try 3600, 90m, 12h or 30d)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit (use s, m, h, d or w)"
            ));
        }
    };
    n.checked_mul(scale)
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("'{text}' is not a usable duration"))
}

/// `POST /tokens` answer (201). The token is shown once and never stored by the server.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
    pub jti: String,
    pub expires_at: String,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token", &"[redacted]")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One row of `GET /tokens`: what the server keeps about a minted token (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub jti: String,
    pub email: String,
    pub role: Role,
    pub project_ids: Vec<String>,
    pub issued_at: String,
    pub expires_at: String,
    pub revoked: bool,
}

/// Every error answer: `{"error": "<code>", "message": "<one human line>"}`; a 409 on push
/// also carries `current_version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
}

/// The last push to a project: which branch, which version, who and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPush {
    pub branch: String,
    pub version: u64,
    pub pushed_by: String,
    pub pushed_at: String,
}

/// One row of `GET /projects`: a project the token may read, how many branches have an
/// env, and its most recent push (`null` for a project with no env yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    pub project: String,
    pub branch_count: u64,
    pub last_push: Option<LastPush>,
}

/// `GET /projects?limit=N&after=PROJECT`: the projects the token may read, in name order.
/// An owner token without `project_ids` sees every project that holds a version; any
/// other token sees its `project_ids` (also those with no version yet). Pass `next_after`
/// back as `after` for the next page; it is `null` on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectsPage {
    pub projects: Vec<ProjectInfo>,
    pub next_after: Option<String>,
}

impl ProjectsPage {
    /// Projects per page when `limit` is not given.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest `limit` accepted.
    pub const MAX_LIMIT: u32 = 200;
}

/// What a matrix cell says of one key on one branch, compared with the default branch.
/// On the wire it is one character of [`MatrixBranch::cells`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `p`: on this branch and on the default branch, with the same value or values that
    /// cannot be compared (a version without fingerprints).
    Present,
    /// `d`: on this branch and on the default branch, with values whose fingerprints differ.
    Differs,
    /// `m`: on the default branch, not on this one.
    Missing,
    /// `o`: on this branch only, not on the default branch.
    Only,
    /// `.`: on neither (another branch of the page has it).
    Absent,
}

impl Cell {
    pub fn of(here: bool, on_default: bool) -> Cell {
        match (here, on_default) {
            (true, true) => Cell::Present,
            (false, true) => Cell::Missing,
            (true, false) => Cell::Only,
            (false, false) => Cell::Absent,
        }
    }

    pub fn as_char(self) -> char {
        match self {
            Cell::Present => 'p',
            Cell::Differs => 'd',
            Cell::Missing => 'm',
            Cell::Only => 'o',
            Cell::Absent => '.',
        }
    }

    pub fn from_char(c: char) -> Option<Cell> {
        match c {
            'p' => Some(Cell::Present),
            'd' => Some(Cell::Differs),
            'm' => Some(Cell::Missing),
            'o' => Some(Cell::Only),
            '.' => Some(Cell::Absent),
            _ => None,
        }
    }
}

/// One column of the matrix: a branch's latest version, compared with the default branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixBranch {
    pub branch: String,
    pub version: u64,
    pub key_count: u64,
    pub pushed_by: String,
    pub pushed_at: String,
    /// Keys of the default branch this branch lacks.
    pub missing: u64,
    /// Keys this branch has that the default branch lacks.
    pub only: u64,
    /// Keys on both whose values differ (by their fingerprints). Absent from a server
    /// that does not compare values: 0.
    #[serde(default)]
    pub differs: u64,
    /// One [`Cell`] character per entry of [`MatrixPage::keys`], in that order.
    pub cells: String,
}

/// `GET /matrix/{project}?limit=N&after=BRANCH&default=BRANCH`: key names (rows) ×
/// branches (columns) from names alone. Every page starts with the default branch's
/// column, then up to `limit` other branches in name order; `keys` is every name of the
/// default branch and of the page's branches, sorted, so each page stands alone (a key
/// missing from another page's `keys` is on neither that page's branches nor the default
/// branch). The default branch is `default` when given, else `main`, else `master`, else
/// the first branch by name; `null` (with no columns) for a project with no env yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixPage {
    pub default_branch: Option<String>,
    pub keys: Vec<String>,
    pub branches: Vec<MatrixBranch>,
    pub next_after: Option<String>,
}

impl MatrixPage {
    /// Branches per page (besides the default branch) when `limit` is not given.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest `limit` accepted.
    pub const MAX_LIMIT: u32 = 100;
}

/// Which version an audit chain check could not account for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    pub project: String,
    pub branch: String,
    pub version: u64,
}

/// `GET /audit-chain`: the result of the walk `envsync-server audit verify` runs. `ok`
/// with `rows` and the `head` (`ID:HASH`, what `audit verify --anchor` takes; `null` for an
/// empty log), or not `ok` with the first bad row (`bad_row`) or the first version the log
/// does not account for (`bad_version`). `message` is the line `audit verify` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// `ID:HASH` of the last row of every chain (one per project, one for the server's
    /// events): each is an `audit verify --anchor`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_row: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_version: Option<VersionRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_fit_their_keys_exactly() {
        let keys = vec!["A".to_owned(), "B".to_owned()];
        let good = "0123456789abcdef0123456789abcdef".to_owned();
        let map = |pairs: &[(&str, &str)]| -> Fingerprints {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let id = FINGERPRINT_KEY_ID;
        assert!(fingerprints_fit(&keys, &map(&[(id, &good), ("A", &good), ("B", &good)])).is_ok());
        assert!(fingerprints_fit(&keys, &map(&[("A", &good), ("B", &good)])).is_err());
        assert!(fingerprints_fit(&keys, &map(&[(id, &good), ("A", &good)])).is_err());
        let extra = map(&[(id, &good), ("A", &good), ("B", &good), ("C", &good)]);
        assert!(fingerprints_fit(&keys, &extra).is_err());
        // A name not in keys is counted, never repeated, even when its fingerprint is bad.
        let stranger = map(&[(id, &good), ("A", &good), ("B", &good), ("C-sentinel", "x")]);
        assert_eq!(
            fingerprints_fit(&keys, &stranger).unwrap_err(),
            "1 of them are for names not in keys"
        );
        let upper = good.to_uppercase();
        assert!(
            fingerprints_fit(&keys, &map(&[(id, &good), ("A", &good), ("B", &upper)])).is_err()
        );
        let short = map(&[(id, &good), ("A", &good), ("B", &good[1..])]);
        assert!(fingerprints_fit(&keys, &short).is_err());
        assert!(fingerprints_fit(&keys, &map(&[(id, "x"), ("A", &good), ("B", &good)])).is_err());
        assert!(fingerprints_fit(&[], &map(&[(id, &good)])).is_ok());
    }

    #[test]
    fn cells_round_trip_through_their_character() {
        for cell in [
            Cell::Present,
            Cell::Differs,
            Cell::Missing,
            Cell::Only,
            Cell::Absent,
        ] {
            assert_eq!(Cell::from_char(cell.as_char()), Some(cell));
        }
        assert_eq!(Cell::Differs.as_char(), 'd');
        assert_eq!(Cell::from_char('x'), None);
        // A matrix from a server that does not compare values has no `differs`: 0.
        let column: MatrixBranch = serde_json::from_str(
            r#"{"branch":"b","version":1,"key_count":1,"pushed_by":"a","pushed_at":"t",
                "missing":0,"only":0,"cells":"p"}"#,
        )
        .unwrap();
        assert_eq!(column.differs, 0);
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("30d"), Ok(30 * 86_400));
        assert_eq!(parse_ttl("12h"), Ok(43_200));
        assert_eq!(parse_ttl("90m"), Ok(5_400));
        assert_eq!(parse_ttl("45"), Ok(45));
        for bad in ["", "0", "d", "3x", "-1d", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wire_shapes() {
        let body: PushRequest =
            serde_json::from_str(r#"{"ciphertext":"c","keys":["A"],"base_version":null}"#).unwrap();
        assert_eq!(body.base_version, None);
        let req: TokenRequest = serde_json::from_str(
            r#"{"email":"a@b","role":"developer","project_ids":["p"],"ttl":"30d"}"#,
        )
        .unwrap();
        assert_eq!(req.ttl.unwrap().seconds(), Ok(30 * 86_400));
        assert!(Ttl::Seconds(0).seconds().is_err());
        let err = ErrorBody {
            error: "conflict".into(),
            message: "m".into(),
            current_version: Some(3),
        };
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"error":"conflict","message":"m","current_version":3}"#
        );
        let token = TokenResponse {
            token: "eyJsecret".into(),
            jti: "j".into(),
            expires_at: "t".into(),
        };
        assert!(!format!("{token:?}").contains("eyJsecret"));
    }
}
