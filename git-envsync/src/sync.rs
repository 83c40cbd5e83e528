//! Push and pull: the two operations that move an env file between this clone and the
//! server, shared by the commands and the git hooks.
//!
//! The rules that keep data safe live here and nowhere else:
//! - push sends the last version this clone synced as `base_version`, so the server
//!   refuses (409) to bury a version this clone has not seen;
//! - pull refuses to overwrite local edits (the file no longer hashes to what envsync last
//!   wrote or pushed) unless forced, and then saves a backup first;
//! - every version read from the server goes through [`verified`], the one verified
//!   read: the version asked for is the version served, no older than the newest seen
//!   (unless an old one was asked for), sealed within the work-factor cap, bound to this
//!   project, branch and version, with the server's key list equal to the decrypted
//!   names, sealed the way the trusted config's mode seals (passphrase mode: with the
//!   passphrase only; team mode: to the members' keys, never with a passphrase), and in
//!   team mode signed by a member of the trusted config;
//! - the env file is written only after every check passed, atomically, mode 0600.

use crate::client::{Api, ApiError};
use crate::context::Context;
use crate::crypto::{self, Keyring};
use crate::error::{CliError, Result};
use crate::fingerprints;
use crate::fsutil;
use crate::out;
use crate::state::{BranchState, FileState, Source};
use envsync_common::api::{EnvResponse, PushRequest, Role};
use envsync_common::envelope::{self, Binding, Open, Seal};
use envsync_common::envfile;
use envsync_common::secret::{SecretBytes, ct_eq};
use reqwest::StatusCode;
use std::path::PathBuf;

/// Reads the env file; `None` when it does not exist.
pub fn read_env(ctx: &Context) -> Result<Option<SecretBytes>> {
    ctx.env.read()
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
        /// The server had moved: its version merged in first, and the keys it brought.
        merged: Option<(u64, Vec<String>)>,
    },
    /// The file is what this clone last synced for the branch.
    UpToDate { version: u64 },
}

/// Whether a push whose base the server has moved past merges first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Refuse, as `push --no-merge` does.
    Never,
    /// Merge; on a conflict keep the merge for `git envsync merge` (the `push` command).
    Keep,
    /// Merge when it is clean; on a conflict change nothing (the hooks).
    IfClean,
}

/// How many pushes a push makes when the server keeps moving under it (each refused one
/// followed by a merge with what moved it).
const PUSH_ATTEMPTS: usize = 3;

/// Encrypts the env file and pushes it as the next version of `branch` (the checked-out
/// branch, or the one just left when a hook pushes edits after a checkout). When the
/// server moved past the version the edits started from, `merge` says whether to merge
/// with its latest first (the checked-out branch only) and push the result.
pub fn push(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    branch_name: &str,
    force: bool,
    merge: Merge,
) -> Result<PushOutcome> {
    // What merges brought in, and the version the last one made the file an edit of.
    let mut merged: Option<(u64, Vec<String>)> = None;
    // Set by a merge for the next round only: the server's latest is the version merged.
    let mut just_merged = None;
    let mut pushes = 0;
    loop {
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

        if pushes == 0 && just_merged.is_none() && merged.is_none() {
            check_may_push(ctx, api, keyring)?;
        }
        // Ask the server first: a push it would refuse costs no passphrase and no scrypt.
        // Right after a merge its latest is the version merged (a push that finds it moved
        // again is refused by the compare-and-swap, and the next round asks).
        let latest = match just_merged.take() {
            Some(version) => Some(version),
            None => latest_version(ctx, api, branch_name)?,
        };
        // Merging is for edits of a version of the checked-out branch the server moved on
        // from; anything else the server moved under is refused.
        let can_merge = !force
            && merge != Merge::Never
            && branch_name == ctx.branch
            && branch.version.is_some();
        let synced = branch.version;
        let moved = |current: Option<u64>| current.is_some_and(|c| Some(c) > synced);
        if !force && latest != branch.version {
            match latest {
                Some(theirs) if can_merge && moved(latest) => {
                    let done = crate::merging::merge_latest(
                        ctx,
                        api,
                        keyring,
                        theirs,
                        merge == Merge::Keep,
                    )?;
                    let mut incoming = merged.take().map(|(_, keys)| keys).unwrap_or_default();
                    incoming.extend(done.incoming);
                    merged = Some((done.version, incoming));
                    just_merged = Some(done.version);
                    continue;
                }
                // Refused before any passphrase or scrypt.
                _ => return Err(conflict_error(ctx, api, &branch, latest)),
            }
        }
        // (Unforced, the server's latest is the version synced: `base` is `latest`.)
        let base = if force { latest } else { branch.version };
        let old_keys = branch.keys.clone();
        pushes += 1;
        let version = match try_push_version(
            ctx,
            api,
            keyring,
            &mut branch,
            bytes.expose(),
            base,
            if force {
                Writer::Replacing
            } else {
                Writer::Team
            },
        )? {
            Ok(version) => version,
            // Someone pushed between our look and our push: merge again, if allowed.
            Err(current) if can_merge && moved(current) && pushes < PUSH_ATTEMPTS => continue,
            Err(current) => return Err(conflict_error(ctx, api, &branch, current)),
        };
        let (added, removed) = key_changes(&old_keys, &keys.names);
        ctx.state.set_file(&FileState::synced(
            sha,
            branch_name,
            version,
            ctx.config.digest(),
        ))?;
        return Ok(PushOutcome::Pushed {
            version,
            added,
            removed,
            duplicates: keys.duplicates,
            merged: merged.map(|(version, mut incoming)| {
                incoming.sort();
                incoming.dedup();
                (version, incoming)
            }),
        });
    }
}

