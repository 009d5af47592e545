//! The Redis rate-limit store (`--rate-limit-store redis://HOST:PORT`, docs/spec.md §12):
//! every instance counts a key's window, and its organization's, in the same Redis, so a
//! key's limit holds exactly whichever instances its requests reach.
//!
//! One decision is one round trip: a Lua script (run atomically by Redis) reads the key's
//! window and the organization's, and spends `cost` from both only if it fits in both
//! (`INCRBY`, and `PEXPIRE` when the window is first used), which keeps "the tighter of
//! the key's own budget and what is left of the organization's" exact. Windows are the
//! same fixed, clock-aligned minutes as the in-process limiter ([`super::ratelimit`]),
//! so the answers and headers are the same.
//!
//! Redis unreachable: the decision fails closed with [`crate::error::AppError::Unavailable`]
//! (503) within [`TIMEOUT`]; after a failure, decisions answer 503 at once for
//! [`RETRY_EVERY`] and then one request tries a new connection, so tessera recovers by
//! itself when Redis is back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ratelimit::{Budget, OrgBudget, RateState, WINDOW_SECONDS, window_start};
use crate::clock::Timestamp;
use crate::error::AppError;

/// Deadline of connecting to Redis and of one round trip.
pub const TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, how long decisions answer 503 without trying Redis.
pub const RETRY_EVERY: Duration = Duration::from_millis(250);
/// Connections kept idle for reuse.
const MAX_IDLE: usize = 64;
/// A window's count lives one window longer than the window (windows are named by their
/// start, so an old one is never read again; this only frees the memory).
const TTL_MS: i64 = 2 * WINDOW_SECONDS * 1000;

