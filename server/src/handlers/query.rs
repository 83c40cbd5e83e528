//! Query strings: `?version=N`, and the `limit` and cursor of the paged lists.
//!
//! warp deserializes each parameter as text; the numbers are checked here rather than by
//! serde, so a value that does not fit gets a 400 that names the parameter and its range
//! instead of a generic "malformed query" — and never reaches SQLite, whose integers are
//! signed 64-bit (a `u64` above `i64::MAX` used to end as a 500).

use crate::error::ApiError;
use envsync_common::names::{NameError, validate_branch, validate_project};
use serde::Deserialize;

/// The largest number a query may carry: SQLite's integers are `i64`.
pub const MAX_NUMBER: u64 = i64::MAX as u64;

/// `?version=N` on a pull.
#[derive(Debug, Default, Deserialize)]
pub struct PullQuery {
    version: Option<String>,
}

impl PullQuery {
    pub fn version(&self) -> Result<Option<u64>, ApiError> {
        self.version
            .as_deref()
            .map(|v| number("version", v))
            .transpose()
    }
}

/// `?limit=N&before=ID` of the lists that go back from the newest (versions, audit).
#[derive(Debug, Default, Deserialize)]
pub struct BeforeQuery {
    limit: Option<String>,
    before: Option<String>,
}

impl BeforeQuery {
    /// The page size, `default` when absent.
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        limit(self.limit.as_deref(), default, max)
    }

    /// The cursor: only rows below this one.
    pub fn before(&self) -> Result<Option<u64>, ApiError> {
        self.before
            .as_deref()
            .map(|v| number("before", v))
            .transpose()
    }
}

/// `?limit=N&after=BRANCH` of the branch list, which goes forward in name order.
#[derive(Debug, Default, Deserialize)]
pub struct AfterQuery {
    limit: Option<String>,
    after: Option<String>,
}

impl AfterQuery {
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        limit(self.limit.as_deref(), default, max)
    }

    /// The cursor: only branches whose name sorts after this one. Empty means none.
    pub fn after(&self) -> Result<Option<String>, ApiError> {
        name("after", self.after.as_deref(), validate_branch)
    }

    /// The cursor of `/projects`: only projects whose id sorts after this one.
    pub fn after_project(&self) -> Result<Option<String>, ApiError> {
        name("after", self.after.as_deref(), validate_project)
    }
}

/// `?default=BRANCH` of the matrix: the branch the others are compared with.
#[derive(Debug, Default, Deserialize)]
pub struct MatrixQuery {
    default: Option<String>,
}

impl MatrixQuery {
    pub fn default_branch(&self) -> Result<Option<String>, ApiError> {
        name("default", self.default.as_deref(), validate_branch)
    }
}

/// A name parameter checked by `validate`; absent or empty is none.
fn name(
    param: &str,
    value: Option<&str>,
    validate: fn(&str) -> Result<(), NameError>,
) -> Result<Option<String>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(name) => validate(name)
            .map(|()| Some(name.to_owned()))
            .map_err(|e| ApiError::bad_request(format!("{param}: invalid {e}"))),
    }
}

/// `?action=…&actor=…&branch=…&outcome=…` of the audit lists: exact matches, each
/// optional.
#[derive(Debug, Default, Deserialize)]
pub struct AuditFilterQuery {
    action: Option<String>,
    actor: Option<String>,
    branch: Option<String>,
    outcome: Option<String>,
}

/// The audit filters of a request, checked; empty values are no filter.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub branch: Option<String>,
    pub outcome: Option<String>,
}

/// Longest filter value accepted: an email is at most 320 bytes, a branch 255.
pub const MAX_FILTER_LEN: usize = 320;

impl AuditFilterQuery {
    pub fn filter(&self) -> Result<AuditFilter, ApiError> {
        let check = |name: &str, value: &Option<String>| match value.as_deref() {
            None | Some("") => Ok(None),
            Some(v) if v.len() > MAX_FILTER_LEN || v.chars().any(char::is_control) => {
                Err(ApiError::bad_request(format!(
                    "{name} must be at most {MAX_FILTER_LEN} bytes with no control characters"
                )))
            }
            Some(v) => Ok(Some(v.to_owned())),
        };
        Ok(AuditFilter {
            action: check("action", &self.action)?,
            actor: check("actor", &self.actor)?,
            branch: check("branch", &self.branch)?,
            outcome: check("outcome", &self.outcome)?,
        })
    }
}

/// A whole number from 0 to [`MAX_NUMBER`]: digits only, no sign, no spaces.
pub fn number(name: &str, text: &str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "{name} must be a whole number from 0 to {MAX_NUMBER}"
        ))
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u64>()
        .ok()
        .filter(|&n| n <= MAX_NUMBER)
        .ok_or_else(bad)
}

fn limit(text: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    number("limit", text)
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| ApiError::bad_request(format!("limit must be between 1 and {max}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::StatusCode;

    #[test]
    fn numbers_that_do_not_fit_are_400_naming_the_parameter() {
        assert_eq!(number("v", "0").unwrap(), 0);
        assert_eq!(number("v", "9223372036854775807").unwrap(), MAX_NUMBER);
        for bad in [
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
            "-1",
            "+1",
            " 1",
            "1.0",
            "1e3",
            "0x10",
            "",
        ] {
            let err = number("before", bad).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(err.message.starts_with("before must be"), "{}", err.message);
        }
        assert_eq!(limit(None, 20, 100).unwrap(), 20);
        assert_eq!(limit(Some("100"), 20, 100).unwrap(), 100);
        for bad in ["0", "101", "4294967296", "-5", "x"] {
            let err = limit(Some(bad), 20, 100).unwrap_err();
            assert_eq!(err.message, "limit must be between 1 and 100", "{bad}");
        }
    }
}