/// Who a push writes for, which decides what it is checked against before sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The team as it is: the branch's latest version (or the default branch's) must be
    /// in this push's mode and, in passphrase mode, open with this passphrase
    /// ([`check_writer`]). Every writer but `rotate`.
    Team,
    /// `push --force` and `rollback --force`: as `Team`, but a latest version this clone
    /// cannot verify (another mode, another passphrase, a failed check) is pushed over,
    /// said in one line; the passphrase is then checked against the default branch's
    /// latest, or confirmed ([`check_writer`]).
    Replacing,
    /// `rotate`, which replaces the mode or the passphrase on purpose, having just read
    /// `base` with the old one.
    Rotation,
}

/// Seals `content` as version `base + 1` of `branch` and pushes it with compare-and-swap
/// on `base`; records the branch state and the sealed local copy (not the file state:
/// the content need not be the env file's, as in `rotate` and `rollback`). Checked
/// first as `writer` says.
pub fn push_version(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    branch: &mut BranchState,
    content: &[u8],
    base: Option<u64>,
    writer: Writer,
) -> Result<u64> {
    check_may_push(ctx, api, keyring)?;
    try_push_version(ctx, api, keyring, branch, content, base, writer)?
        .map_err(|current| conflict_error(ctx, api, branch, current))
}

