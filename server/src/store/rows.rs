//! Stored rows as the API shows them, the same on every backend. A backend reads its
//! columns with its own driver and hands the values here: stored JSON is parsed, a page of
//! versions or audit events is bounded, and a page's next cursor is found in one place, so
//! SQLite and PostgreSQL cannot drift apart in what they answer.
//!
//! Also here: the column lists and the few statements both SQL dialects write alike.

use super::{AUDIT_PAGE_BYTES, PAGE_KEY_BYTES, StoreError, StoredToken, read_fingerprints};
use envsync_common::api::{
    AuditEvent, AuditPage, EnvResponse, KeysResponse, Role, TokenInfo, VersionInfo, VersionsPage,
};
use std::fmt;

/// The columns of `tokens`, in the order of [`TokenRow`].
pub const TOKEN_COLUMNS: &str = "jti, email, role, project_ids, issued_at, expires_at, revoked_at";

/// The columns of `audit` a page of events shows, in the order of
/// [`envsync_common::api::AuditEvent`]'s fields.
pub const EVENT_COLUMNS: &str = "id, at, actor, action, project, branch, version, outcome, detail";

/// Whether a store holds any version, token or audit row.
pub const HOLDS_DATA: &str =
    "SELECT EXISTS (SELECT 1 FROM versions) OR EXISTS (SELECT 1 FROM tokens)
     OR EXISTS (SELECT 1 FROM audit)";

/// How many versions, audit rows and tokens a store holds, in that order.
pub const COUNTS: &str = "SELECT (SELECT COUNT(*) FROM versions), (SELECT COUNT(*) FROM audit),
        (SELECT COUNT(*) FROM tokens)";

/// One row of `tokens`, selected as [`TOKEN_COLUMNS`], before its stored text is parsed.
#[derive(Debug)]
pub struct TokenRow {
    pub jti: String,
    pub email: String,
    pub role: String,
    /// The stored JSON array.
    pub project_ids: String,
    pub issued_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
}

impl TokenRow {
    /// The token record; an error names the token (never more of it) when a stored value
    /// does not parse.
    pub fn parse(self) -> Result<StoredToken, StoreError> {
        let role = self
            .role
            .parse::<Role>()
            .map_err(|e| StoreError::Other(format!("token {}: {e}", self.jti)))?;
        Ok(StoredToken {
            info: TokenInfo {
                role,
                project_ids: serde_json::from_str(&self.project_ids)?,
                email: self.email,
                issued_at: self.issued_at,
                expires_at: self.expires_at,
                revoked: self.revoked_at.is_some(),
                jti: self.jti,
            },
            revoked_at: self.revoked_at,
        })
    }
}

/// A version's key names (the stored JSON array) and fingerprints (the stored JSON object,
/// if any) as `GET …/keys` shows them.
pub fn keys(
    version: u64,
    keys: &str,
    fingerprints: Option<&str>,
) -> Result<KeysResponse, StoreError> {
    Ok(KeysResponse {
        version,
        keys: serde_json::from_str(keys)?,
        fingerprints: read_fingerprints(fingerprints)?,
    })
}

/// One version with its ciphertext, as a pull answers it.
pub struct PulledRow {
    pub version: u64,
    pub ciphertext: String,
    /// The stored JSON array.
    pub keys: String,
    pub pushed_by: String,
    pub pushed_at: String,
    /// The stored JSON object, if any.
    pub fingerprints: Option<String>,
}

impl fmt::Debug for PulledRow {
    // The ciphertext never belongs in a log line: its size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PulledRow")
            .field("version", &self.version)
            .field(
                "ciphertext",
                &format_args!("[{} bytes]", self.ciphertext.len()),
            )
            .finish_non_exhaustive()
    }
}

impl PulledRow {
    pub fn parse(self) -> Result<EnvResponse, StoreError> {
        Ok(EnvResponse {
            version: self.version,
            ciphertext: self.ciphertext,
            keys: serde_json::from_str(&self.keys)?,
            pushed_by: self.pushed_by,
            pushed_at: self.pushed_at,
            fingerprints: read_fingerprints(self.fingerprints.as_deref())?,
        })
    }
}

