//! Rate limits (docs/spec.md §5, §10): per key and, when the organization has one, a
//! per-organization budget shared by all its keys. Units per minute in fixed windows aligned
//! to the wall-clock minute, counted in process. A request spends its `cost` (1 unless the
//! caller says otherwise) from both budgets at once, or from neither. Aligned windows make
//! `X-RateLimit-Reset` the same on every instance and let instances add up their counts
//! through the database (`rate_limit_windows`, keyed by key id or organization id; see
//! [`super::verify::flush`]).
//!
//! On one instance the limits are exact: with limit L, requests are admitted while what
//! they spend stays within L, and a request that does not fit is refused and spends
//! nothing (from neither budget). Like every fixed window, a client can spend L at the end
//! of one window and L at the start of the next; the documented tolerance across N
//! instances is what the other instances admitted in the last second (each writes its
//! counts and reads the total back every `startup::FLUSH_INTERVAL`, a quarter of a second).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;

pub const WINDOW_SECONDS: i64 = 60;

/// One budget of a window: its limit and what is left of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: i64,
    pub remaining: i64,
}

/// What a caller may know about a key's budget, for the X-RateLimit headers and the IETF
/// `RateLimit-Policy` / `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers).
/// `limit` and `remaining` are those of the tighter budget: the key's own, or what is
/// left of its organization's when that is less.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RateState {
    pub limit: i64,
    pub remaining: i64,
    /// Epoch seconds at which the window ends.
    #[schema(value_type = i64)]
    pub reset: Timestamp,
    /// The key's own budget.
    #[serde(skip)]
    pub key: Budget,
    /// The organization's budget, when it has one.
    #[serde(skip)]
    pub org: Option<Budget>,
    /// When the state was taken (epoch seconds), for the seconds left in `RateLimit`.
    #[serde(skip)]
    pub at: Timestamp,
}

impl RateState {
    /// The state at `now` from the key's budget and the organization's (if any); the
    /// reported limit and remaining are the tighter one's.
    pub fn new(key: Budget, org: Option<Budget>, now: Timestamp) -> Self {
        let tight = match org {
            Some(o) if o.remaining < key.remaining => o,
            _ => key,
        };
        Self {
            limit: tight.limit,
            remaining: tight.remaining,
            reset: window_start(now) + WINDOW_SECONDS,
            key,
            org,
            at: now,
        }
    }

