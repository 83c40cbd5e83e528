//! Asking on the terminal: a yes/no question ([`confirm`]), and a secret read with echo
//! off ([`read_secret`]), giving the terminal back as it was on every way out: Enter, Ctrl-C, Ctrl-\, Ctrl-D, an error, a panic, or a
//! termination signal sent by another process.
//!
//! The terminal is switched to non-canonical mode with echo and signal keys off, so that
//! Ctrl-C arrives as a byte: the prompt restores the terminal, then sends SIGINT to its
//! process group as the key would have (so `git`, which ran us, and a script's loop stop
//! too, and the shell sees an interrupted command). Signals sent from
//! outside (`kill`, `timeout`, a closing terminal) are caught by flag handlers while a
//! prompt is on; the prompt notices within a tenth of a second, restores, and dies of the
//! same signal. Outside a prompt those handlers do what the default would.

use anyhow::{Context as _, anyhow, bail};
use envsync_common::secret::SecretString;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::termios::{LocalModes, OptionalActions, SpecialCodeIndex, Termios};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use zeroize::Zeroizing;

/// The longest secret the prompt takes (the buffer never grows, so it leaves no copies).
const MAX_LEN: usize = 4096;

/// The signals that would end the process mid-prompt.
const WATCHED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

struct Signals {
    /// One flag per [`WATCHED`] signal: it arrived during a prompt.
    pending: [Arc<AtomicBool>; 4],
    /// No prompt is on: a signal does what its default would.
    outside: Arc<AtomicBool>,
}

impl Signals {
    fn get() -> &'static Signals {
        static SIGNALS: OnceLock<Signals> = OnceLock::new();
        SIGNALS.get_or_init(|| {
            let outside = Arc::new(AtomicBool::new(true));
            let pending = WATCHED.map(|_| Arc::new(AtomicBool::new(false)));
            for (signal, flag) in WATCHED.iter().zip(&pending) {
                // Registration fails only for forbidden signals, which these are not;
                // without it the prompt still restores on Ctrl-C and every return.
                let _ = signal_hook::flag::register(*signal, Arc::clone(flag));
                let _ =
                    signal_hook::flag::register_conditional_default(*signal, Arc::clone(&outside));
            }
            Signals { pending, outside }
        })
    }

    fn arrived(&self) -> Option<i32> {
        WATCHED
            .iter()
            .zip(&self.pending)
            .find(|(_, flag)| flag.load(Ordering::SeqCst))
            .map(|(signal, _)| *signal)
    }
}

/// Puts the terminal back as it was when dropped, whatever path leaves the prompt.
struct Restore<'a> {
    tty: &'a File,
    original: Termios,
    signals: &'static Signals,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(self.tty, OptionalActions::Now, &self.original);
        self.signals.outside.store(true, Ordering::SeqCst);
    }
}

/// Asks `question` (which ends with its `[y/N] `) on stderr and reads the answer from
/// stdin: `y` or `yes` in any case is yes, anything else no. Whether there is a terminal
/// to ask on is the caller's to check, with its own refusal. The question may quote what
/// the server said: its control characters are shown escaped, as every line is.
pub fn confirm(question: &str) -> crate::error::Result<bool> {
    use std::io::BufRead;
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(crate::out::clean(question).as_bytes());
    let _ = stderr.flush();
    drop(stderr);
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| crate::error::CliError::usage(format!("cannot read the answer: {e}")))?;
    let answer = answer.trim();
    Ok(answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes"))
}

/// Shows `label` on the terminal and reads a line with echo off. The text may be empty:
/// the caller says what an empty answer means.
pub fn read_secret(label: &str) -> anyhow::Result<SecretString> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("cannot open the terminal")?;
    let original = rustix::termios::tcgetattr(&tty).context("cannot read the terminal's mode")?;
    let mut quiet = original.clone();
    quiet.local_modes.remove(
        LocalModes::ECHO
            | LocalModes::ECHONL
            | LocalModes::ICANON
            | LocalModes::ISIG
            | LocalModes::IEXTEN,
    );
    quiet.special_codes[SpecialCodeIndex::VMIN] = 1;
    quiet.special_codes[SpecialCodeIndex::VTIME] = 0;
    let signals = Signals::get();
    for flag in &signals.pending {
        flag.store(false, Ordering::SeqCst);
    }
    signals.outside.store(false, Ordering::SeqCst);
    let restore = Restore {
        tty: &tty,
        original,
        signals,
    };
    rustix::termios::tcsetattr(&tty, OptionalActions::Now, &quiet)
        .context("cannot turn the terminal's echo off")?;
    (&tty)
        .write_all(label.as_bytes())
        .context("cannot write to the terminal")?;
    let typed = read_line(&tty, signals);
    drop(restore);
    let _ = (&tty).write_all(b"\n");
    match typed? {
        Line::Entered(line) => {
            let text = std::str::from_utf8(&line)
                .map_err(|_| anyhow!("what was typed is not valid UTF-8"))?;
            let mut exact = String::with_capacity(text.len());
            exact.push_str(text);
            Ok(SecretString::from(exact))
        }
        Line::Key(signal) => {
            // What the terminal would have done: the signal to the whole foreground job.
            // Our own handler now does the default (the prompt is over); if the signal is
            // ignored here, just stop.
            let _ = rustix::process::kill_current_process_group(signal);
            bail!("interrupted")
        }
        Line::Signal(signal) => {
            // Die of it, as the sender meant; if it is ignored, just stop.
            let _ = signal_hook::low_level::emulate_default_handler(signal);
            bail!("interrupted")
        }
        Line::End => bail!("no passphrase typed (end of input)"),
    }
}

enum Line {
    Entered(Zeroizing<Vec<u8>>),
    /// Ctrl-C or Ctrl-\: the terminal must be restored, then the job interrupted.
    Key(rustix::process::Signal),
    /// A termination signal arrived: the terminal must be restored, then the process
    /// ended by it.
    Signal(i32),
    /// Ctrl-D on an empty line, or the terminal went away.
    End,
}

/// Reads bytes until Enter, doing the little line editing a password prompt needs
/// (backspace, Ctrl-U), and watching for signals between bytes.
fn read_line(tty: &File, signals: &Signals) -> anyhow::Result<Line> {
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_LEN));
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    loop {
        if let Some(signal) = signals.arrived() {
            return Ok(Line::Signal(signal));
        }
        let mut fds = [PollFd::new(tty, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&tick)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).context("cannot read from the terminal"),
        }
        let mut byte = Zeroizing::new([0u8; 1]);
        let mut reader = tty;
        match reader.read(&mut byte[..]) {
            Ok(0) => return Ok(Line::End),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {
                continue;
            }
            Err(e) => return Err(e).context("cannot read from the terminal"),
        }
        match byte[0] {
            b'\r' | b'\n' => return Ok(Line::Entered(line)),
            0x03 => return Ok(Line::Key(rustix::process::Signal::INT)),
            0x1c => return Ok(Line::Key(rustix::process::Signal::QUIT)),
            0x04 if line.is_empty() => return Ok(Line::End),
            // Backspace: one character, however many bytes it took.
            0x7f | 0x08 => {
                while let Some(b) = line.pop() {
                    if b & 0xc0 != 0x80 {
                        break;
                    }
                }
            }
            // Ctrl-U: start again.
            0x15 => zeroize::Zeroize::zeroize(&mut *line),
            b if b < 0x20 => {}
            b => {
                if line.len() == MAX_LEN {
                    bail!("what was typed is longer than {MAX_LEN} bytes");
                }
                line.push(b);
            }
        }
    }
}
