//! `git envsync hook <name> ARGS…`: what the installed git hooks call.
//!
//! A hook never breaks or slows the user's git operation: every network call shares one
//! short deadline, the cached key list stands in when the server is down, nothing ever
//! prompts, and any problem becomes one `envsync: …` warning line with exit 0. The only
//! non-zero exits are the two deliberate refusals of pre-commit: a staged env file, and
//! drift under `git config envsync.strict true`.

use crate::cli::Global;
use crate::client::{Api, Timeouts};
use crate::config::{LEGACY_PROJECT_FILE, PROJECT_FILE, ProjectConfig};
use crate::context::Context;
use crate::crypto::Keyring;
use crate::drift::Drift;
use crate::error::{CliError, Result};
use crate::git::Repo;
use crate::out;
use crate::sync::{self, PullOptions, PullOutcome, PushOutcome};
use crate::trust::TrustStore;
use clap::Subcommand;
use std::process::ExitCode;

/// Entry points for the installed git hooks (not for direct use).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    hook: Hook,
}

#[derive(Debug, Subcommand)]
enum Hook {
    /// After a checkout: push unpushed edits to the branch left, pull the new branch.
    PostCheckout {
        previous: Option<String>,
        new: Option<String>,
        /// 1 for a branch checkout, 0 for a file checkout.
        flag: Option<String>,
    },
    /// Before a commit: refuse a staged env file, warn about drift.
    PreCommit,
    /// After a commit: push the env file if it changed since the last sync.
    PostCommit,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    if std::env::var_os("ENVSYNC_SKIP_HOOKS").is_some_and(|v| !v.is_empty()) {
        return Ok(ExitCode::SUCCESS);
    }
    if let Hook::PostCheckout { flag, .. } = &args.hook
        && flag.as_deref() != Some("1")
    {
        return Ok(ExitCode::SUCCESS);
    }
    // A repository that does not use envsync: nothing to do, nothing to say.
    let Ok(repo) = Repo::discover() else {
        return Ok(ExitCode::SUCCESS);
    };
    if !repo.root.join(PROJECT_FILE).exists() && !repo.root.join(LEGACY_PROJECT_FILE).exists() {
        return Ok(ExitCode::SUCCESS);
    }
    // The plaintext guard comes first and needs nothing but the repository and its
    // index: no trusted config, no server, no parse of the env file.
    if matches!(args.hook, Hook::PreCommit)
        && let Some(code) = plaintext_guard(&repo)
    {
        return Ok(code);
    }
    let result = Context::load_in(global, repo).and_then(|ctx| match args.hook {
        Hook::PostCheckout { .. } => post_checkout(&ctx).map(|()| ExitCode::SUCCESS),
        Hook::PreCommit => pre_commit(&ctx),
        Hook::PostCommit => post_commit(&ctx).map(|()| ExitCode::SUCCESS),
    });
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            warn(&e);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn warn(e: &CliError) {
    out::say(&format!("envsync: {}", e.message()));
}

fn api(ctx: &Context) -> Result<Api> {
    ctx.api(Timeouts::HOOK)
}

fn post_checkout(ctx: &Context) -> Result<()> {
    let api = api(ctx)?;
    let mut keyring = Keyring::new(&ctx.config, false)?;

    // Unpushed edits go to the branch they were made on, before anything is pulled; but
    // only under the settings they were made under (another branch's settings may name
    // other members or another server), and never a file envsync has not synced.
    if let Some(current) = sync::read_env(ctx)?
        && sync::has_local_edits(ctx, current.expose())?
    {
        if !edits_under_these_settings(ctx)? {
            out::say(&format!(
                "envsync: {} has edits made under other settings (or never synced); left as it is, not pushed",
                ctx.env_display()
            ));
            return Ok(());
        }
        let left = ctx.repo.previous_branch().filter(|b| *b != ctx.branch);
        let Some(left) = left else {
            out::say(&format!(
                "envsync: {} has unpushed edits; not pulling {} over them",
                ctx.env_display(),
                ctx.branch
            ));
            return Ok(());
        };
        match sync::push(ctx, &api, &mut keyring, &left, false) {
            Ok(PushOutcome::Pushed { version, .. }) => out::say(&format!(
                "envsync: pushed your edits to {left} as version {version}"
            )),
            Ok(PushOutcome::UpToDate { .. }) => {}
            Err(e) => {
                out::say(&format!(
                    "envsync: kept your edits in {} (not pushed to {left}: {})",
                    ctx.env_display(),
                    e.message()
                ));
                return Ok(());
            }
        }
    }

    let opts = PullOptions {
        fallback: true,
        ..PullOptions::default()
    };
    match sync::pull(ctx, &api, &mut keyring, opts) {
        Ok(PullOutcome::Written { from, version, .. }) => out::say(&format!(
            "envsync: {} is now {from} version {version}",
            ctx.env_display()
        )),
        Ok(PullOutcome::Unchanged { .. } | PullOutcome::NoEnv) => {}
        Err(e) => out::say(&format!(
            "envsync: {} not updated for {}: {} (then run git envsync pull)",
            ctx.env_display(),
            ctx.branch,
            e.message()
        )),
    }
    Ok(())
}

/// Refuses a commit that stages an env file or one of its backups: the file the
/// project's settings name (trusted or not: this only reads the index), every env file a
/// trusted setting named, and `.env`. `None` when nothing is staged.
fn plaintext_guard(repo: &Repo) -> Option<ExitCode> {
    let mut candidates = vec![".env".to_owned()];
    if let Ok(config) = ProjectConfig::load(&repo.root) {
        candidates.push(config.env_file);
    }
    candidates.extend(TrustStore::new(repo.common_dir()).env_files());
    let staged = candidates
        .iter()
        .find_map(|rel| repo.staged_plaintext(rel))?;
    out::say(&format!(
        "error: {staged} is staged: plaintext secrets must never be committed"
    ));
    out::say(&format!(
        "hint: git rm --cached {staged} (envsync keeps it in sync instead)"
    ));
    Some(ExitCode::from(1))
}

fn pre_commit(ctx: &Context) -> Result<ExitCode> {
    let current = sync::read_env(ctx)?;
    note_for_post_commit(ctx, current.as_ref().map(|c| c.expose()));
    let Some(current) = current else {
        return Ok(ExitCode::SUCCESS);
    };
    let local = sync::parse_keys(ctx, current.expose())?.names;
    let Some(server) = server_keys(ctx) else {
        return Ok(ExitCode::SUCCESS);
    };
    let drift = Drift::new(local, server);
    if drift.in_sync() {
        return Ok(ExitCode::SUCCESS);
    }
    let strict = ctx.repo.config_bool("envsync.strict");
    for line in drift.warnings() {
        out::say(&format!("envsync: {line}"));
    }
    if strict {
        out::say("error: the env file's keys drift from the server's (envsync.strict is set)");
        out::say("hint: git envsync pull or push, or git commit --no-verify to skip once");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the env file's content was last synced under the project settings trusted
/// now: only then may a hook push its edits.
fn edits_under_these_settings(ctx: &Context) -> Result<bool> {
    let digest = ctx.config.digest();
    Ok(ctx
        .state
        .file()?
        .is_some_and(|f| f.config.as_deref() == Some(digest.as_str())))
}

/// Where pre-commit notes, for the post-commit hook's shell, that the env file was in sync
/// (inside the git directory, beside envsync's state).
pub const POST_COMMIT_NOTE: &str = "envsync/post-commit-clean";

/// Leaves the post-commit hook a note when the env file has nothing to push: its path and
/// HEAD as they are now. While HEAD is the same and neither the env file nor the project
/// file is newer than the note, the hook's shell skips starting `git-envsync` at all
/// (see `hooks/post-commit`); the note is removed when the file has unpushed edits.
/// Anything unexpected only means the hook runs the binary, which decides for itself.
fn note_for_post_commit(ctx: &Context, current: Option<&[u8]>) {
    let git_dir = ctx.repo.git_dir();
    let note = git_dir.join(POST_COMMIT_NOTE);
    let in_sync = current.is_none_or(|c| matches!(sync::has_local_edits(ctx, c), Ok(false)));
    let head = std::fs::read_to_string(git_dir.join("HEAD"))
        .ok()
        .and_then(|h| h.lines().next().map(str::to_owned))
        .filter(|h| !h.is_empty());
    let file = ctx.env_display();
    match head {
        Some(head) if in_sync && !file.contains('\n') => {
            let text = format!("{file}\n{head}\n");
            // Rewriting an unchanged note costs a truncate on every commit; it only needs
            // to be rewritten when it says something else or is no longer the newest.
            let watched = [
                ctx.env.path(),
                ctx.repo.root.join(PROJECT_FILE),
                ctx.repo.root.join(LEGACY_PROJECT_FILE),
            ];
            let current = std::fs::read(&note).is_ok_and(|t| t == text.as_bytes())
                && modified(&note)
                    .is_some_and(|at| watched.iter().all(|p| modified(p).is_none_or(|m| m < at)));
            if !current {
                let _ = std::fs::write(&note, text);
            }
        }
        _ => {
            let _ = std::fs::remove_file(&note);
        }
    }
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The server's key list for the branch (or its fallback), the cached one when the server
/// cannot be reached in time; `None` when there is nothing to compare with.
fn server_keys(ctx: &Context) -> Option<Vec<String>> {
    let mut branches = vec![ctx.branch.clone()];
    branches.extend(
        ctx.config
            .default_branch
            .clone()
            .filter(|d| *d != ctx.branch),
    );
    let api = api(ctx).ok()?;
    for branch in &branches {
        match api.keys(&ctx.config.project, branch) {
            Ok(Some(k)) => {
                let _ = ctx.state.record_seen(branch, k.version, &k.keys);
                return Some(k.keys);
            }
            Ok(None) => continue,
            Err(e) => {
                let cached = branches
                    .iter()
                    .filter_map(|b| ctx.state.branch(b).ok())
                    .find(|s| s.keys_version > 0);
                warn(&api.fail(e));
                if cached.is_some() {
                    out::say("envsync: using the cached key list");
                }
                return cached.map(|s| s.keys);
            }
        }
    }
    None
}

fn post_commit(ctx: &Context) -> Result<()> {
    let Some(current) = sync::read_env(ctx)? else {
        return Ok(());
    };
    if !sync::has_local_edits(ctx, current.expose())? {
        return Ok(());
    }
    if !edits_under_these_settings(ctx)? {
        out::say(&format!(
            "envsync: {} was never synced under these settings; not pushed (run git envsync push to publish it)",
            ctx.env_display()
        ));
        return Ok(());
    }
    let mut keyring = Keyring::new(&ctx.config, false)?;
    if !keyring.available_without_prompt() {
        out::say(&format!(
            "envsync: {} changed but was not pushed: no passphrase in a hook (set ENVSYNC_PASS, or run git envsync push)",
            ctx.env_display()
        ));
        return Ok(());
    }
    let api = api(ctx)?;
    match sync::push(ctx, &api, &mut keyring, &ctx.branch, false) {
        Ok(PushOutcome::Pushed { version, .. }) => out::say(&format!(
            "envsync: pushed {} to {} as version {version}",
            ctx.env_display(),
            ctx.branch
        )),
        Ok(PushOutcome::UpToDate { .. }) => {}
        Err(e) => out::say(&format!(
            "envsync: {} not pushed: {}",
            ctx.env_display(),
            e.message()
        )),
    }
    Ok(())
}
