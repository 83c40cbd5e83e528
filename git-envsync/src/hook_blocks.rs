//! Installing the git hooks: envsync owns a marked block inside each hook file, never the
//! whole file.
//!
//! - no hook file: write `#!/bin/sh` plus our block;
//! - our markers present: replace what is between them;
//! - someone else's shell hook: insert our block right after its `#!` line, so it runs
//!   even when their script ends with `exit`, and theirs still runs after ours;
//! - a hook in another language cannot hold a shell block: refused unless `--force`,
//!   which keeps it as `<hook>.envsync-backup`.
//!
//! Installing twice changes no byte. Uninstalling removes the block, and the file only
//! when nothing but a shebang is left. The hooks directory is found the way git finds
//! it: `core.hooksPath` (relative to the work tree), else the common git directory, which
//! linked work trees share.

use crate::error::{CliError, Result};
use crate::git::Repo;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const BEGIN: &str = "# >>> envsync >>>";
pub const END: &str = "# <<< envsync <<<";

/// The hooks and their blocks, embedded from `hooks/`.
pub const HOOKS: [(&str, &str); 3] = [
    ("post-checkout", include_str!("../../hooks/post-checkout")),
    ("pre-commit", include_str!("../../hooks/pre-commit")),
    ("post-commit", include_str!("../../hooks/post-commit")),
];

const SHELLS: [&str; 5] = ["sh", "bash", "dash", "zsh", "ksh"];

/// The directory git runs hooks from.
pub fn hooks_dir(repo: &Repo) -> Result<PathBuf> {
    let config = repo
        .repo
        .config()
        .map_err(|e| CliError::refused(format!("cannot read git config: {}", e.message())))?;
    if let Ok(path) = config.get_path("core.hooksPath") {
        return Ok(if path.is_absolute() {
            path
        } else {
            repo.root.join(path)
        });
    }
    Ok(repo.repo.commondir().join("hooks"))
}

/// What happened to one hook file.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
    AddedToExisting,
    ReplacedForeign(PathBuf),
    Removed,
    RemovedFile,
    Absent,
}

/// Fails when `install` would refuse `path` without `--force`.
pub fn check_installable(path: &Path) -> Result<()> {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            if text.contains(BEGIN) || is_shell(&text) {
                Ok(())
            } else {
                Err(not_shell(path))
            }
        }
        Err(_) => Ok(()),
    }
}

fn not_shell(path: &Path) -> CliError {
    CliError::refused(format!(
        "{} is not a shell script, so envsync cannot add its block to it",
        path.display()
    ))
    .hint(
        "call `git envsync hook <name> \"$@\"` from it yourself, or pass --force to keep it as <hook>.envsync-backup and install ours",
    )
}

/// Whether `path` holds our block, as this binary would write it.
pub fn is_current(path: &Path, block: &str) -> Option<bool> {
    let text = fs::read_to_string(path).ok()?;
    let start = text.find(BEGIN)?;
    let end = text[start..].find(END)? + start + END.len();
    let ours = &text[start..end];
    Some(block.trim_end() == ours.trim_end())
}

