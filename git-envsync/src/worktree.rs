//! Files in the work tree that a committed setting names: the env file and its backups,
//! and `.envsync.toml` itself.
//!
//! Whoever can push a branch decides these paths (`env_file` in `.envsync.toml`) and what
//! lies along them (a committed symlink `h -> $HOME`). So every read and write here
//! resolves the path one component at a time from the work tree root, opening each
//! directory with `O_NOFOLLOW | O_DIRECTORY` and the file itself with `O_NOFOLLOW`: a
//! symbolic link anywhere below the root fails the operation, and so does a `.git`
//! component. Nothing outside the work tree is ever read or written through a path a
//! branch chose. The final file must be a regular file: it is opened without blocking
//! and checked, so a named pipe or a device never hangs a hook.
//!
//! Writes are atomic and durable, relative to the directory's descriptor: a temp file
//! created `O_EXCL` (mode set exactly), fsync, `renameat` over the target, fsync of the
//! directory. A crash leaves the old or the new file; the next write sweeps leftovers.

use crate::config::PROJECT_FILE;
use crate::error::{CliError, Result};
use anyhow::Context as _;
use envsync_common::secret::SecretBytes;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const TMP_MARKER: &str = ".envsync.tmp-";

/// A file beneath the work tree, named by a relative path from a committed setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    root: PathBuf,
    /// The directories from the root down to the file's, each one plain name.
    dirs: Vec<OsString>,
    name: OsString,
    /// The path as configured, for messages.
    rel: String,
}

impl TreeFile {
    /// Checks `rel` lexically: relative, plain names only (no `..`, no absolute path, no
    /// `.git`). Nothing is touched on disk yet.
    pub fn new(root: &Path, rel: &str) -> Result<TreeFile> {
        let bad = |why: &str| {
            CliError::usage(format!(
                "{PROJECT_FILE}: env_file '{rel}' {why}"
            ))
            .hint("env_file must be a relative path to a file inside the work tree, such as .env or config/.env")
        };
        if rel.is_empty() {
            return Err(bad("is empty"));
        }
        let mut parts = Vec::new();
        for component in Path::new(rel).components() {
            match component {
                Component::Normal(name) => {
                    if name.as_bytes().eq_ignore_ascii_case(b".git") {
                        return Err(bad("goes through .git"));
                    }
                    parts.push(name.to_owned());
                }
                Component::CurDir => {}
                _ => return Err(bad("leaves the work tree")),
            }
        }
        let name = parts.pop().ok_or_else(|| bad("names no file"))?;
        Ok(TreeFile {
            root: root.to_path_buf(),
            dirs: parts,
            name,
            rel: rel.to_owned(),
        })
    }

    /// The full path, for messages and for watching the directory.
    pub fn path(&self) -> PathBuf {
        let mut path = self.dir_path();
        path.push(&self.name);
        path
    }

