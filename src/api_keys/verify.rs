//! Checking a presented API key: the one decision behind `/api/v1/keys/verify`, bearer
//! authentication on `/api/v1` and introspection. A malformed key or a bad checksum is
//! refused before any database work; a well-formed one costs one indexed lookup. Nothing
//! here writes to the database: use counts and `last_used_at` live in memory
//! ([`super::ratelimit`]) and [`flush`] writes them in batches.

use std::sync::Arc;

use diesel::prelude::*;

use super::KeyType;
use super::cache::{CredentialCache, Health, KeyCache};
use super::format;
use super::ratelimit::{OrgBudget, RateLimiter, RateState, UsageTracker};
use crate::clock::Timestamp;
use crate::config::PlanLimits;
use crate::db::DbConnection;
use crate::db::schema::{api_keys, organizations, rate_limit_windows};
use crate::error::AppError;
use crate::orgs::Plan;
use crate::scope::ScopeSet;

/// The verdict codes of docs/spec.md §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    Valid,
    NotFound,
    Expired,
    Revoked,
    InsufficientScope,
    RateLimited,
}

impl Code {
    pub const ALL: [Code; 6] = [
        Self::Valid,
        Self::NotFound,
        Self::Expired,
        Self::Revoked,
        Self::InsufficientScope,
        Self::RateLimited,
    ];

    /// The code as the verify answer spells it (docs/spec.md §5).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::NotFound => "NOT_FOUND",
            Self::Expired => "EXPIRED",
            Self::Revoked => "REVOKED",
            Self::InsufficientScope => "INSUFFICIENT_SCOPE",
            Self::RateLimited => "RATE_LIMITED",
        }
    }
}

/// The stored facts about a key that a decision needs.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: String,
    pub org_id: String,
    pub key_type: KeyType,
    pub scopes: ScopeSet,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// The key's per-minute limit (its own, else its organization's plan's).
    pub limit: i64,
    /// The organization's per-minute budget shared by all its keys, if it has one
    /// (docs/spec.md §10).
    pub org_limit: Option<i64>,
}