/// [`push_version`], with a refused compare-and-swap as `Err(current version)` inside:
/// the one function every push goes through.
fn try_push_version(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    branch: &mut BranchState,
    content: &[u8],
    base: Option<u64>,
    writer: Writer,
) -> Result<std::result::Result<u64, Option<u64>>> {
    let read = match writer {
        Writer::Team | Writer::Replacing => check_writer(ctx, api, keyring, branch, base, writer)?,
        Writer::Rotation => None,
    };
    let keys = parse_keys(ctx, content)?.names;
    let version = base.map_or(1, |b| b + 1);
    let binding = Binding::new(&ctx.config.project, &branch.branch, version);
    let fingerprint_key = push_fingerprint_key(ctx, api, keyring, &branch.branch, read.as_deref())?;
    // Any prompt comes first (the passphrase is in hand once its verifier is): the
    // spinner then holds the terminal while scrypt seals and the push is sent. `rotate`
    // draws its own bar instead.
    keyring.verifier()?;
    let _spinner = (writer != Writer::Rotation).then(|| {
        out::Spinner::start(&format!(
            "sealing and sending {} version {version}",
            branch.branch
        ))
    });
    let request = PushRequest {
        ciphertext: keyring.seal(&binding, content, fingerprint_key.as_ref())?,
        fingerprints: fingerprint_key
            .as_ref()
            .and_then(|kept| fingerprints::of(&ctx.config.project, &kept.key, content)),
        keys: keys.clone(),
        base_version: base,
    };
    let answer = match api.push(&ctx.config.project, &branch.branch, &request) {
        Ok(answer) => answer,
        Err(ApiError::Status { status, body }) if status == StatusCode::CONFLICT => {
            return Ok(Err(body.current_version));
        }
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
    branch.mode = Some(keyring.mode_name().to_owned());
    branch.verifier = keyring.loaded_verifier();
    branch.saw(version, &keys);
    seal_local_copy(ctx, branch, content);
    ctx.state.set_branch(branch)?;
    Ok(Ok(version))
}

/// Before a passphrase is asked for or derived for a push: whether the token may push to
/// the project at all (`GET /whoami`), so that a readonly token (or one for other
/// projects) is told so, instead of paying a prompt and an scrypt for the server's 403.
/// Team mode asks no passphrase and seals without scrypt: the server's 403 is as cheap.
fn check_may_push(ctx: &Context, api: &Api, keyring: &Keyring) -> Result<()> {
    if keyring.team_mode() {
        return Ok(());
    }
    let who = api.whoami().map_err(|e| api.fail(e))?;
    let project = &ctx.config.project;
    let scoped = who.project_ids.iter().any(|p| p == project);
    let why = match who.role {
        Role::Readonly => "readonly".to_owned(),
        Role::Owner if scoped || who.project_ids.is_empty() => return Ok(()),
        Role::Developer if scoped => return Ok(()),
        role => format!("a {role} token for other projects"),
    };
    let origin = api.base().to_owned();
    Err(CliError::refused(format!(
        "this token may not push to {project} ({why})"
    ))
    .hint(format!(
        "git envsync login --server {origin} with a developer token for {project}; nothing was sent"
    )))
}

/// The fingerprint key a push seals and fingerprints with (`None`: fingerprints are off).
/// A clone that never read a version of the project keeps none: before it makes one of
/// its own (and the project ends up with two), it reads the project's, from the default
/// branch's latest version or this branch's (one verified read, which keeps the key it
/// carries), unless [`check_writer`] already made that read (`read`). Nothing to read,
/// or a read that fails, leaves a new key to the push.
fn push_fingerprint_key(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    branch: &str,
    read: Option<&str>,
) -> Result<Option<fingerprints::Kept>> {
    if !ctx.config.fingerprints {
        return Ok(None);
    }
    if let Some(kept) = fingerprints::kept(ctx) {
        return Ok(Some(kept));
    }
    let mut names: Vec<&str> = ctx
        .config
        .default_branch
        .iter()
        .map(String::as_str)
        .collect();
    if !names.contains(&branch) {
        names.push(branch);
    }
    names.retain(|n| Some(*n) != read);
    for name in names {
        let read = fetch_version(ctx, api, keyring, name, None, ReadRules::default());
        if matches!(read, Ok(Some(_)))
            && let Some(kept) = fingerprints::kept(ctx)
        {
            return Ok(Some(kept));
        }
    }
    fingerprints::fresh(ctx, false).map(Some)
}

/// Before anything is sealed or sent: what is pushed must be readable by whoever can
/// read the branch now. Its latest version `latest` (the push's base; for a branch's
/// first, the default branch's latest) must be in the same mode as this push, and in
/// passphrase mode must pass the verified read with this passphrase: a mistyped one, or
/// the old one after a rotation, is refused here instead of being sealed into a version
/// the team cannot open. No scrypt when this clone synced that version with the same
/// passphrase (its verifier); one otherwise, whose fingerprint key is kept, so the push
/// reads nothing more for it. Returns the branch read that way.
///
/// A version this clone cannot verify (another mode, another passphrase, a failed check)
/// blocks every push on top of it, and history is append-only: a [`Writer::Replacing`]
/// push (`--force`) pushes over it, saying so in one line, and checks against the
/// default branch's latest instead when that is another branch in this push's mode (it
/// must pass), else has a typed passphrase confirmed as a project's first push does.
fn check_writer(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    branch: &BranchState,
    latest: Option<u64>,
    writer: Writer,
) -> Result<Option<String>> {
    let default = ctx
        .config
        .default_branch
        .clone()
        .filter(|d| *d != branch.branch);
    // A branch's first version: the default branch's latest says what the team uses; a
    // project's very first version has nothing to check against, so a passphrase typed
    // at the prompt is asked twice instead.
    let reference = match latest {
        Some(v) => Some((branch.branch.clone(), v)),
        None => default_latest(ctx, api, default.as_deref())?,
    };
    let Some((name, version)) = reference else {
        keyring.confirm_new_passphrase("this is the project's first version")?;
        return Ok(None);
    };
    let check = check_against(ctx, api, keyring, &name, version, latest.is_some())?;
    if let Check::Passed { read } = check {
        return Ok(read.then_some(name));
    }
    if writer != Writer::Replacing {
        return Err(check.refusal(&name, version, false));
    }
    // A version in this push's mode that this passphrase does not open is a witness
    // against the passphrase (the default branch's, for a branch's first version).
    if latest.is_none() && matches!(check, Check::Failed { .. }) {
        return Err(check.refusal(&name, version, true));
    }
    // The default branch's latest, when it is another branch, is the witness of the
    // team's passphrase: one in this push's mode must pass; one this clone cannot
    // verify either leaves nothing to check against.
    let (witness, witnessed) = match latest {
        Some(_) => match default_latest(ctx, api, default.as_deref())? {
            Some((d, dv)) => {
                let witnessed = check_against(ctx, api, keyring, &d, dv, false)?;
                ((d, dv), witnessed)
            }
            None => ((name.clone(), version), Check::Nothing),
        },
        None => ((name.clone(), version), Check::Nothing),
    };
    if let Check::Failed { .. } = witnessed {
        return Err(witnessed.refusal(&witness.0, witness.1, true));
    }
    if let Check::Passed { read } = witnessed {
        say_unchecked(&name, version, latest.is_some(), check.why());
        return Ok(read.then_some(witness.0));
    }
    // Nothing on the server can prove the passphrase: a typed one is asked twice, and
    // only then is the line said (a refusal stays one error line). When the version
    // pushed over is in this mode and did not open, a stored passphrase may be a stale
    // one: only a typed one, asked twice, is taken.
    let why = format!("{name} version {version} cannot be verified, so nothing checks it");
    if matches!(check, Check::Failed { .. }) {
        keyring.confirm_typed_passphrase(&format!("{name} version {version}"), &why)?;
    } else {
        keyring.confirm_new_passphrase(&why)?;
    }
    say_unchecked(&name, version, latest.is_some(), check.why());
    Ok(None)
}

/// The one line a forced push says about the version it cannot verify: the one it
/// pushes over (`own`), or the default branch's latest it does not check against.
fn say_unchecked(name: &str, version: u64, own: bool, why: &str) {
    out::say(&if own {
        format!("pushing over {name} version {version}, which this clone cannot verify ({why})")
    } else {
        format!(
            "not checking the passphrase against {name} version {version}, which this clone cannot verify ({why})"
        )
    });
}

/// `branch`'s latest version number on the server, with the branch; `None` when there
/// is no such branch or it has no env.
fn default_latest(ctx: &Context, api: &Api, branch: Option<&str>) -> Result<Option<(String, u64)>> {
    let Some(branch) = branch else {
        return Ok(None);
    };
    Ok(latest_version(ctx, api, branch)?.map(|v| (branch.to_owned(), v)))
}

/// What [`check_against`] found.
enum Check {
    /// This push may build on it; `read`: a verified read of it was made (and its
    /// fingerprint key kept).
    Passed { read: bool },
    /// Sealed in another mode, or not a readable age file: it says nothing about this
    /// push's passphrase. `why` is a few words for the line saying it is pushed over.
    Foreign { refusal: CliError, why: String },
    /// In this push's mode, but this passphrase does not open it or it fails a check.
    Failed { refusal: CliError, why: String },
    /// No version to check against.
    Nothing,
}

impl Check {
    /// Why this clone cannot verify the version, in a few words.
    fn why(&self) -> &str {
        match self {
            Check::Foreign { why, .. } | Check::Failed { why, .. } => why,
            Check::Passed { .. } | Check::Nothing => "",
        }
    }

    /// The refusal of a push on top of `version` of `name`, whose hint names the way
    /// out: `push --force` replaces a version nobody on the team can read, and (`forced`)
    /// a default branch that is one of those is replaced first.
    fn refusal(self, name: &str, version: u64, forced: bool) -> CliError {
        let (Check::Foreign { refusal, .. } | Check::Failed { refusal, .. }) = self else {
            return CliError::refused(format!("cannot check against {name} version {version}"));
        };
        let way = if forced {
            format!(
                "if nobody on the team can read {name} version {version} either, replace it first (git envsync push --force on {name})"
            )
        } else {
            format!(
                "if nobody on the team can read {name} version {version} (a forged one), git envsync push --force replaces it"
            )
        };
        refusal.also_hint(way)
    }
}

/// [`check_writer`]'s check of one version: `version` of `name`, the push's own base
/// when `own`.
fn check_against(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    name: &str,
    version: u64,
    own: bool,
) -> Result<Check> {
    let state = ctx.state.branch(name)?;
    let ours = keyring.mode_name();
    let mode_error = |theirs: &str| {
        let hint = if ours == "team" {
            "moving the project to team keys is git envsync rotate's job (it re-encrypts every branch); nothing was sent"
        } else {
            "this clone's .envsync.toml is behind the team's (git pull, then git envsync trust); nothing was sent"
        };
        Check::Foreign {
            refusal: CliError::refused(format!(
                "refusing to push in {ours} mode: {name} version {version} on the server is sealed in {theirs} mode"
            ))
            .hint(hint),
            why: format!("sealed in {theirs} mode"),
        }
    };
    if state.version == Some(version)
        && let Some(theirs) = &state.mode
    {
        if theirs != ours {
            return Ok(mode_error(theirs));
        }
        if ours == "team" || state.verifier.is_some() && state.verifier == keyring.verifier()? {
            return Ok(Check::Passed { read: false });
        }
    }
    let served = match api
        .env(&ctx.config.project, name, Some(version))
        .map_err(|e| api.fail(e))?
    {
        Some(served) => served,
        // The push's own base is not there (a race, or a server that lied about its
        // latest): the compare-and-swap on it refuses the push, naming the version the
        // server has, before anything is stored.
        None if own => return Ok(Check::Passed { read: false }),
        None => {
            return Err(CliError::refused(format!(
                "{name} version {version} disappeared from the server"
            )));
        }
    };
    let theirs = match envelope::scrypt_work_factor(&served.ciphertext) {
        Ok(Some(_)) => "passphrase",
        Ok(None) => "team",
        Err(e) => {
            return Ok(Check::Foreign {
                refusal: CliError::refused(format!("cannot read {name} version {version}: {e}"))
                    .hint("the server may be serving a damaged or forged file; nothing was sent"),
                why: "not a readable age file".to_owned(),
            });
        }
    };
    if theirs != ours {
        return Ok(mode_error(theirs));
    }
    if ours == "team" {
        return Ok(Check::Passed { read: false });
    }
    // The verified read itself, so that what it finds (the fingerprint key) need not be
    // read again. A missing passphrase or a server failure is no verdict on the version.
    match verified(ctx, keyring, name, served, Some(version), ReadRules::default()) {
        Ok(_) => Ok(Check::Passed { read: true }),
        Err(e) if e.exit == crate::error::Exit::Refused => Ok(Check::Failed {
            why: "this passphrase does not open it, or it fails a check".to_owned(),
            refusal: CliError::refused(format!(
                "refusing to push: this passphrase does not open {name} version {version} on the server ({}), so teammates could not read what it seals",
                e.message()
            ))
            .hint("check the passphrase (ENVSYNC_PASS or the one you typed; after a rotate, the new one); nothing was sent"),
        }),
        Err(e) => Err(e),
    }
}

/// The push would bury a version this clone has not seen (`current`, the server's latest):
/// the refusal, with who pushed it, or the lost-data error when the server has none.
fn conflict_error(
    ctx: &Context,
    api: &Api,
    branch: &BranchState,
    current: Option<u64>,
) -> CliError {
    // Who pushed the version the server says it has, when its latest is that one.
    let latest = api
        .latest_version(&ctx.config.project, &branch.branch)
        .ok()
        .flatten()
        .filter(|v| Some(v.version) == current);
    let who = latest
        .map(|v| {
            format!(
                " (pushed by {} at {})",
                v.pushed_by,
                crate::out::timestamp(&v.pushed_at)
            )
        })
        .unwrap_or_default();
    if current.is_none()
        && let Some(mine) = branch.version
    {
        return lost(&branch.branch, mine.max(branch.seen));
    }
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
    /// The member who signed it (team mode), when it was read from the server.
    pub signer: Option<String>,
    /// How it was sealed, and the verifier of the passphrase that opened it, when it was
    /// read from the server (recorded by [`write_fetched`]).
    pub sealed: Option<(String, Option<String>)>,
}

/// How [`verified`] treats a version.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadRules {
    /// An explicitly requested old version: the rollback check does not apply.
    pub old_version_asked: bool,
    /// `rotate --accept-unsigned`: a team-mode version with no signature at all is
    /// accepted (one with a bad or a stranger's signature never is).
    pub allow_unsigned: bool,
    /// `rotate`: a team-mode project may still hold passphrase files from before it moved
    /// to team keys; knowing the passphrase is what authenticates those.
    pub passphrase_ok: bool,
    /// `rotate`: the fingerprint key a version carries is checked but not kept (the
    /// rotation is replacing it).
    pub key_replaced: bool,
}

