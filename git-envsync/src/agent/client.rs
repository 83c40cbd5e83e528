//! Talking to the agent from the CLI: [`lookup`] for every command and hook (quick and
//! silent: no agent, a slow one or an unsafe directory all mean "no passphrase here"),
//! and [`store`], [`forget`] and [`list`] for `unlock` and `lock`, which say what is wrong.
//!
//! Before connecting, the directory and the socket must be this user's (see
//! [`AgentDir::check`]); after connecting, the process at the other end must be too
//! (`SO_PEERCRED`): a socket planted by someone else is never sent a passphrase nor
//! believed about one.

use super::{AgentDir, MAX_PASSPHRASE, PROTOCOL, read_line, uid};
use anyhow::{Context as _, bail};
use envsync_common::secret::{ExposeSecret, SecretString};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// How long a lookup may take in all: a hook must never wait on the agent.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(300);
/// How long `unlock` and `lock` wait for an answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// The passphrase the agent holds for `project`, if it is running and holds one.
pub fn lookup(project: &str) -> Option<SecretString> {
    let dir = AgentDir::locate();
    let mut stream = connect(&dir, LOOKUP_TIMEOUT).ok()??;
    stream
        .write_all(format!("{PROTOCOL} get {project}\n").as_bytes())
        .ok()?;
    stream.shutdown(Shutdown::Write).ok()?;
    if read_line(&mut stream, 64).ok()? != "ok" {
        return None;
    }
    // Read into a buffer that never grows (no stray copies), then copy once into a
    // string of exactly that size (so making the SecretString does not reallocate).
    let mut buf = Zeroizing::new(vec![0u8; MAX_PASSPHRASE + 1]);
    let mut len = 0;
    while len < buf.len() {
        match stream.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    if len == 0 || len > MAX_PASSPHRASE {
        return None;
    }
    let text = std::str::from_utf8(&buf[..len]).ok()?;
    let mut exact = String::with_capacity(text.len());
    exact.push_str(text);
    Some(SecretString::from(exact))
}

/// Keeps `passphrase` for `project` for `ttl`, starting the agent when none runs; returns
/// when it will be forgotten.
pub fn store(
    project: &str,
    passphrase: &SecretString,
    ttl: Duration,
) -> anyhow::Result<SystemTime> {
    let dir = AgentDir::locate();
    dir.prepare()?;
    let mut stream = match connect(&dir, COMMAND_TIMEOUT)? {
        Some(stream) => stream,
        None => {
            spawn(&dir)?;
            // An agent that lost a race to start says `ready` and leaves the winner to
            // serve, which may still be binding its socket.
            let mut tries = 0;
            loop {
                if let Some(stream) = connect(&dir, COMMAND_TIMEOUT)? {
                    break stream;
                }
                tries += 1;
                if tries > 40 {
                    bail!("the agent started but its socket does not answer");
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    };
    stream.write_all(format!("{PROTOCOL} put {project} {}\n", ttl.as_secs()).as_bytes())?;
    stream.write_all(passphrase.expose_secret().as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let answer = read_line(&mut stream, 512).context("no answer from the agent")?;
    match answer.strip_prefix("ok ") {
        Some(until) => Ok(from_unix(until)),
        None => bail!(
            "the agent refused: {}",
            answer.strip_prefix("error ").unwrap_or(&answer)
        ),
    }
}

/// Forgets `project`'s passphrase, or every one; how many were forgotten, `None` when
/// no agent runs.
pub fn forget(project: Option<&str>) -> anyhow::Result<Option<usize>> {
    let dir = AgentDir::locate();
    let Some(mut stream) = connect(&dir, COMMAND_TIMEOUT)? else {
        return Ok(None);
    };
    let request = match project {
        Some(p) => format!("{PROTOCOL} forget {p}\n"),
        None => format!("{PROTOCOL} forget\n"),
    };
    stream.write_all(request.as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let answer = read_line(&mut stream, 512).context("no answer from the agent")?;
    answer
        .strip_prefix("ok ")
        .and_then(|n| n.parse().ok())
        .map(Some)
        .with_context(|| format!("the agent answered: {answer}"))
}

/// What a running agent holds.
#[derive(Debug)]
pub struct Held {
    pub pid: u32,
    /// Project id and when its passphrase will be forgotten.
    pub projects: Vec<(String, SystemTime)>,
}

/// The projects the agent holds a passphrase for; `None` when no agent runs.
pub fn list() -> anyhow::Result<Option<Held>> {
    let dir = AgentDir::locate();
    let Some(mut stream) = connect(&dir, COMMAND_TIMEOUT)? else {
        return Ok(None);
    };
    let pid = rustix::net::sockopt::socket_peercred(&stream)?
        .pid
        .as_raw_nonzero();
    stream.write_all(format!("{PROTOCOL} list\n").as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let mut lines = text.lines();
    if lines.next() != Some("ok") {
        bail!("the agent answered: {}", text.trim());
    }
    let projects = lines
        .filter_map(|l| l.split_once(' '))
        .map(|(p, until)| (p.to_owned(), from_unix(until)))
        .collect();
    Ok(Some(Held {
        pid: pid.get().unsigned_abs(),
        projects,
    }))
}

/// A connection to the agent, after checking who owns the directory, the socket and the
/// process at the other end; `None` when no agent is running there.
fn connect(dir: &AgentDir, timeout: Duration) -> anyhow::Result<Option<UnixStream>> {
    if std::fs::symlink_metadata(&dir.path).is_err() {
        return Ok(None);
    }
    dir.check()?;
    dir.check_socket()?;
    let socket = dir.socket();
    let stream = match UnixStream::connect(&socket) {
        Ok(stream) => stream,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot reach {}", socket.display())),
    };
    let peer = rustix::net::sockopt::socket_peercred(&stream)?;
    if peer.uid.as_raw() != uid() {
        bail!(
            "the process behind {} runs as uid {}, not as you: refusing to talk to it",
            socket.display(),
            peer.uid.as_raw()
        );
    }
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(Some(stream))
}

/// Starts `git envsync agent` for `dir`, detached, with an empty environment (so that no
/// `ENVSYNC_PASS` or token sits in its `/proc/PID/environ`), and waits for its first line.
fn spawn(dir: &AgentDir) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program to start the agent")?;
    let mut child = Command::new(exe)
        .arg("agent")
        .arg("--dir")
        .arg(&dir.path)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the agent")?;
    let mut out = child.stdout.take().context("the agent's output")?;
    let line = read_line(&mut out, 1024).context("the agent did not start")?;
    match line.as_str() {
        "ready" => Ok(()),
        other => bail!(
            "the agent did not start: {}",
            other.strip_prefix("error: ").unwrap_or(other)
        ),
    }
}

fn from_unix(text: &str) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(text.trim().parse().unwrap_or(0))
}
