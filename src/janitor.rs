//! The janitor (docs/security.md R12, §2 "Cleanup"): deletes rows that can no longer decide
//! anything, in batches of [`BATCH`] rows per statement, each statement its own short
//! transaction, so that requests waiting for the same tables wait for one batch at most.
//!
//! The kinds of dead rows are the table [`STEPS`]: one [`Step`] per kind, each deleting at
//! most one batch per call ([`run_step`]) as of the [`Cutoffs`] of one `now` (the injected
//! clock). `startup::sweep_expired` (every `--cleanup-interval-seconds`) runs one batch per
//! blocking call, round-robin over the steps, pausing [`BATCH_PAUSE`] (or four times the
//! batch's duration) after a batch that deleted rows, and on SQLite first lets this
//! process's waiting writers through (`db::sqlite_writers`, at most [`YIELD_LIMIT`]): a
//! writer that sleeps in SQLite's busy handler would otherwise keep missing the short gaps
//! between batches. [`sweep`] runs every step to the end without pauses (tests, tools).
//!
//! Adding a kind of row: write its condition once in a [`dead_rows!`] step (or a function
//! of the [`Step::run`] type) and append it to [`STEPS`] with the table name the metrics
//! use (`tessera_janitor_deleted_rows_total{table}`); a new bound goes into [`Cutoffs`].
//!
//! What goes, and why it is safe (every bound is then pushed back by [`SKEW_MARGIN_SECONDS`]):
//! - authorization codes never redeemed, once expired: redeeming one answers `invalid_grant`
//!   either way;
//! - redeemed codes only once nothing bought with them can still be valid (code lifetime,
//!   refresh-token family lifetime, access-token lifetime, leeway): until then a replay must
//!   find the row and revoke the grant (C1);
//! - refresh tokens past their own expiry (idle or absolute): `oauth::refresh::rotate`
//!   answers "expired" for them before it looks at rotation, so a rotated one past its
//!   expiry no longer takes the reuse path (E2), and introspection calls it inactive;
//! - grants with no code and no refresh token left, once every access token they could have
//!   issued has expired;
//! - revoked `jti` entries once the token is past `exp` plus the JWT leeway (F7): no
//!   verifier accepts it any more; likewise used client-assertion `jti`s (RFC 7523,
//!   docs/security.md D13): an assertion past `exp` plus the leeway is refused anyway;
//! - sessions, pending authorization requests and device codes (RFC 8628) past `expires_at`;
//! - API-key usage counts (docs/spec.md §10) older than `--usage-retention-days`, one UTC
//!   hour per step;
//! - clients registered without a credential that obtained no token for
//!   `--open-registration-idle-days` (docs/spec.md §8,
//!   `clients::open_registration::prune_idle`).

use std::collections::BTreeMap;

use diesel::dsl::{exists, not};
use diesel::prelude::*;

use crate::clock::Timestamp;
use crate::config::Settings;
use crate::db::DbConnection;
use crate::db::schema::{
    authorization_codes, client_assertion_jtis, grants, pending_authorizations, refresh_tokens,
    revoked_jtis, sessions,
};

/// Rows deleted per statement.
pub const BATCH: i64 = 500;

/// The background sweep's pause between two steps. SQLite's busy handler retries a waiting
/// writer after growing sleeps (up to 100 ms); without a pause the janitor would take the
/// write lock again before it, and requests that write would starve while a large sweep runs.
pub const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// How long the background sweep waits, before a batch, for this process's SQLite writers
/// to finish (docs/security.md R12); past it the batch runs anyway, so the sweep always
/// progresses.
pub const YIELD_LIMIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A row is deleted only once it has been dead this long by this instance's clock, so that
/// another instance whose clock is behind by up to this much never misses a row it still
/// counts as live (a denylisted `jti`, a redeemed code, a session). docs/security.md R11.
pub const SKEW_MARGIN_SECONDS: i64 = 600;

/// How long rows are kept past their own expiry, from the configured lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A redeemed code, past its `expires_at`: the longest anything bought with it stays
    /// valid (refresh-token family, then one more access token, plus leeway).
    pub redeemed_code_seconds: i64,
    /// A grant, past its `created_at`: its code's lifetime plus the above.
    pub grant_seconds: i64,
    /// A revoked `jti`, past the token's `exp`: the JWT leeway.
    pub jwt_leeway_seconds: i64,
    /// Usage counts, past their hour (`--usage-retention-days`).
    pub usage_seconds: i64,
    /// An openly registered client without a token this long is deleted.
    pub open_registration_idle_seconds: i64,
}

