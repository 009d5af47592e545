//! The audit log: who did what, when, to which key, client, consent or membership. Entries
//! carry ids and last-six fingerprints, never a secret.

use diesel::prelude::*;
use serde_json::Value;

use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::audit_events;

/// One event to record. `actor` is `user:<id>`, `key:<id>`, `client:<id>` or `cli`.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub org_id: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub details: Value,
}

/// Records an event inside the caller's transaction, so the action and its audit entry
/// commit together or not at all.
pub fn record(conn: &mut DbConnection, e: &Event<'_>, now: Timestamp) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::org_id.eq(e.org_id),
            audit_events::actor.eq(e.actor),
            audit_events::action.eq(e.action),
            audit_events::target_type.eq(e.target_type),
            audit_events::target_id.eq(e.target_id),
            audit_events::details.eq(e.details.to_string()),
            audit_events::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = audit_events)]
pub struct AuditEntry {
    pub seq: i64,
    pub org_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub details: String,
    pub created_at: i64,
}

/// The newest `limit` entries of an organization.
pub fn list_for_org(
    conn: &mut DbConnection,
    org_id: &str,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    audit_events::table
        .filter(audit_events::org_id.eq(org_id))
        .order(audit_events::seq.desc())
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)
}

/// Audit actions that change whether a cached credential is still good; every instance
/// polls for them (see `api_keys::cache`, `tokens::cache`).
pub const CREDENTIAL_CHANGES: &[&str] = &[
    "api_key.revoked",
    "api_key.rolled",
    "client.deleted",
    "client.secret_rotated",
    // A client's grant types or scope changed: cached authentications of it go.
    "client.updated",
];

/// (seq, action, target id) of credential changes recorded since `since`.
pub fn credential_changes_since(
    conn: &mut DbConnection,
    since: Timestamp,
) -> QueryResult<Vec<(i64, String, String)>> {
    audit_events::table
        .filter(audit_events::target_type.eq_any(["api_key", "client"]))
        .filter(audit_events::created_at.ge(since))
        .filter(audit_events::action.eq_any(CREDENTIAL_CHANGES))
        .select((
            audit_events::seq,
            audit_events::action,
            audit_events::target_id,
        ))
        .load(conn)
}

/// The organization's audit log, newest first, at most 500 entries (admins; members 403).
pub fn for_org(
    conn: &mut DbConnection,
    actor: &crate::orgs::Actor,
) -> Result<Vec<AuditEntry>, crate::error::OpError> {
    actor.require_admin()?;
    Ok(list_for_org(conn, &actor.org_id, 500)?)
}
