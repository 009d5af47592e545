//! The janitor (docs/security.md R12, §2 "Cleanup"): deletes rows that can no longer decide
//! anything, in batches of [`BATCH`] rows per statement, each statement its own short
//! transaction, so that requests waiting for the same tables wait for one batch at most.
//! [`sweep_step`] deletes one batch per kind of row and takes `now` (the injected clock);
//! `startup::sweep_expired` repeats it every `--cleanup-interval-seconds`, pausing
//! [`BATCH_PAUSE`] (or four times the step's duration) between steps so that waiting
//! writers get the (SQLite) write lock;
//! [`sweep`] repeats it without pauses.
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
//!   verifier accepts it any more;
//! - sessions, pending authorization requests and device codes (RFC 8628) past `expires_at`;
//! - API-key usage counts (docs/spec.md §10) older than `--usage-retention-days`, one UTC
//!   hour per step;
//! - clients registered without a credential that obtained no token for
//!   `--open-registration-idle-days` (docs/spec.md §8, [`sweep_open_registrations`]).

use diesel::dsl::{exists, not};
use diesel::prelude::*;

use crate::clock::Timestamp;
use crate::config::Settings;
use crate::db::DbConnection;
use crate::db::schema::{
    authorization_codes, grants, pending_authorizations, refresh_tokens, revoked_jtis, sessions,
};

/// Rows deleted per statement.
pub const BATCH: i64 = 500;

/// The background sweep's pause between two steps. SQLite's busy handler retries a waiting
/// writer after growing sleeps (up to 100 ms); without a pause the janitor would take the
/// write lock again before it, and requests that write would starve while a large sweep runs.
pub const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

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

/// Rows deleted by one sweep, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub authorization_codes: usize,
    pub refresh_tokens: usize,
    pub grants: usize,
    pub revoked_jtis: usize,
    pub sessions: usize,
    pub pending_authorizations: usize,
    pub key_usage: usize,
    pub open_clients: usize,
    /// Some kind of row filled its batch: another step may find more.
    pub more: bool,
}

