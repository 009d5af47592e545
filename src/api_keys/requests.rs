//! Key requests (docs/spec.md §10): when members may not create keys, they ask. A member
//! asks (`pending`), an admin approves or denies, and the requester (only they) claims the
//! key exactly once: the claim and the key are one transaction, guarded by the status
//! (`approved` → `claimed`), so two concurrent claims make one key. The key's expiry
//! counts from the approval. Every step has an audit record.

use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::KeyType;
use super::ops::grantable;
use super::store::{self, CreatedApiKey, Expiry, NewApiKey};
use crate::app::Ctx;
use crate::clock::rfc3339;
use crate::db::schema::key_requests;
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;
use crate::orgs::Actor;
use crate::scope::{MANAGEMENT_SCOPE, ScopesInput};

/// `POST /api/v1/key-requests` `{name, scopes, reason, expires_in_days?}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    pub name: String,
    pub scopes: ScopesInput,
    /// Why the key is needed (1–1000 characters), shown to the admins.
    pub reason: String,
    /// Days from the approval; absent: the key never expires (if the policy allows).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: Option<i64>,
}

/// A key request as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct KeyRequest {
    pub id: String,
    /// `pending`, `approved`, `denied` or `claimed`.
    pub status: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub reason: String,
    pub expires_in_days: Option<i64>,
    pub requested_by: String,
    pub decided_by: Option<String>,
    #[schema(format = DateTime)]
    pub decided_at: Option<String>,
    /// The key made by the claim.
    pub key_id: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = key_requests)]
struct Row {
    id: String,
    org_id: String,
    requested_by: String,
    name: String,
    scope: String,
    reason: String,
    expires_in_days: Option<i64>,
    status: String,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    key_id: Option<String>,
    created_at: i64,
}

impl From<Row> for KeyRequest {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            status: r.status,
            name: r.name,
            scopes: r.scope.split(' ').map(str::to_string).collect(),
            reason: r.reason,
            expires_in_days: r.expires_in_days,
            requested_by: r.requested_by,
            decided_by: r.decided_by,
            decided_at: r.decided_at.map(rfc3339),
            key_id: r.key_id,
            created_at: rfc3339(r.created_at),
        }
    }
}

/// Why a claim is refused, beyond the shared errors: the key was already claimed (410).
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("The key of this request has already been claimed.")]
    Gone,
    #[error(transparent)]
    Op(#[from] OpError),
}

impl From<crate::error::AppError> for ClaimError {
    fn from(e: crate::error::AppError) -> Self {
        Self::Op(e.into())
    }
}

impl From<diesel::result::Error> for ClaimError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Op(e.into())
    }
}

fn requester(actor: &Actor) -> Result<&str, OpError> {
    actor.user_id.as_deref().ok_or(OpError::Forbidden(
        "Only a person asks for a key; this credential acts for no user.",
    ))
}

/// A member asks for a key. 400 names a bad field (name, scopes, reason,
/// expires_in_days); a member may not ask for `admin` (403), as on creation.
pub fn create(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    input: &NewKeyRequest,
) -> Result<KeyRequest, OpError> {
    let user = requester(actor)?.to_string();
    let scopes = input.scopes.parse()?;
    let catalogue = &ctx.settings.scopes;
    if scopes.is_empty() {
        return Err(OpError::invalid(format!(
            "scopes: at least one scope is required. Valid scopes: {}.",
            catalogue.listed()
        )));
    }
    catalogue.check_named(&scopes).map_err(OpError::invalid)?;
    let allowed = grantable(catalogue, actor.role);
    if scopes.iter().any(|s| !allowed.contains(&s.as_str())) {
        return Err(OpError::Forbidden(
            "Only organization admins may give a key the admin scope.",
        ));
    }
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(OpError::invalid(
            "name must be 1-200 characters, without control characters.",
        ));
    }
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(OpError::invalid("reason must be 1-1000 characters."));
    }
    if let Some(d) = input.expires_in_days
        && !(1..=365).contains(&d)
    {
        return Err(OpError::invalid(
            "expires_in_days must be between 1 and 365.",
        ));
    }
    let row = Row {
        id: crate::crypto::new_id("kreq_"),
        org_id: actor.org_id.clone(),
        requested_by: user,
        name: name.to_string(),
        scope: scopes.to_string(),
        reason: reason.to_string(),
        expires_in_days: input.expires_in_days,
        status: "pending".into(),
        decided_by: None,
        decided_at: None,
        key_id: None,
        created_at: ctx.now,
    };
    write_tx(conn, |conn| -> Result<(), OpError> {
        diesel::insert_into(key_requests::table)
            .values(&row)
            .execute(conn)?;
        actor.audit(
            conn,
            "key_request.created",
            ("key_request", &row.id),
            json!({"name": row.name, "scopes": row.scope, "reason": row.reason}),
            ctx.now,
        )?;
        Ok(())
    })?;
    Ok(row.into())
}

