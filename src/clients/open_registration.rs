//! Open dynamic registration (docs/spec.md §8, `--registration open`): RFC 7591 without a
//! credential, for MCP clients that have nothing pre-registered. Such a client is a
//! platform client (no organization) that is public (`none`) or uses `private_key_jwt`
//! (RFC 7523 §2.2, with `jwks`), uses the code flow only
//! (`authorization_code`, `refresh_token`),
//! never has `admin`, and is no resource server. One IP registers at most
//! [`PER_IP_PER_HOUR`] clients an hour (then 429 with `Retry-After`); the janitor deletes
//! such a client once it has obtained no token for `--open-registration-idle-days`
//! ([`prune_idle`]). The `open_registrations` table records each registration (client,
//! IP, time) for both.

use diesel::dsl::{exists, not};
use diesel::prelude::*;
use serde_json::json;

use super::registration::{Metadata, Registered, cap};
use super::store;
use super::{GrantType, NewClient, default_scope};
use crate::app::Ctx;
use crate::clock::Timestamp;
use crate::db::schema::{clients, grants, open_registrations, refresh_tokens};
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;

/// Registrations one IP may make without a credential per [`WINDOW_SECONDS`].
pub const PER_IP_PER_HOUR: i64 = 10;
/// The rate limit's sliding window, seconds.
pub const WINDOW_SECONDS: i64 = 3600;

/// Who may register over RFC 7591 (`--registration`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// A bearer credential with `admin` (API key or access token) is required.
    Authenticated,
    /// Also anyone without a credential, within the rules of this module.
    Open,
}

/// Why an open registration was refused.
#[derive(Debug)]
pub enum Refused {
    /// The metadata breaks a rule (400, RFC 7591 §3.2.2), or storage failed.
    Op(OpError),
    /// This IP registered [`PER_IP_PER_HOUR`] clients within the hour: retry after this
    /// many seconds (429).
    TooMany { retry_after: i64 },
}

impl From<OpError> for Refused {
    fn from(e: OpError) -> Self {
        Self::Op(e)
    }
}

impl From<diesel::result::Error> for Refused {
    fn from(e: diesel::result::Error) -> Self {
        Self::Op(e.into())
    }
}

/// The rules an openly registered client keeps, on registration and on every RFC 7592
/// update: `none` or `private_key_jwt` authentication (with `jwks` or `jwks_uri`), the code flow
/// only, no resource server. The scope is held below `admin` by [`cap`].
pub fn check(meta: &Metadata, new: &NewClient) -> Result<(), OpError> {
    let method = meta.token_endpoint_auth_method.as_deref();
    if !matches!(method, Some("none" | "private_key_jwt")) {
        return Err(OpError::invalid(
            "token_endpoint_auth_method: a client registered without a credential must be \
             public (none) or use private_key_jwt.",
        ));
    }
    if new.resource_server || new.resources.as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(OpError::invalid(
            "resource_server: a client registered without a credential cannot be a resource server.",
        ));
    }
    if let Some(g) = &new.grant_types
        && g.iter()
            .any(|g| !matches!(g, GrantType::AuthorizationCode | GrantType::RefreshToken))
    {
        return Err(OpError::invalid(
            "grant_types: a client registered without a credential may use authorization_code \
             and refresh_token only.",
        ));
    }
    Ok(())
}

/// Whether `client_id` was registered without a credential.
pub fn is_open(conn: &mut DbConnection, client_id: &str) -> QueryResult<bool> {
    diesel::select(exists(
        open_registrations::table.filter(open_registrations::client_id.eq(client_id)),
    ))
    .get_result(conn)
}