/// The one verified read. `served` is the server's answer for `branch`, `asked` the
/// version that was requested (`None`: the latest, whose number the caller learnt from
/// the key list, or nothing). Every check passes or nothing is returned. The checks are
/// [`check_served`]'s; this clone's part: the newest version it has seen of the branch,
/// the fingerprint key kept, and the verifier of the passphrase that opened it.
pub fn verified(
    ctx: &Context,
    keyring: &mut Keyring,
    branch: &str,
    served: EnvResponse,
    asked: Option<u64>,
    rules: ReadRules,
) -> Result<Fetched> {
    let seen = if rules.old_version_asked {
        0
    } else {
        ctx.state.branch(branch)?.seen
    };
    let reader = Reader {
        project: &ctx.config.project,
        env_file: &ctx.env_display(),
        seen,
    };
    let (mut fetched, key) = check_served(&reader, keyring, branch, served, asked, rules)?;
    if let Some(read) = key {
        fingerprints::remember(ctx, &read, branch);
    }
    if let Some((mode, verifier)) = &mut fetched.sealed
        && mode == "passphrase"
    {
        *verifier = keyring.loaded_verifier();
    }
    Ok(fetched)
}

/// What [`check_served`] needs to know of the clone reading.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    pub project: &'a str,
    /// The env file's name, for messages.
    pub env_file: &'a str,
    /// The newest version of the branch this clone has seen: an older one is a rollback.
    pub seen: u64,
}

