//! Throttling of failed credential checks: logins (docs/security.md K1) and client
//! authentication at the token endpoint (K2). Failures are counted per (subject, IP) and
//! per IP, in process, in one-minute windows that open at the first failure of each key:
//! unlike windows aligned to the clock, a burst cannot straddle two windows and get twice the
//! limit. Past a limit: 429 with `Retry-After`, even for the right credentials, until that
//! window ends; other IPs are unaffected.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;

pub const WINDOW_SECONDS: i64 = 60;

#[derive(Debug)]
pub struct FailureThrottle {
    per_subject: u32,
    per_ip: u32,
    /// key → (when its window opened, in seconds; failures in it)
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

    /// `Some(seconds)` to wait when this attempt must be refused: until the window of the
    /// key that is over its limit closes (the later one when both are).
    pub fn check(&self, email: &str, ip: &str, now: Timestamp) -> Option<i64> {
        let map = self.failures.lock().ok()?;
        let [account, ip_key] = Self::keys(email, ip);
        let wait = |key: &str, limit: u32| {
            map.get(key)
                .filter(|&&(opened, n)| now < opened + WINDOW_SECONDS && n >= limit)
                .map(|&(opened, _)| opened + WINDOW_SECONDS - now)
        };
        wait(&account, self.per_subject).max(wait(&ip_key, self.per_ip))
    }

    pub fn record_failure(&self, email: &str, ip: &str, now: Timestamp) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() > 100_000 {
            map.retain(|_, (opened, _)| now < *opened + WINDOW_SECONDS);
        }
        for key in Self::keys(email, ip) {
            let e = map.entry(key).or_insert((now, 0));
            if now >= e.0 + WINDOW_SECONDS {
                *e = (now, 0);
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

    /// Windows open at the first failure: ten failures straddling a minute of the clock
    /// still lock the account (with clock-aligned windows they counted 5 + 5).
    #[test]
    fn k1_failures_across_a_clock_minute_count_together() {
        let t = FailureThrottle::new(10, 50);
        for i in 0..10 {
            assert_eq!(t.check("a@x", "1.1.1.1", 6_055 + i), None);
            t.record_failure("a@x", "1.1.1.1", 6_055 + i);
        }
        assert_eq!(t.check("a@x", "1.1.1.1", 6_065), Some(50));
        assert_eq!(
            t.check("a@x", "1.1.1.1", 6_115),
            None,
            "unlocks 60 s after the first"
        );
    }
}
