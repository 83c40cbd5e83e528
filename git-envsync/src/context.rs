//! Resolve once, then act: flags, environment and configuration files become one checked
//! [`Context`] (repository opened, branch known, trusted config loaded, env file path
//! contained, server and token found) before a command does any work.
//!
//! Which server, highest first: `--server`, `ENVSYNC_API`, the trusted `.envsync.toml`,
//! the user configuration's default (the last login). Which token: only ever one stored
//! for that server's origin (by `login`), or `ENVSYNC_TOKEN` when the server is the one
//! `ENVSYNC_API` names. A token is never sent anywhere else, and never over plain HTTP to
//! another machine unless `login --insecure-http` recorded that choice. Which extra CA an
//! `https://` server is checked against: [`crate::ca`]. What the environment says about
//! keys (`ENVSYNC_PASS`, `ENVSYNC_NEW_PASS`, `ENVSYNC_ALLOW_WEAK_PASS`,
//! `ENVSYNC_INSECURE_WORK_FACTOR`): [`KeyEnv`], read here once.

use crate::ca::CaFile;
use crate::cli::Global;
use crate::client::{Api, Timeouts};
use crate::config::{self, ProjectConfig, Token, UserConfig};
use crate::crypto::KeyEnv;
use crate::error::{CliError, Result};
use crate::git::{self, Repo};
use crate::state::State;
use crate::trust::TrustStore;
use crate::worktree::TreeFile;

#[derive(Debug)]
pub struct Context {
    pub repo: Repo,
    pub config: ProjectConfig,
    /// The branch the command works on (`--branch` or the checked-out one).
    pub branch: String,
    pub env: TreeFile,
    pub state: State,
    pub remote: Remote,
    /// The environment's say about keys, passphrases redacted.
    pub keys: KeyEnv,
}

impl Context {
    /// The context of a command: fails when the project's settings are not trusted.
    pub fn load(global: &Global) -> Result<Context> {
        Context::load_in(global, Repo::discover()?)
    }

    /// [`Context::load`] in a repository already opened.
    pub fn load_in(global: &Global, repo: Repo) -> Result<Context> {
        let config = ProjectConfig::load(&repo.root)?;
        let branch = branch(global, &repo)?;
        TrustStore::new(repo.common_dir()).require(&config)?;
        Context::assemble(global, repo, config, branch)
    }

    /// [`Context::load_in`] with the project settings already loaded and found trusted by
    /// the caller (the hooks, which say an untrusted config in their own words).
    pub fn load_trusted(global: &Global, repo: Repo, config: ProjectConfig) -> Result<Context> {
        let branch = branch(global, &repo)?;
        Context::assemble(global, repo, config, branch)
    }

    fn assemble(
        global: &Global,
        repo: Repo,
        mut config: ProjectConfig,
        branch: String,
    ) -> Result<Context> {
        // Unset, `default_branch` is the repository's own default (origin/HEAD, else
        // init.defaultBranch, else main): decided by this clone, not by a branch.
        if config.default_branch.is_none() {
            config.default_branch = Some(repo.default_branch());
        }
        let env = TreeFile::new(&repo.root, &config.env_file)?;
        let state = State::new(repo.git_dir(), &config.project);
        let remote = Remote::resolve(global.server.as_deref(), config.server.as_deref())?;
        Ok(Context {
            repo,
            config,
            branch,
            env,
            state,
            remote,
            keys: KeyEnv::from_env(),
        })
    }

    /// The API client; fails with a hint when the server or its token is not configured.
    pub fn api(&self, timeouts: Timeouts) -> Result<Api> {
        self.remote.api(timeouts)
    }

    /// The branch, then the default branch when that is another one: where the branch's
    /// env is read from when it has none of its own yet.
    pub fn branch_and_fallback(&self) -> Vec<String> {
        let mut branches = vec![self.branch.clone()];
        branches.extend(
            self.config
                .default_branch
                .clone()
                .filter(|d| *d != self.branch),
        );
        branches
    }

