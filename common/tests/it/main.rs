//! The common crate's integration tests in one binary: fixtures, properties, redaction,
//! tampering, the age test kit.

mod fixtures;
mod properties;
mod redaction;
mod tamper;
mod testkit;
