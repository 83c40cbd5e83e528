//! The redaction assert: a type that holds a secret prints a marker under `{:?}` and
//! `{:#?}`, never the secret. Tests put [`SENTINEL`] in every secret they build, so a leak
//! is one `contains` away.

use std::fmt::Debug;

/// The secret tests hand to the types under test: unmistakable in any output.
pub const SENTINEL: &str = "SENTINEL_9f3a_c0ffee";

/// Asserts that both `Debug` forms of `value` show a redaction marker and never
/// [`SENTINEL`]; `what` names it in the failure.
#[track_caller]
pub fn assert_redacted(what: &str, value: &impl Debug) {
    for shown in [format!("{value:?}"), format!("{value:#?}")] {
        assert!(!shown.contains(SENTINEL), "{what} leaks: {shown}");
        assert!(
            shown.to_lowercase().contains("redacted"),
            "{what} has no marker: {shown}"
        );
    }
}