    /// The env file's path relative to the work tree, for messages.
    pub fn env_display(&self) -> String {
        self.env.display().to_owned()
    }
}

/// The branch a command works on: `--branch`, else the checked-out one.
fn branch(global: &Global, repo: &Repo) -> Result<String> {
    match &global.branch {
        Some(b) => {
            git::check_branch(b)?;
            Ok(b.clone())
        }
        None => repo.current_branch(),
    }
}

/// The server to talk to and the token it may be sent.
#[derive(Debug, Clone)]
pub struct Remote {
    pub server: Option<String>,
    token: Option<Token>,
    /// Why there is no token, when a source exists that may not be used.
    withheld: Option<String>,
    insecure_http: bool,
    /// The extra CA trusted for this server, if one is configured.
    ca_file: Option<CaFile>,
}

impl Remote {
    /// `flag` is `--server`; `project` the trusted `.envsync.toml`'s server.
    pub fn resolve(flag: Option<&str>, project: Option<&str>) -> Result<Remote> {
        let user = UserConfig::load()?;
        let env_api = env_nonempty("ENVSYNC_API");
        let server = flag
            .map(str::to_owned)
            .or_else(|| env_api.clone())
            .or_else(|| project.map(str::to_owned))
            .or_else(|| user.server.clone());
        let Some(server) = server else {
            return Ok(Remote {
                server: None,
                token: None,
                withheld: None,
                insecure_http: false,
                ca_file: None,
            });
        };
        let origin = config::origin(&server)?;
        let login = user.login_for(&server);
        let mut withheld = None;
        let env_token = env_nonempty("ENVSYNC_TOKEN").and_then(|t| Token::new(&t));
        let token = match (env_token, &env_api) {
            (Some(token), Some(api)) if config::origin(api).ok().as_deref() == Some(&origin) => {
                Some(token)
            }
            (Some(_), Some(_)) => {
                withheld = Some(format!(
                    "ENVSYNC_TOKEN is only sent to the server ENVSYNC_API names, not to {origin}"
                ));
                None
            }
            (Some(_), None) => {
                withheld = Some(
                    "ENVSYNC_TOKEN is set without ENVSYNC_API: a token from the environment goes only to the server ENVSYNC_API names".to_owned(),
                );
                None
            }
            (None, _) => None,
        }
        .or_else(|| login.and_then(|l| l.token.clone()));
        Ok(Remote {
            insecure_http: login.is_some_and(|l| l.insecure_http),
            ca_file: CaFile::resolve(&user, &server),
            server: Some(server),
            token,
            withheld,
        })
    }

    /// The extra CA configured for this server, if any.
    pub fn ca_file(&self) -> Option<&CaFile> {
        self.ca_file.as_ref()
    }

    /// When the token runs out (its `exp`, unverified), if there is one.
    pub fn token_expiry(&self) -> Option<i64> {
        crate::cmd::jwt_expiry(self.token.as_ref()?.expose())
    }

    /// The API client for the resolved server and its token.
    pub fn api(&self, timeouts: Timeouts) -> Result<Api> {
        let server = self.server.as_deref().ok_or_else(|| {
            CliError::usage("no envsync server configured")
                .hint("run git envsync login --server URL, or set ENVSYNC_API")
        })?;
        let origin = config::origin(server)?;
        let token = self.token.clone().ok_or_else(|| {
            let message = match &self.withheld {
                Some(why) => format!("no token for {origin}: {why}"),
                None => format!("no token for {origin}"),
            };
            CliError::usage(message).hint(format!(
                "run git envsync login --server {origin} (tokens are only sent to the server they were stored for)"
            ))
        })?;
        if origin.starts_with("http://") && !config::is_loopback(server) && !self.insecure_http {
            return Err(CliError::usage(format!(
                "refusing to send your token over plain http to {origin}"
            ))
            .hint(format!(
                "use https://, or accept the risk for this server with git envsync login --server {origin} --insecure-http"
            )));
        }
        Api::new(server, Some(token), timeouts, self.ca_file.as_ref())
    }
}

pub fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