/// [`verified`]'s checks, which touch nothing: the version asked for is the version
/// served, no older than `reader.seen` (unless an old one was asked for), opened the way
/// the keyring's mode opens (within its work-factor cap), bound to this project, branch
/// and version, with the server's key list equal to the decrypted names and its value
/// fingerprints to the ones the version's key makes, and signed as the mode requires.
/// Returns the version (its `sealed` without a verifier) and the fingerprint key it
/// carries, to keep unless `rules.key_replaced`.
pub fn check_served(
    reader: &Reader<'_>,
    keyring: &mut Keyring,
    branch: &str,
    served: EnvResponse,
    asked: Option<u64>,
    rules: ReadRules,
) -> Result<(Fetched, Option<fingerprints::Kept>)> {
    // The answer must be the version asked for: otherwise a server whose key list says N
    // could serve N-1 (correctly bound to N-1) to a clone that never saw N, and the
    // binding check alone would not notice.
    if let Some(asked) = asked
        && served.version != asked
    {
        return Err(CliError::refused(format!(
            "integrity check failed: the server answered with version {} of {branch} when version {asked} was asked for",
            served.version
        ))
        .hint("nothing was written; the server is misbehaving"));
    }
    if !rules.old_version_asked {
        check_not_rolled_back(reader.seen, served.version, branch)?;
    }
    let what = format!("version {} of {branch}", served.version);
    let opened = keyring.open(&served.ciphertext, &what, rules.passphrase_ok)?;
    opened
        .binding
        .verify(&Binding::new(reader.project, branch, served.version))
        .map_err(|e| {
            CliError::refused(format!("integrity check failed: {e}"))
                .hint("the server served a file that belongs elsewhere; nothing was written")
        })?;
    check_keys(reader.env_file, opened.env.expose(), &served.keys)?;
    let signer = keyring.verify_signer(&opened, rules.allow_unsigned, rules.passphrase_ok)?;
    let mut kept = None;
    if let Some(key) = &opened.fingerprint_key {
        fingerprints::check_served(
            reader.project,
            key,
            opened.env.expose(),
            served.fingerprints.as_ref(),
            branch,
            served.version,
        )?;
        if !rules.key_replaced {
            kept = Some(fingerprints::Kept {
                key: key.clone(),
                generation: opened.fingerprint_generation,
            });
        }
    }
    let mode = if opened.passphrase {
        "passphrase"
    } else {
        "team"
    };
    let fetched = Fetched {
        content: opened.env,
        from: branch.to_owned(),
        version: served.version,
        server_keys: served.keys,
        cached: false,
        signer,
        sealed: Some((mode.to_owned(), None)),
    };
    Ok((fetched, kept))
}

/// Fetches one version of `branch` (the latest when `version` is `None`) and verifies it;
/// `None` when the server has no such version.
pub fn fetch_version(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    branch: &str,
    version: Option<u64>,
    rules: ReadRules,
) -> Result<Option<Fetched>> {
    let Some(served) = api
        .env(&ctx.config.project, branch, version)
        .map_err(|e| api.fail(e))?
    else {
        return Ok(None);
    };
    verified(ctx, keyring, branch, served, version, rules).map(Some)
}

/// The number of `branch`'s latest version on the server (from its key list); `None`
/// when it has no env there.
pub fn latest_version(ctx: &Context, api: &Api, branch: &str) -> Result<Option<u64>> {
    Ok(api
        .keys(&ctx.config.project, branch)
        .map_err(|e| api.fail(e))?
        .map(|k| k.version))
}

/// Fetches and verifies `branch`'s latest version, refused when it has none: the source
/// of a copy to another branch (`copy`, `mv`).
pub fn fetch_source(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    branch: &str,
) -> Result<Fetched> {
    fetch_version(ctx, api, keyring, branch, None, ReadRules::default())?
        .ok_or_else(|| CliError::refused(format!("{branch} has no env on the server")))
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

    if let Some(asked) = opts.version {
        let rules = ReadRules {
            old_version_asked: true,
            ..ReadRules::default()
        };
        return fetch_version(ctx, api, keyring, &ctx.branch, Some(asked), rules)?
            .map(Some)
            .ok_or_else(|| {
                CliError::refused(format!(
                    "version {asked} of {} does not exist on the server",
                    ctx.branch
                ))
            });
    }

    // Which branch to take: ours, or the fallback branch's latest.
    let mut from = ctx.branch.clone();
    let mut keys = api.keys(project, &from).map_err(fail)?;
    let mut branch = ctx.state.branch(&from)?;
    if keys.is_none() && branch.seen > 0 {
        // Falling back to another branch's env here would hide the loss, and the next
        // push would publish that env as this branch's.
        return Err(lost(&from, branch.seen));
    }
    if keys.is_none()
        && opts.fallback
        && let Some(default) = ctx.config.default_branch.as_ref().filter(|d| **d != from)
    {
        keys = api.keys(project, default).map_err(fail)?;
        from = default.clone();
        branch = ctx.state.branch(&from)?;
        if keys.is_none() && branch.seen > 0 {
            return Err(lost(&from, branch.seen));
        }
    }
    let Some(latest) = keys else {
        return Ok(None);
    };
    check_not_rolled_back(branch.seen, latest.version, &from)?;

    // From the sealed local copy when the server has not moved since this clone synced
    // (no scrypt) and the settings it was verified under are still the ones trusted.
    if branch.version == Some(latest.version)
        && let Some(content) = open_cached(ctx, &branch, &from, latest.version)
    {
        check_keys(&ctx.env_display(), content.expose(), &latest.keys)?;
        return Ok(Some(Fetched {
            content,
            from,
            version: latest.version,
            server_keys: latest.keys,
            cached: true,
            signer: None,
            sealed: None,
        }));
    }
    fetch_version(
        ctx,
        api,
        keyring,
        &from,
        Some(latest.version),
        ReadRules::default(),
    )?
    .map(Some)
    .ok_or_else(|| CliError::refused(format!("{from} has no env on the server any more")))
}

/// Fetches, verifies and writes the branch's env file.
pub fn pull(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    opts: PullOptions,
) -> Result<PullOutcome> {
    let Some(fetched) = fetch(ctx, api, keyring, opts)? else {
        return Ok(PullOutcome::NoEnv);
    };
    write_fetched(ctx, fetched, opts)
}

