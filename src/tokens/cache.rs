//! "This exact access token verified and was not revoked a moment ago", cached per token
//! string for `--cache-ttl-ms`: a hit skips the signature check (an ECDSA verification is
//! most of the cost of JWT introspection) and the revocation lookups (the `jti` list and
//! the token's grant). The lifetime claims (`exp`, `nbf`, `iat`) are still checked against
//! the clock on every hit. Invalidation:
//! - a revocation on this instance bumps the epoch after it commits ([`LiveTokens::bump`]),
//!   which voids every entry at once (revocations are rare; the cache refills);
//! - revocations on other instances are found by the 100 ms poll of `grants.revoked_at`
//!   and `revoked_jtis.revoked_at`, which bumps the epoch when it sees one it has not seen.
//!
//! An entry records the epoch read *before* its database lookup, so a lookup racing a
//! revocation can never store a stale "live" under the new epoch.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use moka::sync::Cache;

use super::jwt::AccessTokenClaims;
use crate::api_keys::cache::{Health, bounded};
use crate::clock::Timestamp;

/// About 50 MB at most (a token and its claims are ~1 kB).
const MAX_ENTRIES: u64 = 50_000;

/// (epoch read before the lookup, the token's verified claims)
type Entry = (u64, Arc<AccessTokenClaims>);

pub struct LiveTokens {
    epoch: AtomicU64,
    /// token → its entry; `None` when the TTL is zero (caching disabled). Entries of an
    /// older epoch are never served and leave at the TTL or when room is needed.
    live: Option<Cache<String, Entry>>,
    /// Revocations the poll has already acted on (id → when seen), pruned after the
    /// poll's overlap window.
    seen: RwLock<HashMap<String, Timestamp>>,
}

impl fmt::Debug for LiveTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveTokens")
            .field("epoch", &self.epoch)
            .field("entries", &self.live.as_ref().map(Cache::entry_count))
            .finish()
    }
}

impl LiveTokens {
    pub fn new(ttl: Duration) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            live: bounded(ttl, MAX_ENTRIES),
            seen: RwLock::default(),
        }
    }

    /// The epoch to pass to [`Self::remember`], read before the database lookup.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Voids every entry (a revocation committed, here or elsewhere).
    pub fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The claims of `token` if it verified and was live within the TTL and no
    /// revocation has happened since. The caller still checks the lifetime claims.
    pub fn get(&self, token: &str, health: &Health) -> Option<Arc<AccessTokenClaims>> {
        let live = self.live.as_ref()?;
        if !health.fresh() {
            return None;
        }
        let now_epoch = self.epoch();
        live.get(token)
            .filter(|(e, _)| *e == now_epoch)
            .map(|(_, c)| c)
    }

    pub fn remember(&self, token: &str, claims: AccessTokenClaims, epoch: u64) {
        if let Some(live) = &self.live {
            live.insert(token.to_string(), (epoch, Arc::new(claims)));
        }
    }

    /// Acts on the revocations a poll found: bumps the epoch if any is new. `now` and
    /// `keep` prune what was seen long enough ago to have left the poll window.
    pub fn saw_revocations(&self, ids: Vec<String>, now: Timestamp, keep: i64) {
        let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
        let mut new = false;
        for id in ids {
            if seen.insert(id, now).is_none() {
                new = true;
            }
        }
        seen.retain(|_, t| *t >= now - keep);
        drop(seen);
        if new {
            self.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Health {
        let h = Health::default();
        h.mark_ok();
        h
    }

    fn claims(jti: &str) -> AccessTokenClaims {
        serde_json::from_value(serde_json::json!({
            "iss": "i", "sub": "s", "aud": "a", "exp": 10, "iat": 0, "jti": jti,
            "client_id": "c", "scope": "x"
        }))
        .expect("claims")
    }

    #[test]
    fn a_bump_voids_entries_and_a_racing_lookup_stays_void() {
        let h = healthy();
        let c = LiveTokens::new(Duration::from_secs(1));
        let before = c.epoch();
        c.remember("a", claims("a"), before);
        assert_eq!(c.get("a", &h).expect("hit").jti, "a");
        // A lookup started before a revocation committed...
        let racing = c.epoch();
        c.bump();
        // ...stores its answer afterwards: it does not count.
        c.remember("b", claims("b"), racing);
        assert!(c.get("a", &h).is_none());
        assert!(c.get("b", &h).is_none());
    }

    #[test]
    fn the_poll_bumps_only_for_revocations_it_has_not_seen() {
        let h = healthy();
        let c = LiveTokens::new(Duration::from_secs(1));
        c.saw_revocations(vec!["g1".into()], 100, 5);
        c.remember("t", claims("t"), c.epoch());
        c.saw_revocations(vec!["g1".into()], 101, 5);
        assert!(c.get("t", &h).is_some(), "already seen: no bump");
        c.saw_revocations(vec!["g1".into(), "g2".into()], 102, 5);
        assert!(c.get("t", &h).is_none());
    }

    #[test]
    fn nothing_is_served_without_a_recent_successful_poll() {
        let c = LiveTokens::new(Duration::from_secs(1));
        c.remember("t", claims("t"), c.epoch());
        assert!(c.get("t", &Health::default()).is_none());
    }
}