/// One row of a page of versions, newest first, before its stored text is parsed.
#[derive(Debug)]
pub struct VersionRow {
    pub version: u64,
    /// The stored JSON array.
    pub keys: String,
    pub pushed_by: String,
    pub pushed_at: String,
    /// The stored JSON object, if any.
    pub fingerprints: Option<String>,
}

/// A page of up to `limit` versions from `rows` (fetched with one row more than `limit`,
/// which tells whether another page follows). The page ends early, after at least one
/// version, rather than pass [`PAGE_KEY_BYTES`] of stored key names and fingerprints.
/// Rows are read only as far as the page needs them.
pub fn versions_page(
    limit: u32,
    rows: impl IntoIterator<Item = Result<VersionRow, StoreError>>,
) -> Result<VersionsPage, StoreError> {
    let mut versions: Vec<VersionInfo> = Vec::new();
    let mut bytes = 0usize;
    let mut next_before = None;
    for row in rows {
        let row = row?;
        let size = row.keys.len() + row.fingerprints.as_ref().map_or(0, String::len);
        let full = versions.len() == limit as usize || bytes.saturating_add(size) > PAGE_KEY_BYTES;
        if full && let Some(last) = versions.last() {
            next_before = Some(last.version);
            break;
        }
        bytes += size;
        versions.push(VersionInfo {
            version: row.version,
            keys: serde_json::from_str(&row.keys)?,
            pushed_by: row.pushed_by,
            pushed_at: row.pushed_at,
            fingerprints: read_fingerprints(row.fingerprints.as_deref())?,
        });
    }
    Ok(VersionsPage {
        versions,
        next_before,
    })
}

/// The stored text of an audit event, in bytes: what [`AUDIT_PAGE_BYTES`] counts. Its JSON
/// answer is a little larger (field names, quotes, escapes), never several times larger:
/// the text is names, times and the JSON `detail`, whose quotes are escaped.
pub fn event_bytes(event: &AuditEvent) -> usize {
    let text = [
        Some(&event.at),
        Some(&event.actor),
        Some(&event.action),
        event.project.as_ref(),
        event.branch.as_ref(),
        Some(&event.outcome),
        event.detail.as_ref(),
    ];
    text.into_iter().flatten().map(String::len).sum()
}

/// A page of audit events being gathered, newest first: at most `limit` events and, after
/// the first, no more than [`AUDIT_PAGE_BYTES`] of their text (see [`event_bytes`]).
#[derive(Debug)]
pub struct EventsPage {
    limit: usize,
    bytes: usize,
    events: Vec<AuditEvent>,
    next_before: Option<u64>,
}

impl EventsPage {
    pub fn new(limit: u32) -> EventsPage {
        EventsPage {
            limit: limit.max(1) as usize,
            bytes: 0,
            events: Vec::new(),
            next_before: None,
        }
    }

    /// Adds the next event, or, when the page has no room left for it, ends the page before
    /// it (its cursor is then the last event kept) and returns `false`: read no further.
    pub fn add(&mut self, event: AuditEvent) -> bool {
        let size = event_bytes(&event);
        let full =
            self.events.len() == self.limit || self.bytes.saturating_add(size) > AUDIT_PAGE_BYTES;
        if full && let Some(last) = self.events.last() {
            self.next_before = Some(last.id);
            return false;
        }
        self.bytes += size;
        self.events.push(event);
        true
    }

    /// Whether the page holds `limit` events.
    pub fn is_full(&self) -> bool {
        self.events.len() == self.limit
    }

    /// The page, with the cursor of its next page if an event was left for it (or `next`,
    /// where the caller stopped reading for a reason of its own).
    pub fn finish(self, next: Option<u64>) -> AuditPage {
        AuditPage {
            events: self.events,
            next_before: self.next_before.or(next),
        }
    }
}

/// A page of up to `limit` audit events from `rows`, newest first, fetched with one row
/// more than `limit` (which tells whether another page follows); it ends early as
/// [`EventsPage`] says. Rows are read only as far as the page needs them.
pub fn events_page(
    limit: u32,
    rows: impl IntoIterator<Item = Result<AuditEvent, StoreError>>,
) -> Result<AuditPage, StoreError> {
    let mut page = EventsPage::new(limit);
    for row in rows {
        if !page.add(row?) {
            break;
        }
    }
    Ok(page.finish(None))
}

