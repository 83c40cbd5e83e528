//! The watcher under bursts of writes and under pulls (docs/testing.md I5–I7, as they apply
//! here: `git envsync watch` never pushes, it reports drift; the only automatic push is
//! the post-commit hook). Each check ends on a sentinel edit, so "nothing else was
//! printed" is read from the output rather than from a timer.

#![allow(clippy::unwrap_used)]

use envsync_tests::{Dev, Server};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `git envsync watch` running on `dev`'s main, its report lines read as they come (the
/// hooks' tests use it too); killed on drop.
pub(crate) struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    /// Starts the watcher and waits until it says it is watching main's env file.
    pub(crate) fn start(dev: &Dev) -> Watcher {
        let mut child = dev
            .envsync_cmd(&["watch", "--debounce", "100"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let _ = tx.send(line.unwrap_or_default());
            }
        });
        let mut w = Watcher { child, lines };
        w.until("watching .env on main");
        w
    }

    /// Every line up to and including the first that contains `want`.
    pub(crate) fn until(&mut self, want: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let done = line.contains(want);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("no line containing {want:?}; saw {seen:?}");
    }

    /// Stops the watcher with SIGTERM; how it exited, after its `stopped watching` line.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        envsync_tests::signal(self.child.id(), "TERM");
        self.until("stopped watching");
        self.child.wait().unwrap()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Saves `text` to `path` as editors do: a temp file renamed over it.
pub(crate) fn editor_save(path: &Path, text: &str) {
    let tmp = path.with_file_name(".env.swp-editor");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// How many versions `project`'s main has on the server.
fn versions(server: &Server, dev: &Dev, project: &str) -> usize {
    server.versions(&dev.token, project, "main").len()
}

#[test]
fn one_report_per_change_for_an_editor_save_and_for_a_burst_of_writes() {
    let server = Server::start();
    let dev = Dev::new(&server, "burst");
    dev.write_env("A=1\n");
    dev.envsync(&["push"]).ok();
    let mut w = Watcher::start(&dev);

    // I5: an editor's save (temp file, rename over) is one change, reported once.
    editor_save(&dev.env_path(), "A=1\nSAVED=x\n");
    assert_eq!(w.until("+ SAVED"), ["+ SAVED (not on server)"]);

    // I6: fifty writes in well under a second. The first renames a new file in; the
    // other 49 rewrite it in place at the same length, so the watcher can never read a
    // half-written file and every report it makes is a real one.
    editor_save(&dev.env_path(), "A=1\nSAVED=x\nBURST=00\n");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(dev.env_path())
        .unwrap();
    for i in 1..50 {
        use std::io::{Seek, Write};
        file.seek(std::io::SeekFrom::Start(0)).unwrap();
        file.write_all(format!("A=1\nSAVED=x\nBURST={i:02}\n").as_bytes())
            .unwrap();
    }
    drop(file);
    // The sentinel: one more change after the burst.
    std::thread::sleep(Duration::from_millis(400));
    editor_save(&dev.env_path(), "A=1\nSAVED=x\nBURST=50\nLAST=1\n");
    assert_eq!(
        w.until("+ LAST"),
        ["+ BURST (not on server)", "+ LAST (not on server)"]
    );
    // The watcher never pushes.
    assert_eq!(versions(&server, &dev, "burst"), 1);
}

#[test]
fn a_pull_that_rewrites_the_env_file_is_not_drift() {
    let server = Server::start();
    let alice = Dev::new(&server, "pullwatch");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).ok();
    let mut w = Watcher::start(&bob);

    // I7: alice adds a key; bob's pull writes it. The watcher's key list predates it,
    // but what was pulled is by definition in sync: no report, and no push.
    alice.write_env("A=1\nB=2\n");
    alice.envsync(&["push"]).ok();
    bob.envsync(&["pull"]).clean().ok();
    std::thread::sleep(Duration::from_millis(400));
    editor_save(&bob.env_path(), "A=1\nB=2\nLAST=1\n");
    let lines = w.until("+ LAST (not on server)");
    assert_eq!(lines.len(), 1, "only the sentinel was reported: {lines:?}");
    assert_eq!(versions(&server, &bob, "pullwatch"), 2);
}
