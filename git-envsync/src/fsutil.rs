//! File writes that never lose data: temp file in the same directory created 0600, fsync,
//! rename over the target, fsync the directory. A crash at any point leaves either the old
//! or the new file, never a mix; a leftover temp file is swept by the next write.

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

const TMP_MARKER: &str = ".envsync.tmp-";

/// Writes `bytes` to `path` atomically and durably with mode `mode` (exactly, whatever the
/// umask). Refuses to replace a symlink: the env file is a secret and writing through a
/// link could put it anywhere; replacing the link would silently break the user's setup.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    write_replacing(path, bytes, mode, true)
}

/// Like [`write_atomic`] but without the two fsyncs, for envsync's own state files. The
/// rename still makes each write all-or-nothing; after a power cut a state file may be old
/// or empty, and an unreadable state only makes envsync more careful (the env file counts
/// as edited, the next push is checked against the server), never loses data. Skipping
/// the fsyncs takes ~6 disk flushes off every push, pull and hook run.
pub fn write_state(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_replacing(path, bytes, 0o600, false)
}

fn write_replacing(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> anyhow::Result<()> {
    refuse_symlink(path)?;
    survive_file_size_limit();
    let dir = parent(path);
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    sweep_temp_files(dir, &name);
    let tmp = dir.join(format!("{name}{TMP_MARKER}{}", std::process::id()));
    let result = write_new(&tmp, bytes, mode, durable).and_then(|()| {
        fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
        if durable {
            sync_dir(dir);
        }
        Ok(())
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_new(tmp: &Path, bytes: &[u8], mode: u32, durable: bool) -> anyhow::Result<()> {
    let _ = fs::remove_file(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    // The umask may have taken bits away (never added any): set the mode exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    Ok(())
}

/// Fails when `path` is a symbolic link: the env file is a secret and writing through a
/// link could put it anywhere; replacing the link would silently break the user's setup.
pub fn refuse_symlink(path: &Path) -> anyhow::Result<()> {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!(
            "{} is a symbolic link; envsync writes only regular files",
            path.display()
        );
    }
    Ok(())
}

/// Makes a write beyond the file size limit (`ulimit -f`, RLIMIT_FSIZE) fail with EFBIG,
/// which the caller reports, instead of the kernel's SIGXFSZ killing the process halfway
/// through a write with no message. The signal is caught (by tokio's handler, which only
/// records it), not ignored, so a program that `git envsync run` execs still gets the
/// default disposition.
pub fn survive_file_size_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(rt) = crate::runtime::get() else {
            return;
        };
        let _guard = rt.enter();
        // The handler stays installed for the life of the process once registered.
        let _ =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ));
    });
}

/// Removes temp files a killed run of ours left next to `name`.
fn sweep_temp_files(dir: &Path, name: &str) {
    let prefix = format!("{name}{TMP_MARKER}");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable. Not every filesystem supports it; the rename itself
    // already happened, so a failure here is not worth failing the command for.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `dir` (and parents) with mode 0700, and makes sure an existing one is 0700.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let meta = fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
    }
    Ok(())
}

/// Reads a file, `None` when it does not exist.
pub fn read_optional(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Fails when a private file (identity, key) can be read by group or others.
pub fn check_private(path: &Path) -> anyhow::Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by other users (mode {mode:03o}); run: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_0600_and_sweeps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let stale = dir.path().join(".env.envsync.tmp-99999");
        fs::write(&stale, b"partial").unwrap();
        write_atomic(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!stale.exists());
    }

    #[test]
    fn refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        fs::write(&target, b"x").unwrap();
        let link = dir.path().join(".env");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_atomic(&link, b"y", 0o600).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"x");
    }
}
