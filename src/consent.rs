//! Remembered consent (per user and client) and pending authorization requests waiting
//! for the consent form. A pending request is bound to the session that saw the consent
//! page; the decision uses its stored values, never hidden form fields (SECURITY.md A11).

use diesel::prelude::*;
use serde_json::json;

use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::{consents, pending_authorizations};
use crate::scope::ScopeSet;

/// How long a consent page stays answerable.
pub const PENDING_TTL_SECONDS: i64 = 600;
/// Pending requests kept per user; older ones are dropped (SECURITY.md K4).
pub const PENDING_PER_USER: i64 = 20;

/// The scopes `user_id` has already granted `client_id`.
pub fn remembered(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
) -> QueryResult<Option<ScopeSet>> {
    let scope: Option<String> = consents::table
        .find((user_id, client_id))
        .select(consents::scope)
        .first(conn)
        .optional()?;
    Ok(scope.and_then(|s| ScopeSet::parse(&s).ok()))
}

/// Adds `scope` to what the user has granted the client (call in a write transaction).
pub fn remember(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    org_id: Option<&str>,
    scope: &ScopeSet,
    now: Timestamp,
) -> QueryResult<()> {
    let merged = match remembered(conn, user_id, client_id)? {
        Some(old) => ScopeSet::parse_many([old.to_string().as_str(), scope.to_string().as_str()])
            .unwrap_or_else(|_| scope.clone()),
        None => scope.clone(),
    };
    let updated = diesel::update(consents::table.find((user_id, client_id)))
        .set((
            consents::scope.eq(merged.to_string()),
            consents::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(consents::table)
            .values((
                consents::user_id.eq(user_id),
                consents::client_id.eq(client_id),
                consents::scope.eq(merged.to_string()),
                consents::created_at.eq(now),
                consents::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    crate::audit::record(
        conn,
        &crate::audit::Event {
            org_id,
            actor: &format!("user:{user_id}"),
            action: "consent.granted",
            target_type: "client",
            target_id: client_id,
            details: json!({"scope": merged.to_string()}),
        },
        now,
    )
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
}

/// Stores a pending request, dropping the user's oldest beyond [`PENDING_PER_USER`].
pub fn insert_pending(conn: &mut DbConnection, p: &Pending) -> QueryResult<()> {
    diesel::insert_into(pending_authorizations::table)
        .values(p)
        .execute(conn)?;
    let keep: Vec<String> = pending_authorizations::table
        .filter(pending_authorizations::user_id.eq(&p.user_id))
        .order(pending_authorizations::created_at.desc())
        .limit(PENDING_PER_USER)
        .select(pending_authorizations::id)
        .load(conn)?;
    diesel::delete(
        pending_authorizations::table
            .filter(pending_authorizations::user_id.eq(&p.user_id))
            .filter(pending_authorizations::id.ne_all(keep)),
    )
    .execute(conn)?;
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