/// Cuts `items`, fetched with one more than `limit` (which tells whether another page
/// follows), to `limit`, and returns the next page's cursor: `cursor` of the last item
/// kept, or `None` when nothing follows.
pub fn next_page<T, C>(items: &mut Vec<T>, limit: u32, cursor: impl FnOnce(&T) -> C) -> Option<C> {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(cursor)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: u64, keys: &str) -> Result<VersionRow, StoreError> {
        Ok(VersionRow {
            version,
            keys: keys.to_owned(),
            pushed_by: "a@example.com".into(),
            pushed_at: "2026-01-01T00:00:00Z".into(),
            fingerprints: None,
        })
    }

    #[test]
    fn a_page_of_versions_stops_at_its_limit_or_its_bytes_and_reads_no_further() {
        let page = versions_page(2, [row(3, "[]"), row(2, "[]"), row(1, "[]")]).unwrap();
        assert_eq!(page.versions.len(), 2);
        assert_eq!(page.next_before, Some(2));
        let last = versions_page(5, [row(2, "[\"A\"]"), row(1, "[]")]).unwrap();
        assert_eq!((last.versions.len(), last.next_before), (2, None));
        // One version is always served, however large; the next one waits for its page.
        let big = format!("[\"{}\"]", "K".repeat(PAGE_KEY_BYTES));
        let rows = [
            row(3, &big),
            row(2, "[]"),
            Err(StoreError::Other("never read".into())),
        ];
        let page = versions_page(10, rows).unwrap();
        assert_eq!((page.versions.len(), page.next_before), (1, Some(3)));
    }

    fn event(id: u64, detail: usize) -> Result<AuditEvent, StoreError> {
        Ok(AuditEvent {
            id,
            at: String::new(),
            actor: String::new(),
            action: "push".into(),
            project: None,
            branch: None,
            version: None,
            outcome: "ok".into(),
            detail: Some("d".repeat(detail)),
        })
    }

    #[test]
    fn a_page_of_events_stops_at_its_limit_or_its_bytes_and_reads_no_further() {
        let page = events_page(2, [event(3, 1), event(2, 1), event(1, 1)]).unwrap();
        assert_eq!((page.events.len(), page.next_before), (2, Some(2)));
        let last = events_page(5, [event(2, 1), event(1, 1)]).unwrap();
        assert_eq!((last.events.len(), last.next_before), (2, None));
        // Two events that fit together, then one that would pass the budget.
        let half = AUDIT_PAGE_BYTES / 2 - 10;
        let rows = [
            event(9, half),
            event(8, half),
            event(7, half),
            Err(StoreError::Other("never read".into())),
        ];
        let page = events_page(500, rows).unwrap();
        assert_eq!((page.events.len(), page.next_before), (2, Some(8)));
        // One event is always served, however large.
        let rows = [event(3, AUDIT_PAGE_BYTES * 2), event(2, 1)];
        let page = events_page(500, rows).unwrap();
        assert_eq!((page.events.len(), page.next_before), (1, Some(3)));
    }

    #[test]
    fn the_next_cursor_is_the_last_item_kept_when_more_follow() {
        let mut items = vec![1, 2, 3];
        assert_eq!(next_page(&mut items, 2, |i| *i), Some(2));
        assert_eq!(items, [1, 2]);
        assert_eq!(next_page(&mut items, 2, |i| *i), None);
        assert_eq!(items, [1, 2]);
    }

    #[test]
    fn a_token_row_that_does_not_parse_names_only_its_id() {
        let token = TokenRow {
            jti: "j1".into(),
            email: "a@example.com".into(),
            role: "developer".into(),
            project_ids: "[\"p\"]".into(),
            issued_at: "t0".into(),
            expires_at: "t1".into(),
            revoked_at: Some("t2".into()),
        };
        let parsed = token.parse().unwrap();
        assert!(parsed.info.revoked);
        assert_eq!(parsed.info.project_ids, ["p"]);
        let bad = TokenRow {
            jti: "j2".into(),
            email: "secret-sentinel@example.com".into(),
            role: "superuser".into(),
            project_ids: "[]".into(),
            issued_at: "t0".into(),
            expires_at: "t1".into(),
            revoked_at: None,
        };
        let err = bad.parse().unwrap_err().to_string();
        assert!(
            err.contains("token j2") && !err.contains("sentinel"),
            "{err}"
        );
    }
}