/// RFC 7591 §3 without a credential (docs/spec.md §8): registers a platform client for
/// `ip` within the rules of [`check`], its scope capped below `admin` (also the ceiling
/// of its registration access token), unless `ip` already registered
/// [`PER_IP_PER_HOUR`] clients in the last hour.
pub fn register(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    ip: &str,
    meta: &Metadata,
) -> Result<Registered, Refused> {
    let mut new = meta.to_new()?;
    check(meta, &new)?;
    let catalogue = &ctx.settings.scopes;
    let ceiling = default_scope(catalogue);
    cap(&mut new, &ceiling, catalogue)?;
    new.org_id = None;
    new.created_by = None;
    let valid = new.validate_for(ctx.settings).map_err(OpError::from)?;
    let now = ctx.now;
    let prefix = &ctx.settings.key_prefix;
    write_tx(conn, |conn| -> Result<_, Refused> {
        // Registrations from one address take turns: on PostgreSQL (READ COMMITTED) two at
        // once would otherwise both count nine and make eleven. SQLite's write
        // transaction already runs one at a time.
        if matches!(conn, DbConnection::Postgres(_)) {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind::<diesel::sql_types::Text, _>(ip)
                .execute(conn)?;
        }
        let recent: Vec<Timestamp> = open_registrations::table
            .filter(open_registrations::ip.eq(ip))
            .filter(open_registrations::created_at.gt(now - WINDOW_SECONDS))
            .order(open_registrations::created_at.desc())
            .limit(PER_IP_PER_HOUR)
            .select(open_registrations::created_at)
            .load(conn)?;
        if recent.len() as i64 >= PER_IP_PER_HOUR {
            let oldest = recent.iter().copied().min().unwrap_or(now);
            return Err(Refused::TooMany {
                retry_after: (oldest + WINDOW_SECONDS - now).max(1),
            });
        }
        let (row, secret) = store::insert(conn, &valid, prefix, now).map_err(OpError::from)?;
        diesel::insert_into(open_registrations::table)
            .values((
                open_registrations::client_id.eq(&row.id),
                open_registrations::ip.eq(ip),
                open_registrations::created_at.eq(now),
            ))
            .execute(conn)?;
        let token = store::new_registration_token(conn, &row.id, prefix, &ceiling)?;
        crate::audit::record(
            conn,
            &crate::audit::Event {
                org_id: None,
                actor: "open-registration",
                action: "client.created",
                target_type: "client",
                target_id: &row.id,
                details: json!({"name": row.name}),
            },
            now,
        )?;
        Ok(Registered {
            row,
            secret,
            registration_access_token: token,
        })
    })
}

/// Janitor step (docs/spec.md §8): deletes up to `batch` openly registered clients made
/// before `now - idle_seconds` that obtained no token since (no grant and no refresh token
/// created after that time), with everything issued to them; then forgets registrations
/// older than the rate limit's window whose client is gone. Returns the clients deleted.
pub fn prune_idle(
    conn: &mut DbConnection,
    idle_seconds: i64,
    batch: i64,
    now: Timestamp,
) -> QueryResult<usize> {
    let cutoff = now - idle_seconds;
    let idle: Vec<String> = open_registrations::table
        .filter(open_registrations::created_at.le(cutoff))
        .filter(not(exists(
            grants::table
                .filter(grants::client_id.eq(open_registrations::client_id))
                .filter(grants::created_at.gt(cutoff)),
        )))
        .filter(not(exists(
            refresh_tokens::table
                .filter(refresh_tokens::client_id.eq(open_registrations::client_id))
                .filter(refresh_tokens::created_at.gt(cutoff)),
        )))
        .filter(exists(
            clients::table.filter(clients::id.eq(open_registrations::client_id)),
        ))
        .select(open_registrations::client_id)
        .limit(batch)
        .load(conn)?;
    let mut deleted = 0;
    for id in &idle {
        deleted += conn.transaction(|conn| {
            let n = store::delete(conn, id)?;
            if n > 0 {
                crate::audit::record(
                    conn,
                    &crate::audit::Event {
                        org_id: None,
                        actor: "janitor",
                        action: "client.deleted",
                        target_type: "client",
                        target_id: id,
                        details: json!({"reason": "open registration idle"}),
                    },
                    now,
                )?;
            }
            Ok::<_, diesel::result::Error>(n)
        })?;
    }
    let gone: Vec<String> = open_registrations::table
        .filter(open_registrations::created_at.le(now - WINDOW_SECONDS))
        .filter(not(exists(
            clients::table.filter(clients::id.eq(open_registrations::client_id)),
        )))
        .select(open_registrations::client_id)
        .limit(batch)
        .load(conn)?;
    diesel::delete(open_registrations::table.filter(open_registrations::client_id.eq_any(&gone)))
        .execute(conn)?;
    Ok(deleted)
}