impl KeyRecord {
    /// The organization's budget, for the limiter.
    pub fn org_budget(&self) -> Option<OrgBudget<'_>> {
        self.org_limit.map(|limit| OrgBudget {
            org_id: &self.org_id,
            limit,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_keys)]
struct Row {
    id: String,
    org_id: String,
    key_type: KeyType,
    scope: String,
    created_by: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    rate_limit_per_minute: Option<i64>,
}

/// Looks a key up by its digest.
pub fn lookup(
    conn: &mut DbConnection,
    hash: &str,
    plans: &PlanLimits,
) -> QueryResult<Option<KeyRecord>> {
    let found: Option<(Row, Plan, Option<i64>)> = api_keys::table
        .inner_join(organizations::table)
        .filter(api_keys::key_hash.eq(hash))
        .select((
            Row::as_select(),
            organizations::plan,
            organizations::rate_limit_per_minute,
        ))
        .first(conn)
        .optional()?;
    Ok(found.map(|(r, plan, org_limit)| KeyRecord {
        limit: super::store::effective_limit(r.rate_limit_per_minute, plan, plans),
        org_limit,
        id: r.id,
        org_id: r.org_id,
        key_type: r.key_type,
        // Stored scopes were validated on the way in; an unreadable value grants nothing.
        scopes: ScopeSet::parse(&r.scope).unwrap_or_default(),
        created_by: r.created_by,
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
    }))
}

/// The outcome of checking one key.
#[derive(Debug, Clone)]
pub struct Verification {
    pub code: Code,
    /// Set whenever the key exists (whatever the verdict); shared with the key cache, so a
    /// cached answer clones a pointer, not the record and its scope set.
    pub key: Option<Arc<KeyRecord>>,
    /// Set whenever the key is live (`VALID`, `INSUFFICIENT_SCOPE`, `RATE_LIMITED`): the
    /// X-RateLimit facts. A key that is not (`NOT_FOUND`, `REVOKED`, `EXPIRED`) has no
    /// budget to report (docs/spec.md §5).
    pub rate: Option<RateState>,
}

impl Verification {
    pub fn valid(&self) -> bool {
        self.code == Code::Valid
    }
    fn not_found() -> Self {
        Self {
            code: Code::NotFound,
            key: None,
            rate: None,
        }
    }
}

/// In-memory state shared by every check.
#[derive(Debug)]
pub struct KeyRuntime {
    pub limiter: RateLimiter,
    pub usage: UsageTracker,
    /// Answers per key, hour and code, for `usage::store::flush` (docs/spec.md §10).
    pub hourly: crate::usage::Counter,
    pub cache: KeyCache,
    pub clients: CredentialCache,
    pub health: Health,
    /// `--rate-limit-store redis://…`: windows counted in Redis instead of `limiter`
    /// (docs/spec.md §12).
    pub store: Option<super::redis_limits::RedisLimits>,
    /// Held for a whole [`flush`]: a flush that starts while another runs waits for it, so
    /// when `flush` returns, every count recorded before the call is in the database (the
    /// background flush and a shutdown or test flush never overlap).
    flushing: parking_lot::Mutex<()>,
}

impl KeyRuntime {
    /// `cache_ttl`: how long a looked-up key or resource-server credential is reused
    /// (`--cache-ttl-ms`; zero disables both caches). `store`: the Redis rate-limit store,
    /// if configured.
    pub fn new(
        cache_ttl: std::time::Duration,
        store: Option<super::redis_limits::RedisLimits>,
    ) -> Self {
        Self {
            limiter: RateLimiter::default(),
            usage: UsageTracker::default(),
            hourly: crate::usage::Counter::default(),
            cache: KeyCache::new(cache_ttl),
            clients: CredentialCache::new(cache_ttl),
            health: Health::default(),
            store,
            flushing: parking_lot::Mutex::new(()),
        }
    }

    /// Spends `cost` from the key's window and its organization's (docs/spec.md §5, §10),
    /// in Redis when configured, else in process. Errors: 503 when Redis is unreachable.
    pub fn spend(
        &self,
        key: &KeyRecord,
        cost: i64,
        now: Timestamp,
    ) -> Result<(bool, RateState), AppError> {
        match &self.store {
            Some(s) => s.spend(&key.id, key.limit, key.org_budget(), cost, now),
            None => Ok(self
                .limiter
                .spend(&key.id, key.limit, key.org_budget(), cost, now)),
        }
    }

    /// The key's state without spending. Errors: as [`Self::spend`].
    pub fn peek(&self, key: &KeyRecord, now: Timestamp) -> Result<RateState, AppError> {
        match &self.store {
            Some(s) => s.peek(&key.id, key.limit, key.org_budget(), now),
            None => Ok(self.limiter.peek(&key.id, key.limit, key.org_budget(), now)),
        }
    }

