//! Refresh tokens (RFC 6749 §6, BCP §4.14): opaque, stored as SHA-256, rotated on every
//! use, bound to their client, with idle and absolute expiry. Reuse of a rotated token
//! revokes the whole grant, except a retry inside the grace window, which gets a fresh
//! token and leaves the grant alive (docs/spec.md §3; policy in docs/security.md §4 item 2).
//!
//! Concurrency (docs/security.md E6): the first use wins the conditional UPDATE and rotates the
//! token; uses that lose the race, or come later within the grace window, are retries and
//! each get a new token of the same grant. After the window, any use revokes the grant.

use diesel::prelude::*;

use super::codes::revoke_grant;
use crate::clock::Timestamp;
use crate::crypto::{random_base62, sha256_hex};
use crate::db::DbConnection;
use crate::db::schema::{grants, refresh_tokens};
use crate::error::{ErrorCode, OAuthError};
use crate::scope::ScopeSet;

/// Lifetimes and the retry window.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub idle_ttl: i64,
    pub absolute_ttl: i64,
    pub grace: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
struct Row {
    grant_id: String,
    client_id: String,
    user_id: Option<String>,
    scope: String,
    generation: i64,
    expires_at: i64,
    absolute_expires_at: i64,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// The plaintext form: `{prefix}_rt_` + 43 base62 characters (256 bits).
fn new_token(prefix: &str) -> String {
    format!("{prefix}_rt_{}", random_base62(43))
}

/// What every refresh token of one grant shares.
#[derive(Debug, Clone, Copy)]
pub struct Family<'a> {
    pub grant_id: &'a str,
    pub client_id: &'a str,
    pub user_id: Option<&'a str>,
    /// The grant's scope, kept by every rotation (refreshes narrow only the access token).
    pub scope: &'a str,
    pub absolute_expires_at: Timestamp,
}

fn insert(
    conn: &mut DbConnection,
    prefix: &str,
    f: &Family<'_>,
    generation: i64,
    policy: Policy,
    now: Timestamp,
) -> QueryResult<String> {
    let token = new_token(prefix);
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(sha256_hex(&token)),
            refresh_tokens::grant_id.eq(f.grant_id),
            refresh_tokens::client_id.eq(f.client_id),
            refresh_tokens::user_id.eq(f.user_id),
            refresh_tokens::scope.eq(f.scope),
            refresh_tokens::generation.eq(generation),
            refresh_tokens::created_at.eq(now),
            refresh_tokens::expires_at.eq((now + policy.idle_ttl).min(f.absolute_expires_at)),
            refresh_tokens::absolute_expires_at.eq(f.absolute_expires_at),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The first refresh token of a grant; its family expires `policy.absolute_ttl` from now.
pub fn issue_first(
    conn: &mut DbConnection,
    prefix: &str,
    family: Family<'_>,
    policy: Policy,
    now: Timestamp,
) -> QueryResult<String> {
    let family = Family {
        absolute_expires_at: now + policy.absolute_ttl,
        ..family
    };
    insert(conn, prefix, &family, 0, policy, now)
}

/// The outcome of a refresh: a new refresh token and what the access token may carry.
#[derive(Debug)]
pub struct Refreshed {
    pub refresh_token: String,
    pub user_id: Option<String>,
    /// The access token's scope (narrowed if asked); the new refresh token keeps the grant's.
    pub scope: ScopeSet,
    pub grant_id: String,
}

fn invalid_grant() -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, "The refresh token is invalid.")
}

/// Uses a refresh token (call in a write transaction).
pub fn rotate(
    conn: &mut DbConnection,
    prefix: &str,
    presented: &str,
    client_id: &str,
    requested: Option<ScopeSet>,
    policy: Policy,
    now: Timestamp,
) -> Result<Refreshed, OAuthError> {
    let hash = sha256_hex(presented);
    let Some(row) = refresh_tokens::table
        .find(&hash)
        .select(Row::as_select())
        .first(conn)
        .optional()?
    else {
        return Err(invalid_grant());
    };
    // Bound to its client (E3): another client learns nothing and changes nothing.
    if row.client_id != client_id {
        return Err(invalid_grant());
    }
    let grant_revoked: Option<Option<i64>> = grants::table
        .find(&row.grant_id)
        .select(grants::revoked_at)
        .first(conn)
        .optional()?;
    if row.revoked_at.is_some() || !matches!(grant_revoked, Some(None)) {
        return Err(invalid_grant());
    }
    if now >= row.expires_at || now >= row.absolute_expires_at {
        return Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "The refresh token has expired.",
        ));
    }
    let granted = ScopeSet::parse(&row.scope).map_err(|_| invalid_grant())?;
    let scope = match requested {
        None => granted.clone(),
        Some(s) if s.is_subset(&granted) && !s.is_empty() => s,
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "A refresh can only narrow the scope.",
            ));
        }
    };
    let rotated_now = row.rotated_at.is_none()
        && diesel::update(
            refresh_tokens::table
                .find(&hash)
                .filter(refresh_tokens::rotated_at.is_null())
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::rotated_at.eq(now))
        .execute(conn)?
            == 1;
    if !rotated_now {
        let rotated_at: Option<i64> = refresh_tokens::table
            .find(&hash)
            .select(refresh_tokens::rotated_at)
            .first(conn)?;
        let within_grace = rotated_at.is_some_and(|t| now - t <= policy.grace);
        if !within_grace {
            revoke_grant(conn, &row.grant_id, now)?;
            tracing::warn!(grant_id = %row.grant_id, %client_id, "rotated refresh token reused; grant revoked");
            return Err(invalid_grant());
        }
    }
    let family = Family {
        grant_id: &row.grant_id,
        client_id,
        user_id: row.user_id.as_deref(),
        scope: &row.scope,
        absolute_expires_at: row.absolute_expires_at,
    };
    let refresh_token = insert(conn, prefix, &family, row.generation + 1, policy, now)?;
    if rotated_now {
        diesel::update(refresh_tokens::table.find(&hash))
            .set(refresh_tokens::replaced_by.eq(sha256_hex(&refresh_token)))
            .execute(conn)?;
    }
    Ok(Refreshed {
        refresh_token,
        user_id: row.user_id,
        scope,
        grant_id: row.grant_id,
    })
}
