//! Per-key rate limits (docs/spec.md §5): requests per minute in fixed windows aligned to the
//! wall-clock minute, counted in process. Aligned windows make `X-RateLimit-Reset` the
//! same on every instance and let instances add up their counts through the database
//! (`rate_limit_windows`, see [`RateLimiter::sync`]).
//!
//! On one instance the limit is exact: with limit L, the first L requests of a window pass
//! and the next is refused until the window ends. Refused requests are not counted. Like
//! every fixed window, a client can spend L at the end of one window and L at the start of
//! the next; the documented tolerance across N instances is what each instance admits
//! between two syncs (one second by default) beyond the shared count.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;

pub const WINDOW_SECONDS: i64 = 60;

/// What a caller may know about a key's budget, for the X-RateLimit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RateState {
    pub limit: i64,
    pub remaining: i64,
    /// Epoch seconds at which the window ends.
    #[schema(value_type = i64)]
    pub reset: Timestamp,
}

impl RateState {
    /// Seconds until the window ends (at least 1), for `Retry-After`.
    pub fn retry_after(&self, now: Timestamp) -> i64 {
        (self.reset - now).max(1)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    start: Timestamp,
    /// Requests this instance admitted in the window.
    local: i64,
    /// Of `local`, how many have been written to the shared table.
    flushed: i64,
    /// Requests other instances admitted, as last read from the shared table.
    others: i64,
}

impl Window {
    fn used(&self) -> i64 {
        self.local + self.others
    }
}

const SHARDS: usize = 16;

#[derive(Debug)]
pub struct RateLimiter {
    shards: Vec<Mutex<HashMap<String, Window>>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

pub fn window_start(now: Timestamp) -> Timestamp {
    now - now.rem_euclid(WINDOW_SECONDS)
}

impl RateLimiter {
    #[expect(clippy::indexing_slicing, reason = "taken modulo SHARDS")]
    fn shard(&self, key_id: &str) -> &Mutex<HashMap<String, Window>> {
        let h = key_id
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        &self.shards[h % SHARDS]
    }

    fn with_window<T>(&self, key_id: &str, now: Timestamp, f: impl FnOnce(&mut Window) -> T) -> T {
        let start = window_start(now);
        let mut map = self
            .shard(key_id)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let w = map.entry(key_id.to_string()).or_default();
        if w.start != start {
            *w = Window {
                start,
                ..Window::default()
            };
        }
        f(w)
    }

    /// Counts one request if the key has budget left. Returns whether it was admitted and
    /// the state after it.
    pub fn hit(&self, key_id: &str, limit: i64, now: Timestamp) -> (bool, RateState) {
        self.with_window(key_id, now, |w| {
            let admitted = w.used() < limit;
            if admitted {
                w.local += 1;
            }
            (admitted, state(w, limit))
        })
    }

    /// The state without counting (introspection, answers about revoked keys).
    pub fn peek(&self, key_id: &str, limit: i64, now: Timestamp) -> RateState {
        self.with_window(key_id, now, |w| state(w, limit))
    }

    /// Forgets a key (revoked: it will never be counted again).
    pub fn forget(&self, key_id: &str) {
        self.shard(key_id)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key_id);
    }