    /// The directory holding the file.
    pub fn dir_path(&self) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(&self.dirs);
        path
    }

    /// The file's name within its directory.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The path as configured (relative to the work tree).
    pub fn display(&self) -> &str {
        &self.rel
    }

    /// Whether the file exists (as anything: a link or a pipe is reported by the next
    /// read or write).
    pub fn exists(&self) -> Result<bool> {
        let Some(dir) = self.open_dir()? else {
            return Ok(false);
        };
        Ok(rustix::fs::statat(&dir, self.name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok())
    }

    /// Reads the file; `None` when it (or its directory) does not exist.
    pub fn read(&self) -> Result<Option<SecretBytes>> {
        let Some(dir) = self.open_dir()? else {
            return Ok(None);
        };
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match rustix::fs::openat(&dir, self.name.as_os_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.fail("read", e, true)),
        };
        self.check_regular(&fd)?;
        let mut file = File::from(fd);
        let mut bytes = zeroize::Zeroizing::new(Vec::new());
        file.read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", self.rel))?;
        Ok(Some(SecretBytes::new(std::mem::take(&mut *bytes))))
    }

    /// Replaces the file with `bytes`, atomically and durably, with exactly `mode`.
    /// Refuses to replace a symbolic link or anything that is not a regular file.
    pub fn write(&self, bytes: &[u8], mode: u32) -> Result<()> {
        let dir = self.open_dir()?.ok_or_else(|| {
            CliError::usage(format!(
                "cannot write {}: its directory does not exist",
                self.rel
            ))
        })?;
        match rustix::fs::statat(&dir, self.name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => {
                let kind = FileType::from_raw_mode(stat.st_mode);
                if kind == FileType::Symlink {
                    return Err(CliError::usage(format!(
                        "{} is a symbolic link; envsync writes only regular files",
                        self.rel
                    )));
                }
                if kind != FileType::RegularFile {
                    return Err(self.not_regular());
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(self.fail("write", e, false)),
        }
        crate::fsutil::survive_file_size_limit();
        self.write_into(&dir, self.name.as_os_str(), bytes, mode)
    }

    /// Saves `bytes` to a new `<name>.backup-<UTC time>` beside the file (0600) and
    /// returns its path.
    pub fn backup(&self, bytes: &[u8]) -> Result<PathBuf> {
        let dir = self
            .open_dir()?
            .ok_or_else(|| CliError::usage(format!("cannot back up {}", self.rel)))?;
        let stamp = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .context("cannot format the time")?;
        for n in 0..100 {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            let mut name = self.name.clone();
            name.push(format!(".backup-{stamp}{suffix}"));
            let free = matches!(
                rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW),
                Err(Errno::NOENT)
            );
            if free {
                self.write_into(&dir, &name, bytes, 0o600)?;
                return Ok(self.dir_path().join(name));
            }
        }
        Err(CliError::refused(format!(
            "cannot find a free backup file name next to {}",
            self.rel
        )))
    }

    /// Removes the file; `false` when it (or its directory) does not exist. Only a
    /// regular file is removed, through its directory's descriptor: a symbolic link on
    /// the way fails, as for every other operation, so nothing outside the work tree is
    /// ever removed.
    pub fn remove(&self) -> Result<bool> {
        let Some(dir) = self.open_dir()? else {
            return Ok(false);
        };
        match rustix::fs::statat(&dir, self.name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => {}
                FileType::Symlink => return Err(self.fail("remove", Errno::LOOP, true)),
                _ => return Err(self.not_regular()),
            },
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(self.fail("remove", e, true)),
        }
        match rustix::fs::unlinkat(&dir, self.name.as_os_str(), AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(self.fail("remove", e, true)),
        }
    }

    /// Sets the file's mode to exactly 0600 (a pull that found the right bytes already).
    pub fn make_private(&self) -> Result<()> {
        let Some(dir) = self.open_dir()? else {
            return Ok(());
        };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, self.name.as_os_str(), flags, Mode::empty())
            .map_err(|e| self.fail("read", e, true))?;
        self.check_regular(&fd)?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| self.fail("read", e, true))?;
        if stat.st_mode & 0o777 != 0o600 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))
                .map_err(|e| self.fail("change the mode of", e, true))?;
        }
        Ok(())
    }

    /// Opens the file's directory without following links; `None` when a directory on
    /// the way does not exist.
    fn open_dir(&self) -> Result<Option<OwnedFd>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut dir = rustix::fs::openat(rustix::fs::CWD, &self.root, flags, Mode::empty())
            .with_context(|| format!("cannot open the work tree {}", self.root.display()))?;
        for part in &self.dirs {
            dir = match rustix::fs::openat(
                &dir,
                part.as_os_str(),
                flags | OFlags::NOFOLLOW,
                Mode::empty(),
            ) {
                Ok(next) => next,
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(self.fail("reach", e, false)),
            };
        }
        Ok(Some(dir))
    }

    fn check_regular(&self, fd: &OwnedFd) -> Result<()> {
        let stat = rustix::fs::fstat(fd).map_err(|e| self.fail("read", e, true))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(self.not_regular());
        }
        Ok(())
    }

    fn not_regular(&self) -> CliError {
        CliError::usage(format!(
            "{} is not a regular file (a directory, pipe, socket or device); envsync reads and writes only regular files",
            self.rel
        ))
    }

    fn fail(&self, what: &str, e: Errno, last: bool) -> CliError {
        match e {
            // O_NOFOLLOW on a link gives ELOOP; O_DIRECTORY|O_NOFOLLOW on one, ENOTDIR.
            Errno::LOOP | Errno::NOTDIR | Errno::MLINK => CliError::usage(format!(
                "cannot {what} {}: {} is a symbolic link or not a directory; envsync never follows links in env_file",
                self.rel,
                if last { "the file" } else { "a directory on its path" }
            ))
            .hint("make env_file a plain path inside the work tree, or replace the link with the real file"),
            other => CliError::refused(format!(
                "cannot {what} {}: {}",
                self.rel,
                std::io::Error::from(other)
            )),
        }
    }

    fn write_into(&self, dir: &OwnedFd, name: &OsStr, bytes: &[u8], mode: u32) -> Result<()> {
        let mut tmp = name.to_owned();
        tmp.push(format!("{TMP_MARKER}{}", std::process::id()));
        sweep(dir, name);
        let io = |what: &str, e: std::io::Error| {
            CliError::from(anyhow::anyhow!("cannot {what} {}: {e}", self.rel))
        };
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let _ = rustix::fs::unlinkat(dir, tmp.as_os_str(), AtFlags::empty());
        let fd = rustix::fs::openat(dir, tmp.as_os_str(), flags, Mode::from_raw_mode(mode))
            .map_err(|e| io("create a temp file beside", e.into()))?;
        let result = (|| {
            // The umask may have taken bits away: set the mode exactly.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(|e| io("set the mode of", e.into()))?;
            let mut file = File::from(fd);
            file.write_all(bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("write", e))?;
            rustix::fs::renameat(dir, tmp.as_os_str(), dir, name)
                .map_err(|e| io("replace", e.into()))?;
            // Makes the rename durable; not every file system supports it, and the rename
            // has happened, so a failure here does not fail the write.
            let _ = rustix::fs::fsync(dir.as_fd());
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(dir, tmp.as_os_str(), AtFlags::empty());
        }
        result
    }
}