    /// After a revocation on this instance: refused from the next request on.
    pub fn revoked(&self, key_id: &str) {
        self.cache.evict_id(key_id);
        self.limiter.forget(key_id);
    }
}

/// A presented key resolved without the database, when possible.
pub enum Resolved {
    /// Not a well-formed key: unknown, no database work.
    Malformed,
    Hit(Arc<KeyRecord>),
    /// Well formed, not cached: look up this digest.
    Miss(String),
}

pub fn resolve(rt: &KeyRuntime, prefix: &str, presented: &str) -> Resolved {
    let Ok((_, plain)) = format::parse(presented, prefix) else {
        return Resolved::Malformed;
    };
    let hash = plain.hash();
    match rt.cache.get(&hash, &rt.health) {
        Some(rec) => Resolved::Hit(rec),
        None => Resolved::Miss(hash),
    }
}

/// [`check`] as far as it goes without the database: `Ok(Ok(_))` the verdict for a
/// malformed or a cached key, or `Ok(Err(digest))` to look up ([`check_digest`]), so a miss
/// does not parse and hash the key twice. Errors: 503 when the rate-limit store is
/// unreachable.
pub fn check_cached(
    rt: &KeyRuntime,
    prefix: &str,
    presented: &str,
    required: &ScopeSet,
    counting: Counting,
    now: Timestamp,
) -> Result<Result<Verification, String>, AppError> {
    Ok(match resolve(rt, prefix, presented) {
        Resolved::Malformed => Ok(Verification::not_found()),
        Resolved::Hit(key) => Ok(decide(rt, key, required, counting, now)?),
        Resolved::Miss(hash) => Err(hash),
    })
}

/// The rest of [`check`] for a well-formed key that was not cached: one indexed lookup.
pub fn check_digest(
    conn: &mut DbConnection,
    rt: &KeyRuntime,
    plans: &PlanLimits,
    hash: &str,
    required: &ScopeSet,
    counting: Counting,
    now: Timestamp,
) -> Result<Verification, AppError> {
    let Some(key) = lookup(conn, hash, plans)? else {
        return Ok(Verification::not_found());
    };
    let key = Arc::new(key);
    if key.revoked_at.is_none() {
        rt.cache.put(hash, &key);
    }
    decide(rt, key, required, counting, now)
}

/// Whether a check spends the key's budget, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Bearer use: one unit.
    Count,
    /// `/api/v1/keys/verify` and gateway routes: `cost` units, 1–1000 (docs/spec.md §10).
    Cost(i64),
    /// Introspection: the same facts, nothing spent.
    Peek,
}

/// The largest `cost` one request may spend (docs/spec.md §10).
pub const MAX_COST: i64 = 1000;

/// Checks `presented` and, if it is good and `counting` says so, spends its cost.
/// Order: unknown, revoked, expired, missing scope, then the rate limit. Only a request
/// that would otherwise be valid is counted. Errors: the database's, and 503 when the
/// rate-limit store is unreachable.
#[allow(clippy::too_many_arguments)]
pub fn check(
    conn: &mut DbConnection,
    rt: &KeyRuntime,
    plans: &PlanLimits,
    prefix: &str,
    presented: &str,
    required: &ScopeSet,
    counting: Counting,
    now: Timestamp,
) -> Result<Verification, AppError> {
    match check_cached(rt, prefix, presented, required, counting, now)? {
        Ok(v) => Ok(v),
        Err(hash) => check_digest(conn, rt, plans, &hash, required, counting, now),
    }
}

/// The decision once the key is known. Errors: 503 when the rate-limit store is
/// unreachable (never a verdict in the caller's favour).
pub fn decide(
    rt: &KeyRuntime,
    key: Arc<KeyRecord>,
    required: &ScopeSet,
    counting: Counting,
    now: Timestamp,
) -> Result<Verification, AppError> {
    let peek = |code| -> Result<_, AppError> { Ok((code, Some(rt.peek(&key, now)?))) };
    let (code, rate) = if key.revoked_at.is_some_and(|r| r <= now) {
        (Code::Revoked, None)
    } else if key.expires_at.is_some_and(|e| e <= now) {
        (Code::Expired, None)
    } else if !required.is_subset(&key.scopes) {
        peek(Code::InsufficientScope)?
    } else if counting == Counting::Peek {
        peek(Code::Valid)?
    } else {
        let cost = match counting {
            Counting::Cost(c) => c,
            Counting::Count | Counting::Peek => 1,
        };
        let (admitted, rate) = rt.spend(&key, cost, now)?;
        if admitted {
            rt.usage.touch(&key.id, now);
            (Code::Valid, Some(rate))
        } else {
            (Code::RateLimited, Some(rate))
        }
    };
    // Every counted answer (a bearer use, a verify with any cost) is one request in the
    // usage (docs/spec.md §10); a peek is not. A key refused for its scopes was still
    // presented by someone who holds it: that is a use (`last_used_at`).
    if counting != Counting::Peek {
        rt.hourly.record(&key.org_id, &key.id, code, now);
        if code == Code::InsufficientScope {
            rt.usage.touch(&key.id, now);
        }
    }
    Ok(Verification {
        code,
        rate,
        key: Some(key),
    })
}

