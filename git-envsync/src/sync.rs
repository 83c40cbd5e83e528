//! Push and pull: the two operations that move an env file between this clone and the
//! server, shared by the commands and the git hooks.
//!
//! The rules that keep data safe live here and nowhere else:
//! - push sends the last version this clone synced as `base_version`, so the server
//!   refuses (409) to bury a version this clone has not seen;
//! - pull refuses to overwrite local edits (the file no longer hashes to what envsync last
//!   wrote or pushed) unless forced, and then saves a backup first;
//! - pull verifies the binding (project, branch, version), refuses a version older than
//!   the newest seen, and checks the server's key list against the decrypted names;
//! - the env file is written only after every check passed, atomically, mode 0600.

use crate::client::{Api, ApiError};
use crate::context::Context;
use crate::crypto::{self, Keyring};
use crate::error::{CliError, Result};
use crate::fsutil;
use crate::state::{BranchState, FileState};
use envsync_common::api::PushRequest;
use envsync_common::envelope::{self, Binding, Open, Seal};
use envsync_common::envfile;
use envsync_common::secret::{SecretBytes, ct_eq};
use reqwest::StatusCode;
use std::path::PathBuf;

/// Reads the env file; `None` when it does not exist.
pub fn read_env(ctx: &Context) -> Result<Option<SecretBytes>> {
    Ok(fsutil::read_optional(&ctx.env_path)?.map(SecretBytes::new))
}

/// The key names of an env file, or a usage error naming the line.
pub fn parse_keys(ctx: &Context, bytes: &[u8]) -> Result<envfile::Keys> {
    envfile::keys(bytes).map_err(|e| {
        CliError::usage(format!("{}: {e}", ctx.env_display()))
            .hint("fix that line; envsync reads the usual KEY=VALUE dotenv syntax")
    })
}

/// Whether the env file differs from what envsync last wrote or pushed. A file envsync has
/// never synced counts as edited: nothing may silently replace it.
pub fn has_local_edits(ctx: &Context, current: &[u8]) -> Result<bool> {
    let file = ctx.state.file()?;
    Ok(file.is_none_or(|f| f.sha256 != fsutil::sha256_hex(current)))
}

#[derive(Debug)]
pub enum PushOutcome {
    Pushed {
        version: u64,
        added: Vec<String>,
        removed: Vec<String>,
        duplicates: Vec<String>,
    },
    /// The file is what this clone last synced for the branch.
    UpToDate { version: u64 },
}

/// Encrypts the env file and pushes it as the next version of `branch` (the checked-out
/// branch, or the one just left when a hook pushes edits after a checkout).
pub fn push(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    branch_name: &str,
    force: bool,
) -> Result<PushOutcome> {
    let bytes = read_env(ctx)?.ok_or_else(|| {
        CliError::usage(format!("there is no {} to push", ctx.env_display()))
            .hint("create it, or run git envsync pull to fetch the branch's env")
    })?;
    let keys = parse_keys(ctx, bytes.expose())?;
    let sha = fsutil::sha256_hex(bytes.expose());
    let mut branch = ctx.state.branch(branch_name)?;
    if !force
        && let Some(version) = branch.version
        && branch.sha256.as_deref() == Some(&sha)
    {
        return Ok(PushOutcome::UpToDate { version });
    }

    let base = if force {
        api.keys(&ctx.config.project, branch_name)
            .map_err(|e| api.fail(e))?
            .map(|k| k.version)
    } else {
        branch.version
    };
    let old_keys = branch.keys.clone();
    let version = push_version(ctx, api, keyring, &mut branch, bytes.expose(), base)?;
    let (added, removed) = key_changes(&old_keys, &keys.names);
    ctx.state.set_file(&FileState {
        sha256: sha,
        branch: branch_name.to_owned(),
        version,
    })?;
    Ok(PushOutcome::Pushed {
        version,
        added,
        removed,
        duplicates: keys.duplicates,
    })
}

