//! Local state under `.git/envsync/<project>/` (0700, never in the work tree).
//!
//! - `file.json`: what envsync last wrote to or pushed from the env file (its SHA-256, the
//!   branch and version it came from). "Local edits" means the file no longer hashes to it.
//! - `branches/<hash>.json`: per branch, the last version synced, the highest version ever
//!   seen (rollback detection), and the server's key list (offline drift checks).
//! - `branches/<hash>.age`: the last synced plaintext, sealed with age to the machine-local
//!   X25519 key, so switching back to a branch that has not moved costs no scrypt.
//!
//! Writes are skipped when nothing changed (hooks run on every commit and checkout) and
//! are atomic but not fsynced (see [`fsutil::write_state`]).
//!
//! Branch names become file names through a hash: they may be 255 bytes of UTF-8 with
//! slashes, which no file system takes as one name.

use crate::fsutil;
use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the env file held when envsync last wrote or pushed it, and whose it is.
///
/// `branch` is the file's owner: the branch whose env it holds. Edits to the file (it no
/// longer hashes to `sha256`) are edits to that branch's env, and a push of them goes
/// there and nowhere else: never to whichever branch happens to be checked out when a
/// hook runs. A checkout that cannot bring the new branch's env (server down, a refusal)
/// leaves the file, and its owner, as they were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub sha256: String,
    /// The owner: the branch whose env the file holds.
    pub branch: String,
    /// The owner's version the content is; `None` when the content came from another
    /// branch (`from`) because the owner had no env yet, or the owner took the file over.
    pub version: Option<u64>,
    /// Where the content came from when that was not `branch` itself: the default branch
    /// (a branch with no env yet), or the branch a new one was created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Source>,
    /// The digest of the project settings it was synced under: edits are only ever
    /// pushed under the same settings ([`crate::config::ProjectConfig::digest`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Set when a checkout left the file holding its owner's env while another branch
    /// was checked out: the file's hash at that moment. A change made after it was made
    /// on another branch, so the hooks no longer push the file to its owner (an explicit
    /// push, pull or adopt decides); back on the owner with the file unchanged, it is
    /// cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away: Option<String>,
}

/// A branch and version some content came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub branch: String,
    pub version: Option<u64>,
}

impl FileState {
    /// The file holding `version` of its owner `branch` (content hashing to `sha256`), as
    /// synced under the settings whose digest is `config`.
    pub fn synced(sha256: String, branch: &str, version: u64, config: String) -> FileState {
        FileState {
            sha256,
            branch: branch.to_owned(),
            version: Some(version),
            from: None,
            config: Some(config),
            away: None,
        }
    }

    /// Whether the file was changed after a checkout left it on another branch
    /// (`current` is its hash now).
    pub fn changed_while_away(&self, current: &str) -> bool {
        self.away.as_deref().is_some_and(|h| h != current)
    }

    /// What the file holds, for messages: `main v2`, or `feature (main v2)`.
    pub fn holds(&self) -> String {
        let own = match self.version {
            Some(v) => format!("{} v{v}", self.branch),
            None => self.branch.clone(),
        };
        match &self.from {
            Some(from) => match from.version {
                Some(v) => format!("{own} (from {} v{v})", from.branch),
                None => format!("{own} (from {})", from.branch),
            },
            None => own,
        }
    }
}

/// What this clone knows of one branch on the server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchState {
    pub branch: String,
    /// Last version pushed or pulled by this clone.
    pub version: Option<u64>,
    /// SHA-256 of that version's env file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Highest version ever seen for the branch; an older one served later is a rollback.
    #[serde(default)]
    pub seen: u64,
    /// The server's key names at `keys_version`, for drift checks when it is unreachable.
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub keys_version: u64,
    /// The digest of the project settings the sealed local copy was verified under; the
    /// copy is used only under the same settings (a changed member list, say, means
    /// verifying again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// How `version` was sealed (`passphrase` or `team`): a push in the other mode is
    /// refused (see `sync::push`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// A verifier of the passphrase that opened or sealed `version` (keyed with this
    /// machine's local key, so it tells nothing without it): a push with the same
    /// passphrase needs no scrypt to prove it is the project's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<String>,
}

