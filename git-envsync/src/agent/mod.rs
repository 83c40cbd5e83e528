//! The passphrase agent: `git envsync unlock` hands a project's passphrase to a per-user
//! process that keeps it in memory for a while, so that commands and the git hooks need
//! neither `ENVSYNC_PASS` nor a prompt (like `ssh-agent` and `gpg-agent`'s cache).
//!
//! - [`daemon`] is the agent itself: the same binary, run as the hidden
//!   `git envsync agent`, detached from the terminal. It keeps each passphrase in memory
//!   locked against swap ([`locked`]), zeroizes it when it expires or is forgotten, and
//!   exits when it holds none. It answers only processes of its own user (`SO_PEERCRED`).
//! - [`client`] is what the CLI calls: look a project's passphrase up (quickly, never
//!   blocking a hook), store one, forget, list.
//!
//! Where: a 0600 socket in a 0700 directory, `$XDG_RUNTIME_DIR/envsync/` or, when that is
//! not set, `$TMPDIR/envsync-<uid>/` (`/tmp`). A directory or socket that someone else
//! owns, or that others can reach, is refused, never used or "fixed".
//!
//! The protocol: one request per connection. The client writes a line
//! `envsync-agent/1 VERB ARGS…`, then for `put` the passphrase's bytes until it shuts its
//! side down; the agent answers a line (`ok …`, `none`, or `error MESSAGE`), for `get`
//! followed by the passphrase's bytes, for `list` by one `PROJECT UNTIL` line per
//! passphrase held (`UNTIL` in Unix seconds). Verbs: `get PROJECT`, `put PROJECT SECONDS`,
//! `forget [PROJECT]`, `list`. Passphrases are keyed by project id: a passphrase belongs
//! to a project, and a request for another project gets `none`.

pub mod client;
pub mod daemon;
pub mod locked;

use anyhow::{Context as _, bail};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;

/// The first word of every request: the protocol's name and version.
const PROTOCOL: &str = "envsync-agent/1";

/// The longest passphrase the agent keeps (it lives in one locked buffer of this size).
pub const MAX_PASSPHRASE: usize = 1024;

/// The agent's directory: where its socket, pid file and lock file live.
#[derive(Debug, Clone)]
pub struct AgentDir {
    pub path: PathBuf,
}

impl AgentDir {
    /// The directory for this user, from the environment (not checked yet).
    pub fn locate() -> AgentDir {
        let runtime = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            // The XDG spec: an unset, empty or relative value is to be ignored.
            .filter(|p| p.is_absolute());
        let path = match runtime {
            Some(dir) => dir.join("envsync"),
            None => std::env::temp_dir().join(format!("envsync-{}", uid())),
        };
        AgentDir { path }
    }

    pub fn socket(&self) -> PathBuf {
        self.path.join("agent.sock")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.path.join("agent.pid")
    }

    fn lock_file(&self) -> PathBuf {
        self.path.join("agent.lock")
    }

    /// Fails unless the directory exists, is a real directory (not a link) owned by this
    /// user, and nobody else may enter it.
    pub fn check(&self) -> anyhow::Result<()> {
        let meta = fs::symlink_metadata(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        if !meta.file_type().is_dir() {
            bail!(
                "{} is not a directory (a link or a file): refusing to use it for the agent",
                self.path.display()
            );
        }
        if meta.uid() != uid() {
            bail!(
                "{} belongs to uid {}, not to you (uid {}): refusing to use it for the agent",
                self.path.display(),
                meta.uid(),
                uid()
            );
        }
        if meta.mode() & 0o077 != 0 {
            bail!(
                "{} has mode {:o}, not 0700: others could reach the agent; refusing to use it",
                self.path.display(),
                meta.mode() & 0o777
            );
        }
        Ok(())
    }

    /// Makes the directory 0700 when it does not exist, then [`AgentDir::check`]s it.
    pub fn prepare(&self) -> anyhow::Result<()> {
        if fs::symlink_metadata(&self.path).is_err() {
            if let Some(parent) = self.path.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            match fs::DirBuilder::new().mode(0o700).create(&self.path) {
                Ok(()) => {
                    fs::set_permissions(&self.path, fs::Permissions::from_mode(0o700))
                        .with_context(|| {
                            format!("cannot set the mode of {}", self.path.display())
                        })?;
                }
                // Someone made it in between: whatever it is, the check decides.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create {}", self.path.display()));
                }
            }
        }
        self.check()
    }

    /// Fails unless the socket, when there is one, is a socket this user owns.
    pub fn check_socket(&self) -> anyhow::Result<()> {
        let path = self.socket();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return Ok(());
        };
        if !meta.file_type().is_socket() {
            bail!("{} is not a socket: refusing to use it", path.display());
        }
        if meta.uid() != uid() {
            bail!(
                "{} belongs to uid {}, not to you: refusing to use it",
                path.display(),
                meta.uid()
            );
        }
        Ok(())
    }
}

/// This process's effective uid.
pub fn uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether `name` can travel as one word of a request line (project ids always can: see
/// `envsync_common::names::validate_project`).
fn is_word(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads one request or answer line, byte by byte: a buffered reader would pull the
/// passphrase that follows into a buffer that is neither locked nor wiped.
fn read_line(stream: &mut impl std::io::Read, max: usize) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        if byte[0] == b'\n' {
            break;
        }
        if line.len() >= max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        line.push(byte[0]);
    }
    String::from_utf8(line)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}