/// Writes batched `last_used_at` times and this instance's request counts, then reads the
/// shared counts back so every instance sees what the others admitted. Called every
/// `FLUSH_INTERVAL` by the server and at shutdown; flushes run one at a time.
pub fn flush(conn: &mut DbConnection, rt: &KeyRuntime, now: Timestamp) -> QueryResult<()> {
    let _one_at_a_time = rt.flushing.lock();
    let used = rt.usage.take();
    let counts = rt.limiter.take_unflushed(now);
    let written = crate::db::write_tx(conn, |conn| -> QueryResult<()> {
        for (id, t) in &used {
            diesel::update(
                api_keys::table.find(id).filter(
                    api_keys::last_used_at
                        .is_null()
                        .or(api_keys::last_used_at.lt(*t)),
                ),
            )
            .set(api_keys::last_used_at.eq(*t))
            .execute(conn)?;
        }
        for (id, start, delta) in &counts {
            add_count(conn, id, *start, *delta)?;
        }
        diesel::delete(
            rate_limit_windows::table.filter(
                rate_limit_windows::window_start
                    .lt(super::ratelimit::window_start(now) - super::ratelimit::WINDOW_SECONDS),
            ),
        )
        .execute(conn)?;
        Ok(())
    });
    if let Err(e) = &written {
        // Nothing is lost: both batches go back and the next flush retries them.
        tracing::debug!(error = %e, "rate-limit counts not written; retrying next flush");
        rt.usage.restore(used);
        rt.limiter.restore_unflushed(&counts);
    }
    // The others' counts are read back even when ours could not be written, so this
    // instance's view of them is never older than one flush period.
    let start = super::ratelimit::window_start(now);
    for chunk in rt.limiter.active_keys(now).chunks(500) {
        let totals: Vec<(String, i64)> = rate_limit_windows::table
            .filter(rate_limit_windows::window_start.eq(start))
            .filter(rate_limit_windows::key_id.eq_any(chunk))
            .select((rate_limit_windows::key_id, rate_limit_windows::count))
            .load(conn)?;
        for (id, total) in totals {
            rt.limiter.set_shared_total(&id, start, total);
        }
    }
    written
}

/// Adds `delta` to a key's shared window count. Update first; insert when the row is not
/// there yet, in a savepoint: when another instance inserted the same window at the same
/// moment (PostgreSQL; on SQLite the caller's write transaction keeps others out), only
/// the savepoint is rolled back and the update is made again, so the rest of the batch
/// is not lost and the count is not delayed by a flush period.
fn add_count(conn: &mut DbConnection, id: &str, start: Timestamp, delta: i64) -> QueryResult<()> {
    let update = |conn: &mut DbConnection| {
        diesel::update(
            rate_limit_windows::table
                .filter(rate_limit_windows::key_id.eq(id))
                .filter(rate_limit_windows::window_start.eq(start)),
        )
        .set(rate_limit_windows::count.eq(rate_limit_windows::count + delta))
        .execute(conn)
    };
    if update(conn)? > 0 {
        return Ok(());
    }
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(rate_limit_windows::table)
            .values((
                rate_limit_windows::key_id.eq(id),
                rate_limit_windows::window_start.eq(start),
                rate_limit_windows::count.eq(delta),
            ))
            .execute(conn)
    });
    match inserted {
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => update(conn).map(|_| ()),
        other => other.map(|_| ()),
    }
}
