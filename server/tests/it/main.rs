//! The server's integration tests: one binary, a real server on a loopback port in each.

// clippy.toml allows unwrap in `#[test]` functions; the helpers they call are test code
// too, where a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

mod api;
mod audit;
mod auth;
mod binary;
mod concurrency;
mod connections;
mod dashboard;
mod disk;
mod durability;
mod hygiene;
mod limits;
mod load;
mod replicas;
mod scope;
mod store;
