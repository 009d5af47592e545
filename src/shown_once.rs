//! One-time display of a new secret on the pages (docs/spec.md §6: a page that shows a
//! secret once is never re-created by reloading or resubmitting it).
//!
//! A page form that creates a key or a client, or rotates a client secret, does the change
//! and answers 303 to a GET address carrying a slot id (post/redirect/get). The secret waits
//! in that slot, in memory, bound to the login session (by its id hash) and for at most
//! [`TTL_SECONDS`]; the first GET with that session takes it out, so a reload finds the slot
//! empty and the page says the secret was already shown. Nothing is created by a GET, so no
//! reload or back-and-forward ever makes a second key or client.
//!
//! Slots live in the instance that made them: behind a load balancer the redirect must reach
//! the same instance (the GET follows the POST at once; sticky sessions, or one instance
//! per address as in docker-compose.yml). Otherwise the page says the secret was already
//! shown and the person revokes and recreates it.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api_keys::store::CreatedApiKey;
use crate::clock::Timestamp;

/// How long a secret waits for its page, seconds.
pub const TTL_SECONDS: i64 = 300;
/// At most this many slots are kept (the oldest expire first); a flood of form posts cannot
/// grow memory without bound.
const MAX_SLOTS: usize = 10_000;

/// What a slot holds: the secret and what the page shows with it.
pub enum Shown {
    /// A new API key (`/settings/api-keys`).
    ApiKey(CreatedApiKey),
    /// A newly registered client (`/developer/clients`): its id and, if confidential, secret.
    Client {
        client_id: String,
        secret: Option<String>,
    },
    /// A rotated client secret (`/developer/clients/{id}`): the new secret and when the old
    /// ones stop (as the page shows times).
    ClientSecret {
        client_id: String,
        secret: String,
        old_until: String,
    },
}

struct Slot {
    session: String,
    expires_at: Timestamp,
    shown: Shown,
}

/// The slots of this instance.
#[derive(Default)]
pub struct ShownOnce {
    slots: Mutex<HashMap<String, Slot>>,
}

/// Never prints a secret: only how many slots wait.
impl std::fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("ShownOnce")
            .field("waiting", &waiting)
            .finish()
    }
}

impl ShownOnce {
    /// Keeps `shown` for the session whose id hash is `session` until `now + TTL_SECONDS`;
    /// returns the slot id (random, 22 base62 characters) for the redirect address.
    pub fn put(&self, session: &str, now: Timestamp, shown: Shown) -> String {
        let id = crate::crypto::random_base62(22);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= MAX_SLOTS {
            slots.retain(|_, s| s.expires_at > now);
        }
        if slots.len() >= MAX_SLOTS
            && let Some(oldest) = slots
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| k.clone())
        {
            slots.remove(&oldest);
        }
        slots.insert(
            id.clone(),
            Slot {
                session: session.to_string(),
                expires_at: now + TTL_SECONDS,
                shown,
            },
        );
        id
    }

    /// Takes the slot `id` out if it belongs to `session` and has not expired: `Some` once,
    /// `None` ever after (and for another session, which leaves the slot alone).
    pub fn take(&self, session: &str, id: &str, now: Timestamp) -> Option<Shown> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.get(id)?;
        if slot.session != session {
            return None;
        }
        let slot = slots.remove(id)?;
        (slot.expires_at > now).then_some(slot.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Shown {
        Shown::Client {
            client_id: "cli_1".into(),
            secret: Some("tsr_cs_x".into()),
        }
    }

    #[test]
    fn a_slot_is_taken_once_by_its_own_session_before_it_expires() {
        let store = ShownOnce::default();
        let id = store.put("s1", 100, client());
        assert!(store.take("s2", &id, 101).is_none(), "another session");
        assert!(store.take("s1", &id, 101).is_some(), "its session, once");
        assert!(store.take("s1", &id, 102).is_none(), "a reload");
        let late = store.put("s1", 100, client());
        assert!(
            store.take("s1", &late, 100 + TTL_SECONDS).is_none(),
            "expired"
        );
        assert!(store.take("s1", "unknown", 100).is_none());
    }

    #[test]
    fn slots_are_bounded() {
        let store = ShownOnce::default();
        for _ in 0..(MAX_SLOTS + 5) {
            store.put("s", 0, client());
        }
        let len = store.slots.lock().map(|s| s.len()).unwrap_or(0);
        assert_eq!(len, MAX_SLOTS);
    }
}
