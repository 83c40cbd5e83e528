//! `git envsync hook <name> ARGS…`: what the installed git hooks call.
//!
//! A hook never breaks or slows the user's git operation: every network call shares one
//! short deadline, a server that just failed is not asked again for a while (see
//! [`Offline`]), the cached key list and the sealed copies stand in when the server is
//! down, nothing ever prompts, and a hook run prints at most one `envsync: …` line (none
//! when nothing happened). The only non-zero exits are the two deliberate refusals of
//! pre-commit: a staged env file, and drift under `git config envsync.strict true`.
//!
//! The env file belongs to one branch at a time (its owner, in the local state): edits
//! are pushed to that branch only, a checkout either brings the new branch's env or
//! leaves the file marked as the old branch's, and on a detached HEAD the hooks do
//! nothing at all.

use crate::cli::Global;
use crate::client::{self, Api, Timeouts};
use crate::config::ProjectConfig;
use crate::context::Context;
use crate::crypto::Keyring;
use crate::drift::Drift;
use crate::error::{CliError, Exit, Result};
use crate::fingerprints;
use crate::fsutil;
use crate::git::Repo;
use crate::out;
use crate::state::{FileState, Source};
use crate::sync::{self, PullOptions, PullOutcome, PushOutcome};
use crate::trust::TrustStore;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// Entry points for the installed git hooks (not for direct use).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    hook: Hook,
}

