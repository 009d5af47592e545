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
//! Only positive answers are cached, so a flood of random keys cannot fill memory. The
//! caches are `moka` caches (docs/architecture.md §5): concurrent, bounded by entry count,
//! every entry expiring at the TTL.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::verify::KeyRecord;
use crate::clock::Timestamp;

/// The default period of the change poll (`--change-poll-interval-ms`).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Cached answers are used only while the last successful poll is this recent (or three
/// poll periods, when `--change-poll-interval-ms` makes that longer; [`Health::poll_every`]).
pub const HEALTH_WINDOW: Duration = Duration::from_millis(500);
/// About 260,000 keys (~80 MB) at most.
const MAX_KEYS: u64 = 262_144;
/// Resource-server credentials: (client id, secret digest) pairs.
const MAX_CREDENTIALS: u64 = 16_384;
/// moka refuses a TTL above 1000 years; a longer `--cache-ttl-ms` is cut to this.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A cache whose entries expire `ttl` after they are stored, holding at most
/// `max_capacity` entries; `None` when `ttl` is zero (caching disabled).
pub(crate) fn bounded<K, V>(ttl: Duration, max_capacity: u64) -> Option<Cache<K, V>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    (!ttl.is_zero()).then(|| {
        Cache::builder()
            .max_capacity(max_capacity)
            .time_to_live(ttl.min(MAX_TTL))
            .build()
    })
}

/// When the database last answered the change poll.
#[derive(Debug)]
pub struct Health {
    epoch: Instant,
    last_ok_ms: AtomicU64,
    window_ms: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            // Nothing is served from a cache until the first poll has succeeded.
            last_ok_ms: AtomicU64::new(u64::MAX),
            window_ms: AtomicU64::new(HEALTH_WINDOW.as_millis() as u64),
        }
    }
}

impl Health {
    /// The poll runs every `period`: a successful poll keeps the caches trusted for
    /// [`HEALTH_WINDOW`] or three periods, whichever is longer.
    pub fn poll_every(&self, period: Duration) {
        let window = HEALTH_WINDOW.max(period * 3).as_millis() as u64;
        self.window_ms.store(window, Ordering::Relaxed);
    }
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
            && self.epoch.elapsed().as_millis() as u64
                <= last + self.window_ms.load(Ordering::Relaxed)
    }
}

pub struct KeyCache {
    by_hash: Option<Cache<String, Arc<KeyRecord>>>,
    /// key id → digest, to evict by id (the audit log names ids). Twice the room and
    /// least-recently-stored eviction, so an id is not dropped while its key is cached.
    ids: Option<Cache<String, String>>,
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("entries", &self.by_hash.as_ref().map(Cache::entry_count))
            .finish()
    }
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            by_hash: bounded(ttl, MAX_KEYS),
            ids: (!ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(2 * MAX_KEYS)
                    .eviction_policy(EvictionPolicy::lru())
                    .time_to_live(ttl.min(MAX_TTL))
                    .build()
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.by_hash.is_some()
    }

    pub fn get(&self, hash: &str, health: &Health) -> Option<Arc<KeyRecord>> {
        if !health.fresh() {
            return None;
        }
        self.by_hash.as_ref()?.get(hash)
    }

    pub fn put(&self, hash: &str, rec: &Arc<KeyRecord>) {
        let (Some(by_hash), Some(ids)) = (&self.by_hash, &self.ids) else {
            return;
        };
        by_hash.insert(hash.to_string(), Arc::clone(rec));
        ids.insert(rec.id.clone(), hash.to_string());
    }

    /// Forgets a key by id (revoked, rolled, changed).
    pub fn evict_id(&self, id: &str) {
        let (Some(by_hash), Some(ids)) = (&self.by_hash, &self.ids) else {
            return;
        };
        if let Some(h) = ids.remove(id) {
            by_hash.invalidate(&h);
        }
    }
}

/// The resource URIs a resource server registered (docs/spec.md §8), sorted; empty for
/// one with none (it sees every token).
pub type Resources = std::sync::Arc<[String]>;

/// A client that authenticated with a secret at the token endpoint, for the
/// `client_credentials` grant without the database (docs/architecture.md §5).
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client: Arc<crate::clients::store::ClientRow>,
    /// When the secret presented stops being accepted (a rotated secret's grace period),
    /// epoch seconds; `None`: never on its own.
    pub secret_expires_at: Option<Timestamp>,
}

/// The cache key of a (client id, secret) pair: SHA-256 over the id's length, the id and
/// the secret, so no plaintext secret is held and no two pairs share a key.
fn credential_key(client_id: &str, secret: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(client_id.len() as u64).to_be_bytes());
    ctx.update(client_id.as_bytes());
    ctx.update(secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A resource server's client id and resources.
type ResourceServer = (Arc<str>, Resources);

/// A cache of (client id, secret) keys whose entries `forget_client` can drop by client.
fn credential_cache<V: Clone + Send + Sync + 'static>(ttl: Duration) -> Option<Cache<[u8; 32], V>> {
    (!ttl.is_zero()).then(|| {
        Cache::builder()
            .max_capacity(MAX_CREDENTIALS)
            .time_to_live(ttl.min(MAX_TTL))
            // forget_client drops every secret of one client.
            .support_invalidation_closures()
            .build()
    })
}

