//! The `envsync-server` binary as a child process, however a caller configures it (the
//! end-to-end [`Server`](crate::Server), the server's own binary tests, the bench's
//! replicas): spawned on `--addr 127.0.0.1:0`, its URL read from the line it prints once it
//! listens (no sleeps, no port guessing), SIGKILLed on drop. And offline token minting
//! with `envsync-server token`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// What the server prints first, once it listens, before its URL.
pub const LISTENING: &str = "envsync-server listening on ";

/// A running `envsync-server`; killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct ServerProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, or `https://` when it serves TLS.
    pub url: String,
    /// What the server prints after its listening line (a first start: the owner token).
    pub stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Spawns `cmd` (the binary with its flags, environment and stderr set by the caller)
    /// with stdout piped, and waits for the listening line. Any other first line (a server
    /// that refused to start prints none) kills the child and is the error.
    pub fn spawn(cmd: &mut Command) -> Result<ServerProcess, String> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", cmd.get_program().display()))?;
        let Some(stdout) = child.stdout.take() else {
            return Err(reap(child, "no stdout"));
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        match line.trim().strip_prefix(LISTENING) {
            Some(url) => Ok(ServerProcess {
                url: url.to_owned(),
                child,
                stdout,
            }),
            None => Err(reap(child, &format!("unexpected first line {line:?}"))),
        }
    }

    /// The next line the server prints on stdout, without its line end ("" once it has
    /// closed stdout).
    pub fn next_line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim_end().to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT` of the listening line.
    pub fn addr(&self) -> SocketAddr {
        let authority = self.url.split_once("://").map_or(&*self.url, |(_, a)| a);
        authority
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", self.url))
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills and reaps a child that did not start as it should; `why` is the error.
fn reap(mut child: Child, why: &str) -> String {
    let _ = child.kill();
    let _ = child.wait();
    why.to_owned()
}

/// Mints a token offline (`envsync-server token`) with `bin`, signed with `secret`, and
/// recorded in `db`; the token, or the command's stderr.
pub fn mint_token(
    bin: &Path,
    secret: &str,
    db: &Path,
    email: &str,
    role: &str,
    projects: &[&str],
) -> Result<String, String> {
    let mut cmd = Command::new(bin);
    cmd.env("ENVSYNC_JWT_SECRET", secret)
        .arg("--db")
        .arg(db)
        .args(["token", "--email", email, "--role", role]);
    for p in projects {
        cmd.args(["--project", p]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!("token: {}", String::from_utf8_lossy(&out.stderr)));
    }
    String::from_utf8(out.stdout)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("token: {e}"))
}
