//! Login rate limiting: after [`MAX_FAILURES`] failed logins within [`WINDOW`] for one user
//! name, or from one client address, the login form answers 429 for that user or address
//! until the oldest of those failures is older than the window.
//!
//! Input: the outcome of each login attempt. Output: whether the next one may be tried. Kept
//! in memory (a restart forgets it); entries expire with the window, and argon2 makes each
//! failure cost tens of milliseconds, so the map stays small even under attack. Both keys
//! count: a user limit alone lets one address try many users, an address limit alone lets many
//! addresses try one user.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins allowed per user or address within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// How far back failures count.
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

/// Failed logins per user name and per client address.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

fn keys(user: &str, addr: IpAddr) -> [Key; 2] {
    [Key::User(user.to_string()), Key::Addr(addr.to_canonical())]
}

impl LoginLimiter {
    /// `None` when `user` may try to log in from `addr` now; otherwise how long until it may.
    pub fn blocked(&self, user: &str, addr: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys(user, addr)
            .iter()
            .filter_map(|k| {
                let times = map.get(k)?;
                let recent: Vec<&Instant> = times
                    .iter()
                    .filter(|t| now.saturating_duration_since(**t) < WINDOW)
                    .collect();
                // Blocked until the oldest failure that still counts leaves the window.
                (recent.len() >= MAX_FAILURES).then(|| {
                    let oldest = recent[recent.len() - MAX_FAILURES];
                    WINDOW.saturating_sub(now.saturating_duration_since(*oldest))
                })
            })
            .max()
    }

    /// Records a failed login of `user` from `addr`.
    pub fn failed(&self, user: &str, addr: IpAddr, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Forget what no longer counts, so the map holds only the last window's failures.
        map.retain(|_, times| {
            while times
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
            !times.is_empty()
        });
        for k in keys(user, addr) {
            let times = map.entry(k).or_default();
            times.push_back(now);
            // More than the limit never changes the answer.
            while times.len() > MAX_FAILURES {
                times.pop_front();
            }
        }
    }

    /// A successful login clears the failures of its user and address.
    pub fn succeeded(&self, user: &str, addr: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys(user, addr) {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocked_after_five_failures_per_user() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(l.blocked("alice", ip("10.0.0.1"), t0), None);
            // Each failure from another address: only the user key reaches the limit.
            l.failed("alice", ip(&format!("10.0.1.{i}")), t0);
        }
        assert_eq!(
            l.blocked("alice", ip("10.0.0.1"), t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(l.blocked("bob", ip("10.0.0.1"), t0), None);
        assert_eq!(l.blocked("alice", ip("10.0.0.1"), t0 + WINDOW), None);
    }

    #[test]
    fn blocked_after_five_failures_per_address() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            l.failed(&format!("user{i}"), ip("192.0.2.1"), t0);
        }
        assert!(l.blocked("someone", ip("192.0.2.1"), t0).is_some());
        // The same address written as IPv4-mapped IPv6 is the same client.
        assert!(l.blocked("someone", ip("::ffff:192.0.2.1"), t0).is_some());
        assert_eq!(l.blocked("someone", ip("192.0.2.2"), t0), None);
    }

    #[test]
    fn success_clears_and_old_failures_expire() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            l.failed("alice", ip("10.0.0.1"), t0);
        }
        l.succeeded("alice", ip("10.0.0.1"));
        l.failed("alice", ip("10.0.0.1"), t0);
        assert_eq!(l.blocked("alice", ip("10.0.0.1"), t0), None);
        for _ in 0..MAX_FAILURES {
            l.failed("carol", ip("10.0.0.3"), t0);
        }
        // A later failure of someone else prunes carol's expired entries.
        l.failed("dave", ip("10.0.0.4"), t0 + WINDOW);
        let map = l.failures.lock().unwrap();
        assert!(!map.contains_key(&Key::User("carol".into())));
        assert!(!map.contains_key(&Key::User("alice".into())));
    }
}