/// Seals `content` as version `base + 1` of `branch` and pushes it with compare-and-swap
/// on `base`; records the branch state and the sealed local copy (not the file state:
/// the content need not be the env file's, as in `rotate` and `rollback`).
pub fn push_version(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    branch: &mut BranchState,
    content: &[u8],
    base: Option<u64>,
) -> Result<u64> {
    let keys = parse_keys(ctx, content)?.names;
    let version = base.map_or(1, |b| b + 1);
    let binding = Binding::new(&ctx.config.project, &branch.branch, version);
    let request = PushRequest {
        ciphertext: keyring.seal(&binding, content)?,
        keys: keys.clone(),
        base_version: base,
    };
    let answer = match api.push(&ctx.config.project, &branch.branch, &request) {
        Ok(answer) => answer,
        Err(e) if e.is_status(StatusCode::CONFLICT) => return Err(conflict(ctx, api, branch, e)),
        Err(e) => return Err(api.fail(e)),
    };
    if answer.version != version {
        return Err(CliError::refused(format!(
            "the server stored version {} but this push was sealed as version {version}",
            answer.version
        ))
        .hint("the server is misbehaving; run git envsync status and tell its operator"));
    }
    branch.version = Some(version);
    branch.sha256 = Some(fsutil::sha256_hex(content));
    branch.saw(version, &keys);
    seal_local_copy(ctx, branch, content);
    ctx.state.set_branch(branch)?;
    Ok(version)
}

fn conflict(ctx: &Context, api: &Api, branch: &BranchState, err: ApiError) -> CliError {
    let current = match &err {
        ApiError::Status { body, .. } => body.current_version,
        ApiError::Unreachable(_) | ApiError::TooLarge => None,
    };
    let latest = api
        .latest_version(&ctx.config.project, &branch.branch)
        .ok()
        .flatten();
    let who = latest
        .map(|v| format!(" (pushed by {} at {})", v.pushed_by, v.pushed_at))
        .unwrap_or_default();
    let mine = match branch.version {
        Some(v) => format!("this clone last synced version {v}"),
        None => "this clone has never synced it".to_owned(),
    };
    CliError::refused(format!(
        "push refused: the server has version {} of {}{who}, and {mine}",
        current.map_or_else(|| "?".to_owned(), |v| v.to_string()),
        branch.branch
    ))
    .hint("run git envsync pull (your edits are kept unless you pass --force), merge, then push; or push --force to replace it")
}

/// What pull should do.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullOptions {
    /// Replace local edits (after saving a backup).
    pub force: bool,
    /// A specific version instead of the latest (older versions allowed).
    pub version: Option<u64>,
    /// Fall back to `default_branch` when the branch has no env yet.
    pub fallback: bool,
}

#[derive(Debug)]
pub enum PullOutcome {
    Written {
        from: String,
        version: u64,
        backup: Option<PathBuf>,
    },
    /// The file already holds that version.
    Unchanged { from: String, version: u64 },
    /// Neither the branch nor the fallback has an env on the server.
    NoEnv,
}

/// A verified env file fetched for a branch, not yet written anywhere.
#[derive(Debug)]
pub struct Fetched {
    pub content: SecretBytes,
    /// The branch it came from (the fallback branch when ours has no env).
    pub from: String,
    pub version: u64,
    pub server_keys: Vec<String>,
    /// Taken from the sealed local copy (the server had not moved).
    pub cached: bool,
}