impl Retention {
    pub fn from_settings(s: &Settings) -> Self {
        let tokens =
            s.refresh_absolute_ttl_seconds + s.access_token_ttl_seconds + s.jwt_leeway_seconds;
        Self {
            redeemed_code_seconds: tokens,
            grant_seconds: s.code_ttl_seconds + tokens,
            jwt_leeway_seconds: s.jwt_leeway_seconds,
            usage_seconds: s.usage_retention_days.saturating_mul(crate::usage::DAY),
            open_registration_idle_seconds: s
                .open_registration_idle_days
                .saturating_mul(crate::usage::DAY),
        }
    }
}

/// The bounds of one sweep at `now`, in seconds since the epoch: a row dead at or before
/// its bound goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// `now` minus [`SKEW_MARGIN_SECONDS`]: codes, refresh tokens, sessions, pending
    /// requests (by their `expires_at`).
    pub expired: Timestamp,
    /// Redeemed codes (by `expires_at`).
    pub redeemed_code: Timestamp,
    /// Grants (by `created_at`).
    pub grant: Timestamp,
    /// Denylisted `jti`s (by the token's `exp`).
    pub jti: Timestamp,
    /// Usage counts (by `hour_start`; no skew margin: a count decides nothing).
    pub usage: Timestamp,
    /// The sweep's `now`, and how long an openly registered client may stay idle.
    pub now: Timestamp,
    pub open_registration_idle_seconds: i64,
}

impl Cutoffs {
    pub fn at(now: Timestamp, r: &Retention) -> Self {
        let expired = now - SKEW_MARGIN_SECONDS;
        Self {
            expired,
            redeemed_code: expired - r.redeemed_code_seconds,
            grant: expired - r.grant_seconds,
            jti: expired - r.jwt_leeway_seconds,
            usage: now - r.usage_seconds,
            now,
            open_registration_idle_seconds: r.open_registration_idle_seconds,
        }
    }
}

/// What one batch of one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Rows deleted.
    pub deleted: usize,
    /// The batch was full: another call may find more.
    pub more: bool,
}

/// One kind of dead row: `table` names it in [`Swept`] and in the metrics; `run` deletes at
/// most one batch of it.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub table: &'static str,
    pub run: fn(&mut DbConnection, &Cutoffs) -> QueryResult<Batch>,
}

/// A [`Step::run`] that picks up to [`BATCH`] keys of `$table` rows meeting every condition
/// and deletes them; the delete repeats the conditions, so a row that came alive meanwhile
/// stays. `|$c|` binds the [`Cutoffs`] in the conditions.
macro_rules! dead_rows {
    ($table:ident . $key:ident, |$c:ident| $($cond:expr),+ $(,)?) => {
        |conn: &mut DbConnection, $c: &Cutoffs| -> QueryResult<Batch> {
            let keys: Vec<String> = $table::table
                $(.filter($cond))+
                .select($table::$key)
                .limit(BATCH)
                .load(conn)?;
            if keys.is_empty() {
                return Ok(Batch::default());
            }
            let deleted = diesel::delete(
                $table::table
                    .filter($table::$key.eq_any(&keys))
                    $(.filter($cond))+,
            )
            .execute(conn)?;
            Ok(Batch {
                deleted,
                more: keys.len() >= BATCH as usize && deleted > 0,
            })
        }
    };
}

