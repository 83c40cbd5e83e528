//! Timestamps as the API shows them: RFC 3339 in UTC, millisecond precision.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats `t` as RFC 3339 UTC with milliseconds (`2025-01-31T12:00:00.123Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_millisecond(t.millisecond()).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A Unix time in seconds as RFC 3339, for token expiry dates.
pub fn unix_rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or_else(|| secs.to_string(), rfc3339)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
