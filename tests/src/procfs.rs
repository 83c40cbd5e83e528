//! What Linux's `/proc` says about a process the tests started: its memory, its resource
//! limits, its command line and environment, whether it is a zombie; and a sampler of its
//! peak resident memory while a load runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A `kB` field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// A line of `/proc/<pid>/limits`, e.g. `Max open files`: its soft and hard values.
pub fn limit(pid: u32, name: &str) -> Option<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with(name))?;
    let mut fields = line[name.len()..].split_whitespace();
    Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
}

/// `/proc/<pid>/cmdline`: the arguments, each ended by a NUL.
pub fn cmdline(pid: u32) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/cmdline")).ok()
}

/// `/proc/<pid>/environ`: the environment the process started with, `NAME=value` each
/// ended by a NUL.
pub fn environ(pid: u32) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/environ")).ok()
}

/// Whether the process has exited and waits to be reaped (state `Z`).
pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_default()
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

/// Samples a process's peak resident memory (`VmRSS`) every 20 ms while it is set active.
#[derive(Debug)]
pub struct RssSampler {
    active: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32, active: bool) -> RssSampler {
        let active = Arc::new(AtomicBool::new(active));
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (a, s, p) = (active.clone(), stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if a.load(Ordering::Relaxed)
                    && let Some(kb) = status_kb(pid, "VmRSS:")
                {
                    p.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler {
            active,
            stop,
            peak,
            thread: Some(thread),
        }
    }

    pub fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Relaxed);
    }

    /// Stops sampling; the peak in kB.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}