/// KEYS[1]: the key's window; KEYS[2] (optional): the organization's.
/// ARGV: cost (0 = only read), key limit, TTL ms, organization limit.
/// Returns {admitted (0/1), key used, organization used}.
const SCRIPT: &str = r"
local cost = tonumber(ARGV[1])
local klimit = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local olimit = tonumber(ARGV[4])
local ku = tonumber(redis.call('GET', KEYS[1]) or '0')
local ou = 0
if #KEYS > 1 then ou = tonumber(redis.call('GET', KEYS[2]) or '0') end
local ok = 0
if cost > 0 and ku + cost <= klimit and (#KEYS < 2 or ou + cost <= olimit) then
  ok = 1
  ku = redis.call('INCRBY', KEYS[1], cost)
  if ku == cost then redis.call('PEXPIRE', KEYS[1], ttl) end
  if #KEYS > 1 then
    ou = redis.call('INCRBY', KEYS[2], cost)
    if ou == cost then redis.call('PEXPIRE', KEYS[2], ttl) end
  end
end
return {ok, ku, ou}
";

/// The Redis store's parsed setting and its connections.
pub struct RedisLimits {
    client: redis::Client,
    script: redis::Script,
    idle: Mutex<Vec<redis::Connection>>,
    /// Set after a failure; cleared by the next success.
    down: AtomicBool,
    /// When the next attempt may be made while `down`.
    next_try: Mutex<Instant>,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("addr", &self.client.get_connection_info().addr)
            .field("down", &self.down.load(Ordering::Relaxed))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the rate-limit store (Redis) is unreachable: {0}")]
struct StoreDown(String);

fn unavailable(why: impl std::fmt::Display) -> AppError {
    AppError::Unavailable(Box::new(StoreDown(why.to_string())))
}

impl RedisLimits {
    /// `url`: `redis://HOST:PORT` (optionally `/DB`, user and password as in the `redis`
    /// crate's URLs). Does not connect: an unreachable Redis shows in the first decision.
    /// Errors: a message naming what is wrong with the URL.
    pub fn new(url: &str) -> Result<Self, String> {
        if !url.starts_with("redis://") {
            return Err(format!("{url:?} is not a redis://HOST:PORT address"));
        }
        let client = redis::Client::open(url).map_err(|e| format!("{url:?}: {e}"))?;
        Ok(Self {
            client,
            script: redis::Script::new(SCRIPT),
            idle: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            next_try: Mutex::new(Instant::now()),
        })
    }

    /// Spends `cost` (≥ 1) units of the key's window and of its organization's, in one
    /// atomic round trip, if both have that much left; otherwise spends nothing. Returns
    /// whether it was admitted and the state after it, like
    /// [`super::ratelimit::RateLimiter::spend`]. Errors: 503 when Redis does not answer
    /// within [`TIMEOUT`].
    pub fn spend(
        &self,
        key_id: &str,
        limit: i64,
        org: Option<OrgBudget<'_>>,
        cost: i64,
        now: Timestamp,
    ) -> Result<(bool, RateState), AppError> {
        self.run(key_id, limit, org, cost.max(1), now)
    }

    /// The state without spending anything (introspection). Errors: as [`Self::spend`].
    pub fn peek(
        &self,
        key_id: &str,
        limit: i64,
        org: Option<OrgBudget<'_>>,
        now: Timestamp,
    ) -> Result<RateState, AppError> {
        self.run(key_id, limit, org, 0, now).map(|(_, s)| s)
    }

    fn run(
        &self,
        key_id: &str,
        limit: i64,
        org: Option<OrgBudget<'_>>,
        cost: i64,
        now: Timestamp,
    ) -> Result<(bool, RateState), AppError> {
        let start = window_start(now);
        let mut inv = self.script.prepare_invoke();
        inv.key(format!("tessera:rl:{key_id}:{start}"));
        if let Some(o) = org {
            inv.key(format!("tessera:rl:{}:{start}", o.org_id));
        }
        inv.arg(cost)
            .arg(limit)
            .arg(TTL_MS)
            .arg(org.map_or(0, |o| o.limit));
        let (ok, key_used, org_used): (i64, i64, i64) = self.with_connection(|c| inv.invoke(c))?;
        let budget = |limit: i64, used: i64| Budget {
            limit,
            remaining: (limit - used).max(0),
        };
        let state = RateState::new(
            budget(limit, key_used),
            org.map(|o| budget(o.limit, org_used)),
            now,
        );
        Ok((ok == 1, state))
    }

    /// Runs `f` on an idle connection, or a new one. A pooled connection that turns out
    /// dead (Redis restarted) is dropped with the other idle ones and `f` runs once more
    /// on a fresh connection.
    fn with_connection<T>(
        &self,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, AppError> {
        if self.down.load(Ordering::Acquire) {
            let mut next = self.next_try.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if now < *next {
                return Err(unavailable("retrying shortly"));
            }
            // This request probes; the others keep failing fast until it is done.
            *next = now + RETRY_EVERY;
        }
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(mut conn) = pooled {
            match f(&mut conn) {
                Ok(v) => {
                    self.give_back(conn);
                    return Ok(v);
                }
                Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                    self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
                }
                Err(e) => return Err(self.failed(e)),
            }
        }
        let mut conn = self.connect().map_err(|e| self.failed(e))?;
        match f(&mut conn) {
            Ok(v) => {
                self.give_back(conn);
                Ok(v)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let conn = self.client.get_connection_with_timeout(TIMEOUT)?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        conn.set_write_timeout(Some(TIMEOUT))?;
        Ok(conn)
    }

    fn give_back(&self, conn: redis::Connection) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("rate-limit store (Redis) reachable again");
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    fn failed(&self, e: redis::RedisError) -> AppError {
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(error = %e, "rate-limit store (Redis) unreachable: decisions answer 503");
        }
        *self.next_try.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now() + RETRY_EVERY;
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        unavailable(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_redis_urls_are_accepted() {
        assert!(RedisLimits::new("redis://127.0.0.1:6379").is_ok());
        assert!(RedisLimits::new("http://127.0.0.1:6379").is_err());
        assert!(RedisLimits::new("127.0.0.1:6379").is_err());
    }

    #[test]
    fn an_unreachable_store_fails_closed_fast() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let Ok(store) = RedisLimits::new("redis://127.0.0.1:1") else {
            unreachable!("a valid URL")
        };
        let t = Instant::now();
        assert!(matches!(
            store.spend("key_a", 10, None, 1, 1_800_000_000),
            Err(AppError::Unavailable(_))
        ));
        // The next one does not even try.
        assert!(store.peek("key_a", 10, None, 1_800_000_000).is_err());
        assert!(t.elapsed() < TIMEOUT * 2);
    }
}