impl BranchState {
    /// Records a version seen on the server with its key names.
    pub fn saw(&mut self, version: u64, keys: &[String]) {
        self.seen = self.seen.max(version);
        if version >= self.keys_version {
            self.keys_version = version;
            self.keys = keys.to_vec();
        }
    }
}

/// A member removed from the project since the last complete rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub name: String,
    /// What the server's audit log calls them (their token's email).
    pub known_as: String,
}

/// The state directory of one project in one work tree.
#[derive(Debug, Clone)]
pub struct State {
    dir: PathBuf,
}

impl State {
    pub fn new(git_dir: &Path, project: &str) -> State {
        State {
            dir: git_dir.join("envsync").join(project),
        }
    }

    /// The directory itself (for state other modules keep, such as rotation progress).
    /// Created on first use.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file(&self) -> anyhow::Result<Option<FileState>> {
        read_json(&self.dir.join("file.json"))
    }

    /// Saves the file state (skipped when it already says the same).
    pub fn set_file(&self, file: &FileState) -> anyhow::Result<()> {
        if self.file()?.as_ref() == Some(file) {
            return Ok(());
        }
        self.write_json(&self.dir.join("file.json"), file)
    }

    pub fn branch(&self, branch: &str) -> anyhow::Result<BranchState> {
        let state: Option<BranchState> = read_json(&self.branch_path(branch, "json"))?;
        Ok(state
            .filter(|s| s.branch == branch)
            .unwrap_or_else(|| BranchState {
                branch: branch.to_owned(),
                ..BranchState::default()
            }))
    }

    /// Records that the server showed `version` of `branch` with these key names (for
    /// rollback detection and offline drift checks).
    pub fn record_seen(
        &self,
        branch: &str,
        version: u64,
        keys: &[String],
    ) -> anyhow::Result<BranchState> {
        let mut state = self.branch(branch)?;
        let before = state.clone();
        state.saw(version, keys);
        // Read once: on the hot path of every hook the state rarely changes.
        if state != before {
            self.write_json(&self.branch_path(branch, "json"), &state)?;
        }
        Ok(state)
    }

    /// Saves a branch's state (skipped when it already says the same).
    pub fn set_branch(&self, state: &BranchState) -> anyhow::Result<()> {
        if self.branch(&state.branch)? == *state {
            return Ok(());
        }
        self.write_json(&self.branch_path(&state.branch, "json"), state)
    }

    /// The sealed copy of a branch's last synced plaintext.
    pub fn sealed(&self, branch: &str) -> anyhow::Result<Option<String>> {
        Ok(fsutil::read_optional(&self.branch_path(branch, "age"))?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Where the sealed copy of a branch's last synced plaintext is kept (whether or not
    /// it is there).
    pub fn sealed_path(&self, branch: &str) -> PathBuf {
        self.branch_path(branch, "age")
    }

    pub fn set_sealed(&self, branch: &str, armored: &str) -> anyhow::Result<()> {
        self.ensure_dirs()?;
        fsutil::write_state(&self.branch_path(branch, "age"), armored.as_bytes())
    }

    /// Records a member removed since the last rotation (their name and the identity the
    /// server knows them by), for `rotate` to report what they pulled.
    pub fn remember_removed(&self, name: &str, known_as: &str) -> anyhow::Result<()> {
        let mut removed = self.removed()?;
        if !removed.iter().any(|r| r.known_as == known_as) {
            removed.push(Removed {
                name: name.to_owned(),
                known_as: known_as.to_owned(),
            });
        }
        self.write_json(&self.dir.join("removed.json"), &removed)
    }

    /// The members removed since the last complete rotation.
    pub fn removed(&self) -> anyhow::Result<Vec<Removed>> {
        Ok(read_json(&self.dir.join("removed.json"))?.unwrap_or_default())
    }

    /// Forgets the removals a complete rotation has dealt with.
    pub fn clear_removed(&self) -> anyhow::Result<()> {
        remove_if_there(&self.dir.join("removed.json")).map(|_| ())
    }

    /// Every branch this clone keeps state for.
    pub fn branches(&self) -> anyhow::Result<Vec<BranchState>> {
        let dir = self.dir.join("branches");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        let mut branches: Vec<BranchState> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| read_json(&e.path()).ok().flatten())
            .collect();
        branches.sort_by(|a, b| a.branch.cmp(&b.branch));
        Ok(branches)
    }

    /// Wipes what this clone keeps of one branch: its state and sealed copy, and the
    /// file state when the env file's content came from that branch (the file then
    /// counts as never synced, so nothing replaces it unasked). Returns whether anything
    /// was there.
    pub fn forget_branch(&self, branch: &str) -> anyhow::Result<bool> {
        let mut removed = false;
        for ext in ["json", "age"] {
            removed |= remove_if_there(&self.branch_path(branch, ext))?;
        }
        if self.file()?.is_some_and(|f| f.branch == branch) {
            removed |= remove_if_there(&self.dir.join("file.json"))?;
        }
        Ok(removed)
    }

    /// Wipes everything this clone keeps of the project.
    pub fn forget_all(&self) -> anyhow::Result<bool> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", self.dir.display())),
        }
    }

    fn branch_path(&self, branch: &str, ext: &str) -> PathBuf {
        let hash = fsutil::sha256_hex(branch.as_bytes());
        self.dir
            .join("branches")
            .join(format!("{}.{ext}", &hash[..32]))
    }

    fn ensure_dirs(&self) -> anyhow::Result<()> {
        if let Some(envsync) = self.dir.parent() {
            fsutil::private_dir(envsync)?;
        }
        fsutil::private_dir(&self.dir)?;
        fsutil::private_dir(&self.dir.join("branches"))
    }

    fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> anyhow::Result<()> {
        self.ensure_dirs()?;
        let bytes = serde_json::to_vec_pretty(value).context("cannot encode local state")?;
        fsutil::write_state(path, &bytes)
    }
}