/// Successful client authentications by secret: resource servers at introspection (with
/// their resources, so an introspection on the hot path restricts its answer without the
/// database) and clients at the token endpoint (the `client_credentials` grant without
/// the database, docs/spec.md §7).
pub struct CredentialCache {
    /// (client id, secret) key → the resource server's client id and resources.
    ok: Option<Cache<[u8; 32], ResourceServer>>,
    /// (client id, secret) key → the client it authenticated.
    clients: Option<Cache<[u8; 32], AuthenticatedClient>>,
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialCache")
            .field("entries", &self.ok.as_ref().map(Cache::entry_count))
            .field("clients", &self.clients.as_ref().map(Cache::entry_count))
            .finish()
    }
}

impl CredentialCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ok: credential_cache(ttl),
            clients: credential_cache(ttl),
        }
    }

    /// The resources of the resource server this id and secret authenticated within the
    /// TTL; `None` when not cached (or the database was unhealthy lately).
    pub fn check(&self, client_id: &str, secret: &str, health: &Health) -> Option<Resources> {
        let ok = self.ok.as_ref()?;
        if !health.fresh() {
            return None;
        }
        ok.get(&credential_key(client_id, secret))
            .map(|(_, resources)| resources)
    }

    pub fn remember(&self, client_id: &str, secret: &str, resources: Resources) {
        if let Some(ok) = &self.ok {
            ok.insert(
                credential_key(client_id, secret),
                (Arc::from(client_id), resources),
            );
        }
    }

    /// The client this id and secret authenticated within the TTL, if its secret is still
    /// good at `now`; `None` when not cached (or the database was unhealthy lately).
    pub fn client(
        &self,
        client_id: &str,
        secret: &str,
        health: &Health,
        now: Timestamp,
    ) -> Option<Arc<crate::clients::store::ClientRow>> {
        let clients = self.clients.as_ref()?;
        if !health.fresh() {
            return None;
        }
        let hit = clients.get(&credential_key(client_id, secret))?;
        (hit.client.id == client_id && hit.secret_expires_at.is_none_or(|e| now < e))
            .then_some(hit.client)
    }

    /// Remembers that `secret` authenticated `client` (its `id` is the presented id).
    pub fn remember_client(&self, secret: &str, entry: AuthenticatedClient) {
        if let Some(clients) = &self.clients {
            clients.insert(credential_key(&entry.client.id, secret), entry);
        }
    }

    /// Forgets every cached authentication of a client (secret rotated, client deleted or
    /// updated). From this call on no lookup returns an entry stored before it; moka
    /// removes them in its maintenance.
    pub fn forget_client(&self, client_id: &str) {
        if let Some(ok) = &self.ok {
            let id = client_id.to_string();
            if ok
                .invalidate_entries_if(move |_, (c, _)| **c == *id)
                .is_err()
            {
                // Only if closures were not enabled at build time; still void everything.
                ok.invalidate_all();
            }
        }
        if let Some(clients) = &self.clients {
            let id = client_id.to_string();
            if clients
                .invalidate_entries_if(move |_, v| v.client.id == id)
                .is_err()
            {
                clients.invalidate_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_keys::KeyType;

    fn healthy() -> Health {
        let h = Health::default();
        h.mark_ok();
        h
    }

    fn record(id: &str) -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: id.into(),
            org_id: "org".into(),
            key_type: KeyType::Secret,
            scopes: crate::scope::ScopeSet::default(),
            created_by: None,
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            limit: 60,
            org_limit: None,
        })
    }

    #[test]
    fn a_key_is_evicted_by_id() {
        let h = healthy();
        let c = KeyCache::new(Duration::from_secs(60));
        c.put("d1", &record("k1"));
        c.put("d2", &record("k2"));
        assert_eq!(c.get("d1", &h).expect("hit").id, "k1");
        c.evict_id("k1");
        assert!(c.get("d1", &h).is_none());
        assert!(c.get("d2", &h).is_some(), "other keys stay");
    }

    #[test]
    fn forgetting_a_client_drops_all_its_secrets_only() {
        let h = healthy();
        let c = CredentialCache::new(Duration::from_secs(60));
        c.remember("rs", "old", Resources::from(Vec::new()));
        c.remember("rs", "new", Resources::from(Vec::new()));
        c.remember("other", "s", Resources::from(Vec::new()));
        assert!(c.check("rs", "old", &h).is_some() && c.check("rs", "new", &h).is_some());
        assert!(c.check("rs", "wrong", &h).is_none());
        c.forget_client("rs");
        assert!(c.check("rs", "old", &h).is_none() && c.check("rs", "new", &h).is_none());
        assert!(c.check("other", "s", &h).is_some());
        c.remember("rs", "new", Resources::from(Vec::new()));
        assert!(
            c.check("rs", "new", &h).is_some(),
            "a later success is cached again"
        );
    }

    #[test]
    fn a_zero_ttl_caches_nothing_and_an_outage_bypasses_the_caches() {
        let h = healthy();
        let keys = KeyCache::new(Duration::ZERO);
        keys.put("d", &record("k"));
        assert!(!keys.enabled() && keys.get("d", &h).is_none());
        let creds = CredentialCache::new(Duration::ZERO);
        creds.remember("rs", "s", Resources::from(Vec::new()));
        assert!(creds.check("rs", "s", &h).is_none());

        let keys = KeyCache::new(Duration::from_secs(60));
        keys.put("d", &record("k"));
        assert!(keys.get("d", &Health::default()).is_none());
        h.mark_failed();
        assert!(keys.get("d", &h).is_none());
    }

    #[test]
    fn entries_expire_at_the_ttl() {
        let h = healthy();
        let c = KeyCache::new(Duration::from_millis(20));
        c.put("d", &record("k"));
        assert!(c.get("d", &h).is_some());
        let until = Instant::now() + Duration::from_millis(60);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        h.mark_ok();
        assert!(c.get("d", &h).is_none());
    }
}
