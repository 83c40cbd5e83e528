//! `git envsync login`: stores a token for one server origin in the user configuration
//! (0600) after checking it against the server.
//!
//! The token is read from a no-echo prompt, from stdin (`--token-stdin`) or from
//! `ENVSYNC_TOKEN`, never from an argument (argv is visible to other processes and lands
//! in shell history). It is stored for the server's origin and will only ever be sent
//! there.

use crate::ca::CaFile;
use crate::cli::Global;
use crate::client::{Api, Timeouts};
use crate::config::{self, Token, UserConfig};
use crate::context::env_nonempty;
use crate::error::{CliError, Result};
use crate::out;
use envsync_common::secret::ExposeSecret;
use reqwest::StatusCode;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

/// Store your token for a server (in $XDG_CONFIG_HOME/envsync/config.toml, mode 0600).
///
/// The server comes from --server (or ENVSYNC_API); the token from a no-echo prompt,
/// --token-stdin, or ENVSYNC_TOKEN. It is sent only to that server from then on.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Read the token from the first line of stdin (for scripts: `… | git envsync login
    /// --server URL --token-stdin`).
    #[arg(long)]
    token_stdin: bool,
    /// Allow plain http:// to a server that is not on this machine: the token then
    /// crosses the network unencrypted. Recorded for this server only.
    #[arg(long)]
    insecure_http: bool,
    /// A PEM file of the CA that signed the server's certificate (a private CA): trusted for
    /// this server beside the system's roots, and recorded as its ca_file.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let mut user = UserConfig::load()?;
    let server = global
        .server
        .clone()
        .or_else(|| env_nonempty("ENVSYNC_API"))
        .or_else(|| user.server.clone())
        .ok_or_else(|| CliError::usage("no server given").hint("git envsync login --server URL"))?;
    let origin = config::origin(&server)?;
    if origin.starts_with("http://") && !config::is_loopback(&server) && !args.insecure_http {
        return Err(CliError::usage(format!(
            "{origin} is plain http on another machine: your token would cross the network unencrypted"
        ))
        .hint("use https://, or pass --insecure-http to accept that for this server"));
    }
    let raw = if args.token_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::usage(format!("cannot read the token from stdin: {e}")))?;
        line
    } else if let Some(token) = env_nonempty("ENVSYNC_TOKEN") {
        token
    } else if std::io::stdin().is_terminal() {
        let typed = crate::prompt::read_secret("envsync token: ")?;
        typed.expose_secret().to_owned()
    } else {
        return Err(CliError::usage("no token given").hint(
            "run git envsync login in a terminal to be prompted, or pipe it in with --token-stdin",
        ));
    };
    let token = Token::new(&raw).ok_or_else(|| CliError::usage("the token is empty"))?;

    // Recorded as given, made absolute: the configuration lives elsewhere.
    let ca_flag = match &args.ca_file {
        Some(path) => Some(
            std::path::absolute(path)
                .map_err(|e| CliError::usage(format!("--ca-file {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let ca = match &ca_flag {
        Some(path) => Some(CaFile::new(path, "--ca-file")),
        None => CaFile::resolve(&user, &server),
    };
    let api = Api::new(&server, Some(token.clone()), Timeouts::COMMAND, ca.as_ref())?;
    let health = api.health().map_err(|e| api.fail(e))?;
    let identity = match api.whoami() {
        Ok(who) => format!("{} ({})", who.email, who.role),
        Err(e) if e.is_status(StatusCode::UNAUTHORIZED) => {
            return Err(CliError::usage("the server refused this token (401)")
                .hint("check the token, or ask an owner for a new one"));
        }
        Err(e) => return Err(api.fail(e)),
    };

    user.server = Some(api.base().to_owned());
    let login = user.servers.entry(origin.clone()).or_default();
    login.token = Some(token);
    login.insecure_http = args.insecure_http;
    if let Some(path) = ca_flag {
        login.ca_file = Some(path);
    }
    let path = user.save()?;
    out::say(&format!(
        "Logged in to {origin} (envsync-server {}) as {identity}; saved to {}",
        health.version,
        path.display()
    ));
    Ok(ExitCode::SUCCESS)
}
