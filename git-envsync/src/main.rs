//! `git-envsync`, the binary behind `git envsync …`.
//!
//! `main` parses the command line, runs one command and turns its result into an exit
//! code in one place: errors print as `error: …` and `hint: …` on stderr.

mod agent;
mod cli;
mod client;
mod cmd;
mod config;
mod context;
mod crypto;
mod drift;
mod error;
mod fsutil;
mod git;
mod hooks;
mod out;
mod prompt;
mod state;
mod sync;
mod trust;
mod worktree;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Messages may quote a server or a committed file: printed escaped.
            out::say(&format!("error: {}", err.message()));
            if let Some(hint) = &err.hint {
                out::say(&format!("hint: {hint}"));
            }
            err.exit_code()
        }
    }
}

/// Every type of the CLI that holds a token, passphrase or plaintext prints a redaction
/// marker under `{:?}` and `{:#?}`, never the secret (TESTING.md J2; the shared types are
/// covered in `common/tests/redaction.rs`).
#[cfg(test)]
mod redaction_tests {
    use crate::client::{Api, Timeouts};
    use crate::config::{ProjectConfig, Token, UserConfig};
    use crate::crypto::Keyring;
    use crate::sync::Fetched;
    use envsync_common::secret::{SecretBytes, SecretString};
    use std::fmt::Debug;

    const SENTINEL: &str = "SENTINEL_9f3a_c0ffee";

    #[track_caller]
    fn redacted(what: &str, value: &impl Debug) {
        for shown in [format!("{value:?}"), format!("{value:#?}")] {
            assert!(!shown.contains(SENTINEL), "{what} leaks: {shown}");
            assert!(
                shown.to_lowercase().contains("redacted"),
                "{what} has no marker: {shown}"
            );
        }
    }

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
        let keyring = Keyring::with_passphrase(&config, SecretString::from(SENTINEL.to_owned()))
            .expect("keyring");
        redacted("Keyring", &keyring);
        // The agent's buffer, holding a passphrase.
        let mut locked = crate::agent::locked::LockedSecret::new().expect("mlock");
        locked.spare()[..SENTINEL.len()].copy_from_slice(SENTINEL.as_bytes());
        locked.filled(SENTINEL.len());
        redacted("LockedSecret", &locked);
        let api = Api::new("http://127.0.0.1:9", Some(token()), Timeouts::COMMAND).expect("api");
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
            },
        );
    }
}
