//! Remembered consent (per user and client) and pending authorization requests waiting
//! for the consent form. A pending request is bound to the session that saw the consent
//! page; the decision uses its stored values, never hidden form fields (docs/security.md A11).

use diesel::prelude::*;
use serde_json::json;

use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::{consents, pending_authorizations};
use crate::scope::ScopeSet;

pub mod decision;

/// How long a consent page stays answerable.
pub const PENDING_TTL_SECONDS: i64 = 600;
/// Pending requests kept per user; older ones are dropped (docs/security.md K4).
pub const PENDING_PER_USER: i64 = 20;

/// What a user has already granted a client: scopes, and the RFC 8707 resources the
/// tokens may be meant for (docs/spec.md §8).
#[derive(Debug, Clone, Default)]
pub struct Remembered {
    pub scope: ScopeSet,
    /// Sorted resource URIs the user approved for this client (empty: none named yet).
    pub resources: Vec<String>,
}

impl Remembered {
    /// True when a request for `scope` and `resources` needs no consent page: every scope
    /// and every named resource was approved before. A request naming no resource gets
    /// the default audience, which every consent covers (docs/spec.md §8).
    pub fn covers(&self, scope: &ScopeSet, resources: &[String]) -> bool {
        scope.is_subset(&self.scope) && resources.iter().all(|r| self.resources.contains(r))
    }
}

/// What `user_id` has already granted `client_id`.
pub fn remembered(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
) -> QueryResult<Option<Remembered>> {
    let row: Option<(String, String)> = consents::table
        .find((user_id, client_id))
        .select((consents::scope, consents::resources))
        .first(conn)
        .optional()?;
    Ok(row.and_then(|(s, r)| {
        Some(Remembered {
            scope: ScopeSet::parse(&s).ok()?,
            resources: crate::oauth::resource::from_column(&r),
        })
    }))
}

/// Adds `scope` and `resources` to what the user has granted the client (call in a write
/// transaction).
///
/// Two first consents of one user for one client may run at once (two tabs): on PostgreSQL
/// both transactions see no row, and the second insert hits the primary key. The insert runs
/// in a savepoint, so that case merges into the row the other transaction made instead of
/// failing the request (docs/security.md R1: found by the mixed load of the fault suite).
pub fn remember(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    org_id: Option<&str>,
    granted: &Remembered,
    now: Timestamp,
) -> QueryResult<()> {
    let mut merged = merge_into(conn, user_id, client_id, granted, now)?;
    if merged.is_none() {
        let inserted = conn.transaction(|c| {
            diesel::insert_into(consents::table)
                .values((
                    consents::user_id.eq(user_id),
                    consents::client_id.eq(client_id),
                    consents::scope.eq(granted.scope.to_string()),
                    consents::resources.eq(crate::oauth::resource::to_column(&granted.resources)),
                    consents::created_at.eq(now),
                    consents::updated_at.eq(now),
                ))
                .execute(c)
        });
        merged = match inserted {
            Ok(_) => Some(granted.clone()),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => merge_into(conn, user_id, client_id, granted, now)?,
            Err(e) => return Err(e),
        };
    }
    let merged = merged.unwrap_or_else(|| granted.clone());
    crate::audit::record(
        conn,
        &crate::audit::Event {
            org_id,
            actor: &format!("user:{user_id}"),
            action: "consent.granted",
            target_type: "client",
            target_id: client_id,
            details: json!({"scope": merged.scope.to_string(), "resources": merged.resources}),
        },
        now,
    )
}

