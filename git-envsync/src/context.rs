//! Resolve once, then act: flags, environment and configuration files become one checked
//! [`Context`] (repository opened, branch known, config loaded, server and token found)
//! before a command does any work.

use crate::cli::Global;
use crate::client::{Api, Timeouts};
use crate::config::{self, ProjectConfig, Token, UserConfig};
use crate::error::{CliError, Result};
use crate::git::{self, Repo};
use crate::state::State;
use std::path::PathBuf;

#[derive(Debug)]
pub struct Context {
    pub repo: Repo,
    pub config: ProjectConfig,
    /// The branch the command works on (`--branch` or the checked-out one).
    pub branch: String,
    pub env_path: PathBuf,
    pub state: State,
    pub server: Option<String>,
    pub token: Option<Token>,
}

impl Context {
    pub fn load(global: &Global) -> Result<Context> {
        Context::load_in(global, Repo::discover()?)
    }

    /// [`Context::load`] in a repository already opened.
    pub fn load_in(global: &Global, repo: Repo) -> Result<Context> {
        let config = ProjectConfig::load(&repo.root)?;
        let branch = match &global.branch {
            Some(b) => {
                git::check_branch(b)?;
                b.clone()
            }
            None => repo.current_branch()?,
        };
        let env_path = config::env_file_path(&repo.root, &config.env_file)?;
        let state = State::new(repo.git_dir(), &config.project);
        let user = UserConfig::load()?;
        let server = global
            .server
            .clone()
            .or_else(|| env_nonempty("ENVSYNC_API"))
            .or_else(|| config.server.clone())
            .or(user.server);
        let token = env_nonempty("ENVSYNC_TOKEN")
            .and_then(|t| Token::new(&t))
            .or(user.token);
        Ok(Context {
            repo,
            config,
            branch,
            env_path,
            state,
            server,
            token,
        })
    }

    /// The API client; fails with a hint when the server or the token is not configured.
    pub fn api(&self, timeouts: Timeouts) -> Result<Api> {
        let server = self.server.as_deref().ok_or_else(|| {
            CliError::usage("no envsync server configured")
                .hint("run git envsync login --server URL --token TOKEN, or set ENVSYNC_API")
        })?;
        let token = self.token.clone().ok_or_else(|| {
            CliError::usage("no token configured")
                .hint("run git envsync login --server URL --token TOKEN, or set ENVSYNC_TOKEN")
        })?;
        Api::new(server, Some(token), timeouts)
    }

    /// The env file's path relative to the work tree, for messages.
    pub fn env_display(&self) -> String {
        self.env_path
            .strip_prefix(&self.repo.root)
            .unwrap_or(&self.env_path)
            .display()
            .to_string()
    }
}

pub fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
