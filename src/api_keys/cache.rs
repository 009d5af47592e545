//! In-process caches that take the database off the hot path of `/api/v1/keys/verify`,
//! bearer authentication and introspection (docs/spec.md §7: `--cache-ttl-ms`, default 1000).
//!
//! - [`KeyCache`]: key digest → the stored facts of a live key. Entries live at most the
//!   TTL. A revocation or roll on this instance evicts the key at once; other instances
//!   learn of it from the audit log, which every instance polls every
//!   [`POLL_INTERVAL`] (the change and its audit entry commit together), so a revocation
//!   reaches every instance within about 100 ms and never later than the TTL.
//! - [`CredentialCache`]: (resource-server client id, SHA-256 of the secret presented) →
//!   authenticated. Only successes are kept; a rotated or deleted secret stops within the
//!   TTL.
//!
//! Both are bypassed while the database is unreachable: entries are served only while the
//! last poll succeeded less than [`HEALTH_WINDOW`] ago, so an outage turns answers into
//! 503 instead of letting the cache decide (docs/spec.md §7).
//!
//! Only positive answers are cached, so a flood of random keys cannot fill memory; each
//! shard is also capped.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::verify::KeyRecord;

pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Cached answers are used only while the last successful poll is this recent.
pub const HEALTH_WINDOW: Duration = Duration::from_millis(500);
const SHARDS: usize = 16;
/// 16 shards of 16,384: about 260,000 keys (~80 MB) at most; a full shard starts over.
const MAX_PER_SHARD: usize = 16_384;

fn shard_of(s: &str) -> usize {
    s.bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % SHARDS
}

/// When the database last answered the change poll.
#[derive(Debug)]
pub struct Health {
    epoch: Instant,
    last_ok_ms: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            // Nothing is served from a cache until the first poll has succeeded.
            last_ok_ms: AtomicU64::new(u64::MAX),
        }
    }
}

impl Health {
    pub fn mark_ok(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ok_ms.store(ms, Ordering::Relaxed);
    }
    /// Returns whether the last poll had succeeded (to log a failure once, not per poll).
    pub fn mark_failed(&self) -> bool {
        self.last_ok_ms.swap(u64::MAX, Ordering::Relaxed) != u64::MAX
    }
    pub fn fresh(&self) -> bool {
        let last = self.last_ok_ms.load(Ordering::Relaxed);
        last != u64::MAX
            && self.epoch.elapsed().as_millis() as u64 <= last + HEALTH_WINDOW.as_millis() as u64
    }
}

#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    by_hash: Vec<RwLock<HashMap<String, (Instant, KeyRecord)>>>,
    /// key id → digest, to evict by id (the audit log names ids).
    ids: Vec<RwLock<HashMap<String, String>>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            by_hash: (0..SHARDS).map(|_| RwLock::default()).collect(),
            ids: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "shard_of is taken modulo the shard count"
    )]
    pub fn get(&self, hash: &str, health: &Health) -> Option<KeyRecord> {
        if !self.enabled() || !health.fresh() {
            return None;
        }
        let shard = self.by_hash[shard_of(hash)]
            .read()
            .unwrap_or_else(|p| p.into_inner());
        match shard.get(hash) {
            Some((at, rec)) if at.elapsed() < self.ttl => Some(rec.clone()),
            _ => None,
        }
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "shard_of is taken modulo the shard count"
    )]
    pub fn put(&self, hash: &str, rec: &KeyRecord) {
        if !self.enabled() {
            return;
        }
        {
            let mut shard = self.by_hash[shard_of(hash)]
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if shard.len() >= MAX_PER_SHARD {
                shard.clear();
            }
            shard.insert(hash.to_string(), (Instant::now(), rec.clone()));
        }
        let mut ids = self.ids[shard_of(&rec.id)]
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if ids.len() >= MAX_PER_SHARD {
            ids.clear();
        }
        ids.insert(rec.id.clone(), hash.to_string());
    }

    /// Forgets a key by id (revoked, rolled, changed).
    #[expect(
        clippy::indexing_slicing,
        reason = "shard_of is taken modulo the shard count"
    )]
    pub fn evict_id(&self, id: &str) {
        let hash = self.ids[shard_of(id)]
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(h) = hash {
            self.by_hash[shard_of(&h)]
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&h);
        }
    }
}

/// Successful resource-server authentications.
#[derive(Debug)]
pub struct CredentialCache {
    ttl: Duration,
    ok: RwLock<HashMap<(String, String), Instant>>,
}

impl CredentialCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            ok: RwLock::default(),
        }
    }

    /// True when this id and secret authenticated a resource server within the TTL.
    pub fn check(&self, client_id: &str, secret: &str, health: &Health) -> bool {
        if self.ttl.is_zero() || !health.fresh() {
            return false;
        }
        let key = (client_id.to_string(), crate::crypto::sha256_hex(secret));
        let ok = self.ok.read().unwrap_or_else(|p| p.into_inner());
        ok.get(&key).is_some_and(|at| at.elapsed() < self.ttl)
    }

    pub fn remember(&self, client_id: &str, secret: &str) {
        if self.ttl.is_zero() {
            return;
        }
        let mut ok = self.ok.write().unwrap_or_else(|p| p.into_inner());
        if ok.len() >= MAX_PER_SHARD {
            ok.clear();
        }
        ok.insert(
            (client_id.to_string(), crate::crypto::sha256_hex(secret)),
            Instant::now(),
        );
    }

    /// Forgets every cached authentication of a client (secret rotated, client deleted).
    pub fn forget_client(&self, client_id: &str) {
        self.ok
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(id, _), _| id != client_id);
    }
}
