//! What envsync asks of git, through libgit2: where the repository is, which branch is
//! checked out, whether a path is staged or ignored.

use crate::error::{CliError, Result};
use envsync_common::names::validate_branch;
use git2::Repository;
use std::path::{Path, PathBuf};

/// An opened repository with a work tree.
pub struct Repo {
    pub repo: Repository,
    /// The work tree root.
    pub root: PathBuf,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({})", self.root.display())
    }
}

impl Repo {
    /// Finds the repository containing the current directory.
    pub fn discover() -> Result<Repo> {
        let repo = Repository::open_from_env().map_err(|_| {
            CliError::usage("not inside a git repository")
                .hint("run this from a git work tree (git init creates one)")
        })?;
        // git means a relative GIT_WORK_TREE relative to the current directory (it runs
        // hooks with GIT_WORK_TREE=. under `--work-tree`); libgit2 would resolve it
        // against the git directory instead.
        if let Some(work_tree) = std::env::var_os("GIT_WORK_TREE").filter(|v| !v.is_empty()) {
            let path = std::env::current_dir()
                .map(|cwd| cwd.join(&work_tree))
                .and_then(|p| p.canonicalize())
                .map_err(|e| CliError::usage(format!("GIT_WORK_TREE: {e}")))?;
            repo.set_workdir(&path, false)
                .map_err(|e| CliError::usage(format!("GIT_WORK_TREE: {}", e.message())))?;
        }
        let root = repo
            .workdir()
            .ok_or_else(|| CliError::usage("this repository has no work tree (bare repository)"))?
            .to_path_buf();
        Ok(Repo { repo, root })
    }

    /// This work tree's git directory (`.git`, or `.git/worktrees/<name>` for a linked
    /// work tree): envsync's local state lives under it, never in the work tree.
    pub fn git_dir(&self) -> &Path {
        self.repo.path()
    }

    /// The git directory shared by every linked work tree of this repository.
    pub fn common_dir(&self) -> &Path {
        self.repo.commondir()
    }

    /// The checked-out branch. Works on an unborn branch (no commit yet) by reading
    /// `HEAD`'s symbolic target; a detached HEAD is a usage error.
    pub fn current_branch(&self) -> Result<String> {
        let head = self
            .repo
            .find_reference("HEAD")
            .map_err(|e| CliError::usage(format!("cannot read HEAD: {}", e.message())))?;
        let target = head.symbolic_target_bytes().ok_or_else(|| {
            CliError::usage("HEAD is detached: there is no current branch")
                .hint("pass --branch NAME to say which branch's env to use")
        })?;
        let name = target
            .strip_prefix(b"refs/heads/")
            .ok_or_else(|| CliError::usage("HEAD does not point at a branch"))?;
        let name = std::str::from_utf8(name)
            .map_err(|_| CliError::usage("the current branch name is not UTF-8"))?;
        check_branch(name)?;
        Ok(name.to_owned())
    }

    /// Whether HEAD is detached (a rebase, a bisect, a checkout of a commit or a tag).
    pub fn head_detached(&self) -> bool {
        self.repo
            .find_reference("HEAD")
            .is_ok_and(|h| h.symbolic_target_bytes().is_none())
    }

    /// The commit `branch` points at (hex), if the branch exists.
    pub fn branch_tip(&self, branch: &str) -> Option<String> {
        let reference = self
            .repo
            .find_reference(&format!("refs/heads/{branch}"))
            .ok()?;
        reference.target().map(|oid| oid.to_string())
    }

    /// Whether `branch` was just created from HEAD (`git switch -c`, `checkout -b`): its
    /// reflog has that one entry and nothing else, and this is the first time HEAD moved
    /// to it (a branch made earlier with `git branch` and checked out now for the first
    /// time counts too; one checked out before does not).
    pub fn created_from_head(&self, branch: &str) -> bool {
        let Ok(reflog) = self.repo.reflog(&format!("refs/heads/{branch}")) else {
            return false;
        };
        let created = reflog.len() == 1
            && reflog
                .get(0)
                .and_then(|e| e.message().ok().flatten().map(str::to_owned))
                .is_some_and(|m| m.starts_with("branch: Created from HEAD"));
        if !created {
            return false;
        }
        let Ok(head) = self.repo.reflog("HEAD") else {
            return false;
        };
        let to = format!(" to {branch}");
        let arrivals =
            head.iter()
                .filter(|e| {
                    e.message().ok().flatten().is_some_and(|m| {
                        m.starts_with("checkout: moving from ") && m.ends_with(&to)
                    })
                })
                .take(2)
                .count();
        arrivals == 1
    }

