//! `git envsync token create|list|revoke`: token management for owners.

use crate::cli::Global;
use crate::client::{Api, Timeouts};
use crate::context::{Context, Remote};
use crate::error::{CliError, Result};
use crate::out;
use envsync_common::api::{Role, TokenInfo, TokenRequest, Ttl};
use std::process::ExitCode;

/// Mint, list and revoke tokens (needs an owner token).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub output: crate::cli::JsonFlagBelow,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlagBelow,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Mint a token; it is printed once, on stdout, and never stored by the server.
    Create {
        #[arg(long)]
        email: String,
        /// owner, developer or readonly.
        #[arg(long)]
        role: Role,
        /// A project the token may use (repeatable; default: this repository's).
        #[arg(long = "project", value_name = "ID")]
        projects: Vec<String>,
        /// Lifetime: 3600, 90m, 12h, 30d, 8w.
        #[arg(long, default_value = "30d")]
        ttl: String,
    },
    /// List minted tokens (never the tokens themselves).
    List,
    /// Revoke a token by its id (jti), or every token of an email; refused from then on.
    Revoke {
        /// The token's id, as `token create` and `token list` print it (ids are base64url
        /// and may start with `-`, which is not a flag here), or an email: every live
        /// token of that email, after confirming.
        #[arg(allow_hyphen_values = true, value_name = "JTI|EMAIL")]
        jti: String,
        /// Revoke every token of the email without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let (api, project) = connect(global)?;
    match args.action {
        Action::Create {
            email,
            role,
            mut projects,
            ttl,
        } => {
            if projects.is_empty() && role != Role::Owner {
                projects.extend(project);
            }
            let request = TokenRequest {
                email,
                role,
                project_ids: projects,
                ttl: Some(Ttl::Text(ttl)),
            };
            let minted = api.mint(&request).map_err(|e| api.fail(e))?;
            out::say(&format!(
                "token {} for {} ({}) expires {}",
                minted.jti, request.email, request.role, minted.expires_at
            ));
            if global.json {
                out::json(&minted);
            } else {
                out::print(&format!("{}\n", minted.token));
            }
        }
        Action::List => {
            let tokens = api.tokens().map_err(|e| api.fail(e))?;
            if global.json {
                out::json(&tokens);
            } else {
                let text: String = tokens
                    .iter()
                    .map(|t| {
                        format!(
                            "{}  {:<9}  {}  expires {}  {}{}\n",
                            t.jti,
                            t.role,
                            t.email,
                            out::timestamp(&t.expires_at),
                            t.project_ids.join(","),
                            if t.revoked { "  (revoked)" } else { "" }
                        )
                    })
                    .collect();
                out::print(&text);
            }
        }
        Action::Revoke { jti, yes } => {
            let targets = if jti.contains('@') {
                let tokens = api.tokens().map_err(|e| api.fail(e))?;
                let live: Vec<TokenInfo> = tokens
                    .into_iter()
                    .filter(|t| t.email.eq_ignore_ascii_case(&jti) && !t.revoked)
                    .collect();
                if live.is_empty() {
                    return Err(CliError::refused(format!("{jti} has no live token")));
                }
                if !yes
                    && !confirm(&format!(
                        "Revoke {} token{} of {jti} ({})? [y/N] ",
                        live.len(),
                        if live.len() == 1 { "" } else { "s" },
                        live.iter()
                            .map(|t| t.jti.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))?
                {
                    return Err(CliError::refused("nothing revoked"));
                }
                live.into_iter().map(|t| t.jti).collect()
            } else {
                vec![jti]
            };
            for jti in &targets {
                api.revoke(jti).map_err(|e| api.fail(e))?;
                out::say(&format!("revoked {jti}"));
            }
            if global.json {
                out::json(&serde_json::json!({ "revoked": targets }));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on a terminal; without one, the caller must pass `--yes`.
fn confirm(question: &str) -> Result<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(
            CliError::usage("refusing to revoke several tokens without asking")
                .hint("run it in a terminal, or pass --yes"),
        );
    }
    crate::prompt::confirm(question)
}

/// The API, from the repository's context when there is one (its trusted server and
/// project), else from the flag, `ENVSYNC_API` and the user configuration.
fn connect(global: &Global) -> Result<(Api, Option<String>)> {
    if let Ok(ctx) = Context::load(global) {
        return Ok((
            ctx.api(Timeouts::COMMAND)?,
            Some(ctx.config.project.clone()),
        ));
    }
    let remote = Remote::resolve(global.server.as_deref(), None)?;
    Ok((remote.api(Timeouts::COMMAND)?, None))
}