/// Installs (or refreshes) our block in `path`.
pub fn install(path: &Path, block: &str, force: bool) -> Result<Change> {
    let existing = match fs::read(path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(CliError::refused(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let (text, change) = match existing {
        None => (format!("#!/bin/sh\n{block}"), Change::Created),
        Some(old) => match replace_block(&old, block) {
            Some(new) if new == old => (old, Change::Unchanged),
            Some(new) => (new, Change::Updated),
            None if is_shell(&old) => (insert_block(&old, block), Change::AddedToExisting),
            None if force => {
                let backup = path.with_file_name(format!(
                    "{}.envsync-backup",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ));
                fs::rename(path, &backup).map_err(|e| {
                    CliError::refused(format!("cannot move {} aside: {e}", path.display()))
                })?;
                (
                    format!("#!/bin/sh\n{block}"),
                    Change::ReplacedForeign(backup),
                )
            }
            None => return Err(not_shell(path)),
        },
    };
    if change != Change::Unchanged {
        write_hook(path, &text)?;
    } else {
        make_executable(path)?;
    }
    Ok(change)
}

/// Removes our block from `path`.
pub fn uninstall(path: &Path) -> Result<Change> {
    let Ok(bytes) = fs::read(path) else {
        return Ok(Change::Absent);
    };
    let old = String::from_utf8_lossy(&bytes).into_owned();
    let Some(new) = replace_block(&old, "") else {
        return Ok(Change::Absent);
    };
    let rest: Vec<&str> = new
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("#!"))
        .collect();
    if rest.is_empty() {
        fs::remove_file(path)
            .map_err(|e| CliError::refused(format!("cannot remove {}: {e}", path.display())))?;
        return Ok(Change::RemovedFile);
    }
    write_hook(path, &new)?;
    Ok(Change::Removed)
}

/// `old` with the text between (and including) our markers replaced by `block`; `None`
/// when the markers are not there.
fn replace_block(old: &str, block: &str) -> Option<String> {
    let start = old.find(BEGIN)?;
    let end_marker = old[start..].find(END)? + start;
    let mut end = end_marker + END.len();
    if old[end..].starts_with('\n') {
        end += 1;
    }
    Some(format!("{}{block}{}", &old[..start], &old[end..]))
}

fn insert_block(old: &str, block: &str) -> String {
    match old.split_once('\n') {
        Some((shebang, rest)) if shebang.starts_with("#!") => format!("{shebang}\n{block}{rest}"),
        _ if old.starts_with("#!") => format!("{old}\n{block}"),
        _ => format!("{block}{old}"),
    }
}

/// A file without a shebang is run by `sh`; one with a shebang must name a POSIX-ish shell.
fn is_shell(text: &str) -> bool {
    let Some(line) = text.lines().next().and_then(|l| l.strip_prefix("#!")) else {
        return true;
    };
    let mut words = line.split_whitespace();
    let Some(program) = words.next() else {
        return false;
    };
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = if name == "env" {
        words.next().unwrap_or_default().to_owned()
    } else {
        name
    };
    SHELLS.contains(&name.as_str())
}

fn write_hook(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| CliError::refused(format!("cannot create {}: {e}", dir.display())))?;
    }
    // Not the atomic secret-file writer: hooks are not secret and must keep 0755.
    let tmp = path.with_extension("envsync-tmp");
    fs::write(&tmp, text)
        .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)))
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| CliError::refused(format!("cannot write {}: {e}", path.display())))
}

fn make_executable(path: &Path) -> Result<()> {
    let meta = fs::metadata(path)
        .map_err(|e| CliError::refused(format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode();
    if mode & 0o111 != 0o111 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o755)).map_err(|e| {
            CliError::refused(format!("cannot make {} executable: {e}", path.display()))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = "# >>> envsync >>>\nours\n# <<< envsync <<<\n";

    #[test]
    fn block_edits() {
        assert_eq!(
            insert_block("#!/bin/bash\necho theirs\nexit 0\n", BLOCK),
            format!("#!/bin/bash\n{BLOCK}echo theirs\nexit 0\n")
        );
        let with = format!("#!/bin/sh\n{BLOCK}echo theirs\n");
        assert_eq!(
            replace_block(&with, "").unwrap(),
            "#!/bin/sh\necho theirs\n"
        );
        assert_eq!(replace_block(&with, BLOCK).unwrap(), with);
        assert!(replace_block("#!/bin/sh\n", BLOCK).is_none());
    }

    #[test]
    fn shells() {
        assert!(is_shell("#!/bin/sh\n"));
        assert!(is_shell("#!/usr/bin/env bash\n"));
        assert!(is_shell("echo no shebang\n"));
        assert!(!is_shell("#!/usr/bin/env python3\n"));
        assert!(!is_shell("#!/usr/bin/node\n"));
    }
}
