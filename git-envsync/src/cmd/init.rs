//! `git envsync init`: writes `.envsync.toml` and git-ignores the env file.

use crate::cli::Global;
use crate::config::{PROJECT_FILE, ProjectConfig, RecipientEntry};
use crate::error::{CliError, Result};
use crate::fsutil;
use crate::git::{self, Repo};
use crate::out;
use crate::trust::TrustStore;
use crate::worktree::TreeFile;
use envsync_common::names::validate_project;
use std::process::ExitCode;

/// Set this repository up for envsync: write .envsync.toml and add the env file to
/// .gitignore.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// The project id on the server (default: the repository directory's name).
    #[arg(long, value_name = "ID")]
    project: Option<String>,
    /// The env file, relative to the repository root.
    #[arg(long, value_name = "PATH", default_value = ".env")]
    env_file: String,
    /// Where pull falls back for a branch with no env yet (default: the repository's
    /// default branch: origin/HEAD, else init.defaultBranch, else main).
    #[arg(long, value_name = "BRANCH")]
    default_branch: Option<String>,
    /// Start in team-key mode, with your age identity as the first recipient (made with
    /// `keygen` first if you have none).
    #[arg(long)]
    recipients: bool,
    /// Overwrite an existing .envsync.toml.
    #[arg(long)]
    force: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover()?;
    let path = repo.root.join(PROJECT_FILE);
    if path.exists() && !args.force {
        return Err(CliError::refused(format!("{PROJECT_FILE} already exists"))
            .hint("edit it, or run git envsync init --force to replace it"));
    }
    let project = match args.project {
        Some(p) => p,
        None => default_project(&repo)?,
    };
    validate_project(&project).map_err(|e| {
        CliError::usage(format!("project '{project}': {e}")).hint("pass --project ID")
    })?;
    // The repository's default, not the branch init happens to run on (a `wip/…` branch
    // would make every new branch fall back to it).
    let default_branch = args.default_branch.unwrap_or_else(|| repo.default_branch());
    git::check_branch(&default_branch)?;
    let env = TreeFile::new(&repo.root, &args.env_file)?;

    let mut config = ProjectConfig::new(project.clone());
    config.env_file = args.env_file.clone();
    config.server = global.server.clone();
    config.default_branch = Some(default_branch.clone());
    if args.recipients {
        // The member is named by the identity the server knows them by: the email in
        // git's config, else the token's. Found first: a refusal makes no keys.
        let name = match repo.config_string("user.email") {
            Some(email) => email,
            None => whoami(global)?.ok_or_else(|| {
                CliError::usage(
                    "cannot name you as a member: no user.email in git config, and no login",
                )
                .hint("git config user.email you@example.com, or git envsync login first")
            })?,
        };
        if !crate::crypto::identity_path()?.exists() || !crate::crypto::signing_key_path()?.exists()
        {
            super::keygen::run(global, super::keygen::Args {})?;
        }
        config.recipients = vec![RecipientEntry::Named {
            name,
            key: super::keygen::public_key()?,
            signer: Some(super::keygen::signing_public()?),
            email: None,
        }];
    }
    warn_if_taken(global, &project);
    config.save(&repo.root)?;
    // What init writes is what the user asked for: trusted, like members add/remove.
    TrustStore::new(repo.common_dir()).trust(&config)?;

    if !repo.is_ignored(&env.path()) {
        ignore(&repo, &args.env_file)?;
    }
    let mode = if config.recipients.is_empty() {
        "passphrase mode"
    } else {
        "team-key mode"
    };
    out::say(&format!(
        "Initialised envsync: project {project}, env file {}, default branch {default_branch}, {mode}",
        args.env_file
    ));
    if repo.index_has(&env.path())? {
        out::say(&format!(
            "warning: {} is tracked by git; untrack it with: git rm --cached {}",
            args.env_file, args.env_file
        ));
    }
    let logged_in = crate::context::Remote::resolve(global.server.as_deref(), None)
        .and_then(|r| r.api(crate::client::Timeouts::COMMAND))
        .is_ok();
    out::say(if logged_in {
        "next: commit .envsync.toml and .gitignore, then git envsync push"
    } else {
        "next: git envsync login --server URL, then git envsync push"
    });
    Ok(ExitCode::SUCCESS)
}

/// The email the logged-in token says, when there is a login.
fn whoami(global: &Global) -> Result<Option<String>> {
    let Ok(api) = crate::context::Remote::resolve(global.server.as_deref(), None)
        .and_then(|r| r.api(crate::client::Timeouts::COMMAND))
    else {
        return Ok(None);
    };
    Ok(api.whoami().ok().map(|w| w.email))
}

/// Warns when the project id already has versions on the server: a directory's name is
/// a guess, and another team's project of the same name is not this one.
fn warn_if_taken(global: &Global, project: &str) {
    let Ok(api) = crate::context::Remote::resolve(global.server.as_deref(), None)
        .and_then(|r| r.api(crate::client::Timeouts::COMMAND))
    else {
        return;
    };
    if let Ok(branches) = api.branches(project)
        && !branches.is_empty()
    {
        out::say(&format!(
            "warning: project {project} already has {} branch{} on the server ({}); if it is not this repository's, run git envsync init --force --project ANOTHER_ID",
            branches.len(),
            if branches.len() == 1 { "" } else { "es" },
            branches
                .iter()
                .take(3)
                .map(|b| b.branch.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

/// The repository directory's name, made into a valid project id.
fn default_project(repo: &Repo) -> Result<String> {
    let name = repo
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let id = id.trim_matches('.').replace("..", "-");
    if id.is_empty() {
        return Err(
            CliError::usage("cannot derive a project id from the directory name")
                .hint("pass --project ID"),
        );
    }
    Ok(id)
}

/// Appends the env file and its backups to `.gitignore`.
fn ignore(repo: &Repo, env_file: &str) -> Result<()> {
    let path = repo.root.join(".gitignore");
    let mut text = fsutil::read_optional(&path)?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "# envsync: plaintext secrets never go into git\n/{env_file}\n/{env_file}.backup-*\n/{env_file}.merge\n"
    ));
    fsutil::write_atomic(&path, text.as_bytes(), 0o644)?;
    Ok(())
}
