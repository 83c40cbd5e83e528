//! `git envsync login`: stores the server URL and token in the user configuration (0600)
//! after checking them against the server.

use crate::cli::Global;
use crate::client::{Api, ApiError, Timeouts};
use crate::config::{Token, UserConfig};
use crate::context::env_nonempty;
use crate::error::{CliError, Result};
use crate::out;
use envsync_common::api::WhoAmI;
use reqwest::{Method, StatusCode};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Store the server URL and your token (in $XDG_CONFIG_HOME/envsync/config.toml, mode 0600).
///
/// The server comes from --server; the token from --token, ENVSYNC_TOKEN, or a prompt.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The token an owner minted for you (with or without "Bearer ").
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let mut user = UserConfig::load()?;
    let server = global
        .server
        .clone()
        .or_else(|| env_nonempty("ENVSYNC_API"))
        .or_else(|| user.server.clone())
        .ok_or_else(|| {
            CliError::usage("no server given").hint("git envsync login --server URL --token TOKEN")
        })?;
    let raw = match args.token.or_else(|| env_nonempty("ENVSYNC_TOKEN")) {
        Some(t) => t,
        None if std::io::stdin().is_terminal() => {
            rpassword::prompt_password("envsync token: ").map_err(anyhow::Error::from)?
        }
        None => {
            return Err(CliError::usage("no token given")
                .hint("git envsync login --server URL --token TOKEN"));
        }
    };
    let token = Token::new(&raw).ok_or_else(|| CliError::usage("the token is empty"))?;

    let api = Api::new(&server, Some(token.clone()), Timeouts::COMMAND)?;
    let health = api.health().map_err(|e| api.fail(e))?;
    let who: Result<WhoAmI, ApiError> = api.call(Method::GET, "/whoami".into(), None::<&()>);
    let identity = match who {
        Ok(who) => format!("{} ({})", who.email, who.role),
        Err(e) if e.is_status(StatusCode::UNAUTHORIZED) => {
            return Err(CliError::usage("the server refused this token (401)")
                .hint("check the token, or ask an owner for a new one"));
        }
        Err(e) => return Err(api.fail(e)),
    };

    user.server = Some(api.base().to_owned());
    user.token = Some(token);
    let path = user.save()?;
    out::say(&format!(
        "Logged in to {} (envsync-server {}) as {identity}; saved to {}",
        api.base(),
        health.version,
        path.display()
    ));
    Ok(ExitCode::SUCCESS)
}
