//! Rate limiting of failed authentication, per client address.
//!
//! A client address that gets `max_failures` 401s within one `window` is answered 429 with
//! `Retry-After` on every authenticated route until that window ends. The check runs
//! *before* the token is verified: answering a good token normally while refusing bad ones
//! would tell a guesser which guess was right, which is what the limit is there to slow
//! down. Requests with a valid token never count, so a client that only sends valid tokens
//! is never limited; one that shares an address with a guesser (same NAT) is, until the
//! window ends.
//!
//! Addresses are IPv4 addresses, or IPv6 /64 prefixes (one host usually owns a whole /64,
//! so limiting single IPv6 addresses would limit nothing). Behind a reverse proxy every
//! client has the proxy's address: limit there instead, and set
//! `ENVSYNC_AUTH_MAX_FAILURES=0` here.
//!
//! Memory is bounded: entries live in two generations of at most `capacity / 2` each. New
//! and recently seen addresses go into the current one; when it is full it becomes the
//! previous one and the old previous generation is dropped whole. So the map never holds
//! more than `capacity` addresses, whatever the number of clients, at O(1) per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed authentications allowed per address and window (0 turns the limiter off).
pub const DEFAULT_MAX_FAILURES: u32 = 20;
/// Length of the counting window, and so the longest a block lasts.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Most client addresses remembered at once.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// How the limiter is tuned (`ENVSYNC_AUTH_MAX_FAILURES`, `ENVSYNC_AUTH_WINDOW`,
/// `ENVSYNC_AUTH_LIMITER_CAPACITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterSettings {
    pub max_failures: u32,
    pub window: Duration,
    pub capacity: usize,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        LimiterSettings {
            max_failures: DEFAULT_MAX_FAILURES,
            window: DEFAULT_WINDOW,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    started: Instant,
    failures: u32,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<IpAddr, Entry>,
    previous: HashMap<IpAddr, Entry>,
}

/// Counts failed authentications per client address.
#[derive(Debug)]
pub struct AuthLimiter {
    settings: LimiterSettings,
    half: usize,
    state: Mutex<Generations>,
}

impl AuthLimiter {
    pub fn new(settings: LimiterSettings) -> AuthLimiter {
        AuthLimiter {
            settings,
            half: (settings.capacity / 2).max(1),
            state: Mutex::new(Generations::default()),
        }
    }

    fn enabled(&self) -> bool {
        self.settings.max_failures > 0
    }

    /// `Err(wait)` when `addr` is blocked: it may try again after `wait`.
    pub fn check(&self, addr: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let key = key(addr);
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = state.current.get(&key).or_else(|| state.previous.get(&key)) else {
            return Ok(());
        };
        let ends = entry.started + self.settings.window;
        if entry.failures >= self.settings.max_failures && now < ends {
            Err(ends - now)
        } else {
            Ok(())
        }
    }

    /// Records a failed authentication from `addr`; `true` when it has just become blocked.
    pub fn failed(&self, addr: Option<IpAddr>, now: Instant) -> bool {
        if !self.enabled() {
            return false;
        }
        let key = key(addr);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let found = match state.current.get(&key) {
            Some(entry) => Some(*entry),
            None => state.previous.remove(&key),
        };
        let mut entry = match found {
            Some(e) if now < e.started + self.settings.window => e,
            _ => Entry {
                started: now,
                failures: 0,
            },
        };
        entry.failures = entry.failures.saturating_add(1);
        if !state.current.contains_key(&key) && state.current.len() >= self.half {
            state.previous = std::mem::take(&mut state.current);
            state.previous.remove(&key);
        }
        state.current.insert(key, entry);
        entry.failures == self.settings.max_failures
    }

    /// Addresses remembered now (never more than the capacity).
    pub fn len(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.current.len() + state.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn settings(&self) -> LimiterSettings {
        self.settings
    }
}

/// The address a client is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its
/// /64 prefix. A connection without an address (never over TCP) shares one key.
fn key(addr: Option<IpAddr>) -> IpAddr {
    match addr {
        None => IpAddr::from([0u8; 4]),
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn limiter(max_failures: u32, capacity: usize) -> AuthLimiter {
        AuthLimiter::new(LimiterSettings {
            max_failures,
            window: Duration::from_secs(60),
            capacity,
        })
    }

    fn ip(n: u32) -> Option<IpAddr> {
        Some(IpAddr::from(n.to_be_bytes()))
    }

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let limiter = limiter(3, 100);
        let t0 = Instant::now();
        let a = ip(1);
        assert_eq!(limiter.check(a, t0), Ok(()));
        assert!(!limiter.failed(a, t0));
        assert!(!limiter.failed(a, t0 + Duration::from_secs(1)));
        assert_eq!(limiter.check(a, t0 + Duration::from_secs(2)), Ok(()));
        assert!(limiter.failed(a, t0 + Duration::from_secs(2)));
        assert_eq!(
            limiter.check(a, t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        // Another address is not affected.
        assert_eq!(limiter.check(ip(2), t0 + Duration::from_secs(10)), Ok(()));
        // The block ends with the window, and counting starts afresh.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(limiter.check(a, later), Ok(()));
        assert!(!limiter.failed(a, later));
        assert_eq!(limiter.check(a, later), Ok(()));
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = limiter(0, 100);
        let now = Instant::now();
        for _ in 0..100 {
            limiter.failed(ip(1), now);
        }
        assert_eq!(limiter.check(ip(1), now), Ok(()));
        assert!(limiter.is_empty());
    }

    #[test]
    fn memory_stays_bounded_with_100k_distinct_clients() {
        let capacity = 1000;
        let limiter = limiter(5, capacity);
        let now = Instant::now();
        let mut peak = 0;
        for n in 0..100_000u32 {
            limiter.failed(ip(n), now);
            peak = peak.max(limiter.len());
        }
        assert_eq!(
            peak, capacity,
            "the map grew past (or never reached) its cap"
        );
        assert!(limiter.len() > capacity / 2 && limiter.len() <= capacity);
        // A client that keeps failing stays remembered (and blocked) through the churn.
        let attacker = ip(u32::MAX);
        for _ in 0..5 {
            limiter.failed(attacker, now);
        }
        for n in 0..10_000u32 {
            limiter.failed(ip(200_000 + n), now);
            if n % 100 == 0 {
                limiter.failed(attacker, now);
            }
        }
        assert!(limiter.check(attacker, now).is_err());
        assert!(limiter.len() <= capacity);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_prefix() {
        let limiter = limiter(2, 100);
        let now = Instant::now();
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        limiter.failed(Some(a.into()), now);
        limiter.failed(Some(b.into()), now);
        assert!(limiter.check(Some(a.into()), now).is_err());
        assert!(limiter.check(Some(c.into()), now).is_ok());
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        limiter.failed(Some(mapped.into()), now);
        limiter.failed(Some(IpAddr::from([10, 0, 0, 1])), now);
        assert!(
            limiter
                .check(Some(IpAddr::from([10, 0, 0, 1])), now)
                .is_err()
        );
    }
}
