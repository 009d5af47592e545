//! The state every request shares (settings, pool, clock, keys, caches, throttles), and
//! [`Ctx`], the slice of it a feature operation needs. Built by `startup`; read by `http`
//! and the feature modules alike, so the arrows point one way: `http` → features → `db`.

use std::sync::Arc;

use crate::clock::{SharedClock, Timestamp};
use crate::config::Settings;
use crate::db::DbPool;
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::tokens::keys::Keystore;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub settings: Settings,
    /// The configured issuer, or `http://<bound address>`.
    pub issuer: String,
    pub audience: String,
    pub pool: DbPool,
    pub clock: SharedClock,
    pub keys: Arc<Keystore>,
    pub metrics: Metrics,
    pub login_throttle: crate::throttle::FailureThrottle,
    /// Failed client authentications at the token endpoint (docs/security.md K2).
    pub client_auth_throttle: crate::throttle::FailureThrottle,
    /// Fetches of client ID metadata documents not in the fetcher's cache, per URL and
    /// address (docs/spec.md §8): `http::client_metadata::resolve`.
    pub document_fetches: crate::throttle::FailureThrottle,
    /// Inactive introspection answers per caller (docs/security.md G4: token scanning).
    pub introspection_throttle: crate::throttle::FailureThrottle,
    /// Wrong user codes at `/device` per session and per IP (docs/security.md K5).
    pub device_code_throttle: crate::throttle::FailureThrottle,
    /// At most this many argon2 computations at once (docs/security.md K3).
    pub password_slots: tokio::sync::Semaphore,
    /// Per-key rate-limit windows and batched last-used times.
    pub api_keys: crate::api_keys::verify::KeyRuntime,
    /// JWT liveness (not revoked a moment ago), see `tokens::cache`.
    pub live_tokens: crate::tokens::cache::LiveTokens,
    /// Clients' organizations for the gateway check (docs/spec.md §11).
    pub gateway_orgs: crate::gateway::ClientOrgs,
    /// Verified against when an email is unknown, so both failures cost the same (H6).
    pub dummy_password_hash: String,
    /// The guarded fetcher of client-supplied URLs and its cache (docs/spec.md §8,
    /// docs/security.md K6).
    pub fetcher: crate::fetch::Fetcher,
    /// SQLite's writer thread for the token endpoint's grant transactions (group commit,
    /// docs/architecture.md §6.1); `None` on PostgreSQL.
    pub group_commit: Option<crate::db::group_commit::GroupCommit>,
    /// New secrets waiting for their one-time page (post/redirect/get, docs/spec.md §6).
    pub shown_once: crate::shown_once::ShownOnce,
}

impl AppState {
    /// What token issuance needs, at the current time.
    pub fn issuing(&self) -> crate::oauth::token::Issuing<'_> {
        crate::oauth::token::Issuing {
            settings: &self.settings,
            issuer: &self.issuer,
            audience: &self.audience,
            keys: &self.keys,
            now: self.clock.now(),
            group_commit: self.group_commit.as_ref(),
        }
    }

    /// The context of one operation, at the current time.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            settings: &self.settings,
            now: self.clock.now(),
            key_runtime: Some(&self.api_keys),
            live_tokens: Some(&self.live_tokens),
            metrics: Some(&self.metrics),
        }
    }

    /// A pooled connection; pool exhaustion or an unreachable database is
    /// [`AppError::Unavailable`] (503).
    pub fn conn(&self) -> Result<diesel::r2d2::PooledConnection<crate::db::DbManager>, AppError> {
        self.pool
            .get()
            .map_err(|e| AppError::Unavailable(Box::new(e)))
    }
}

/// What a feature operation needs besides its connection: the settings, the time, and
/// this instance's caches to void after a change (absent in the CLI: running servers
/// learn of the change through the audit-log poll, `startup::poll_credential_changes`).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub now: Timestamp,
    pub key_runtime: Option<&'a crate::api_keys::verify::KeyRuntime>,
    pub live_tokens: Option<&'a crate::tokens::cache::LiveTokens>,
    /// This instance's counters (docs/spec.md §7); absent in the CLI.
    pub metrics: Option<&'a Metrics>,
}

impl<'a> Ctx<'a> {
    /// A context without caches, for the CLI.
    pub fn offline(settings: &'a Settings, now: Timestamp) -> Self {
        Self {
            settings,
            now,
            key_runtime: None,
            live_tokens: None,
            metrics: None,
        }
    }

    /// An API key was revoked: refused here from the next request on.
    pub fn key_revoked(&self, id: &str) {
        if let Some(rt) = self.key_runtime {
            rt.revoked(id);
        }
        self.revoked(crate::metrics::Revocation::ApiKey);
    }

    /// Counts a revocation (`tessera_revocations_total{kind}`, docs/spec.md §7).
    pub fn revoked(&self, kind: crate::metrics::Revocation) {
        if let Some(m) = self.metrics {
            m.revocation(kind);
        }
    }

    /// An API key's row changed (a roll shortened its life): re-read on next use.
    pub fn key_changed(&self, id: &str) {
        if let Some(rt) = self.key_runtime {
            rt.cache.evict_id(id);
        }
    }

    /// A client was deleted or its secret rotated: cached credentials and token answers
    /// are void from the next request on.
    pub fn client_changed(&self, client_id: &str) {
        if let Some(rt) = self.key_runtime {
            rt.clients.forget_client(client_id);
        }
        self.tokens_changed();
    }

    /// Grants or tokens were revoked: cached JWT liveness is void.
    pub fn tokens_changed(&self) {
        if let Some(t) = self.live_tokens {
            t.bump();
        }
    }
}