/// Admins see the organization's requests, members their own; newest first.
pub fn list(conn: &mut DbConnection, actor: &Actor) -> Result<Vec<KeyRequest>, OpError> {
    let mut q = key_requests::table
        .filter(key_requests::org_id.eq(&actor.org_id))
        .order((key_requests::created_at.desc(), key_requests::id.desc()))
        .select(Row::as_select())
        .into_boxed();
    if !actor.is_admin() {
        q = q.filter(key_requests::requested_by.eq(actor.user_id.clone().unwrap_or_default()));
    }
    Ok(q.load(conn)?.into_iter().map(KeyRequest::from).collect())
}

/// The organization of request `id`, whichever it is (the operator's CLI, which then acts
/// in that organization).
pub fn org_of(conn: &mut DbConnection, id: &str) -> Result<Option<String>, OpError> {
    Ok(key_requests::table
        .find(id)
        .select(key_requests::org_id)
        .first(conn)
        .optional()?)
}

/// Pending requests of the organization (the notice on the admins' key page).
pub fn pending_count(conn: &mut DbConnection, org_id: &str) -> Result<i64, OpError> {
    Ok(key_requests::table
        .filter(key_requests::org_id.eq(org_id))
        .filter(key_requests::status.eq("pending"))
        .count()
        .get_result(conn)?)
}

fn find(conn: &mut DbConnection, actor: &Actor, id: &str) -> Result<Row, OpError> {
    key_requests::table
        .find(id)
        .filter(key_requests::org_id.eq(&actor.org_id))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or(OpError::NotFound("key request"))
}

/// Approves (`approve = true`) or denies a pending request (admins). 409 when it is not
/// pending; another organization's is 404.
pub fn decide(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: &str,
    approve: bool,
) -> Result<KeyRequest, OpError> {
    actor.require_admin()?;
    let status = if approve { "approved" } else { "denied" };
    write_tx(conn, |conn| -> Result<KeyRequest, OpError> {
        find(conn, actor, id)?;
        let changed = diesel::update(
            key_requests::table
                .find(id)
                .filter(key_requests::status.eq("pending")),
        )
        .set((
            key_requests::status.eq(status),
            key_requests::decided_by.eq(&actor.label),
            key_requests::decided_at.eq(ctx.now),
        ))
        .execute(conn)?;
        if changed == 0 {
            return Err(OpError::Conflict("The request is no longer pending."));
        }
        actor.audit(
            conn,
            &format!("key_request.{status}"),
            ("key_request", id),
            json!({}),
            ctx.now,
        )?;
        Ok(find(conn, actor, id)?.into())
    })
}

/// The requester claims the key of an approved request: 201 with the key, exactly once
/// (then [`ClaimError::Gone`], 410). Anyone else is 404; pending or denied is 409. The key
/// expires `expires_in_days` after the approval and must fit the organization's
/// `max_key_lifetime_days`.
pub fn claim(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: &str,
) -> Result<CreatedApiKey, ClaimError> {
    let user = requester(actor)?.to_string();
    let s = ctx.settings;
    write_tx(conn, |conn| -> Result<CreatedApiKey, ClaimError> {
        let row = find(conn, actor, id)?;
        if row.requested_by != user {
            return Err(OpError::NotFound("key request").into());
        }
        match row.status.as_str() {
            "approved" => {}
            "claimed" => return Err(ClaimError::Gone),
            _ => return Err(OpError::Conflict("The request has not been approved.").into()),
        }
        let approved_at = row.decided_at.unwrap_or(ctx.now);
        let expires_at = row.expires_in_days.map(|d| approved_at + d * 86_400);
        crate::orgs::policy::load(conn, &actor.org_id)?.check_lifetime(expires_at, approved_at)?;
        let scopes = crate::scope::ScopeSet::parse(&row.scope)
            .map_err(|_| OpError::invalid("scopes: the stored scopes are unreadable."))?;
        if scopes.contains(MANAGEMENT_SCOPE) && !actor.is_admin() {
            return Err(OpError::Forbidden(
                "Only organization admins may give a key the admin scope.",
            )
            .into());
        }
        let created = store::create(
            conn,
            NewApiKey {
                org_id: row.org_id.clone(),
                name: row.name.clone(),
                key_type: KeyType::Secret,
                scopes,
                expiry: expires_at.map_or(Expiry::Never, Expiry::At),
                rate_limit_per_minute: None,
                created_by: Some(user.clone()),
                // Made when the requester claims it; the approval is audited on its own.
                audited_as: None,
            },
            &s.scopes,
            &s.key_prefix,
            &s.plan_limits,
            ctx.now,
        )
        .map_err(OpError::from)?;
        let claimed = diesel::update(
            key_requests::table
                .find(id)
                .filter(key_requests::status.eq("approved")),
        )
        .set((
            key_requests::status.eq("claimed"),
            key_requests::key_id.eq(&created.id),
        ))
        .execute(conn)?;
        if claimed == 0 {
            // Another claim won meanwhile; this transaction (and its key) is rolled back.
            return Err(ClaimError::Gone);
        }
        actor.audit(
            conn,
            "key_request.claimed",
            ("key_request", id),
            json!({"key_id": created.id}),
            ctx.now,
        )?;
        Ok(created)
    })
}