/// Finds, decrypts and verifies the branch's env (or the fallback branch's); `None` when
/// neither has one. Writes nothing.
pub fn fetch(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    opts: PullOptions,
) -> Result<Option<Fetched>> {
    let project = &ctx.config.project;
    let fail = |e| api.fail(e);

    // Which branch and version to take: ours, or the fallback branch's latest.
    let mut from = ctx.branch.clone();
    let latest = match opts.version {
        Some(_) => None,
        None => {
            let mut keys = api.keys(project, &from).map_err(fail)?;
            if keys.is_none()
                && opts.fallback
                && let Some(default) = ctx.config.default_branch.as_ref().filter(|d| **d != from)
            {
                keys = api.keys(project, default).map_err(fail)?;
                from = default.clone();
            }
            match keys {
                Some(k) => Some(k),
                None => return Ok(None),
            }
        }
    };
    let branch = ctx.state.branch(&from)?;
    if let Some(latest) = &latest {
        check_not_rolled_back(&branch, latest.version, &from)?;
    }

    // The content: from the sealed local copy when the server has not moved since this
    // clone synced (no scrypt), otherwise from the server.
    let cached = latest
        .as_ref()
        .filter(|k| branch.version == Some(k.version))
        .and_then(|k| open_cached(ctx, &branch, &from, k.version));
    let (content, version, server_keys, was_cached) = match (cached, latest) {
        (Some(content), Some(k)) => (content, k.version, k.keys, true),
        (_, latest) => {
            let target = latest.map(|k| k.version).or(opts.version);
            let env = api
                .env(project, &from, target)
                .map_err(fail)?
                .ok_or_else(|| {
                    CliError::refused(match opts.version {
                        Some(v) => format!("version {v} of {from} does not exist on the server"),
                        None => format!("{from} has no env on the server any more"),
                    })
                })?;
            // The answer must be the version asked for: otherwise a server whose key
            // list says N could serve N-1 (correctly bound to N-1) to a clone that
            // never saw N, and the binding check alone would not notice.
            if let Some(asked) = target
                && env.version != asked
            {
                return Err(CliError::refused(format!(
                    "integrity check failed: the server answered with version {} of {from} when version {asked} was asked for",
                    env.version
                ))
                .hint("nothing was written; the server is misbehaving"));
            }
            if opts.version.is_none() {
                check_not_rolled_back(&branch, env.version, &from)?;
            }
            let opened = keyring.open(&env.ciphertext)?;
            opened
                .binding
                .verify(&Binding::new(project, &from, env.version))
                .map_err(|e| {
                    CliError::refused(format!("integrity check failed: {e}")).hint(
                        "the server served a file that belongs elsewhere; nothing was written",
                    )
                })?;
            (opened.env, env.version, env.keys, false)
        }
    };
    check_keys(ctx, content.expose(), &server_keys)?;
    Ok(Some(Fetched {
        content,
        from,
        version,
        server_keys,
        cached: was_cached,
    }))
}

/// Fetches, verifies and writes the branch's env file.
pub fn pull(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    opts: PullOptions,
) -> Result<PullOutcome> {
    let Some(Fetched {
        content,
        from,
        version,
        server_keys,
        cached: was_cached,
    }) = fetch(ctx, api, keyring, opts)?
    else {
        return Ok(PullOutcome::NoEnv);
    };
    let mut branch = ctx.state.branch(&from)?;
    let sha = fsutil::sha256_hex(content.expose());
    // Before anything is written (a backup included): a symlinked env file is refused.
    fsutil::refuse_symlink(&ctx.env_path)?;
    let current = read_env(ctx)?;
    let outcome = match &current {
        Some(cur) if ct_eq(cur.expose(), content.expose()) => {
            // Same bytes: only make sure the mode is right.
            fsutil::make_private(&ctx.env_path)?;
            PullOutcome::Unchanged {
                from: from.clone(),
                version,
            }
        }
        _ => {
            let mut backup = None;
            if let Some(cur) = &current
                && has_local_edits(ctx, cur.expose())?
            {
                if !opts.force {
                    return Err(CliError::refused(format!(
                        "{} has local edits that were never pushed; not overwriting them",
                        ctx.env_display()
                    ))
                    .hint("push them first (git envsync push), or pull --force to replace the file (a backup is saved)"));
                }
                backup = Some(fsutil::backup(&ctx.env_path, cur.expose())?);
            }
            fsutil::write_atomic(&ctx.env_path, content.expose(), 0o600)?;
            PullOutcome::Written {
                from: from.clone(),
                version,
                backup,
            }
        }
    };

    // An explicitly requested old version is not "synced": the next push still builds on
    // the newest version this clone had.
    let synced = opts.version.is_none() || branch.version.is_none();
    if synced {
        branch.version = Some(version);
        branch.sha256 = Some(sha.clone());
    }
    branch.saw(version, &server_keys);
    let file = FileState {
        sha256: sha,
        branch: from,
        version,
    };
    if synced && !was_cached {
        seal_local_copy(ctx, &branch, content.expose());
    }
    ctx.state.set_branch(&branch)?;
    ctx.state.set_file(&file)?;
    Ok(outcome)
}

