//! A buffer locked in RAM, for the agent's passphrases: the only `unsafe` code of the CLI.
//!
//! Why unsafe: `mlock(2)` takes a raw address, so `rustix::mm::mlock` is an `unsafe fn`.
//! The safe alternative, `mlockall`, locks the whole process; for an unprivileged user
//! that fails outright (the process maps more than `RLIMIT_MEMLOCK`, often 8 MiB), and
//! with `MCL_FUTURE` it would make later allocations fail. Locking just the pages of each
//! passphrase's buffer fits in any limit. The two calls below only ask the kernel to pin
//! (and later unpin) pages of an allocation this type owns for its whole life; neither
//! reads nor writes memory.
#![allow(unsafe_code)]

use super::MAX_PASSPHRASE;
use zeroize::Zeroize;

/// A fixed-size buffer, pinned in RAM for its whole life and zeroized on drop. It never
/// grows, so no copy of its contents is ever left behind by a reallocation.
pub struct LockedSecret {
    buf: Box<[u8]>,
    len: usize,
}

impl std::fmt::Debug for LockedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockedSecret({} bytes, [redacted])", self.len)
    }
}

impl LockedSecret {
    /// An empty buffer of [`MAX_PASSPHRASE`] bytes, locked against swap; fails when the
    /// kernel refuses the lock (then nothing is stored: better no agent than a swapped
    /// passphrase).
    pub fn new() -> std::io::Result<LockedSecret> {
        let mut buf = vec![0u8; MAX_PASSPHRASE].into_boxed_slice();
        // SAFETY: the range is exactly the live heap allocation `buf`, which this value
        // owns and never moves or frees before `drop` unlocks it. mlock only changes how
        // the kernel pages that range; it does not access it.
        unsafe { rustix::mm::mlock(buf.as_mut_ptr().cast(), buf.len()) }?;
        Ok(LockedSecret { buf, len: 0 })
    }

    /// The room left, to read into directly.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// Marks `n` more bytes of [`LockedSecret::spare`] as filled.
    pub fn filled(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    pub fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn expose(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for LockedSecret {
    fn drop(&mut self) {
        self.buf.zeroize();
        // SAFETY: the same range `new` locked, still owned by this value (freed only
        // after this returns). A failure only leaves the pages locked until exit.
        let _ = unsafe { rustix::mm::munlock(self.buf.as_mut_ptr().cast(), self.buf.len()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_bytes_and_prints_redacted() {
        let mut secret = LockedSecret::new().expect("mlock of one buffer");
        let sentinel = b"SENTINEL_locked_7d1e";
        secret.spare()[..sentinel.len()].copy_from_slice(sentinel);
        secret.filled(sentinel.len());
        assert_eq!(secret.expose(), sentinel);
        for shown in [format!("{secret:?}"), format!("{secret:#?}")] {
            assert!(!shown.contains("SENTINEL"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }
}