/// Merges `granted` into the remembered consent, if there is one: the merged grant, or
/// `None` when there is no row to update.
fn merge_into(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    granted: &Remembered,
    now: Timestamp,
) -> QueryResult<Option<Remembered>> {
    let Some(old) = remembered(conn, user_id, client_id)? else {
        return Ok(None);
    };
    let scope = ScopeSet::parse_many([
        old.scope.to_string().as_str(),
        granted.scope.to_string().as_str(),
    ])
    .unwrap_or_else(|_| granted.scope.clone());
    let mut resources = old.resources;
    resources.extend(granted.resources.iter().cloned());
    let merged = Remembered {
        scope,
        resources: crate::oauth::resource::normalize(resources),
    };
    let updated = diesel::update(consents::table.find((user_id, client_id)))
        .set((
            consents::scope.eq(merged.scope.to_string()),
            consents::resources.eq(crate::oauth::resource::to_column(&merged.resources)),
            consents::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok((updated > 0).then_some(merged))
}

/// One app a user has authorized, for `/account/apps`.
#[derive(Debug, Clone)]
pub struct AuthorizedApp {
    pub client_id: String,
    pub client_name: String,
    pub client_uri: Option<String>,
    pub scope: String,
    pub granted_at: Timestamp,
    pub updated_at: Timestamp,
    /// Self-registered or a client ID metadata document: set by `decision::apps`.
    pub unverified: bool,
}

/// The apps `user_id` has authorized, most recent first.
pub fn apps_of(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<AuthorizedApp>> {
    use crate::db::schema::clients;
    type Row = (String, String, Option<String>, String, i64, i64);
    let rows: Vec<Row> = consents::table
        .inner_join(clients::table)
        .filter(consents::user_id.eq(user_id))
        .order((consents::updated_at.desc(), consents::client_id.asc()))
        .select((
            consents::client_id,
            clients::name,
            clients::client_uri,
            consents::scope,
            consents::created_at,
            consents::updated_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(client_id, client_name, client_uri, scope, granted_at, updated_at)| AuthorizedApp {
                client_id,
                client_name,
                client_uri,
                scope,
                granted_at,
                updated_at,
                unverified: false,
            },
        )
        .collect())
}

/// Withdraws a user's consent for a client: the consent goes, and every grant of that
/// user and client is revoked (each refresh and access token of it is inactive from the
/// next request on). Call in a write transaction. False when there was no consent.
pub fn revoke(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    now: Timestamp,
) -> QueryResult<bool> {
    use crate::db::schema::{clients, grants};
    let org_id: Option<Option<String>> = clients::table
        .find(client_id)
        .select(clients::org_id)
        .first(conn)
        .optional()?;
    let removed = diesel::delete(consents::table.find((user_id, client_id))).execute(conn)?;
    if removed == 0 {
        return Ok(false);
    }
    let live: Vec<String> = grants::table
        .filter(grants::user_id.eq(user_id))
        .filter(grants::client_id.eq(client_id))
        .filter(grants::revoked_at.is_null())
        .select(grants::id)
        .load(conn)?;
    for gid in &live {
        crate::oauth::codes::revoke_grant(conn, gid, now)?;
    }
    crate::audit::record(
        conn,
        &crate::audit::Event {
            org_id: org_id.flatten().as_deref(),
            actor: &format!("user:{user_id}"),
            action: "consent.revoked",
            target_type: "client",
            target_id: client_id,
            details: json!({"grants_revoked": live.len()}),
        },
        now,
    )?;
    Ok(true)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pending_authorizations)]
pub struct Pending {
    pub id: String,
    pub session_id: String,
    pub user_id: String,
    pub client_id: String,
    /// The request's `redirect_uri` as sent ("" when omitted).
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// RFC 8707 resources the request named, space-separated ("" when none).
    pub resource: String,
    /// OpenID Connect: the request's `nonce`, and when the person signed in.
    pub nonce: Option<String>,
    pub auth_time: Option<i64>,
}

/// Stores a pending request, dropping the user's oldest beyond [`PENDING_PER_USER`].
///
/// The rows to drop are named by id from one read, never by "every row not among the
/// newest": under PostgreSQL's READ COMMITTED each statement sees what committed before it,
/// so a delete of "the rest" also took a request another tab had just stored between this
/// read and the delete, and its approval then found it gone (found by the R1 mixed load,
/// docs/security.md R1).
pub fn insert_pending(conn: &mut DbConnection, p: &Pending) -> QueryResult<()> {
    diesel::insert_into(pending_authorizations::table)
        .values(p)
        .execute(conn)?;
    let beyond: Vec<String> = pending_authorizations::table
        .filter(pending_authorizations::user_id.eq(&p.user_id))
        .order((
            pending_authorizations::created_at.desc(),
            pending_authorizations::id.desc(),
        ))
        .offset(PENDING_PER_USER)
        .limit(i64::MAX)
        .select(pending_authorizations::id)
        .load(conn)?;
    if !beyond.is_empty() {
        diesel::delete(
            pending_authorizations::table.filter(pending_authorizations::id.eq_any(beyond)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// The live pending request `id` of this session.
pub fn find_pending(
    conn: &mut DbConnection,
    id: &str,
    session_id: &str,
    now: Timestamp,
) -> QueryResult<Option<Pending>> {
    pending_authorizations::table
        .find(id)
        .filter(pending_authorizations::session_id.eq(session_id))
        .filter(pending_authorizations::expires_at.gt(now))
        .select(Pending::as_select())
        .first(conn)
        .optional()
}

/// Consumes a pending request; true for exactly one caller.
pub fn take_pending(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(pending_authorizations::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}