/// Every kind of dead row, in the order a sweep visits them (grants after the codes and
/// refresh tokens that keep them).
pub const STEPS: &[Step] = &[
    // Codes never redeemed, once expired.
    Step {
        table: "authorization_codes",
        run: dead_rows!(
            authorization_codes.code_hash,
            |c| authorization_codes::consumed_at.is_null(),
            authorization_codes::expires_at.le(c.expired),
        ),
    },
    // Redeemed codes, once replay detection has nothing left to protect (C1).
    Step {
        table: "authorization_codes",
        run: dead_rows!(
            authorization_codes.code_hash,
            |c| authorization_codes::consumed_at.is_not_null(),
            authorization_codes::expires_at.le(c.redeemed_code),
        ),
    },
    // Refresh tokens past their own expiry (min(idle, absolute)).
    Step {
        table: "refresh_tokens",
        run: dead_rows!(refresh_tokens.token_hash, |c| refresh_tokens::expires_at
            .le(c.expired),),
    },
    // Grants nothing refers to any more, once their last access token has expired.
    Step {
        table: "grants",
        run: dead_rows!(
            grants.id,
            |c| grants::created_at.le(c.grant),
            not(exists(
                authorization_codes::table.filter(authorization_codes::grant_id.eq(grants::id)),
            )),
            not(exists(
                refresh_tokens::table.filter(refresh_tokens::grant_id.eq(grants::id)),
            )),
        ),
    },
    // Revoked access tokens that no verifier accepts any more (past exp + leeway).
    Step {
        table: "revoked_jtis",
        run: dead_rows!(revoked_jtis.jti, |c| revoked_jtis::expires_at.le(c.jti)),
    },
    // Used client-assertion jtis, once the assertion is past `exp` + leeway.
    Step {
        table: "client_assertion_jtis",
        run: dead_rows!(client_assertion_jtis.jti_hash, |c| {
            client_assertion_jtis::expires_at.le(c.jti)
        }),
    },
    Step {
        table: "sessions",
        run: dead_rows!(sessions.id_hash, |c| sessions::expires_at.le(c.expired)),
    },
    Step {
        table: "pending_authorizations",
        run: dead_rows!(pending_authorizations.id, |c| {
            pending_authorizations::expires_at.le(c.expired)
        },),
    },
    // Device authorizations (RFC 8628, docs/spec.md §9) past `expires_at`: a poll then
    // hears `invalid_grant` instead of `expired_token`, and a decision finds nothing.
    Step {
        table: "device_codes",
        run: |conn, c| {
            let deleted = crate::oauth::device::prune(conn, c.expired, BATCH)?;
            Ok(Batch {
                deleted,
                more: deleted >= BATCH as usize,
            })
        },
    },
    // Usage counts past retention: the oldest such hour.
    Step {
        table: "key_usage",
        run: |conn, c| {
            let deleted = crate::usage::store::prune(conn, c.usage)?;
            Ok(Batch {
                deleted,
                more: deleted > 0,
            })
        },
    },
    // Openly registered clients idle for `--open-registration-idle-days` (docs/spec.md §8).
    Step {
        table: "clients",
        run: |conn, c| {
            let deleted = crate::clients::open_registration::prune_idle(
                conn,
                c.open_registration_idle_seconds,
                BATCH,
                c.now,
            )?;
            Ok(Batch {
                deleted,
                more: deleted >= BATCH as usize,
            })
        },
    },
];

/// Runs one batch of `STEPS[index]` (an index past the end does nothing). On SQLite a batch
/// that deleted rows ends with a passive WAL checkpoint, so that copying the janitor's pages
/// back into the database file is done here and not by the commit of a request that happens
/// to cross the auto-checkpoint threshold (docs/security.md R12).
pub fn run_step(conn: &mut DbConnection, index: usize, cutoffs: &Cutoffs) -> QueryResult<Batch> {
    // In the same queue as the requests' writes (`db::sqlite_gate`), so a batch never
    // races a waiting request for the lock.
    let _turn = crate::db::sqlite_gate(conn)?;
    let batch = match STEPS.get(index) {
        Some(step) => (step.run)(conn, cutoffs)?,
        None => Batch::default(),
    };
    if batch.deleted > 0 && matches!(conn, DbConnection::Sqlite(_)) {
        diesel::connection::SimpleConnection::batch_execute(
            conn,
            "PRAGMA wal_checkpoint(PASSIVE);",
        )?;
    }
    Ok(batch)
}

/// Rows deleted by a sweep, per table (every table of [`STEPS`], zeros included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    deleted: BTreeMap<&'static str, usize>,
}

impl Default for Swept {
    fn default() -> Self {
        Self {
            deleted: STEPS.iter().map(|s| (s.table, 0)).collect(),
        }
    }
}

impl Swept {
    /// Rows deleted from `table` (0 for a table the janitor does not know).
    pub fn get(&self, table: &str) -> usize {
        self.deleted.get(table).copied().unwrap_or(0)
    }

    /// (table, rows deleted), for the metrics, every table of [`STEPS`] once.
    pub fn by_table(&self) -> impl Iterator<Item = (&'static str, usize)> + '_ {
        self.deleted.iter().map(|(t, n)| (*t, *n))
    }

    pub fn total(&self) -> usize {
        self.deleted.values().sum()
    }

    /// Counts `rows` deleted from `table`.
    pub fn add(&mut self, table: &'static str, rows: usize) {
        *self.deleted.entry(table).or_insert(0) += rows;
    }
}

/// Deletes every dead row as of `now`, batch after batch without pause.
pub fn sweep(conn: &mut DbConnection, retention: &Retention, now: Timestamp) -> QueryResult<Swept> {
    let cutoffs = Cutoffs::at(now, retention);
    let mut swept = Swept::default();
    for (index, step) in STEPS.iter().enumerate() {
        loop {
            let batch = run_step(conn, index, &cutoffs)?;
            swept.add(step.table, batch.deleted);
            if !batch.more {
                break;
            }
        }
    }
    Ok(swept)
}