#[derive(Debug, Subcommand)]
enum Hook {
    /// After a checkout: push unpushed edits to the branch they belong to, then bring the
    /// new branch's env.
    PostCheckout {
        previous: Option<String>,
        new: Option<String>,
        /// 1 for a branch checkout, 0 for a file checkout.
        flag: Option<String>,
    },
    /// Before a commit: refuse a staged env file, warn about drift.
    PreCommit,
    /// After a commit: push the env file's edits to the branch it belongs to.
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
    let Ok(repo) = Repo::discover() else {
        return Ok(ExitCode::SUCCESS);
    };
    // A work tree without envsync settings (not set up, or left out of a sparse
    // checkout) has none to load; the settings are read once, for the guard and the rest.
    let config = ProjectConfig::exists(&repo.root).then(|| ProjectConfig::load(&repo.root));
    // The plaintext guard comes first and needs nothing but the repository and its
    // index: no branch, no trusted config, no server, no parse of the env file.
    if matches!(args.hook, Hook::PreCommit)
        && let Some(code) = plaintext_guard(&repo, config.as_ref().and_then(|c| c.as_ref().ok()))
    {
        return Ok(code);
    }
    // A rebase, a bisect, a detached checkout: there is no branch whose env to follow.
    if repo.head_detached() {
        return Ok(ExitCode::SUCCESS);
    }
    // No settings: nothing to do, nothing to say.
    let config = match config {
        None => return Ok(ExitCode::SUCCESS),
        Some(Ok(config)) => config,
        Some(Err(e)) => {
            warn(&e);
            return Ok(ExitCode::SUCCESS);
        }
    };
    // Settings this clone has not trusted are not acted on: one line, nothing else.
    let trust = TrustStore::new(repo.common_dir());
    if !trust.is_trusted(&config).unwrap_or(false) {
        let why = trust
            .untrusted(&config)
            .map(|e| e.message())
            .unwrap_or_default();
        out::say(&format!(
            "envsync: {why}; the hooks do nothing until you review it with git envsync trust"
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let result = Context::load_trusted(global, repo, config).and_then(|ctx| {
        let offline = Offline::new(&ctx);
        match args.hook {
            Hook::PostCheckout { previous, new, .. } => {
                let left = Left {
                    same_commit: previous == new,
                    previous,
                };
                post_checkout(&ctx, &offline, &left).map(|()| ExitCode::SUCCESS)
            }
            Hook::PreCommit => pre_commit(&ctx, &offline),
            Hook::PostCommit => post_commit(&ctx, &offline).map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            warn(&e);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `git config envsync.autopush`: which hooks push edits by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autopush {
    /// Both post-commit and post-checkout (the default).
    Always,
    /// Only post-commit.
    Commit,
    /// Only post-checkout (edits follow their branch when leaving it).
    Checkout,
    /// Neither: pushes are `git envsync push`'s alone.
    Never,
}

impl Autopush {
    /// The setting, or what is wrong with it (one clause, for the one line a hook
    /// prints): a value that is none of the known ones pushes nothing.
    pub fn of(repo: &Repo) -> std::result::Result<Autopush, String> {
        match repo
            .config_string("envsync.autopush")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("true" | "yes" | "on" | "1") => Ok(Autopush::Always),
            Some("commit") => Ok(Autopush::Commit),
            Some("checkout") => Ok(Autopush::Checkout),
            Some("false" | "no" | "off" | "0") => Ok(Autopush::Never),
            Some(other) => Err(format!(
                "envsync.autopush = {other} is not true, commit, checkout or false"
            )),
        }
    }

    fn on_commit(self) -> bool {
        matches!(self, Autopush::Always | Autopush::Commit)
    }

    fn on_checkout(self) -> bool {
        matches!(self, Autopush::Always | Autopush::Checkout)
    }

    /// When the hooks push, for `hooks install`.
    pub fn when(self) -> &'static str {
        match self {
            Autopush::Always => {
                "at each commit, and when a checkout leaves the branch they belong to"
            }
            Autopush::Commit => "at each commit",
            Autopush::Checkout => "when a checkout leaves the branch they belong to",
            Autopush::Never => "never (git envsync push does)",
        }
    }
}

fn warn(e: &CliError) {
    out::say(&format!("envsync: {}", why(e)));
}

/// What went wrong, for a hook's one line: the error's message, except that a rejected
/// token says how to log in again (the hint a command would print is not shown here).
fn why(e: &CliError) -> String {
    if client::token_rejected(e) {
        client::TOKEN_REJECTED.to_owned()
    } else {
        e.message()
    }
}

/// Refuses a commit that stages an env file or one of its backups: the file the
/// project's settings name (trusted or not: this only reads the index), every env file a
/// trusted setting named, and `.env`. `None` when nothing is staged.
fn plaintext_guard(repo: &Repo, config: Option<&ProjectConfig>) -> Option<ExitCode> {
    let mut candidates = vec![".env".to_owned()];
    candidates.extend(config.map(|c| c.env_file.clone()));
    candidates.extend(TrustStore::new(repo.common_dir()).env_files());
    let staged = candidates
        .iter()
        .find_map(|rel| repo.staged_plaintext(rel))?;
    out::error(&format!(
        "{staged} is staged: plaintext secrets must never be committed"
    ));
    out::hint(&format!(
        "git rm --cached {staged} (envsync keeps it in sync instead)"
    ));
    Some(ExitCode::from(1))
}

/// A server that did not answer a moment ago is not asked again for a while: a rebase or
/// a cherry-pick of many commits runs the hooks once per commit, and must pay the
/// network timeout once, not once per commit. Kept in `.git/envsync/offline` (the
/// server's origin), fresh for [`Offline::FOR`]; any answer from the server clears it.
pub struct Offline {
    path: PathBuf,
    origin: String,
}

impl Offline {
    const FOR: Duration = Duration::from_secs(30);

    fn new(ctx: &Context) -> Offline {
        Offline {
            path: ctx.repo.git_dir().join("envsync").join("offline"),
            origin: ctx.remote.server.clone().unwrap_or_default(),
        }
    }

    /// Whether the server failed to answer less than [`Offline::FOR`] ago.
    fn recently(&self) -> bool {
        let fresh = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .is_some_and(|age| age < Offline::FOR);
        fresh && std::fs::read_to_string(&self.path).is_ok_and(|o| o == self.origin)
    }

    /// Records the outcome of a network operation.
    fn note(&self, failed: bool) {
        if failed {
            if let Some(dir) = self.path.parent()
                && fsutil::private_dir(dir).is_ok()
            {
                let _ = fsutil::write_state(&self.path, self.origin.as_bytes());
            }
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// The API client, unless the server was unreachable a moment ago.
    fn api(&self, ctx: &Context) -> Result<Option<Api>> {
        if self.recently() {
            return Ok(None);
        }
        ctx.api(Timeouts::HOOK).map(Some)
    }

    /// Notes whether `result` failed for want of the server.
    fn track<T>(&self, result: &Result<T>) {
        match result {
            Err(e) if e.exit == Exit::Server => self.note(true),
            Ok(_) => self.note(false),
            Err(_) => {}
        }
    }
}

/// The file's state, whether the file differs from it, and its hash (`None`: no file).
fn edited(ctx: &Context) -> Result<Option<(Option<FileState>, bool, String)>> {
    let Some(current) = sync::read_env(ctx)? else {
        return Ok(None);
    };
    let hash = fsutil::sha256_hex(current.expose());
    let file = ctx.state.file()?;
    let edited = file.as_ref().is_none_or(|f| f.sha256 != hash);
    Ok(Some((file, edited, hash)))
}

/// Keeps [`FileState::away`] true to what just happened: set when the checked-out branch
/// is not the file's owner, cleared when back on the owner with the file unchanged
/// (`hash`, its hash now).
fn settle_away(ctx: &Context, file: &mut FileState, hash: &str) -> Result<()> {
    let away = if file.branch != ctx.branch {
        file.away.clone().or_else(|| Some(hash.to_owned()))
    } else if file.away.as_deref() == Some(hash) {
        None
    } else {
        file.away.clone()
    };
    if away != file.away {
        file.away = away;
        ctx.state.set_file(file)?;
    }
    Ok(())
}

/// What post-checkout knows of the HEAD it left.
struct Left {
    /// The commit checked out before (git's first argument).
    previous: Option<String>,
    /// The checkout stayed on the same commit (`switch -c`, or another branch there).
    same_commit: bool,
}

impl Left {
    /// Whether the HEAD left could have been `branch`: the branch still exists and points
    /// at the commit left.
    fn could_be(&self, ctx: &Context, branch: &str) -> bool {
        let tip = ctx.repo.branch_tip(branch);
        tip.is_some() && tip == self.previous
    }

    /// Whether the HEAD left was `owner`: HEAD's reflog names the branch it moved from
    /// (two branches at one commit are told apart); when it names no branch (HEAD was
    /// detached, or the move is not in the reflog), whether it could have been
    /// ([`Left::could_be`]: `owner` points at the commit left). Edits are pushed to their
    /// owner at a checkout, or taken over by a branch created from HEAD, only then; a
    /// renamed or deleted owner, or a checkout from another branch, keeps them.
    fn was(&self, ctx: &Context, owner: &str) -> bool {
        match ctx.repo.moved_from(&ctx.branch) {
            Some(from) if ctx.repo.branch_tip(&from).is_some() => {
                from == owner && self.could_be(ctx, owner)
            }
            _ => self.could_be(ctx, owner),
        }
    }
}

fn post_checkout(ctx: &Context, offline: &Offline, left: &Left) -> Result<()> {
    let result = follow_checkout(ctx, offline, left);
    // Read again: following the checkout may have written the file and its state.
    if let Some((Some(mut file), _, hash)) = edited(ctx)? {
        settle_away(ctx, &mut file, &hash)?;
    }
    result
}

fn follow_checkout(ctx: &Context, offline: &Offline, left: &Left) -> Result<()> {
    let same_commit = left.same_commit;
    let env = ctx.env_display();
    let branch = &ctx.branch;
    let state = edited(ctx)?;
    if let Some((None, ..)) = &state {
        // Never synced: nobody's env. Left alone, and never pushed by a hook.
        out::say(&format!(
            "envsync: {env} was never synced; left as it is (git envsync push publishes it to {branch})"
        ));
        return Ok(());
    }
    if let Some((Some(file), true, hash)) = &state {
        if file.branch == *branch {
            // Back on the branch the edits belong to: they stay.
            return Ok(());
        }
        // A branch just created from HEAD takes the edits over, instead of having them
        // pushed to the branch it was made from; only when they are that branch's (or
        // that commit's) and were made there: edits kept while another branch was
        // checked out, or changed there, stay their owner's, whatever branch is created
        // next.
        if same_commit
            && ctx.repo.created_from_head(branch)
            && left.was(ctx, &file.branch)
            && !file.changed_while_away(hash)
        {
            ctx.state.set_file(&FileState {
                sha256: file.sha256.clone(),
                branch: branch.clone(),
                version: None,
                from: Some(Source {
                    branch: file.branch.clone(),
                    version: file.version,
                }),
                config: file.config.clone(),
                away: None,
            })?;
            out::say(&format!(
                "envsync: {branch} takes over your unpushed edits to {env} (from {})",
                file.holds()
            ));
            return Ok(());
        }
        // The edits go to their own branch first, or the file is left as it is.
        let kept = |why: &str| {
            out::say(&format!(
                "envsync: kept your edits to {} in {env} ({why}); it is not {branch}'s env",
                file.holds()
            ));
        };
        if !synced_under_these_settings(ctx, file) {
            kept("made under other settings, not pushed");
            return Ok(());
        }
        if file.changed_while_away(hash) {
            kept("changed while another branch was checked out, so not pushed by a hook");
            return Ok(());
        }
        match Autopush::of(&ctx.repo) {
            Ok(autopush) if autopush.on_checkout() => {}
            Ok(_) => {
                kept("envsync.autopush does not push at checkouts; git envsync push --branch does");
                return Ok(());
            }
            Err(bad) => {
                kept(&format!("{bad}, so not pushed"));
                return Ok(());
            }
        }
        if !left.was(ctx, &file.branch) {
            kept(&format!(
                "this checkout did not leave {}, so not pushed by a hook",
                file.branch
            ));
            return Ok(());
        }
        let mut keyring = Keyring::new(&ctx.config, &ctx.keys, false)?;
        if !keyring.available_without_prompt() {
            kept("no passphrase in a hook: git envsync unlock, or git envsync push --branch");
            return Ok(());
        }
        let Some(api) = offline.api(ctx)? else {
            kept("server unreachable");
            return Ok(());
        };
        // The file's owner is not checked out: nothing to merge into here.
        let pushed = sync::push(
            ctx,
            &api,
            &mut keyring,
            &file.branch,
            false,
            sync::Merge::Never,
        );
        offline.track(&pushed);
        match pushed {
            Ok(PushOutcome::Pushed { version, .. }) => {
                // Said together with what the checkout brought, below.
                return pull_new_branch(
                    ctx,
                    offline,
                    Some(format!(
                        "pushed your edits to {} as version {version}",
                        file.branch
                    )),
                );
            }
            Ok(PushOutcome::UpToDate { .. }) => {}
            Err(e) => {
                kept(&format!("not pushed: {}", why(&e)));
                return Ok(());
            }
        }
    }
    pull_new_branch(ctx, offline, None)
}

/// Brings the checked-out branch's env into the file: from the server, else from this
/// clone's sealed copy, else the file stays as it is and says whose it is.
fn pull_new_branch(ctx: &Context, offline: &Offline, pushed: Option<String>) -> Result<()> {
    let env = ctx.env_display();
    let branch = &ctx.branch;
    let say = |what: String| match &pushed {
        Some(p) => out::say(&format!("envsync: {p}; {what}")),
        None => out::say(&format!("envsync: {what}")),
    };
    let still = || {
        ctx.state
            .file()
            .ok()
            .flatten()
            .filter(|f| f.branch != *branch)
            .map(|f| format!("; it still holds {}", f.holds()))
            .unwrap_or_default()
    };
    let opts = PullOptions {
        fallback: true,
        ..PullOptions::default()
    };
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, false)?;
    let pulled = match offline.api(ctx)? {
        Some(api) => {
            if let Some(old) = renamed_with_env(ctx, &api) {
                // The default branch's env would stand in for it, and the first edit would
                // be pushed as its first version, orphaning the env of its old name: the
                // file stays as it is until `mv` moves that env.
                say(format!(
                    "{branch} has no env on the server, but it was renamed from {old}: git envsync mv {old} {branch} moves its env{}",
                    still()
                ));
                return Ok(());
            }
            let pulled = sync::pull(ctx, &api, &mut keyring, opts);
            offline.track(&pulled);
            pulled
        }
        None => Err(CliError::server("server unreachable a moment ago")),
    };
    match pulled {
        Ok(PullOutcome::Written { from, version, .. }) if from == *branch => {
            say(format!("{env} is now {from} version {version}"));
        }
        Ok(PullOutcome::Written { from, version, .. }) => say(format!(
            "{env} is now {from} version {version} ({branch} has no env of its own yet)"
        )),
        Ok(PullOutcome::Unchanged { .. }) => {
            if let Some(p) = &pushed {
                out::say(&format!("envsync: {p}"));
            }
        }
        Ok(PullOutcome::NoEnv) => {
            let still = still();
            if !still.is_empty() || pushed.is_some() {
                say(format!("{branch} has no env on the server{still}"));
            }
        }
        Err(e) if e.exit == Exit::Server => match sync::fetch_offline(ctx, branch)? {
            Some(copy) => {
                let version = copy.version;
                match sync::write_fetched(ctx, copy, PullOptions::default()) {
                    Ok(_) => say(format!(
                        "server unreachable; {env} is {branch} version {version} from this clone's copy"
                    )),
                    Err(e) => say(format!(
                        "{env} not updated for {branch}: {}{}",
                        why(&e),
                        still()
                    )),
                }
            }
            None => say(format!(
                "{env} not updated for {branch} (server unreachable){}",
                still()
            )),
        },
        Err(e) => say(format!(
            "{env} not updated for {branch}: {}{}",
            why(&e),
            still()
        )),
    }
    Ok(())
}

/// The name the checked-out branch had before a `git branch -m`, when the branch has no
/// env on the server and that name has one; `None` otherwise, or when the server cannot
/// say (the pull that follows reports that).
fn renamed_with_env(ctx: &Context, api: &Api) -> Option<String> {
    let old = ctx.repo.renamed_from(&ctx.branch)?;
    let project = &ctx.config.project;
    let new_has_none = matches!(api.keys(project, &ctx.branch), Ok(None));
    (new_has_none && matches!(api.keys(project, &old), Ok(Some(_)))).then_some(old)
}

fn pre_commit(ctx: &Context, offline: &Offline) -> Result<ExitCode> {
    let current = sync::read_env(ctx)?;
    let file = ctx.state.file();
    // Whether the file has edits never pushed (a file never synced counts as edited, and
    // so does one whose state cannot be read); `None`: there is no file.
    let edited = current.as_ref().map(|c| match &file {
        Ok(f) => f
            .as_ref()
            .is_none_or(|f| f.sha256 != fsutil::sha256_hex(c.expose())),
        Err(_) => true,
    });
    note_for_post_commit(ctx, edited != Some(true));
    let Some(current) = current else {
        return Ok(ExitCode::SUCCESS);
    };
    let file = file?;
    let strict = ctx.repo.config_bool("envsync.strict");
    let refuse_with = |what: String, fix: &str| {
        if strict {
            out::error(&format!("{what} (envsync.strict is set)"));
            out::hint(&format!("{fix}, or git commit --no-verify to skip once"));
            ExitCode::from(1)
        } else {
            out::say(&format!("envsync: {what}"));
            ExitCode::SUCCESS
        }
    };
    let refuse = |what: String| refuse_with(what, "git envsync pull or push");
    // A file that holds another branch's env is worse than drift: say whose it is.
    if let Some(file) = file
        && file.branch != ctx.branch
    {
        return Ok(refuse(format!(
            "{} holds {}, not {} ({})",
            ctx.env_display(),
            file.holds(),
            ctx.branch,
            foreign_hint(ctx, &file)
        )));
    }
    // Edits this commit's post-commit will push differ from the server by design; only
    // strict mode (which wants them pushed first) looks at them.
    if !strict && edited == Some(true) {
        return Ok(ExitCode::SUCCESS);
    }
    let local = sync::parse_keys(ctx, current.expose())?.names;
    let Some((server, why_cached)) = server_keys(ctx, offline) else {
        return Ok(ExitCode::SUCCESS);
    };
    // The local fingerprints (the kept key unsealed, every value keyed) only when the
    // server has some to compare them with.
    let changed = server.fingerprints.as_ref().and_then(|theirs| {
        fingerprints::changed(
            fingerprints::of_local(ctx, current.expose()).as_ref(),
            Some(theirs),
        )
    });
    let drift = Drift::new(local, server.keys).with_values(changed);
    if drift.in_sync() {
        return Ok(ExitCode::SUCCESS);
    }
    let what = format!(
        "{} drifts from the server's {}{}: {}",
        ctx.env_display(),
        if drift.missing.is_empty() && drift.extra.is_empty() {
            "values"
        } else {
            "keys"
        },
        if server.cached {
            format!(" (as last seen: {why_cached})")
        } else {
            String::new()
        },
        drift.summary()
    );
    if server.cached && why_cached == client::TOKEN_REJECTED {
        // pull and push would be refused too: logging in again comes first.
        return Ok(refuse_with(
            what,
            "git envsync login, then git envsync pull or push",
        ));
    }
    Ok(refuse(what))
}

/// How to get out of a file that holds another branch's env.
fn foreign_hint(ctx: &Context, file: &FileState) -> String {
    match ctx.repo.renamed_from(&ctx.branch) {
        Some(old) if old == file.branch => format!(
            "{} was renamed from {old}: git envsync mv {old} {} moves its env",
            ctx.branch, ctx.branch
        ),
        // The file holds yet another branch's env (a checkout onto the renamed branch
        // left it as it was): after the move, pull brings it.
        Some(old) => format!(
            "{} was renamed from {old}: git envsync mv {old} {} moves its env, then git envsync pull brings it",
            ctx.branch, ctx.branch
        ),
        _ => format!(
            "git envsync pull takes {}'s, git envsync adopt makes this file its own",
            ctx.branch
        ),
    }
}

/// Whether the env file's content was last synced under the project settings trusted
/// now: only then may a hook push its edits.
fn synced_under_these_settings(ctx: &Context, file: &FileState) -> bool {
    file.config.as_deref() == Some(ctx.config.digest().as_str())
}

/// Where pre-commit notes, for the post-commit hook's shell, that the env file was in sync
/// (inside the git directory, beside envsync's state).
pub const POST_COMMIT_NOTE: &str = "envsync/post-commit-clean";

/// Leaves the post-commit hook a note when the env file has nothing to push: its path and
/// HEAD as they are now. While HEAD is the same and neither the env file nor the project
/// file is newer than the note, the hook's shell skips starting `git-envsync` at all
/// (see `hooks/post-commit`); the note is removed when the file has unpushed edits.
/// Anything unexpected only means the hook runs the binary, which decides for itself.
fn note_for_post_commit(ctx: &Context, in_sync: bool) {
    let git_dir = ctx.repo.git_dir();
    let note = git_dir.join(POST_COMMIT_NOTE);
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
                ctx.repo.root.join(crate::config::PROJECT_FILE),
                ctx.repo.root.join(crate::config::LEGACY_PROJECT_FILE),
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
/// cannot be asked (then with why not: unreachable, or the token rejected); `None` when
/// there is nothing to compare with.
fn server_keys(ctx: &Context, offline: &Offline) -> Option<(sync::ServerKeys, String)> {
    let api = offline.api(ctx).ok().flatten();
    let mut why_cached = "server unreachable".to_owned();
    for branch in &ctx.branch_and_fallback() {
        let (keys, failure) = sync::server_keys(ctx, api.as_ref(), branch);
        match (&api, failure) {
            (Some(api), Some(e)) => {
                let failed = Err(api.fail(e));
                offline.track::<()>(&failed);
                if let Err(e) = &failed
                    && e.exit != Exit::Server
                {
                    why_cached = why(e);
                }
            }
            (Some(_), None) => offline.note(false),
            (None, _) => {}
        }
        if let Some(keys) = keys {
            return Some((keys, why_cached));
        }
    }
    None
}

fn post_commit(ctx: &Context, offline: &Offline) -> Result<()> {
    let env = ctx.env_display();
    let Some((mut file, edited, hash)) = edited(ctx)? else {
        return Ok(());
    };
    if let Some(file) = &mut file {
        settle_away(ctx, file, &hash)?;
    }
    if !edited {
        return Ok(());
    }
    let Some(file) = file else {
        out::say(&format!(
            "envsync: {env} was never synced; not pushed (git envsync push publishes it to {})",
            ctx.branch
        ));
        return Ok(());
    };
    if file.branch != ctx.branch {
        out::say(&format!(
            "envsync: {env} not pushed: it holds edits to {}, not {} ({})",
            file.holds(),
            ctx.branch,
            foreign_hint(ctx, &file)
        ));
        return Ok(());
    }
    if !synced_under_these_settings(ctx, &file) {
        out::say(&format!(
            "envsync: {env} was synced under other settings; not pushed (git envsync push, after checking it)"
        ));
        return Ok(());
    }
    if file.changed_while_away(&hash) {
        out::say(&format!(
            "envsync: {env} not pushed: it was changed while another branch was checked out (git envsync push publishes it to {})",
            ctx.branch
        ));
        return Ok(());
    }
    match Autopush::of(&ctx.repo) {
        Ok(autopush) if autopush.on_commit() => {}
        // The user turned commit-time pushes off: theirs to make, nothing to say.
        Ok(_) => return Ok(()),
        Err(bad) => {
            out::say(&format!("envsync: {env} not pushed: {bad}"));
            return Ok(());
        }
    }
    let mut keyring = Keyring::new(&ctx.config, &ctx.keys, false)?;
    if !keyring.available_without_prompt() {
        out::say(&format!(
            "envsync: {env} changed but was not pushed: no passphrase in a hook (git envsync unlock keeps it for the hooks, or run git envsync push)"
        ));
        return Ok(());
    }
    let Some(api) = offline.api(ctx)? else {
        out::say(&format!(
            "envsync: {env} not pushed: server unreachable (a commit or checkout later pushes it)"
        ));
        return Ok(());
    };
    let pushed = sync::push(
        ctx,
        &api,
        &mut keyring,
        &ctx.branch,
        false,
        sync::Merge::IfClean,
    );
    offline.track(&pushed);
    match pushed {
        Ok(PushOutcome::Pushed {
            version,
            merged: Some((theirs, _)),
            ..
        }) => out::say(&format!(
            "envsync: merged {} version {theirs} into {env} and pushed it as version {version}",
            ctx.branch
        )),
        Ok(PushOutcome::Pushed { version, .. }) => out::say(&format!(
            "envsync: pushed {env} to {} as version {version}",
            ctx.branch
        )),
        Ok(PushOutcome::UpToDate { .. }) => {}
        Err(e) => out::say(&format!("envsync: {env} not pushed: {}", why(&e))),
    }
    Ok(())
}