fn remove_if_there(path: &Path) -> anyhow::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match fsutil::read_optional(path)? {
        None => Ok(None),
        // A damaged state file is treated as missing: it only ever costs a re-sync, and
        // the integrity checks do not rely on it alone.
        Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_state_round_trips_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "p");
        assert_eq!(state.branch("feature/ü").unwrap().version, None);
        let seen = state.record_seen("feature/ü", 3, &["A".into()]).unwrap();
        assert_eq!((seen.seen, seen.keys_version), (3, 3));
        // An older version seen later changes neither the high-water mark nor the keys.
        let again = state.record_seen("feature/ü", 2, &["B".into()]).unwrap();
        assert_eq!(
            (again.seen, again.keys.as_slice()),
            (3, &["A".to_owned()][..])
        );
        state.set_sealed("feature/ü", "armored").unwrap();
        state
            .set_file(&FileState {
                sha256: "h".into(),
                branch: "feature/ü".into(),
                version: Some(3),
                from: None,
                config: None,
                away: None,
            })
            .unwrap();
        assert_eq!(state.branches().unwrap().len(), 1);
        assert!(state.forget_branch("feature/ü").unwrap());
        assert!(
            state.file().unwrap().is_none(),
            "the file was that branch's"
        );
        assert!(state.sealed("feature/ü").unwrap().is_none());
        assert!(!state.forget_branch("feature/ü").unwrap());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("envsync"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn removals_are_remembered_once_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "p");
        state
            .remember_removed("carol", "carol@example.com")
            .unwrap();
        state
            .remember_removed("carol", "carol@example.com")
            .unwrap();
        assert_eq!(state.removed().unwrap().len(), 1);
        state.clear_removed().unwrap();
        assert!(state.removed().unwrap().is_empty());
    }

    #[test]
    fn holds_says_whose_env() {
        let file = FileState {
            sha256: String::new(),
            branch: "feature".into(),
            version: None,
            from: Some(Source {
                branch: "main".into(),
                version: Some(2),
            }),
            config: None,
            away: Some("h".into()),
        };
        assert_eq!(file.holds(), "feature (from main v2)");
        assert!(file.changed_while_away("other"));
        assert!(!file.changed_while_away("h"));
    }
}
