//! `git envsync example`: writes `.env.example`, the env file with every value emptied,
//! for the repository.

use crate::cli::Global;
use crate::context::Context;
use crate::error::{CliError, Result};
use crate::out;
use crate::worktree::TreeFile;
use envsync_common::secret::ct_eq;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The first line of every file `example` writes: how it recognises its own files.
const MARKER: &[u8] = b"# Written by git envsync example";

/// Write .env.example: the env file with every value emptied, to be committed.
///
/// Key names, comments and layout are kept; every value becomes KEY=. Reads the env like get does (the file when it holds this branch's env, else the
/// server's). Commented-out assignments (# KEY=value) are emptied too; other comments are
/// copied as they are, so read them before committing. The output is <env_file>.example
/// unless --output says otherwise, and a file that example did not write is not replaced
/// without --force.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Where to write it (inside the work tree).
    #[arg(long = "output", value_name = "PATH")]
    path: Option<PathBuf>,
    /// Replace the output even if example did not write it.
    #[arg(long)]
    force: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let target = match &args.path {
        Some(path) => TreeFile::new(&ctx.repo.root, &inside_work_tree(&ctx.repo.root, path)?)?,
        None => TreeFile::new(&ctx.repo.root, &format!("{}.example", ctx.config.env_file))?,
    };
    let env_path = ctx.env.path();
    let mut backups = env_path.clone().into_os_string();
    backups.push(".backup-");
    if target.path() == env_path
        || target
            .path()
            .as_os_str()
            .as_encoded_bytes()
            .starts_with(backups.as_encoded_bytes())
    {
        return Err(CliError::usage(format!(
            "{} is the env file (or one of its backups): example never writes there",
            target.display()
        )));
    }

    let env = super::get::branch_env(&ctx)?;
    let template = env.document()?.template();
    let body = template.to_bytes();
    let body = body.expose();
    let body = body
        .strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(body);
    let mut bytes = MARKER.to_vec();
    bytes.extend_from_slice(
        format!(
            " from {}: key names and comments, values emptied.",
            ctx.config.env_file
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(template.line_end());
    bytes.extend_from_slice(body);

    let ignored = ctx.repo.is_ignored(&target.path()).then(|| {
        format!(
            "warning: {} is ignored by git, so it will not be committed; un-ignore it (!{} in .gitignore) or git add -f it",
            target.display(),
            target.display()
        )
    });
    match target.read()? {
        Some(existing) if ct_eq(existing.expose(), &bytes) => {
            out::say(&format!("{} is up to date", target.display()));
            if let Some(warning) = ignored {
                out::say(&warning);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(existing) if !args.force && !existing.expose().starts_with(MARKER) => {
            return Err(CliError::refused(format!(
                "{} exists and was not written by git envsync example; not replacing it",
                target.display()
            ))
            .hint("pass --force to replace it, or --output PATH to write elsewhere"));
        }
        _ => {}
    }
    target.write(&bytes, 0o644)?;
    let keys = template.keys().len();
    if global.json {
        out::json(&json!({"written": target.display(), "keys": keys}));
    } else {
        out::say(&format!(
            "Wrote {} ({keys} key{}, every value emptied) from {}; commit it",
            target.display(),
            if keys == 1 { "" } else { "s" },
            env.what
        ));
    }
    if let Some(warning) = ignored {
        out::say(&warning);
    }
    Ok(ExitCode::SUCCESS)
}

/// `path` (relative to the current directory, or absolute) as a path relative to the
/// work tree root; refused when it is outside.
fn inside_work_tree(root: &Path, path: &Path) -> Result<String> {
    let outside = || {
        CliError::usage(format!(
            "--output {} is not inside the work tree",
            path.display()
        ))
        .hint("example writes a file to be committed: give a path inside the repository")
    };
    let absolute = std::env::current_dir()
        .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))?
        .join(path);
    let name = absolute.file_name().ok_or_else(outside)?;
    let dir = absolute
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .ok_or_else(|| {
            CliError::usage(format!(
                "--output {}: its directory does not exist",
                path.display()
            ))
        })?;
    let root = root.canonicalize().map_err(|_| outside())?;
    let rel = dir.strip_prefix(&root).map_err(|_| outside())?.join(name);
    rel.to_str()
        .map(str::to_owned)
        .ok_or_else(|| CliError::usage("--output: the path is not valid UTF-8"))
}
