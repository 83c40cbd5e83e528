//! The library behind `git envsync …`: the binary (`src/main.rs`) only calls [`run`].
//!
//! How the crate is laid out, in the order a command goes through it:
//! - [`cli`] parses the command line; [`cmd`] has one module per subcommand;
//! - [`context`] resolves flags, environment and configuration once ([`config`] for the
//!   files, [`trust`] for the consent to `.envsync.toml`, [`worktree`] for the env file's
//!   path beneath the work tree);
//! - [`sync`] moves an env file between the clone and the server, with the one verified
//!   read; [`crypto`] holds the keys; [`client`] speaks HTTP (over TLS with the extra CA
//!   of [`ca`], if any); [`state`] is what this clone
//!   remembers under `.git/envsync/`;
//! - [`hook_blocks`] installs the git hooks (marked blocks), whose runs are `cmd::run_hook`'s;
//! - [`agent`] keeps passphrases for `unlock`; [`prompt`] reads one at a terminal;
//! - [`out`] writes to the terminal (escaped), [`error`] maps failures to exit codes.

pub mod agent;
pub mod ca;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod config;
pub mod context;
pub mod crypto;
pub mod drift;
pub mod error;
pub mod fingerprints;
pub mod fsutil;
pub mod git;
pub mod hook_blocks;
pub mod merging;
pub mod out;
pub mod prompt;
pub mod runtime;
pub mod state;
pub mod sync;
pub mod trust;
pub mod worktree;

use clap::Parser;
use std::process::ExitCode;

/// Parses the command line, runs one command, and turns its result into the exit code:
/// errors print as `error: …` and `hint: …` on stderr, in one place.
pub fn run() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    out::set_quiet(cli.quiet);
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Messages may quote a server or a committed file: printed escaped.
            out::error(&err.message());
            if let Some(hint) = &err.hint {
                out::hint(hint);
            }
            err.exit_code()
        }
    }
}

/// Every type of the CLI that holds a token, passphrase or plaintext prints a redaction
/// marker under `{:?}` and `{:#?}`, never the secret (docs/testing.md J2; the shared types are
/// covered in `common/tests/it/redaction.rs`).
#[cfg(test)]
mod redaction_tests {
    use crate::client::{Api, Timeouts};
    use crate::config::{ProjectConfig, Token, UserConfig};
    use crate::crypto::Keyring;
    use crate::sync::Fetched;
    use envsync_common::secret::{SecretBytes, SecretString};
    use envsync_tests::redaction::{SENTINEL, assert_redacted as redacted};

    #[test]
    fn secret_holders_print_redacted() {
        let token = || Token::new(SENTINEL).expect("a token");
        redacted("Token", &token());
        let mut user = UserConfig::default();
        user.servers.insert(
            "http://127.0.0.1:9".into(),
            crate::config::ServerLogin {
                token: Some(token()),
                insecure_http: false,
                ca_file: None,
            },
        );
        let shown = format!("{user:?} {user:#?}");
        assert!(!shown.contains(SENTINEL), "UserConfig leaks: {shown}");
        assert!(
            shown.contains("redacted"),
            "UserConfig has no marker: {shown}"
        );
        let signing = envsync_common::signing::SigningKey::generate().expect("a key");
        let shown = format!("{signing:?} {signing:#?}");
        assert!(
            !shown.contains(signing.to_secret_line().as_str()),
            "{shown}"
        );
        let config = ProjectConfig::new("p".into());
        let keyring = Keyring::with_passphrase(
            &config,
            &crate::crypto::KeyEnv::default(),
            SecretString::from(SENTINEL.to_owned()),
        )
        .expect("keyring");
        redacted("Keyring", &keyring);
        let keys = crate::crypto::KeyEnv {
            pass: Some(SecretString::from(SENTINEL.to_owned())),
            new_pass: Some(SecretString::from(SENTINEL.to_owned())),
            ..crate::crypto::KeyEnv::default()
        };
        redacted("KeyEnv", &keys);
        // The agent's buffer, holding a passphrase.
        let mut locked = crate::agent::locked::LockedSecret::new().expect("mlock");
        locked.spare()[..SENTINEL.len()].copy_from_slice(SENTINEL.as_bytes());
        locked.filled(SENTINEL.len());
        redacted("LockedSecret", &locked);
        let api =
            Api::new("http://127.0.0.1:9", Some(token()), Timeouts::COMMAND, None).expect("api");
        let shown = format!("{api:?} {api:#?}");
        assert!(!shown.contains(SENTINEL), "Api leaks: {shown}");
        redacted(
            "Fetched",
            &Fetched {
                content: SecretBytes::new(format!("A={SENTINEL}\n").into_bytes()),
                from: "main".into(),
                version: 1,
                server_keys: vec!["A".into()],
                cached: false,
                signer: None,
                sealed: None,
            },
        );
    }
}