/// Writes a verified version into the env file (refusing to replace local edits unless
/// forced) and records it as synced.
pub fn write_fetched(ctx: &Context, fetched: Fetched, opts: PullOptions) -> Result<PullOutcome> {
    let Fetched {
        content,
        from,
        version,
        server_keys,
        cached: was_cached,
        sealed,
        ..
    } = fetched;
    let mut branch = ctx.state.branch(&from)?;
    let sha = fsutil::sha256_hex(content.expose());
    let current = read_env(ctx)?;
    let outcome = match &current {
        Some(cur) if ct_eq(cur.expose(), content.expose()) => {
            // Same bytes: only make sure the mode is right.
            ctx.env.make_private()?;
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
                backup = Some(ctx.env.backup(cur.expose())?);
            }
            ctx.env.write(content.expose(), 0o600)?;
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
        if let Some((mode, verifier)) = sealed {
            branch.mode = Some(mode);
            branch.verifier = verifier;
        }
    }
    branch.saw(version, &server_keys);
    // The file now holds the env of the branch it was pulled for (its owner), even when
    // the content came from the default branch because that one has no env yet.
    let file = FileState {
        sha256: sha,
        branch: ctx.branch.clone(),
        version: (from == ctx.branch).then_some(version),
        from: (from != ctx.branch).then(|| Source {
            branch: from.clone(),
            version: Some(version),
        }),
        config: Some(ctx.config.digest()),
        away: None,
    };
    if synced && !was_cached {
        seal_local_copy(ctx, &mut branch, content.expose());
    }
    ctx.state.set_branch(&branch)?;
    ctx.state.set_file(&file)?;
    Ok(outcome)
}

/// The server has nothing for a branch this clone synced: it lost data (restored from an
/// old backup, or a new database). Loud, with the way out.
pub fn lost(branch: &str, seen: u64) -> CliError {
    CliError::refused(format!(
        "the server has no {branch}, but this clone synced version {seen}: was it restored from an old backup?"
    ))
    .hint(format!(
        "git envsync restore --branch {branch} re-seeds it from this clone's copy (nothing was written)"
    ))
}

/// The branch's last synced version from this clone's sealed copy, for when the server
/// cannot be reached (a hook's checkout while offline); `None` when there is no copy
/// that is still valid under the trusted settings.
pub fn fetch_offline(ctx: &Context, name: &str) -> Result<Option<Fetched>> {
    let branch = ctx.state.branch(name)?;
    let Some(version) = branch.version else {
        return Ok(None);
    };
    let Some(content) = open_cached(ctx, &branch, name, version) else {
        return Ok(None);
    };
    // The cached key list belongs to the newest version seen, which may be newer than
    // the copy: take the names from the copy itself.
    let server_keys = parse_keys(ctx, content.expose())?.names;
    Ok(Some(Fetched {
        content,
        from: name.to_owned(),
        version,
        server_keys,
        cached: true,
        signer: None,
        sealed: None,
    }))
}

/// Where [`readable_env`] found the variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// The env file on disk, which holds this branch's env (edits included).
    File,
    /// The server's latest version of this branch (or of the default branch), verified.
    Server { from: String, version: u64 },
    /// This clone's sealed copy, the server being unreachable.
    Copy { version: u64 },
}

impl std::fmt::Display for EnvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvSource::File => f.write_str("the env file"),
            EnvSource::Server { from, version } => {
                write!(f, "the server's {from} version {version}")
            }
            EnvSource::Copy { version } => write!(
                f,
                "this clone's copy of version {version} (the server is unreachable)"
            ),
        }
    }
}

