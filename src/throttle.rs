//! Throttling of failed credential checks: logins (docs/security.md K1) and client
//! authentication at the token endpoint (K2). Failures are counted per (subject, IP) and
//! per IP in fixed one-minute windows, in process. Past a limit: 429 with `Retry-After`,
//! even for the right credentials, until the window ends; other IPs are unaffected.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;

pub const WINDOW_SECONDS: i64 = 60;

#[derive(Debug)]
pub struct FailureThrottle {
    per_subject: u32,
    per_ip: u32,
    failures: Mutex<HashMap<String, (Timestamp, u32)>>,
}

impl FailureThrottle {
    pub fn new(per_subject: u32, per_ip: u32) -> Self {
        Self {
            per_subject,
            per_ip,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(email: &str, ip: &str) -> [String; 2] {
        [format!("a:{email}|{ip}"), format!("i:{ip}")]
    }

    /// `Some(seconds)` to wait when this attempt must be refused.
    pub fn check(&self, email: &str, ip: &str, now: Timestamp) -> Option<i64> {
        let map = self.failures.lock().ok()?;
        let window = now - now % WINDOW_SECONDS;
        let [account, ip_key] = Self::keys(email, ip);
        let over = |key: &str, limit: u32| {
            map.get(key)
                .is_some_and(|&(w, n)| w == window && n >= limit)
        };
        if over(&account, self.per_subject) || over(&ip_key, self.per_ip) {
            Some(window + WINDOW_SECONDS - now)
        } else {
            None
        }
    }

    pub fn record_failure(&self, email: &str, ip: &str, now: Timestamp) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        let window = now - now % WINDOW_SECONDS;
        if map.len() > 100_000 {
            map.retain(|_, (w, _)| *w == window);
        }
        for key in Self::keys(email, ip) {
            let e = map.entry(key).or_insert((window, 0));
            if e.0 != window {
                *e = (window, 0);
            }
            e.1 += 1;
        }
    }

    pub fn record_success(&self, email: &str, ip: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&Self::keys(email, ip)[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k1_ten_failures_lock_the_account_for_that_ip_until_the_window_ends() {
        let t = FailureThrottle::new(10, 50);
        let now = 6_000; // a window boundary
        for _ in 0..10 {
            assert_eq!(t.check("a@x", "1.1.1.1", now), None);
            t.record_failure("a@x", "1.1.1.1", now);
        }
        assert_eq!(t.check("a@x", "1.1.1.1", now + 5), Some(55));
        assert_eq!(
            t.check("a@x", "2.2.2.2", now + 5),
            None,
            "other IPs are not locked out"
        );
        assert_eq!(
            t.check("a@x", "1.1.1.1", now + 60),
            None,
            "unlocks after the window"
        );
    }
}