/// Removes temp files a killed run of ours left next to `name` (never following links:
/// `unlinkat` removes a planted link itself).
fn sweep(dir: &OwnedFd, name: &OsStr) {
    let mut prefix = name.as_bytes().to_vec();
    prefix.extend_from_slice(TMP_MARKER.as_bytes());
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_bytes();
        if entry_name.starts_with(&prefix) {
            let _ = rustix::fs::unlinkat(dir, OsStr::from_bytes(entry_name), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tree() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn lexical_checks() {
        let root = Path::new("/repo");
        for ok in [".env", "config/.env", "./a/b"] {
            assert!(TreeFile::new(root, ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../.env",
            "/etc/passwd",
            "a/../../b",
            ".git/config",
            "a/.GIT/x",
            ".",
            "a/..",
        ] {
            assert!(TreeFile::new(root, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_and_writes_stay_beneath_the_root() {
        let dir = tree();
        let root = dir.path().join("repo");
        let outside = dir.path().join("home");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join(".bash_aliases"), "mine\n").unwrap();
        symlink(&outside, root.join("h")).unwrap();
        let file = TreeFile::new(&root, "h/.bash_aliases").unwrap();
        assert_eq!(file.read().unwrap_err().exit.code(), 2);
        assert_eq!(file.write(b"evil", 0o600).unwrap_err().exit.code(), 2);
        assert!(file.backup(b"evil").is_err());
        assert_eq!(
            std::fs::read(outside.join(".bash_aliases")).unwrap(),
            b"mine\n"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);

        // A link as the file itself: neither read nor replaced.
        symlink(outside.join(".bash_aliases"), root.join(".env")).unwrap();
        let env = TreeFile::new(&root, ".env").unwrap();
        assert!(env.read().is_err());
        assert!(env.write(b"x", 0o600).is_err());
        assert!(env.make_private().is_err());
        std::fs::remove_file(root.join(".env")).unwrap();

        // The ordinary case, with a leftover temp file swept.
        std::fs::write(root.join(".env.envsync.tmp-1"), "partial").unwrap();
        assert_eq!(env.read().unwrap().map(|b| b.expose().to_vec()), None);
        env.write(b"A=1\n", 0o600).unwrap();
        assert_eq!(env.read().unwrap().unwrap().expose(), b"A=1\n");
        assert!(!root.join(".env.envsync.tmp-1").exists());
        let mode = std::fs::metadata(root.join(".env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let backup = env.backup(b"A=0\n").unwrap();
        assert!(backup.starts_with(&root), "{}", backup.display());
        assert_eq!(std::fs::read(backup).unwrap(), b"A=0\n");
    }

    #[test]
    fn remove_takes_only_a_regular_file_beneath_the_root() {
        let dir = tree();
        let root = dir.path().join("repo");
        let outside = dir.path().join("home");
        std::fs::create_dir_all(root.join("cfg")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join(".env.merge"), "theirs\n").unwrap();

        // The ordinary case, then nothing left to remove.
        std::fs::write(root.join("cfg/.env.merge"), "A=1\n").unwrap();
        let merge = TreeFile::new(&root, "cfg/.env.merge").unwrap();
        assert!(merge.remove().unwrap());
        assert!(!root.join("cfg/.env.merge").exists());
        assert!(!merge.remove().unwrap());
        assert!(
            !TreeFile::new(&root, "none/.env.merge")
                .unwrap()
                .remove()
                .unwrap()
        );

        // A symlinked directory on the way: refused, the file behind it kept.
        std::fs::remove_dir(root.join("cfg")).unwrap();
        symlink(&outside, root.join("cfg")).unwrap();
        assert_eq!(merge.remove().unwrap_err().exit.code(), 2);
        assert_eq!(
            std::fs::read(outside.join(".env.merge")).unwrap(),
            b"theirs\n"
        );

        // A link as the file itself, and a directory: neither removed.
        symlink(outside.join(".env.merge"), root.join(".env.merge")).unwrap();
        let top = TreeFile::new(&root, ".env.merge").unwrap();
        assert_eq!(top.remove().unwrap_err().exit.code(), 2);
        assert!(root.join(".env.merge").symlink_metadata().is_ok());
        std::fs::create_dir(root.join("d")).unwrap();
        assert!(TreeFile::new(&root, "d").unwrap().remove().is_err());
        assert!(root.join("d").is_dir());
        assert_eq!(
            std::fs::read(outside.join(".env.merge")).unwrap(),
            b"theirs\n"
        );
    }

    #[test]
    fn a_named_pipe_is_refused_without_blocking() {
        let dir = tree();
        let status = std::process::Command::new("mkfifo")
            .arg(dir.path().join(".env"))
            .status()
            .unwrap();
        assert!(status.success());
        let env = TreeFile::new(dir.path(), ".env").unwrap();
        let err = env.read().unwrap_err();
        assert!(err.message().contains("not a regular file"), "{err}");
        assert!(env.write(b"x", 0o600).is_err());
    }
}
