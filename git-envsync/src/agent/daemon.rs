//! The agent process (`git envsync agent`, started by `unlock`): holds passphrases in
//! locked memory until they expire or are forgotten, answers its own user only, and exits
//! when it holds nothing.
//!
//! It runs in a session of its own (no terminal's Ctrl-C or hang-up reaches it), with
//! `/` as its directory and an empty environment (its parent clears it), and marks itself
//! not dumpable: no core file, and no other process of the user may `ptrace` it or read
//! its memory. One agent per directory: it holds an exclusive `flock` on `agent.lock` for
//! its whole life, so a second one started by a racing `unlock` steps aside.
//!
//! Requests are served one at a time, each under a short timeout; a passphrase is read
//! straight from the socket into its locked buffer and written straight from there.

use super::locked::LockedSecret;
use super::{AgentDir, MAX_PASSPHRASE, PROTOCOL, is_word, read_line, uid};
use crate::fsutil;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest a passphrase may be kept.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an agent that was never given a passphrase waits before it exits (an
/// `unlock` that died between starting it and storing).
const IDLE: Duration = Duration::from_secs(30);
/// How often expiry is checked.
const TICK: Duration = Duration::from_millis(200);
/// How long one client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

struct Entry {
    secret: LockedSecret,
    until: SystemTime,
}

/// What the agent holds, shared by the request loop and the expiry thread.
struct Held {
    entries: BTreeMap<String, Entry>,
    /// Whether a passphrase was ever stored: after that, holding none means exit.
    stored: bool,
    /// A request is being answered (a `put` may be reading its passphrase): expiry
    /// waits for it rather than ending the process under it.
    busy: bool,
    started: SystemTime,
    dir: AgentDir,
}

impl Held {
    /// Drops (and so zeroizes) every passphrase whose time is up.
    fn expire(&mut self) {
        let now = SystemTime::now();
        self.entries.retain(|_, e| e.until > now);
    }

    fn done(&self) -> bool {
        self.entries.is_empty()
            && (self.stored
                || SystemTime::now()
                    .duration_since(self.started)
                    .is_ok_and(|d| d > IDLE))
    }

    /// Wipes everything, removes the socket and pid file, and ends the process. Called
    /// with the lock held, so no request is being answered meanwhile.
    fn exit(&mut self) -> ! {
        self.entries.clear();
        let _ = std::fs::remove_file(self.dir.socket());
        let _ = std::fs::remove_file(self.dir.pid_file());
        std::process::exit(0)
    }
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the agent for `dir`. Says `ready` (or `error: …`) on stdout once, for the
/// `unlock` that started it, and never writes there again.
pub fn run(dir: AgentDir) -> anyhow::Result<()> {
    let listener = match start(&dir) {
        Ok(Some(listener)) => listener,
        // Another agent holds the directory: it serves.
        Ok(None) => {
            say_once("ready");
            return Ok(());
        }
        Err(e) => {
            say_once(&format!("error: {e:#}"));
            return Err(e);
        }
    };
    say_once("ready");
    let held = Arc::new(Mutex::new(Held {
        entries: BTreeMap::new(),
        stored: false,
        busy: false,
        started: SystemTime::now(),
        dir,
    }));
    let ticker = Arc::clone(&held);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(TICK);
            let mut held = lock(&ticker);
            held.expire();
            if held.done() && !held.busy {
                held.exit();
            }
        }
    });
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        lock(&held).busy = true;
        let stop = serve(&held, &mut stream).unwrap_or(false);
        drop(stream);
        let mut held = lock(&held);
        held.busy = false;
        if stop || held.done() {
            held.exit();
        }
    }
    Ok(())
}

