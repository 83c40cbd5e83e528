//! Driving a command on a pseudo-terminal, as a user at a terminal would: through
//! `script(1)` from util-linux (on every Debian system), which gives the command a pty of
//! its own as its controlling terminal and relays our keystrokes to it. No crate, no
//! unsafe code: what the command reads is exactly what a terminal would send (Ctrl-C is
//! the byte 0x03, Enter is `\r`), and what it prints comes back through the pty.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long to wait for expected output before failing the test.
const PATIENCE: Duration = Duration::from_secs(30);

/// A running `script` session.
#[derive(Debug)]
pub struct Pty {
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Vec<u8>>>,
    /// How far [`Pty::expect`] has read.
    from: usize,
}

impl Pty {
    /// Starts `cmd` (a `script … -c SCRIPT /dev/null` command line).
    pub fn spawn(mut cmd: Command) -> Pty {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run script(1): is util-linux's script installed?");
        let seen = Arc::new(Mutex::new(Vec::new()));
        for mut out in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.lock().expect("output").extend_from_slice(&buf[..n]);
                }
            });
        }
        Pty {
            stdin: child.stdin.take(),
            child,
            seen,
            from: 0,
        }
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("output")).into_owned()
    }

    /// Waits until `text` appears after what earlier calls matched; returns what was
    /// printed up to and including it.
    #[track_caller]
    pub fn expect(&mut self, text: &str) -> String {
        let start = Instant::now();
        loop {
            {
                let seen = self.seen.lock().expect("output");
                let rest = &seen[self.from.min(seen.len())..];
                if let Some(at) = find(rest, text.as_bytes()) {
                    let upto = self.from + at + text.len();
                    let got = String::from_utf8_lossy(&seen[self.from..upto]).into_owned();
                    self.from = upto;
                    return got;
                }
            }
            if start.elapsed() > PATIENCE {
                panic!("no {text:?} on the terminal; it shows:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends keystrokes.
    pub fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("the session is still open");
        stdin.write_all(bytes).expect("type");
        stdin.flush().expect("flush");
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        self.send(format!("{line}\r").as_bytes());
    }

    /// Waits for the session to end; its exit code (the script's last command's) and
    /// everything it printed.
    #[track_caller]
    pub fn finish(mut self) -> (i32, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("the session did not end; it shows:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The readers stop at EOF, right after the child.
        std::thread::sleep(Duration::from_millis(50));
        self.stdin = None;
        (status.code().unwrap_or(-1), self.output())
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
