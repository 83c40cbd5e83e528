//! What the envsync client and server agree on, with no I/O of its own.
//!
//! - Use [`names`] to check a project id, branch name or key name before it crosses the wire
//!   or touches storage.
//! - Use [`envfile`] to read the key names of a `.env` file (for drift) and, in the client
//!   only, its values (for `git envsync run`). Nothing is ever expanded or executed.
//! - Use [`envdoc`] to edit a `.env` file without disturbing it (get, set, unset and insert
//!   keys, or empty every value for a template): every byte it does not change stays.
//! - Use [`envelope`] to seal a `.env` file into an ASCII-armored age file bound to its
//!   project, branch and version, and to open and verify one.
//! - Use [`fingerprint`] to tell equal values apart from different ones without showing
//!   them.
//! - Use [`merge`] to merge two edits of an env file from their common base, by key.
//! - Use [`api`] for the JSON bodies of the HTTP API.
//! - Use [`signing`] for the Ed25519 keys that sign team-mode versions.
//! - Use [`secret`] types for anything secret: their `Debug` prints `[redacted]`.
//! - Use `manpage` (feature `manpage`) to render a binary's manual pages from its clap
//!   command tree.

pub mod api;
pub mod envdoc;
pub mod envelope;
pub mod envfile;
pub mod fingerprint;
#[cfg(feature = "manpage")]
pub mod manpage;
pub mod merge;
pub mod names;
pub mod secret;
pub mod signing;
