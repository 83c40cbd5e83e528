//! End-to-end tests: the real `envsync-server` on a loopback port, real git repositories,
//! the real `git-envsync` binary. One test binary (each binary is a link step on a small
//! machine), one module per area.

mod agent;
mod branch_names;
mod cli;
mod dashboard;
mod faults;
mod fidelity;
mod fingerprints;
mod hooks;
mod kit;
mod malicious;
mod merge;
mod model;
mod prompt;
mod provenance;
mod secrets;
mod team;
mod tls;
mod trust;
mod watch;