/// The branch's variables for reading (`run`, `get`, `export`): the file on disk when it
/// holds this branch's env (or was never synced: it is this checkout's own), else the
/// server's verified version, else offline this clone's sealed copy. Writes nothing.
pub fn readable_env(ctx: &Context, keyring: &mut Keyring) -> Result<(SecretBytes, EnvSource)> {
    if let Some(content) = read_env(ctx)?
        && ctx.state.file()?.is_none_or(|f| f.branch == ctx.branch)
    {
        return Ok((content, EnvSource::File));
    }
    let api = ctx.api(crate::client::Timeouts::COMMAND)?;
    let opts = PullOptions {
        fallback: true,
        ..PullOptions::default()
    };
    match fetch(ctx, &api, keyring, opts) {
        Ok(Some(fetched)) => Ok((
            fetched.content,
            EnvSource::Server {
                from: fetched.from,
                version: fetched.version,
            },
        )),
        Ok(None) => Err(CliError::refused(format!(
            "{} has no env here or on the server yet",
            ctx.branch
        ))
        .hint("create the env file, or pull one with git envsync pull")),
        Err(e) if e.exit == crate::error::Exit::Server => match fetch_offline(ctx, &ctx.branch)? {
            Some(copy) => Ok((
                copy.content,
                EnvSource::Copy {
                    version: copy.version,
                },
            )),
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Records `fetched` (a verified version of the checked-out branch) as what this clone has
/// synced of it, with its sealed local copy, without touching the env file.
pub fn record_synced(ctx: &Context, fetched: Fetched) -> Result<()> {
    let mut branch = ctx.state.branch(&fetched.from)?;
    branch.version = Some(fetched.version);
    branch.sha256 = Some(fsutil::sha256_hex(fetched.content.expose()));
    if let Some((mode, verifier)) = fetched.sealed {
        branch.mode = Some(mode);
        branch.verifier = verifier;
    }
    branch.saw(fetched.version, &fetched.server_keys);
    seal_local_copy(ctx, &mut branch, fetched.content.expose());
    ctx.state.set_branch(&branch)?;
    Ok(())
}

/// A version the server offers (or calls its latest) must not be below the highest this
/// clone has seen of `from`: anything older is a rollback, refused before anything is
/// read, written or pushed.
pub fn check_not_rolled_back(seen: u64, version: u64, from: &str) -> Result<()> {
    if version < seen {
        return Err(CliError::refused(format!(
            "rollback detected: the server offers version {version} of {from}, but this clone has already seen version {seen}"
        ))
        .hint("nothing was written or pushed; if the server was restored from an old backup, git envsync restore puts back the versions this clone has (git envsync pull --version N reads an older one on purpose)"));
    }
    Ok(())
}

/// The server's key list must be exactly the names in the decrypted file: a mismatch
/// means the server (or someone with access to it) is lying, which is not drift.
fn check_keys(env_file: &str, content: &[u8], server_keys: &[String]) -> Result<()> {
    let names = envfile::keys(content)
        .map(|k| k.names)
        .map_err(|e| CliError::refused(format!("the decrypted file does not parse: {e}")))?;
    let mut a = names;
    let mut b = server_keys.to_vec();
    a.sort();
    b.sort();
    if a != b {
        return Err(CliError::refused(format!(
            "integrity check failed: the server's key list for {env_file} does not match the decrypted file"
        ))
        .hint("nothing was written; the server's metadata was altered"));
    }
    Ok(())
}

/// Opens the sealed local copy of a branch's last synced content, if it is there, is
/// what the state says, and was verified under the settings trusted now. Any problem
/// just means "fetch from the server and verify again".
pub fn open_cached(
    ctx: &Context,
    branch: &BranchState,
    from: &str,
    version: u64,
) -> Option<SecretBytes> {
    if branch.config.as_deref() != Some(ctx.config.digest().as_str()) {
        return None;
    }
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
/// switching back to the branch costs no scrypt, and records the settings it was
/// verified under. An optimisation: failing to make it does not fail the sync.
fn seal_local_copy(ctx: &Context, branch: &mut BranchState, content: &[u8]) {
    let (Some(version), Ok(identity)) = (branch.version, crypto::local_identity()) else {
        return;
    };
    let binding = Binding::new(&ctx.config.project, &branch.branch, version);
    let recipients = [identity.to_public()];
    if let Ok(sealed) = envelope::seal(&binding, content, &Seal::Recipients(&recipients)) {
        // Not being able to keep it (a full disk, say) costs the next switch an scrypt,
        // nothing more: the env file is already written and must not be reported failed.
        if ctx.state.set_sealed(&branch.branch, &sealed).is_ok() {
            branch.config = Some(ctx.config.digest());
        }
    }
}

/// A branch's key list on the server, or the one this clone last saw there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKeys {
    pub version: u64,
    pub keys: Vec<String>,
    /// The latest version's value fingerprints, when it has them (never cached).
    pub fingerprints: Option<envsync_common::api::Fingerprints>,
    /// From the local state: the server did not answer.
    pub cached: bool,
}

/// The server's key list for `branch` (recorded in the local state for the next time it
/// cannot answer); when it cannot answer (no `api`, or a failure), the list this clone last
/// saw, and why not the live one. `(None, None)`: the branch has no env.
pub fn server_keys(
    ctx: &Context,
    api: Option<&Api>,
    branch: &str,
) -> (Option<ServerKeys>, Option<ApiError>) {
    let live = api.map(|api| api.keys(&ctx.config.project, branch));
    keys_or_cached(&ctx.state, branch, live)
}

/// [`server_keys`] with the server's answer in hand (`None`: it was not asked).
fn keys_or_cached(
    state: &crate::state::State,
    branch: &str,
    live: Option<std::result::Result<Option<envsync_common::api::KeysResponse>, ApiError>>,
) -> (Option<ServerKeys>, Option<ApiError>) {
    let cached = || {
        state
            .branch(branch)
            .ok()
            .filter(|s| s.keys_version > 0)
            .map(|s| ServerKeys {
                version: s.keys_version,
                keys: s.keys,
                fingerprints: None,
                cached: true,
            })
    };
    match live {
        None => (cached(), None),
        Some(Ok(Some(k))) => {
            let _ = state.record_seen(branch, k.version, &k.keys);
            (
                Some(ServerKeys {
                    version: k.version,
                    keys: k.keys,
                    fingerprints: k.fingerprints,
                    cached: false,
                }),
                None,
            )
        }
        Some(Ok(None)) => (None, None),
        Some(Err(e)) => (cached(), Some(e)),
    }
}

/// Keys added and removed going from `old` to `new`, in the order they appear.
pub fn key_changes(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
    let drift = crate::drift::Drift::new(new.to_vec(), old.to_vec());
    (drift.extra, drift.missing)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::config::ProjectConfig;
    use crate::crypto::KeyEnv;
    use envsync_common::secret::SecretString;

    const PASS: &str = "the team's passphrase";

    /// A non-interactive passphrase-mode keyring holding [`PASS`], sealing at work factor
    /// 10, so opening nothing above 11.
    fn keyring() -> Keyring {
        let env = KeyEnv {
            pass: Some(SecretString::from(PASS.to_owned())),
            insecure_work_factor: Some("10".to_owned()),
            ..KeyEnv::default()
        };
        Keyring::new(&ProjectConfig::new("p".into()), &env, false).unwrap()
    }

    fn sealed_with(passphrase: &str, work_factor: u8, binding: &Binding, env: &[u8]) -> String {
        let passphrase = SecretString::from(passphrase.to_owned());
        envelope::seal(
            binding,
            env,
            &Seal::Passphrase {
                passphrase: &passphrase,
                work_factor,
            },
        )
        .unwrap()
    }

    /// What the server answers for version `version` of main: the file, its key list.
    fn served(version: u64, ciphertext: String, keys: &[&str]) -> EnvResponse {
        EnvResponse {
            version,
            ciphertext,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            pushed_by: "someone@example.com".into(),
            pushed_at: "2026-01-01T00:00:00Z".into(),
            fingerprints: None,
        }
    }

    fn good(version: u64) -> EnvResponse {
        let binding = Binding::new("p", "main", version);
        served(
            version,
            sealed_with(PASS, 10, &binding, b"A=1\nB=2\n"),
            &["A", "B"],
        )
    }

    const READER: Reader<'static> = Reader {
        project: "p",
        env_file: ".env",
        seen: 3,
    };

    /// The refusal of `served` (exit 1), for its message.
    #[track_caller]
    fn refused(served: EnvResponse, asked: Option<u64>) -> String {
        let e = check_served(
            &READER,
            &mut keyring(),
            "main",
            served,
            asked,
            ReadRules::default(),
        )
        .expect_err("must be refused");
        assert_eq!(e.exit, crate::error::Exit::Refused, "{e:?}");
        e.message()
    }

    #[test]
    fn a_version_passing_every_check_is_returned() {
        let (fetched, key) = check_served(
            &READER,
            &mut keyring(),
            "main",
            good(3),
            Some(3),
            ReadRules::default(),
        )
        .unwrap();
        assert_eq!(fetched.content.expose(), b"A=1\nB=2\n");
        assert_eq!((fetched.from.as_str(), fetched.version), ("main", 3));
        assert_eq!(fetched.server_keys, ["A", "B"]);
        assert_eq!(fetched.sealed, Some(("passphrase".to_owned(), None)));
        assert!(key.is_none(), "sealed without a fingerprint key");
    }

    #[test]
    fn another_version_than_the_one_asked_for_is_refused() {
        let message = refused(good(4), Some(5));
        assert!(
            message.contains("answered with version 4 of main when version 5 was asked for"),
            "{message}"
        );
    }

    #[test]
    fn a_version_below_the_newest_seen_is_refused_unless_asked_for() {
        let message = refused(good(2), None);
        assert!(message.contains("rollback detected"), "{message}");
        let rules = ReadRules {
            old_version_asked: true,
            ..ReadRules::default()
        };
        check_served(&READER, &mut keyring(), "main", good(2), Some(2), rules).unwrap();
    }

    #[test]
    fn a_version_bound_elsewhere_is_refused() {
        for binding in [
            Binding::new("p", "other", 3),
            Binding::new("other-project", "main", 3),
            Binding::new("p", "main", 2),
        ] {
            let forged = served(3, sealed_with(PASS, 10, &binding, b"A=1\n"), &["A"]);
            let message = refused(forged, Some(3));
            assert!(message.contains("integrity check failed"), "{message}");
        }
    }

    #[test]
    fn a_key_list_that_is_not_the_files_is_refused() {
        let binding = Binding::new("p", "main", 3);
        for keys in [&["A"][..], &["A", "B", "C"][..], &[][..]] {
            let lying = served(3, sealed_with(PASS, 10, &binding, b"A=1\nB=2\n"), keys);
            let message = refused(lying, Some(3));
            assert!(
                message.contains("the server's key list for .env does not match"),
                "{keys:?}: {message}"
            );
        }
    }

    #[test]
    fn a_version_sealed_in_another_mode_or_passphrase_is_refused() {
        let binding = Binding::new("p", "main", 3);
        let someone = age::x25519::Identity::generate().to_public();
        let to_keys = envelope::seal(&binding, b"A=1\n", &Seal::Recipients(&[someone])).unwrap();
        let message = refused(served(3, to_keys, &["A"]), Some(3));
        assert!(message.contains("it is sealed to age keys"), "{message}");
        let other = sealed_with("another passphrase", 10, &binding, b"A=1\n");
        let message = refused(served(3, other, &["A"]), Some(3));
        assert!(message.contains("wrong passphrase"), "{message}");
    }

    #[test]
    fn a_work_factor_above_the_cap_is_refused_unopened() {
        let binding = Binding::new("p", "main", 3);
        let costly = served(3, sealed_with(PASS, 12, &binding, b"A=1\n"), &["A"]);
        let message = refused(costly, Some(3));
        assert!(
            message.contains("needs scrypt work factor 12, above the accepted maximum 11"),
            "{message}"
        );
    }

    fn state() -> (tempfile::TempDir, crate::state::State) {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::state::State::new(dir.path(), "p");
        (dir, state)
    }

    fn live(version: u64, keys: &[&str]) -> envsync_common::api::KeysResponse {
        envsync_common::api::KeysResponse {
            version,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            fingerprints: None,
        }
    }

    fn unreachable() -> ApiError {
        ApiError::Unreachable("connection refused".into())
    }

    #[test]
    fn server_keys_are_the_live_ones_and_are_recorded() {
        let (_dir, state) = state();
        let (keys, error) = keys_or_cached(&state, "main", Some(Ok(Some(live(2, &["A"])))));
        let keys = keys.unwrap();
        assert!(error.is_none());
        assert_eq!(
            (keys.version, keys.keys, keys.cached),
            (2, vec!["A".into()], false)
        );
        let recorded = state.branch("main").unwrap();
        assert_eq!(
            (recorded.keys_version, recorded.keys),
            (2, vec!["A".into()])
        );
    }

    #[test]
    fn server_keys_fall_back_to_the_cached_list_then_to_none() {
        let (_dir, state) = state();
        // Nothing cached: none, with the reason when there was a failure.
        let (keys, error) = keys_or_cached(&state, "main", Some(Err(unreachable())));
        assert!(keys.is_none());
        assert!(matches!(error, Some(ApiError::Unreachable(_))));
        assert_eq!(keys_or_cached(&state, "main", None).0, None);

        state
            .record_seen("main", 4, &["A".into(), "B".into()])
            .unwrap();
        for live in [None, Some(Err(unreachable()))] {
            let failed = live.is_some();
            let (keys, error) = keys_or_cached(&state, "main", live);
            let keys = keys.unwrap();
            assert!(keys.cached);
            assert_eq!((keys.version, keys.keys.len()), (4, 2));
            assert_eq!(error.is_some(), failed);
        }
        // The server says the branch has no env: not the cached list.
        assert!(matches!(
            keys_or_cached(&state, "main", Some(Ok(None))),
            (None, None)
        ));
        // Live keys win over the cached ones.
        let (keys, _) = keys_or_cached(&state, "main", Some(Ok(Some(live(5, &["C"])))));
        assert_eq!(keys.unwrap().keys, ["C"]);
    }
}