impl Swept {
    /// (table, rows deleted), for the metrics.
    pub fn by_table(&self) -> [(&'static str, usize); 8] {
        [
            ("authorization_codes", self.authorization_codes),
            ("refresh_tokens", self.refresh_tokens),
            ("grants", self.grants),
            ("revoked_jtis", self.revoked_jtis),
            ("sessions", self.sessions),
            ("pending_authorizations", self.pending_authorizations),
            ("key_usage", self.key_usage),
            ("clients", self.open_clients),
        ]
    }

    pub fn total(&self) -> usize {
        self.by_table().iter().map(|(_, n)| n).sum()
    }

    /// Adds the counts of a later step (and takes its `more`).
    pub fn add(&mut self, other: &Swept) {
        self.authorization_codes += other.authorization_codes;
        self.refresh_tokens += other.refresh_tokens;
        self.grants += other.grants;
        self.revoked_jtis += other.revoked_jtis;
        self.sessions += other.sessions;
        self.pending_authorizations += other.pending_authorizations;
        self.key_usage += other.key_usage;
        self.open_clients += other.open_clients;
        self.more = other.more;
    }
}

/// Picks up to [`BATCH`] keys of dead rows and deletes them (the delete repeats the
/// condition, so a row that came alive meanwhile stays). Notes in `more` when the batch was
/// full.
fn one_batch(
    conn: &mut DbConnection,
    more: &mut bool,
    pick: impl FnOnce(&mut DbConnection) -> QueryResult<Vec<String>>,
    delete: impl FnOnce(&mut DbConnection, &[String]) -> QueryResult<usize>,
) -> QueryResult<usize> {
    let keys = pick(conn)?;
    if keys.is_empty() {
        return Ok(0);
    }
    let deleted = delete(conn, &keys)?;
    if keys.len() >= BATCH as usize && deleted > 0 {
        *more = true;
    }
    Ok(deleted)
}

/// Deletes every dead row as of `now`, step after step without pause (see [`sweep_step`]).
pub fn sweep(conn: &mut DbConnection, retention: &Retention, now: Timestamp) -> QueryResult<Swept> {
    let mut total = Swept::default();
    loop {
        let step = sweep_step(conn, retention, now)?;
        total.add(&step);
        if !step.more {
            return Ok(total);
        }
    }
}

/// Deletes at most one batch of each kind of dead row as of `now` (see the module
/// documentation); `more` says whether another step may find more.
pub fn sweep_step(
    conn: &mut DbConnection,
    retention: &Retention,
    now: Timestamp,
) -> QueryResult<Swept> {
    let cutoff = now - SKEW_MARGIN_SECONDS;
    let mut swept = Swept::default();
    let mut more = false;

    // Codes never redeemed, once expired.
    swept.authorization_codes += one_batch(
        conn,
        &mut more,
        |c| {
            authorization_codes::table
                .filter(authorization_codes::consumed_at.is_null())
                .filter(authorization_codes::expires_at.le(cutoff))
                .select(authorization_codes::code_hash)
                .limit(BATCH)
                .load(c)
        },
        |c, keys| {
            diesel::delete(
                authorization_codes::table
                    .filter(authorization_codes::code_hash.eq_any(keys))
                    .filter(authorization_codes::consumed_at.is_null())
                    .filter(authorization_codes::expires_at.le(cutoff)),
            )
            .execute(c)
        },
    )?;
    // Redeemed codes, once replay detection has nothing left to protect (C1).
    let redeemed_cutoff = cutoff - retention.redeemed_code_seconds;
    swept.authorization_codes += one_batch(
        conn,
        &mut more,
        |c| {
            authorization_codes::table
                .filter(authorization_codes::consumed_at.is_not_null())
                .filter(authorization_codes::expires_at.le(redeemed_cutoff))
                .select(authorization_codes::code_hash)
                .limit(BATCH)
                .load(c)
        },
        |c, keys| {
            diesel::delete(
                authorization_codes::table
                    .filter(authorization_codes::code_hash.eq_any(keys))
                    .filter(authorization_codes::expires_at.le(redeemed_cutoff)),
            )
            .execute(c)
        },
    )?;
    // Refresh tokens past their own expiry (min(idle, absolute)).
    swept.refresh_tokens = one_batch(
        conn,
        &mut more,
        |c| {
            refresh_tokens::table
                .filter(refresh_tokens::expires_at.le(cutoff))
                .select(refresh_tokens::token_hash)
                .limit(BATCH)
                .load(c)
        },
        |c, keys| {
            diesel::delete(
                refresh_tokens::table
                    .filter(refresh_tokens::token_hash.eq_any(keys))
                    .filter(refresh_tokens::expires_at.le(cutoff)),
            )
            .execute(c)
        },
    )?;
    // Grants nothing refers to any more, once their last access token has expired.
    let grant_cutoff = cutoff - retention.grant_seconds;
    swept.grants = one_batch(
        conn,
        &mut more,
        |c| {
            grants::table
                .filter(grants::created_at.le(grant_cutoff))
                .filter(not(exists(
                    authorization_codes::table.filter(authorization_codes::grant_id.eq(grants::id)),
                )))
                .filter(not(exists(
                    refresh_tokens::table.filter(refresh_tokens::grant_id.eq(grants::id)),
                )))
                .select(grants::id)
                .limit(BATCH)
                .load(c)
        },
        |c, keys| {
            diesel::delete(
                grants::table
                    .filter(grants::id.eq_any(keys))
                    .filter(grants::created_at.le(grant_cutoff))
                    .filter(not(exists(
                        authorization_codes::table
                            .filter(authorization_codes::grant_id.eq(grants::id)),
                    )))
                    .filter(not(exists(
                        refresh_tokens::table.filter(refresh_tokens::grant_id.eq(grants::id)),
                    ))),
            )
            .execute(c)
        },
    )?;
    // Revoked access tokens that no verifier accepts any more (past exp + leeway).
    let jti_cutoff = cutoff - retention.jwt_leeway_seconds;
    swept.revoked_jtis = one_batch(
        conn,
        &mut more,
        |c| {
            revoked_jtis::table
                .filter(revoked_jtis::expires_at.le(jti_cutoff))
                .select(revoked_jtis::jti)
                .limit(BATCH)
                .load(c)
        },
        |c, keys| {
            diesel::delete(
                revoked_jtis::table
                    .filter(revoked_jtis::jti.eq_any(keys))
                    .filter(revoked_jtis::expires_at.le(jti_cutoff)),
            )
            .execute(c)
        },
    )?;
    swept.sessions = one_batch(
        conn,
        &mut more,
        |c| {
            sessions::table
                .filter(sessions::expires_at.le(cutoff))
                .select(sessions::id_hash)
                .limit(BATCH)
                .load(c)
        },
        |c, keys| {
            diesel::delete(
                sessions::table
                    .filter(sessions::id_hash.eq_any(keys))
                    .filter(sessions::expires_at.le(cutoff)),
            )
            .execute(c)
        },
    )?;
    swept.pending_authorizations = one_batch(
        conn,
        &mut more,
        |c| {
            pending_authorizations::table
                .filter(pending_authorizations::expires_at.le(cutoff))
                .select(pending_authorizations::id)
                .limit(BATCH)
                .load(c)
        },
        |c, keys| {
            diesel::delete(
                pending_authorizations::table
                    .filter(pending_authorizations::id.eq_any(keys))
                    .filter(pending_authorizations::expires_at.le(cutoff)),
            )
            .execute(c)
        },
    )?;
    // Device authorizations (RFC 8628, docs/spec.md §9) past `expires_at`: a poll then
    // hears `invalid_grant` instead of `expired_token`, and a decision finds nothing.
    let device_codes = crate::oauth::device::prune(conn, cutoff, BATCH)?;
    more |= i64::try_from(device_codes).is_ok_and(|n| n >= BATCH);
    // Usage counts past retention: the oldest such hour (no skew margin needed: a count
    // decides nothing).
    swept.key_usage = crate::usage::store::prune(conn, now - retention.usage_seconds)?;
    more |= swept.key_usage > 0;
    sweep_open_registrations(conn, retention, now, &mut swept, &mut more)?;
    swept.more = more;
    Ok(swept)
}

/// Openly registered clients idle for `--open-registration-idle-days` (docs/spec.md §8):
/// one batch, see `clients::open_registration::prune_idle`.
fn sweep_open_registrations(
    conn: &mut DbConnection,
    retention: &Retention,
    now: Timestamp,
    swept: &mut Swept,
    more: &mut bool,
) -> QueryResult<()> {
    let n = crate::clients::open_registration::prune_idle(
        conn,
        retention.open_registration_idle_seconds,
        BATCH,
        now,
    )?;
    swept.open_clients += n;
    *more |= n >= BATCH as usize;
    Ok(())
}