    /// The response fields that describe this state, names in lower case:
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (epoch seconds;
    /// docs/spec.md §5) and the structured fields of draft-ietf-httpapi-ratelimit-headers
    /// (docs/spec.md §10): `RateLimit-Policy: "key";q=100;w=60` (and `, "org";q=…;w=60`
    /// when the organization has a budget; `q` in units per window of `w` seconds) and
    /// `RateLimit: "key";r=42;t=17` (and `"org"`; `r` the units left, `t` the seconds
    /// until the window resets).
    pub fn header_fields(&self) -> [(&'static str, String); 5] {
        let t = (self.reset - self.at).max(0);
        let mut policy = format!("\"key\";q={};w={WINDOW_SECONDS}", self.key.limit);
        let mut current = format!("\"key\";r={};t={t}", self.key.remaining);
        if let Some(o) = self.org {
            policy.push_str(&format!(", \"org\";q={};w={WINDOW_SECONDS}", o.limit));
            current.push_str(&format!(", \"org\";r={};t={t}", o.remaining));
        }
        [
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", self.reset.to_string()),
            ("ratelimit-policy", policy),
            ("ratelimit", current),
        ]
    }

    /// Seconds until the window ends (at least 1), for `Retry-After`.
    pub fn retry_after(&self, now: Timestamp) -> i64 {
        (self.reset - now).max(1)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    start: Timestamp,
    /// Units this instance admitted in the window.
    local: i64,
    /// Of `local`, how many have been written to the shared table.
    flushed: i64,
    /// Units other instances admitted, as last read from the shared table.
    others: i64,
}

impl Window {
    fn used(&self) -> i64 {
        self.local + self.others
    }
    fn budget(&self, limit: i64) -> Budget {
        Budget {
            limit,
            remaining: (limit - self.used()).max(0),
        }
    }
}

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<String, Window>>;

/// Windows by id, in shards so that unrelated ids rarely wait for each other.
#[derive(Debug)]
struct Windows {
    shards: Vec<Shard>,
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

fn lock(shard: &Shard) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The current window of `id` in a locked shard, started afresh when a new minute began.
fn current<'m>(map: &'m mut HashMap<String, Window>, id: &str, start: Timestamp) -> &'m mut Window {
    let w = map.entry(id.to_string()).or_default();
    if w.start != start {
        *w = Window {
            start,
            ..Window::default()
        };
    }
    w
}

impl Windows {
    #[expect(clippy::indexing_slicing, reason = "taken modulo SHARDS")]
    fn shard(&self, id: &str) -> &Shard {
        let h = id
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        &self.shards[h % SHARDS]
    }

    fn take_unflushed(&self, start: Timestamp, out: &mut Vec<(String, Timestamp, i64)>) {
        for shard in &self.shards {
            let mut map = lock(shard);
            map.retain(|_, w| w.start == start);
            for (id, w) in map.iter_mut() {
                if w.local > w.flushed {
                    out.push((id.clone(), w.start, w.local - w.flushed));
                    w.flushed = w.local;
                }
            }
        }
    }

    /// Runs `f` on the window of `id` if it is the one starting at `start`.
    fn with_existing(&self, id: &str, start: Timestamp, f: impl FnOnce(&mut Window)) {
        if let Some(w) = lock(self.shard(id)).get_mut(id)
            && w.start == start
        {
            f(w);
        }
    }

    fn active(&self, start: Timestamp, out: &mut Vec<String>) {
        for shard in &self.shards {
            let map = lock(shard);
            out.extend(
                map.iter()
                    .filter(|(_, w)| w.start == start)
                    .map(|(k, _)| k.clone()),
            );
        }
    }
}

/// An organization's budget, when it has one: its id and per-minute limit.
#[derive(Debug, Clone, Copy)]
pub struct OrgBudget<'a> {
    pub org_id: &'a str,
    pub limit: i64,
}

/// The windows of every key and organization this instance has counted this minute.
#[derive(Debug, Default)]
pub struct RateLimiter {
    keys: Windows,
    orgs: Windows,
}

pub fn window_start(now: Timestamp) -> Timestamp {
    now - now.rem_euclid(WINDOW_SECONDS)
}

impl RateLimiter {
    /// Spends `cost` units (≥ 1) of the key's budget and of its organization's, if both
    /// have that much left; otherwise spends nothing. Returns whether it was admitted and
    /// the state after it. Both windows are locked together (always the key's first, so
    /// no two calls wait for each other in a cycle), which keeps the limits exact.
    pub fn spend(
        &self,
        key_id: &str,
        limit: i64,
        org: Option<OrgBudget<'_>>,
        cost: i64,
        now: Timestamp,
    ) -> (bool, RateState) {
        let start = window_start(now);
        let mut keys = lock(self.keys.shard(key_id));
        let kw = current(&mut keys, key_id, start);
        let key_fits = kw.used() + cost <= limit;
        let Some(org) = org else {
            if key_fits {
                kw.local += cost;
            }
            return (key_fits, RateState::new(kw.budget(limit), None, now));
        };
        let mut orgs = lock(self.orgs.shard(org.org_id));
        let ow = current(&mut orgs, org.org_id, start);
        let admitted = key_fits && ow.used() + cost <= org.limit;
        if admitted {
            kw.local += cost;
            ow.local += cost;
        }
        let state = RateState::new(kw.budget(limit), Some(ow.budget(org.limit)), now);
        (admitted, state)
    }

    /// Counts one request (cost 1) against the key alone.
    pub fn hit(&self, key_id: &str, limit: i64, now: Timestamp) -> (bool, RateState) {
        self.spend(key_id, limit, None, 1, now)
    }

    /// The state without counting (introspection, answers about keys out of scope).
    pub fn peek(
        &self,
        key_id: &str,
        limit: i64,
        org: Option<OrgBudget<'_>>,
        now: Timestamp,
    ) -> RateState {
        let start = window_start(now);
        let key = lock(self.keys.shard(key_id))
            .get(key_id)
            .filter(|w| w.start == start)
            .copied()
            .unwrap_or_default()
            .budget(limit);
        let org = org.map(|o| {
            lock(self.orgs.shard(o.org_id))
                .get(o.org_id)
                .filter(|w| w.start == start)
                .copied()
                .unwrap_or_default()
                .budget(o.limit)
        });
        RateState::new(key, org, now)
    }

    /// Forgets a key (revoked: it will never be counted again).
    pub fn forget(&self, key_id: &str) {
        lock(self.keys.shard(key_id)).remove(key_id);
    }