    /// Where HEAD was before it last moved to `branch`, from HEAD's newest reflog entry
    /// (`checkout: moving from X to branch`, written by checkout and switch, `-b`/`-c`
    /// included): a branch name, or a commit when HEAD was detached. `None` when the
    /// newest entry is not such a move (a rebase's checkout, no reflog).
    pub fn moved_from(&self, branch: &str) -> Option<String> {
        let reflog = self.repo.reflog("HEAD").ok()?;
        let entry = reflog.get(0)?;
        let msg = entry.message().ok()??;
        let from = msg
            .strip_prefix("checkout: moving from ")?
            .strip_suffix(&format!(" to {branch}"))?;
        (!from.is_empty()).then(|| from.to_owned())
    }

    /// The name `branch` had before a `git branch -m OLD branch`, from its reflog.
    pub fn renamed_from(&self, branch: &str) -> Option<String> {
        let reflog = self.repo.reflog(&format!("refs/heads/{branch}")).ok()?;
        let to = format!(" to refs/heads/{branch}");
        reflog.iter().find_map(|entry| {
            let msg = entry.message().ok()??;
            let rest = msg.strip_prefix("Branch: renamed refs/heads/")?;
            let old = rest.strip_suffix(&to)?;
            (validate_branch(old).is_ok() && old != branch).then(|| old.to_owned())
        })
    }

    /// Whether `path` (inside the work tree) is ignored by git.
    pub fn is_ignored(&self, path: &Path) -> bool {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        self.repo.is_path_ignored(rel).unwrap_or(false)
    }

    /// The first path in the index that is the env file `rel` (relative to the work
    /// tree), one of its backups (`<rel>.backup-…`) or its merge file (`<rel>.merge`):
    /// plaintext that must never be committed. Reads only the index; any problem reading it means nothing is found.
    pub fn staged_plaintext(&self, rel: &str) -> Option<String> {
        let rel = rel.trim_start_matches("./");
        let index = self.repo.index().ok()?;
        for plaintext in [rel.to_owned(), format!("{rel}.merge")] {
            if index.get_path(Path::new(&plaintext), 0).is_some() {
                return Some(plaintext);
            }
        }
        let backups = format!("{rel}.backup-");
        let at = index.find_prefix(Path::new(&backups)).ok()?;
        let entry = index.get(at)?;
        let path = String::from_utf8_lossy(&entry.path).into_owned();
        path.starts_with(&backups).then_some(path)
    }

    /// Whether the index holds `path` (staged or already tracked).
    pub fn index_has(&self, path: &Path) -> Result<bool> {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        let index = self.repo.index().map_err(|e| {
            CliError::refused(format!("cannot read the git index: {}", e.message()))
        })?;
        Ok(index.get_path(rel, 0).is_some())
    }

    /// The repository's default branch: what `origin/HEAD` points at, else git's
    /// `init.defaultBranch`, else `main`.
    pub fn default_branch(&self) -> String {
        let remote = self
            .repo
            .find_reference("refs/remotes/origin/HEAD")
            .ok()
            .and_then(|r| r.symbolic_target_bytes().map(<[u8]>::to_vec))
            .and_then(|t| String::from_utf8(t).ok())
            .and_then(|t| t.strip_prefix("refs/remotes/origin/").map(str::to_owned));
        remote
            .or_else(|| self.config_string("init.defaultBranch"))
            .filter(|b| validate_branch(b).is_ok())
            .unwrap_or_else(|| "main".to_owned())
    }

    /// A string from git config, `None` when unset or unreadable.
    pub fn config_string(&self, name: &str) -> Option<String> {
        self.repo.config().and_then(|c| c.get_string(name)).ok()
    }

    /// A boolean from git config (`envsync.strict`), false when unset or unreadable.
    pub fn config_bool(&self, name: &str) -> bool {
        self.repo
            .config()
            .and_then(|c| c.get_bool(name))
            .unwrap_or(false)
    }
}

/// Validates a branch name given by the user or read from git.
pub fn check_branch(name: &str) -> Result<()> {
    validate_branch(name).map_err(|e| CliError::usage(format!("branch '{name}': {e}")))
}