    /// Counts admitted since the last call, per key, for the current window; marks them
    /// flushed. Windows of past minutes are dropped.
    pub fn take_unflushed(&self, now: Timestamp) -> Vec<(String, Timestamp, i64)> {
        let start = window_start(now);
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, w| w.start == start);
            for (id, w) in map.iter_mut() {
                if w.local > w.flushed {
                    out.push((id.clone(), w.start, w.local - w.flushed));
                    w.flushed = w.local;
                }
            }
        }
        out
    }

    /// Undoes [`Self::take_unflushed`] for counts that could not be written.
    pub fn restore_unflushed(&self, batch: &[(String, Timestamp, i64)]) {
        for (id, start, delta) in batch {
            let mut map = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = map.get_mut(id)
                && w.start == *start
            {
                w.flushed = (w.flushed - delta).max(0);
            }
        }
    }

    /// Records the shared total of a key's window (all instances, ours included).
    pub fn set_shared_total(&self, key_id: &str, start: Timestamp, total: i64) {
        let mut map = self
            .shard(key_id)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(w) = map.get_mut(key_id)
            && w.start == start
        {
            w.others = (total - w.flushed).max(0);
        }
    }

    /// Keys with a window in the current minute (to refresh their shared totals).
    pub fn active_keys(&self, now: Timestamp) -> Vec<String> {
        let start = window_start(now);
        let mut out = Vec::new();
        for shard in &self.shards {
            let map = shard.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(
                map.iter()
                    .filter(|(_, w)| w.start == start)
                    .map(|(k, _)| k.clone()),
            );
        }
        out
    }
}

fn state(w: &Window, limit: i64) -> RateState {
    RateState {
        limit,
        remaining: (limit - w.used()).max(0),
        reset: w.start + WINDOW_SECONDS,
    }
}

/// When keys were last used, kept in memory and written in batches (no write per request).
#[derive(Debug, Default)]
pub struct UsageTracker {
    pending: Mutex<HashMap<String, Timestamp>>,
}

impl UsageTracker {
    pub fn touch(&self, key_id: &str, now: Timestamp) {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(key_id) {
            Some(t) if *t >= now => {}
            Some(t) => *t = now,
            None => {
                map.insert(key_id.to_string(), now);
            }
        }
    }

    pub fn take(&self) -> Vec<(String, Timestamp)> {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        map.drain().collect()
    }

    /// Puts back what a failed flush took, keeping the newer time.
    pub fn restore(&self, batch: Vec<(String, Timestamp)>) {
        for (id, t) in batch {
            self.touch(&id, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i6_exactly_the_limit_passes_then_the_window_resets() {
        let rl = RateLimiter::default();
        let t0 = 1_800_000_000; // a minute boundary
        for i in 0..5 {
            let (ok, s) = rl.hit("k", 5, t0 + 10);
            assert!(ok, "request {i} within the limit");
            assert_eq!(s.remaining, 4 - i);
            assert_eq!(s.reset, t0 + 60);
        }
        let (ok, s) = rl.hit("k", 5, t0 + 59);
        assert!(!ok);
        assert_eq!(s.remaining, 0);
        assert_eq!(s.retry_after(t0 + 59), 1);
        // Another key is unaffected.
        assert!(rl.hit("other", 5, t0 + 59).0);
        // The next window starts fresh.
        let (ok, s) = rl.hit("k", 5, t0 + 60);
        assert!(ok);
        assert_eq!((s.remaining, s.reset), (4, t0 + 120));
    }

    #[test]
    fn shared_totals_from_other_instances_count() {
        let rl = RateLimiter::default();
        let t0 = 1_800_000_020;
        assert!(rl.hit("k", 10, t0).0);
        let flushed = rl.take_unflushed(t0);
        assert_eq!(flushed, vec![("k".to_string(), window_start(t0), 1)]);
        // Another instance admitted 8: the table says 9.
        rl.set_shared_total("k", window_start(t0), 9);
        assert!(rl.hit("k", 10, t0).0);
        let (ok, s) = rl.hit("k", 10, t0);
        assert!(!ok);
        assert_eq!(s.remaining, 0);
        assert!(
            rl.take_unflushed(t0)
                .contains(&("k".to_string(), window_start(t0), 1))
        );
    }

    #[test]
    fn usage_keeps_the_latest_time() {
        let u = UsageTracker::default();
        u.touch("a", 10);
        u.touch("a", 5);
        u.touch("b", 7);
        let mut got = u.take();
        got.sort();
        assert_eq!(got, vec![("a".into(), 10), ("b".into(), 7)]);
        assert!(u.take().is_empty());
    }
}