    /// Units admitted since the last call, per key and per organization (ids never
    /// collide: `key_…` and `org_…`), for the current window; marks them flushed.
    /// Windows of past minutes are dropped.
    pub fn take_unflushed(&self, now: Timestamp) -> Vec<(String, Timestamp, i64)> {
        let start = window_start(now);
        let mut out = Vec::new();
        self.keys.take_unflushed(start, &mut out);
        self.orgs.take_unflushed(start, &mut out);
        out
    }

    /// Undoes [`Self::take_unflushed`] for counts that could not be written.
    pub fn restore_unflushed(&self, batch: &[(String, Timestamp, i64)]) {
        for (id, start, delta) in batch {
            let undo = |w: &mut Window| w.flushed = (w.flushed - delta).max(0);
            self.keys.with_existing(id, *start, undo);
            self.orgs.with_existing(id, *start, undo);
        }
    }

    /// Records the shared total of a key's or organization's window (all instances, ours
    /// included).
    pub fn set_shared_total(&self, id: &str, start: Timestamp, total: i64) {
        let set = |w: &mut Window| w.others = (total - w.flushed).max(0);
        self.keys.with_existing(id, start, set);
        self.orgs.with_existing(id, start, set);
    }

    /// Keys and organizations with a window in the current minute (to refresh their
    /// shared totals).
    pub fn active_keys(&self, now: Timestamp) -> Vec<String> {
        let start = window_start(now);
        let mut out = Vec::new();
        self.keys.active(start, &mut out);
        self.orgs.active(start, &mut out);
        out
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
    fn i6_a_cost_spends_that_many_units_and_a_refused_one_spends_nothing() {
        let rl = RateLimiter::default();
        let t0 = 1_800_000_000;
        let (ok, s) = rl.spend("k", 10, None, 4, t0);
        assert!(ok);
        assert_eq!(s.remaining, 6);
        let (ok, s) = rl.spend("k", 10, None, 7, t0);
        assert!(!ok, "7 does not fit in 6");
        assert_eq!(s.remaining, 6, "nothing spent");
        assert!(rl.spend("k", 10, None, 6, t0).0, "exactly the rest fits");
        assert!(!rl.spend("k", 10, None, 1, t0).0);
        assert_eq!(rl.take_unflushed(t0), vec![("k".into(), t0, 10)]);
    }

    #[test]
    fn i6_the_organization_budget_is_shared_and_the_tighter_one_reports() {
        let rl = RateLimiter::default();
        let t0 = 1_800_000_000;
        let org = Some(OrgBudget {
            org_id: "org_a",
            limit: 5,
        });
        let (ok, s) = rl.spend("key_1", 100, org, 3, t0);
        assert!(ok);
        assert_eq!(
            (s.limit, s.remaining),
            (5, 2),
            "the organization is tighter"
        );
        assert_eq!(s.key.remaining, 97);
        // A second key of the organization has 2 left although its own limit is 100.
        let (ok, s) = rl.spend("key_2", 100, org, 3, t0);
        assert!(!ok);
        assert_eq!((s.remaining, s.key.remaining), (2, 100), "nothing spent");
        assert!(rl.spend("key_2", 100, org, 2, t0).0);
        // A key tighter than what is left reports its own budget.
        let roomy = Some(OrgBudget {
            org_id: "org_b",
            limit: 1000,
        });
        let (_, s) = rl.spend("key_3", 4, roomy, 1, t0);
        assert_eq!((s.limit, s.remaining), (4, 3));
        assert_eq!(s.org.map(|o| o.remaining), Some(999));
        // A refused key spends nothing of its organization's budget either.
        assert!(!rl.spend("key_3", 4, roomy, 4, t0).0);
        assert_eq!(
            rl.peek("key_9", 10, roomy, t0).org.map(|o| o.remaining),
            Some(999)
        );
        let mut flushed = rl.take_unflushed(t0);
        flushed.sort();
        assert_eq!(
            flushed,
            vec![
                ("key_1".into(), t0, 3),
                ("key_2".into(), t0, 2),
                ("key_3".into(), t0, 1),
                ("org_a".into(), t0, 5),
                ("org_b".into(), t0, 1),
            ]
        );
        // Other instances' totals count for organizations too.
        rl.set_shared_total("org_a", t0, 5);
        assert!(!rl.spend("key_4", 100, org, 1, t0 + 1).0);
        assert!(rl.spend("key_4", 100, org, 1, t0 + 60).0, "a new window");
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
