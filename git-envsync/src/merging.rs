//! Merge, don't refuse: when the server moved past the version this clone's edits started
//! from, the edits and the server's latest are merged key by key ([`envsync_common::merge`])
//! from their common base, the version this clone last synced (its sealed local copy: no
//! extra scrypt). A clean merge is written into the env file with our layout kept (the
//! file before it saved as a 0600 backup) and is then a plain edit of the latest version:
//! `push` publishes it. A conflict writes nothing and names the keys (never a value);
//! `git envsync merge` resolves it, from the state kept under `.git/envsync/`.

use crate::client::Api;
use crate::context::Context;
use crate::crypto::{self, Keyring};
use crate::error::{CliError, Result};
use crate::fsutil;
use crate::state::{FileState, State};
use crate::sync::{self, Fetched, ReadRules};
use envsync_common::api::{VersionInfo, VersionsPage};
use envsync_common::envdoc::Document;
use envsync_common::envelope::{self, Binding, Open, Seal};
use envsync_common::envfile;
use envsync_common::merge::{self, Change, Conflict};
use envsync_common::secret::{self, SecretBytes};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A merge that stopped on conflicts, kept for `git envsync merge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub branch: String,
    /// The server's version merged with.
    pub theirs_version: u64,
    pub theirs_by: String,
    /// The env file's hash when the merge stopped: resolving refuses a file edited since.
    pub ours_sha: String,
    pub conflicts: Vec<PendingConflict>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingConflict {
    pub key: String,
    pub ours: String,
    pub theirs: String,
    /// `ours` or `theirs`, once chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take: Option<String>,
}

fn describe(change: Change) -> &'static str {
    match change {
        Change::Added => "added",
        Change::Removed => "removed",
        Change::Modified => "modified",
    }
}

/// What a clean merge did.
#[derive(Debug)]
pub struct Merged {
    /// The server's version the file is now an edit of.
    pub version: u64,
    /// Keys that came in from it (added, changed or removed).
    pub incoming: Vec<String>,
    pub backup: Option<PathBuf>,
    /// The file already held that version's bytes: nothing was merged.
    pub already: bool,
}

/// The three sides of a merge, read and verified.
struct Sides {
    base: SecretBytes,
    /// The version of this branch the base is, when it is one of this branch's.
    base_version: Option<u64>,
    ours: SecretBytes,
    theirs: Fetched,
}

/// The base the file's edits started from: this clone's sealed copy of the version the
/// file state names, which must hash to what the file held then.
fn base_of(ctx: &Context, file: &FileState) -> Result<SecretBytes> {
    let (branch, version) = match &file.from {
        Some(from) => (from.branch.clone(), from.version),
        None => (file.branch.clone(), file.version),
    };
    let no_base = || {
        CliError::refused(format!(
            "cannot merge: this clone has no copy of the version {} started from",
            ctx.env_display()
        ))
        .hint("save your edits, pull --force (it keeps a backup), then put them back")
    };
    let version = version.ok_or_else(no_base)?;
    let state = ctx.state.branch(&branch)?;
    let content = sync::open_cached(ctx, &state, &branch, version).ok_or_else(no_base)?;
    if fsutil::sha256_hex(content.expose()) != file.sha256 {
        return Err(no_base());
    }
    Ok(content)
}

fn sides(ctx: &Context, api: &Api, keyring: &mut Keyring, latest: u64) -> Result<Sides> {
    let file = ctx
        .state
        .file()?
        .filter(|f| f.branch == ctx.branch)
        .ok_or_else(|| {
            CliError::refused(format!(
                "cannot merge: {} does not hold {}'s env",
                ctx.env_display(),
                ctx.branch
            ))
        })?;
    let ours = sync::read_env(ctx)?
        .ok_or_else(|| CliError::refused(format!("there is no {} to merge", ctx.env_display())))?;
    let theirs = sync::fetch_version(
        ctx,
        api,
        keyring,
        &ctx.branch,
        Some(latest),
        ReadRules::default(),
    )
    .map_err(|e| {
        // A version that fails the verified read blocks every merge, and history is
        // append-only: say how one nobody on the team can read is replaced.
        if e.exit != crate::error::Exit::Refused {
            return e;
        }
        e.also_hint(format!(
            "if nobody on the team can read {} version {latest} (a forged one), git envsync push --force replaces it",
            ctx.branch
        ))
    })?
    .ok_or_else(|| CliError::refused(format!("{} has no version {latest}", ctx.branch)))?;
    // The file already holds their bytes (a pull killed between writing the file and
    // recording it): whatever the base, the merge is theirs, so none is needed.
    let base = match base_of(ctx, &file) {
        Ok(base) => base,
        Err(_) if secret::ct_eq(ours.expose(), theirs.content.expose()) => {
            SecretBytes::new(ours.expose().to_vec())
        }
        Err(e) => return Err(e),
    };
    let base_version = match &file.from {
        None => file.version,
        Some(_) => None,
    };
    Ok(Sides {
        base,
        base_version,
        ours,
        theirs,
    })
}

fn entries(ctx: &Context, bytes: &[u8]) -> Result<Vec<envfile::Entry>> {
    envfile::entries(bytes).map_err(|e| {
        CliError::usage(format!("{}: {e}", ctx.env_display()))
            .hint("fix that line; envsync reads the usual KEY=VALUE dotenv syntax")
    })
}

/// Merges the env file's edits with the server's version `latest`. Clean: the file is
/// rewritten and is an edit of `latest`. Conflicts: nothing is written; with `keep`, the
/// merge is kept for `git envsync merge` (a hook passes `false`: it changes nothing).
pub fn merge_latest(
    ctx: &Context,
    api: &Api,
    keyring: &mut Keyring,
    latest: u64,
    keep: bool,
) -> Result<Merged> {
    let sides = sides(ctx, api, keyring, latest)?;
    let result = merge::merge(
        &entries(ctx, sides.base.expose())?,
        &entries(ctx, sides.ours.expose())?,
        &entries(ctx, sides.theirs.content.expose())?,
    );
    if !result.is_clean() {
        // Who pushed what: only a conflict says it, so only a conflict asks the server.
        let history = sides
            .base_version
            .and_then(|base| History::fetch(ctx, api, base, sides.theirs.version));
        let theirs_by = pushed_by(ctx, api, history.as_ref(), latest);
        if keep {
            save_pending(ctx, &sides, &theirs_by, &result.conflicts)?;
        }
        let error = conflict_error(ctx, &sides, &theirs_by, history, &result.conflicts, keep);
        return Err(error);
    }
    let mut doc = Document::parse(sides.ours.expose())
        .map_err(|e| CliError::usage(format!("{}: {e}", ctx.env_display())))?;
    doc.apply(&result.edits)
        .map_err(|e| CliError::refused(format!("cannot merge {}: {e}", ctx.env_display())))?;
    let merged = doc.to_bytes();
    let already = secret::ct_eq(sides.ours.expose(), sides.theirs.content.expose());
    let incoming = result.incoming().iter().map(|k| (*k).to_owned()).collect();
    let backup = write_merged(ctx, &sides.ours, merged.expose(), sides.theirs)?;
    Ok(Merged {
        version: latest,
        incoming,
        backup,
        already,
    })
}

/// Writes the merged file (the one before it kept as a backup) and records it as an edit
/// of the server's version: that version is now what this clone has synced.
///
/// The file first, durably, then the record: a write that fails (a full disk, a file
/// size limit) or a process that dies in between leaves the state saying this clone
/// synced the base, so the next pull or push merges again (a merge of a file that
/// already holds their changes changes nothing more). The other order would record their
/// version as synced over a file that still holds only our edits, and the next push
/// would silently replace their version with them.
fn write_merged(
    ctx: &Context,
    before: &SecretBytes,
    merged: &[u8],
    theirs: Fetched,
) -> Result<Option<PathBuf>> {
    let backup = if secret::ct_eq(before.expose(), merged) {
        None
    } else {
        Some(ctx.env.backup(before.expose())?)
    };
    let version = theirs.version;
    ctx.env.write(merged, 0o600)?;
    sync::record_synced(ctx, theirs)?;
    // The file is an edit of the version merged: it hashes to that version, not to itself.
    ctx.state.set_file(&FileState::synced(
        ctx.state.branch(&ctx.branch)?.sha256.unwrap_or_default(),
        &ctx.branch,
        version,
        ctx.config.digest(),
    ))?;
    Ok(backup)
}

/// The email of whoever pushed `version` of the checked-out branch: from the history
/// when it was read, else from the server's latest version; "someone" when it cannot say.
fn pushed_by(ctx: &Context, api: &Api, history: Option<&History>, version: u64) -> String {
    let listed = history.and_then(|h| h.0.iter().find(|v| v.version == version));
    if let Some(v) = listed {
        return v.pushed_by.clone();
    }
    api.latest_version(&ctx.config.project, &ctx.branch)
        .ok()
        .flatten()
        .filter(|v| v.version == version)
        .map_or_else(|| "someone".to_owned(), |v| v.pushed_by)
}

fn conflict_error(
    ctx: &Context,
    sides: &Sides,
    theirs_by: &str,
    history: Option<History>,
    conflicts: &[Conflict],
    kept: bool,
) -> CliError {
    let keys: Vec<String> = conflicts
        .iter()
        .map(|c| {
            let when = match history.as_ref().map(|h| h.last_change(&c.key)) {
                Some(Changed::In(version, by)) => format!(" in version {version} by {by}"),
                Some(Changed::Between(from, to)) if from < to => {
                    format!(" in versions {from} to {to}")
                }
                _ => String::new(),
            };
            format!(
                "{} (yours {}; theirs {}{when})",
                c.key,
                describe(c.ours),
                describe(c.theirs)
            )
        })
        .collect();
    let error = CliError::refused(format!(
        "merge stopped: your edits to {} and version {} of {} (pushed by {}) both changed {}; nothing was written",
        ctx.env_display(),
        sides.theirs.version,
        ctx.branch,
        theirs_by,
        keys.join(", ")
    ));
    if kept {
        error.hint("choose with git envsync merge --ours KEY… / --theirs KEY…, or edit both in git envsync merge --edit")
    } else {
        error.hint("run git envsync pull to merge, then resolve with git envsync merge")
    }
}

/// The branch's versions from the base to theirs, newest first, as the server lists them
/// (names and value fingerprints: nothing is decrypted), to say which version changed a
/// conflicting key and who pushed it.
struct History(Vec<VersionInfo>);

/// Where the server's side changed a key.
enum Changed {
    /// In this version, pushed by this token's email.
    In(u64, String),
    /// Somewhere in these versions (fingerprints could not tell which).
    Between(u64, u64),
}

impl History {
    /// Most versions looked at; past that, the message names no version.
    const MAX: u64 = 200;

    /// The versions from `theirs` down to `base`, page by page (a page holds at most
    /// [`VersionsPage::MAX_LIMIT`] versions, fewer when its byte budget is spent); `None`
    /// when the span is too long, the server cannot say, or one is missing.
    fn fetch(ctx: &Context, api: &Api, base: u64, theirs: u64) -> Option<History> {
        let span = theirs.checked_sub(base)?;
        if span == 0 || span >= Self::MAX {
            return None;
        }
        let mut versions = Vec::new();
        // Versions below `before` are still to come; each page moves it down, so this
        // makes at most one request per version.
        let mut before = theirs + 1;
        while before > base {
            let limit = (before - base).min(u64::from(VersionsPage::MAX_LIMIT));
            let page = api
                .versions_page(
                    &ctx.config.project,
                    &ctx.branch,
                    u32::try_from(limit).ok()?,
                    Some(before),
                )
                .ok()?;
            versions.extend(
                page.versions
                    .into_iter()
                    .filter(|v| (base..before).contains(&v.version)),
            );
            match page.next_before {
                Some(next) if next < before => before = next,
                _ => break,
            }
        }
        // Every version from theirs down to the base, in that order, none missing.
        versions
            .iter()
            .map(|v| v.version)
            .eq((base..=theirs).rev())
            .then_some(History(versions))
    }

    /// The newest version that changed `key` (added, removed, or a different value); a
    /// span of one version is that version.
    fn last_change(&self, key: &str) -> Changed {
        match self.span_of_change(key) {
            Changed::Between(from, to) if from == to => {
                match self.0.iter().find(|v| v.version == to) {
                    Some(v) => Changed::In(to, v.pushed_by.clone()),
                    None => Changed::Between(from, to),
                }
            }
            changed => changed,
        }
    }

    fn span_of_change(&self, key: &str) -> Changed {
        let mut unknown_from = None;
        for pair in self.0.windows(2) {
            let (newer, older) = (&pair[0], &pair[1]);
            let has = |v: &VersionInfo| v.keys.iter().any(|k| k == key);
            let changed = match (has(newer), has(older)) {
                (true, true) => crate::fingerprints::changed(
                    newer.fingerprints.as_ref(),
                    older.fingerprints.as_ref(),
                )
                .map(|keys| keys.iter().any(|k| k == key)),
                (false, false) => Some(false),
                _ => Some(true),
            };
            match changed {
                Some(true) => {
                    return match unknown_from {
                        None => Changed::In(newer.version, newer.pushed_by.clone()),
                        Some(top) => Changed::Between(newer.version, top),
                    };
                }
                Some(false) => {}
                None => {
                    unknown_from.get_or_insert(newer.version);
                }
            }
        }
        let top = self.0.first().map_or(0, |v| v.version);
        let bottom = self.0.last().map_or(0, |v| v.version + 1);
        Changed::Between(bottom, unknown_from.unwrap_or(top))
    }
}

/// The merge in progress, under the project's state directory: its conflicts and
/// choices, and their version sealed to this machine's key.
const PENDING_FILE: &str = "merge.json";
const THEIRS_FILE: &str = "merge-theirs.age";

fn pending_path(ctx: &Context) -> PathBuf {
    ctx.state.dir().join(PENDING_FILE)
}

fn theirs_path(ctx: &Context) -> PathBuf {
    ctx.state.dir().join(THEIRS_FILE)
}

fn save_pending(
    ctx: &Context,
    sides: &Sides,
    theirs_by: &str,
    conflicts: &[Conflict],
) -> Result<()> {
    let pending = Pending {
        branch: ctx.branch.clone(),
        theirs_version: sides.theirs.version,
        theirs_by: theirs_by.to_owned(),
        ours_sha: fsutil::sha256_hex(sides.ours.expose()),
        conflicts: conflicts
            .iter()
            .map(|c| PendingConflict {
                key: c.key.clone(),
                ours: describe(c.ours).to_owned(),
                theirs: describe(c.theirs).to_owned(),
                take: None,
            })
            .collect(),
    };
    // Their version, sealed to this machine's key: resolving needs it, and the server
    // may have moved again by then.
    let identity = crypto::local_identity()?;
    let binding = Binding::new(&ctx.config.project, &ctx.branch, sides.theirs.version);
    let sealed = envelope::seal(
        &binding,
        sides.theirs.content.expose(),
        &Seal::Recipients(&[identity.to_public()]),
    )
    .map_err(|e| CliError::refused(format!("cannot keep the merge: {e}")))?;
    fsutil::private_dir(ctx.state.dir())?;
    fsutil::write_state(&theirs_path(ctx), sealed.as_bytes())?;
    let bytes = serde_json::to_vec_pretty(&pending).map_err(anyhow::Error::from)?;
    fsutil::write_state(&pending_path(ctx), &bytes)?;
    Ok(())
}

/// The merge in progress on this branch, if any.
pub fn pending(ctx: &Context) -> Result<Option<Pending>> {
    Ok(fsutil::read_optional(&pending_path(ctx))?
        .and_then(|b| serde_json::from_slice::<Pending>(&b).ok())
        .filter(|p| p.branch == ctx.branch))
}

/// Saves choices made with `merge --ours/--theirs`.
pub fn save_choices(ctx: &Context, pending: &Pending) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(pending).map_err(anyhow::Error::from)?;
    fsutil::write_state(&pending_path(ctx), &bytes)?;
    Ok(())
}

/// Forgets the merge in progress.
pub fn abort(ctx: &Context) -> Result<()> {
    for path in [pending_path(ctx), theirs_path(ctx)] {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Forgets the merge in progress when it is `branch`'s (`forget`): its choices and the
/// sealed copy of their version. Whose it is says the kept merge, or when that is gone
/// the copy's own binding. Whether anything was removed.
pub fn forget(state: &State, branch: &str) -> Result<bool> {
    let dir = state.dir();
    let pending_branch = fsutil::read_optional(&dir.join(PENDING_FILE))?
        .and_then(|b| serde_json::from_slice::<Pending>(&b).ok())
        .map(|p| p.branch);
    let theirs_branch = || -> Option<String> {
        let armored = fsutil::read_optional(&dir.join(THEIRS_FILE)).ok()??;
        let identity = crypto::local_identity().ok()?;
        let opened = envelope::open(
            &String::from_utf8_lossy(&armored),
            &Open::Identities(std::slice::from_ref(&identity)),
        )
        .ok()?;
        Some(opened.binding.branch)
    };
    let owner = pending_branch.or_else(theirs_branch);
    if owner.as_deref() != Some(branch) {
        return Ok(false);
    }
    let mut removed = false;
    for name in [PENDING_FILE, THEIRS_FILE] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("cannot remove {}", path.display()))
                    .into());
            }
        }
    }
    Ok(removed)
}

/// Their side of the merge in progress, as kept.
fn kept_theirs(ctx: &Context, pending: &Pending) -> Result<SecretBytes> {
    let gone = || {
        CliError::refused("the merge in progress lost its copy of their version")
            .hint("git envsync merge --abort, then pull again")
    };
    let armored = fsutil::read_optional(&theirs_path(ctx))?.ok_or_else(gone)?;
    let identity = crypto::local_identity()?;
    let opened = envelope::open(
        &String::from_utf8_lossy(&armored),
        &Open::Identities(std::slice::from_ref(&identity)),
    )
    .map_err(|_| gone())?;
    opened
        .binding
        .verify(&Binding::new(
            &ctx.config.project,
            &ctx.branch,
            pending.theirs_version,
        ))
        .map_err(|_| gone())?;
    Ok(opened.env)
}

/// The file as it stands for a resolution: unchanged since the merge stopped.
fn unchanged_ours(ctx: &Context, pending: &Pending) -> Result<SecretBytes> {
    let ours = sync::read_env(ctx)?
        .ok_or_else(|| CliError::refused(format!("{} is gone", ctx.env_display())))?;
    if fsutil::sha256_hex(ours.expose()) != pending.ours_sha {
        return Err(CliError::refused(format!(
            "{} changed since the merge stopped",
            ctx.env_display()
        ))
        .hint("git envsync merge --abort, then pull again to merge what it holds now"));
    }
    Ok(ours)
}

/// The merge in progress with its clean part done: ours (unchanged since the merge
/// stopped), theirs as kept, and ours with every change of theirs that did not conflict
/// applied (our layout kept); each conflicting key still holds our value there.
struct CleanPart {
    ours: SecretBytes,
    theirs: SecretBytes,
    merged: Document,
    their_doc: Document,
}

fn clean_part(ctx: &Context, pending: &Pending) -> Result<CleanPart> {
    let ours = unchanged_ours(ctx, pending)?;
    let theirs = kept_theirs(ctx, pending)?;
    let file = ctx
        .state
        .file()?
        .ok_or_else(|| CliError::refused("the merge's base is gone"))?;
    let base = base_of(ctx, &file)?;
    let result = merge::merge(
        &entries(ctx, base.expose())?,
        &entries(ctx, ours.expose())?,
        &entries(ctx, theirs.expose())?,
    );
    let mut merged = Document::parse(ours.expose())
        .map_err(|e| CliError::usage(format!("{}: {e}", ctx.env_display())))?;
    let their_doc = Document::parse(theirs.expose())
        .map_err(|e| CliError::refused(format!("their version does not parse: {e}")))?;
    merged
        .apply(&result.edits)
        .map_err(|e| CliError::refused(format!("cannot merge: {e}")))?;
    Ok(CleanPart {
        ours,
        theirs,
        merged,
        their_doc,
    })
}

/// Finishes the merge in progress with every conflict's choice made: the clean part as
/// before, and each conflicting key as chosen.
pub fn finish(ctx: &Context, pending: &Pending) -> Result<Merged> {
    let CleanPart {
        ours,
        theirs,
        merged: mut doc,
        their_doc,
    } = clean_part(ctx, pending)?;
    let edit_error =
        |e: envsync_common::envdoc::EditError| CliError::refused(format!("cannot merge: {e}"));
    for conflict in &pending.conflicts {
        if conflict.take.as_deref() != Some("theirs") {
            continue;
        }
        match their_doc.get(&conflict.key) {
            None => {
                doc.unset(&conflict.key);
            }
            Some(value) if doc.contains(&conflict.key) => {
                doc.set(&conflict.key, value.expose()).map_err(edit_error)?;
            }
            Some(_) => {
                doc.insert_from(
                    &their_doc,
                    &conflict.key,
                    envsync_common::envdoc::Anchor::End,
                )
                .map_err(edit_error)?;
            }
        }
    }
    finish_with(ctx, pending, &ours, doc.to_bytes().expose(), theirs)
}

/// Finishes the merge in progress with `merged` as the file (`merge --continue` after
/// `--edit`).
pub fn finish_with(
    ctx: &Context,
    pending: &Pending,
    before: &SecretBytes,
    merged: &[u8],
    theirs: SecretBytes,
) -> Result<Merged> {
    let keys = entries(ctx, theirs.expose())?
        .into_iter()
        .map(|e| e.key)
        .collect::<Vec<_>>();
    let fetched = Fetched {
        content: theirs,
        from: ctx.branch.clone(),
        version: pending.theirs_version,
        server_keys: dedup(keys),
        cached: false,
        signer: None,
        sealed: None,
    };
    let backup = write_merged(ctx, before, merged, fetched)?;
    abort(ctx)?;
    Ok(Merged {
        version: pending.theirs_version,
        incoming: Vec::new(),
        backup,
        already: false,
    })
}

fn dedup(keys: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    keys.into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

/// The file for `merge --edit`: the merge as `merge --ours/--theirs` would write it (ours,
/// with every change of theirs that did not conflict applied, our layout kept), with each
/// conflicting key's lines replaced by both sides between markers.
pub fn edit_file(ctx: &Context, pending: &Pending) -> Result<Vec<u8>> {
    let CleanPart {
        theirs,
        merged,
        their_doc,
        ..
    } = clean_part(ctx, pending)?;
    let merged_bytes = merged.to_bytes();
    let lines_of = |bytes: &[u8]| -> Vec<Vec<u8>> {
        bytes
            .split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    };
    let our_lines = lines_of(merged_bytes.expose());
    let their_lines = lines_of(theirs.expose());
    let span = |doc: &Document, key: &str| {
        doc.entries()
            .into_iter()
            .filter(|e| e.key == key && e.last)
            .map(|e| (*e.lines.start(), *e.lines.end()))
            .next()
    };
    let block = |key: &str, ours: &[Vec<u8>]| {
        let mut out = format!("<<<<<<< ours: {key}\n").into_bytes();
        for line in ours {
            out.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        out.extend_from_slice(b"=======\n");
        if let Some((first, last)) = span(&their_doc, key) {
            for line in &their_lines[first - 1..last] {
                out.extend_from_slice(line);
                if !line.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
        }
        out.extend_from_slice(
            format!(
                ">>>>>>> theirs: {key} (version {} by {})\n",
                pending.theirs_version, pending.theirs_by
            )
            .as_bytes(),
        );
        out
    };
    // Each conflicting key where the merge has it (the clean part never touches a
    // conflicting key, so that is where ours has it); those ours removed go at the end.
    let mut at_line: std::collections::BTreeMap<usize, (usize, &str)> = Default::default();
    let mut at_end = Vec::new();
    for c in &pending.conflicts {
        match span(&merged, &c.key) {
            Some((first, last)) => {
                at_line.insert(first, (last, c.key.as_str()));
            }
            None => at_end.push(c.key.as_str()),
        }
    }
    let mut out = Vec::new();
    let mut line = 1;
    while line <= our_lines.len() {
        match at_line.get(&line) {
            Some((last, key)) => {
                out.extend(block(key, &our_lines[line - 1..*last]));
                line = last + 1;
            }
            None => {
                out.extend_from_slice(&our_lines[line - 1]);
                line += 1;
            }
        }
    }
    for key in at_end {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend(block(key, &[]));
    }
    Ok(out)
}

/// Whether text still holds merge markers.
pub fn has_markers(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n')
        .any(|l| l.starts_with(b"<<<<<<< ") || l == b"=======" || l.starts_with(b">>>>>>> "))
}

/// `merge --continue` after `--edit`: the edited merge file becomes the env file.
pub fn continue_with(ctx: &Context, pending: &Pending, edited: &[u8]) -> Result<Merged> {
    if has_markers(edited) {
        return Err(CliError::refused("the merge file still holds conflict markers")
            .hint("keep one side (or write the value you want) for each key, remove the marker lines, then git envsync merge --continue"));
    }
    entries(ctx, edited)?;
    let ours = unchanged_ours(ctx, pending)?;
    let theirs = kept_theirs(ctx, pending)?;
    finish_with(ctx, pending, &ours, edited, theirs)
}
