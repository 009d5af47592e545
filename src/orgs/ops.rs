//! The operator's organization operations (docs/spec.md §1, `tessera org list` and
//! `tessera org update`): list every organization, change one's name or plan. Each owns its
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
    /// The organization's own per-key default, when it has one (else the plan's).
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
}

/// Renames the actor's organization and/or changes its plan (admins). The new plan's
/// default rate limit applies to keys without their own once the servers' caches
/// expire (`--cache-ttl-ms`).
pub fn update(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    change: &OrgChange,
) -> Result<OrgSummary, OpError> {
    actor.require_admin()?;
    if change.name.is_none() && change.plan.is_none() {
        return Err(OpError::invalid("Give a new name, a new plan, or both."));
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
        store::update(conn, &current.id, &name, plan)?;
        actor.audit(
            conn,
            "org.updated",
            ("organization", &current.id),
            json!({
                "name": name, "plan": plan,
                "previous_name": current.name, "previous_plan": current.plan,
            }),
            ctx.now,
        )?;
        Ok(OrgSummary::from(Organization {
            name,
            plan,
            ..current
        }))
    })
}
