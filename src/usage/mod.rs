//! Usage analytics (docs/spec.md §10): every bearer use and verification of an existing API
//! key counted per key, UTC hour and verdict `code`. Counting happens in memory
//! ([`Counter::record`], called by `api_keys::verify::decide`); [`store::flush`] writes the
//! counts in one transaction about once a second, so a count is visible in
//! `GET /api/v1/usage` within a few seconds and no request ever waits for a usage write.
//! [`ops::report`] answers the API and the pages; the janitor prunes rows older than
//! `--usage-retention-days` ([`store::prune`]).

pub mod chart;
pub mod ops;
pub mod store;

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api_keys::verify::Code;
use crate::clock::Timestamp;

/// Seconds in one bucket of the stored counts.
pub const HOUR: i64 = 3600;
/// Seconds in one day bucket.
pub const DAY: i64 = 86_400;

/// The UTC hour that holds `t`.
pub fn hour_start(t: Timestamp) -> Timestamp {
    t - t.rem_euclid(HOUR)
}

/// One counted cell: (organization, key, UTC hour, code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub org_id: String,
    pub key_id: String,
    pub hour_start: Timestamp,
    pub code: Code,
}

const SHARDS: usize = 16;

/// One key's pending counts: (hour, code, count), a handful of entries between flushes.
#[derive(Debug, Default)]
struct Pending {
    org_id: String,
    cells: Vec<(Timestamp, Code, i64)>,
}

type Shard = Mutex<HashMap<String, Pending>>;

/// Requests counted on this instance and not yet written, sharded by key so that
/// concurrent verifications of different keys rarely meet on one lock. Recording a
/// known key allocates nothing.
#[derive(Debug)]
pub struct Counter {
    shards: Vec<Shard>,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Counter {
    fn shard(&self, key_id: &str) -> Option<&Shard> {
        let h = key_id
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        self.shards.get(h % SHARDS)
    }

    fn add(&self, org_id: &str, key_id: &str, hour: Timestamp, code: Code, n: i64) {
        let Some(shard) = self.shard(key_id) else {
            return;
        };
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        let pending = match map.get_mut(key_id) {
            Some(p) => p,
            None => map.entry(key_id.to_string()).or_insert_with(|| Pending {
                org_id: org_id.to_string(),
                cells: Vec::new(),
            }),
        };
        match pending
            .cells
            .iter_mut()
            .find(|(h, c, _)| *h == hour && *c == code)
        {
            Some((_, _, count)) => *count += n,
            None => pending.cells.push((hour, code, n)),
        }
    }

    /// Counts one answer about key `key_id` of `org_id` with verdict `code` at `now`.
    /// Never inlined, so that a profiler attributes its cost (BENCHMARKS.md measures it).
    #[inline(never)]
    pub fn record(&self, org_id: &str, key_id: &str, code: Code, now: Timestamp) {
        self.add(org_id, key_id, hour_start(now), code, 1);
    }

    /// Takes every pending count (for [`store::flush`]).
    pub fn take(&self) -> Vec<(Cell, i64)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let drained: Vec<(String, Pending)> = shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .collect();
            for (key_id, p) in drained {
                for (hour, code, n) in p.cells {
                    out.push((
                        Cell {
                            org_id: p.org_id.clone(),
                            key_id: key_id.clone(),
                            hour_start: hour,
                            code,
                        },
                        n,
                    ));
                }
            }
        }
        out
    }

    /// Puts counts back after a failed write; the next flush retries them.
    pub fn restore(&self, cells: Vec<(Cell, i64)>) {
        for (c, n) in cells {
            self.add(&c.org_id, &c.key_id, c.hour_start, c.code, n);
        }
    }

    /// Counts not yet written.
    pub fn pending(&self) -> i64 {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .flat_map(|p| p.cells.iter().map(|(_, _, n)| n))
                    .sum::<i64>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_hour_and_code_and_restores_after_a_failed_write() {
        let c = Counter::default();
        let t = 1_700_000_000;
        c.record("o", "k1", Code::Valid, t);
        c.record("o", "k1", Code::Valid, t + 1);
        c.record("o", "k1", Code::RateLimited, t);
        c.record("o", "k2", Code::Valid, t);
        c.record("o", "k1", Code::Valid, t + HOUR);
        assert_eq!(c.pending(), 5);
        let taken = c.take();
        assert_eq!(taken.len(), 4);
        assert_eq!(c.pending(), 0);
        let k1_valid = taken
            .iter()
            .find(|(cell, _)| {
                cell.key_id == "k1" && cell.code == Code::Valid && cell.hour_start == hour_start(t)
            })
            .map(|(_, n)| *n);
        assert_eq!(k1_valid, Some(2));
        c.restore(taken);
        assert_eq!(c.pending(), 5);
    }

    #[test]
    fn hours_are_utc_aligned() {
        assert_eq!(hour_start(7199), 3600);
        assert_eq!(hour_start(7200), 7200);
        assert_eq!(hour_start(-1), -3600);
    }
}