fn say_once(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// Detaches, takes the directory's lock and binds the socket; `None` when another agent
/// already holds the directory.
fn start(dir: &AgentDir) -> anyhow::Result<Option<UnixListener>> {
    // A session of its own: the terminal's signals and hang-up stay with the shell.
    let _ = rustix::process::setsid();
    // No core dump, no ptrace or /proc/PID/mem by other processes of the user.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("cannot make the agent undumpable")?;
    let _ = std::env::set_current_dir("/");
    dir.prepare()?;
    let lock_path = dir.lock_file();
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if rustix::fs::flock(
        &lock_file,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .is_err()
    {
        return Ok(None);
    }
    // Held until the process ends, which releases it.
    std::mem::forget(lock_file);
    let socket = dir.socket();
    dir.check_socket()?;
    // Any socket left is a dead agent's: the lock says none is alive.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {}", socket.display()))?;
    fsutil::write_state(
        &dir.pid_file(),
        format!("{}\n", std::process::id()).as_bytes(),
    )?;
    Ok(Some(listener))
}

/// Answers one request; `true` when the agent is to stop (`forget` of everything).
/// Another user's process gets nothing at all.
fn serve(held: &Mutex<Held>, stream: &mut UnixStream) -> std::io::Result<bool> {
    let peer = rustix::net::sockopt::socket_peercred(&*stream)?;
    if peer.uid.as_raw() != uid() {
        return Ok(false);
    }
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let line = read_line(stream, 512)?;
    let words: Vec<&str> = line.split(' ').collect();
    if let [PROTOCOL, "forget"] = words.as_slice() {
        let mut held = lock(held);
        let n = held.entries.len();
        held.entries.clear();
        stream.write_all(format!("ok {n}\n").as_bytes())?;
        return Ok(true);
    }
    answer(held, stream, &words).map(|()| false)
}

fn answer(held: &Mutex<Held>, stream: &mut UnixStream, words: &[&str]) -> std::io::Result<()> {
    let reply =
        |stream: &mut UnixStream, text: &str| stream.write_all(format!("{text}\n").as_bytes());
    match words {
        [PROTOCOL, "get", project] => {
            let mut held = lock(held);
            held.expire();
            match held.entries.get(*project) {
                Some(entry) => {
                    stream.write_all(b"ok\n")?;
                    stream.write_all(entry.secret.expose())
                }
                None => reply(stream, "none"),
            }
        }
        [PROTOCOL, "put", project, seconds] if is_word(project) => {
            let Some(ttl) = seconds
                .parse()
                .ok()
                .map(Duration::from_secs)
                .filter(|t| !t.is_zero() && *t <= MAX_TTL)
            else {
                return reply(stream, "error the time to keep it is out of range");
            };
            let mut secret = match LockedSecret::new() {
                Ok(secret) => secret,
                Err(e) => {
                    return reply(
                        stream,
                        &format!("error cannot lock memory against swap ({e}); nothing was kept"),
                    );
                }
            };
            loop {
                if secret.is_full() {
                    let mut probe = [0u8; 1];
                    if stream.read(&mut probe)? != 0 {
                        return reply(
                            stream,
                            &format!("error the passphrase is longer than {MAX_PASSPHRASE} bytes"),
                        );
                    }
                    break;
                }
                match stream.read(secret.spare())? {
                    0 => break,
                    n => secret.filled(n),
                }
            }
            if secret.is_empty() {
                return reply(stream, "error empty passphrase");
            }
            let until = SystemTime::now() + ttl;
            let mut held = lock(held);
            held.entries
                .insert((*project).to_owned(), Entry { secret, until });
            held.stored = true;
            reply(stream, &format!("ok {}", unix(until)))
        }
        [PROTOCOL, "forget", project] => {
            let mut held = lock(held);
            let n = usize::from(held.entries.remove(*project).is_some());
            reply(stream, &format!("ok {n}"))
        }
        [PROTOCOL, "list"] => {
            let mut held = lock(held);
            held.expire();
            let mut text = String::from("ok\n");
            for (project, entry) in &held.entries {
                text.push_str(&format!("{project} {}\n", unix(entry.until)));
            }
            stream.write_all(text.as_bytes())
        }
        [PROTOCOL, ..] => reply(stream, "error unknown request"),
        _ => reply(stream, "error not an envsync-agent/1 request"),
    }
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
