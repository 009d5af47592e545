//! The operator's organization operations (docs/spec.md §1, `tessera org list` and
//! `tessera org update`, `PATCH /api/v1/orgs/{id}`): list every organization, change one's
//! name, plan or budget (docs/spec.md §10). Each owns its
//! permission check, transaction and audit record, like every other operation.

use serde_json::json;

use super::store::{self, Organization};
use super::{Actor, Plan};
use crate::app::Ctx;
use crate::clock::rfc3339;
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;

/// An organization as `tessera org list` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgSummary {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    /// The organization's per-minute budget shared by all its keys, when it has one
    /// (docs/spec.md §10); each key also has its own limit.
    pub rate_limit_per_minute: Option<i64>,
    pub created_at: String,
}

impl From<Organization> for OrgSummary {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id,
            name: o.name,
            plan: o.plan,
            rate_limit_per_minute: o.rate_limit_per_minute,
            created_at: rfc3339(o.created_at),
        }
    }
}

/// Every organization, oldest first.
pub fn list_all(conn: &mut DbConnection) -> Result<Vec<OrgSummary>, OpError> {
    Ok(store::list_all(conn)?
        .into_iter()
        .map(OrgSummary::from)
        .collect())
}

/// What `update` changes; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct OrgChange {
    pub name: Option<String>,
    pub plan: Option<Plan>,
    /// `Some(None)` removes the organization's budget; `Some(Some(n))` sets it (1–1000000).
    pub rate_limit_per_minute: Option<Option<i64>>,
}

/// The largest organization budget, as for keys.
pub const MAX_RATE_LIMIT: i64 = 1_000_000;

/// Renames the actor's organization and/or changes its plan or budget (admins). The new
/// plan's default rate limit (for keys without their own) and the new budget apply once
/// the servers' key caches expire (`--cache-ttl-ms`, 1 s by default).
pub fn update(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    change: &OrgChange,
) -> Result<OrgSummary, OpError> {
    actor.require_admin()?;
    if change.name.is_none() && change.plan.is_none() && change.rate_limit_per_minute.is_none() {
        return Err(OpError::invalid(
            "Give a new name, plan or rate_limit_per_minute.",
        ));
    }
    if let Some(Some(l)) = change.rate_limit_per_minute
        && !(1..=MAX_RATE_LIMIT).contains(&l)
    {
        return Err(OpError::invalid(format!(
            "rate_limit_per_minute must be between 1 and {MAX_RATE_LIMIT}, or null."
        )));
    }
    let name = change
        .name
        .as_deref()
        .map(super::validate_name)
        .transpose()
        .map_err(|e| OpError::invalid(format!("name: {e}.")))?;
    write_tx(conn, |conn| -> Result<_, OpError> {
        let current = store::find(conn, &actor.org_id)?.ok_or(OpError::NotFound("organization"))?;
        let name = name.unwrap_or(&current.name).to_string();
        let plan = change.plan.unwrap_or(current.plan);
        let budget = change
            .rate_limit_per_minute
            .unwrap_or(current.rate_limit_per_minute);
        store::update(conn, &current.id, &name, plan, budget)?;
        actor.audit(
            conn,
            "org.updated",
            ("organization", &current.id),
            json!({
                "name": name, "plan": plan, "rate_limit_per_minute": budget,
                "previous_name": current.name, "previous_plan": current.plan,
                "previous_rate_limit_per_minute": current.rate_limit_per_minute,
            }),
            ctx.now,
        )?;
        Ok(OrgSummary::from(Organization {
            name,
            plan,
            rate_limit_per_minute: budget,
            ..current
        }))
    })
}