fn check_not_rolled_back(branch: &BranchState, version: u64, from: &str) -> Result<()> {
    if version < branch.seen {
        return Err(CliError::refused(format!(
            "rollback detected: the server offers version {version} of {from}, but this clone has already seen version {}",
            branch.seen
        ))
        .hint("nothing was written; if the server was restored from a backup on purpose, pass --version to take an older version"));
    }
    Ok(())
}

/// The server's key list must be exactly the names in the decrypted file: a mismatch
/// means the server (or someone with access to it) is lying, which is not drift.
fn check_keys(ctx: &Context, content: &[u8], server_keys: &[String]) -> Result<()> {
    let names = envfile::keys(content)
        .map(|k| k.names)
        .map_err(|e| CliError::refused(format!("the decrypted file does not parse: {e}")))?;
    let mut a = names;
    let mut b = server_keys.to_vec();
    a.sort();
    b.sort();
    if a != b {
        return Err(CliError::refused(format!(
            "integrity check failed: the server's key list for {} does not match the decrypted file",
            ctx.env_display()
        ))
        .hint("nothing was written; the server's metadata was altered"));
    }
    Ok(())
}

/// Opens the sealed local copy of a branch's last synced content, if it is there and is
/// what the state says. Any problem just means "fetch from the server".
fn open_cached(
    ctx: &Context,
    branch: &BranchState,
    from: &str,
    version: u64,
) -> Option<SecretBytes> {
    let armored = ctx.state.sealed(from).ok()??;
    let identity = crypto::local_identity().ok()?;
    let opened =
        envelope::open(&armored, &Open::Identities(std::slice::from_ref(&identity))).ok()?;
    opened
        .binding
        .verify(&Binding::new(&ctx.config.project, from, version))
        .ok()?;
    (branch.sha256.as_deref() == Some(&fsutil::sha256_hex(opened.env.expose())))
        .then_some(opened.env)
}

/// Keeps a copy of a branch's current version sealed to the machine-local key, so that
/// switching back to the branch costs no scrypt. An optimisation: failing to make it does
/// not fail the sync.
fn seal_local_copy(ctx: &Context, branch: &BranchState, content: &[u8]) {
    let (Some(version), Ok(identity)) = (branch.version, crypto::local_identity()) else {
        return;
    };
    let binding = Binding::new(&ctx.config.project, &branch.branch, version);
    let recipients = [identity.to_public()];
    if let Ok(sealed) = envelope::seal(&binding, content, &Seal::Recipients(&recipients)) {
        // Not being able to keep it (a full disk, say) costs the next switch an scrypt,
        // nothing more: the env file is already written and must not be reported failed.
        let _ = ctx.state.set_sealed(&branch.branch, &sealed);
    }
}

/// Keys added and removed going from `old` to `new`, in the order they appear.
pub fn key_changes(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
    let added = new.iter().filter(|k| !old.contains(k)).cloned().collect();
    let removed = old.iter().filter(|k| !new.contains(k)).cloned().collect();
    (added, removed)
}
