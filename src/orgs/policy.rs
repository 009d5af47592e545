//! Organization settings and policies (docs/spec.md §10): `GET/PATCH /api/v1/orgs/{id}`,
//! `/settings/organization`, and the rules key creation obeys: `max_key_lifetime_days`
//! (a key beyond it, or without expiry, is refused with 400), `members_can_create_keys`
//! (default true; when false members use key requests) and `revoke_leaked_keys` (default
//! true; secret scanning revokes a leaked live key at once). Stored in `org_policies`; an
//! organization without a row has the defaults.

use diesel::prelude::*;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::Actor;
use super::members::own_org;
use crate::app::Ctx;
use crate::clock::Timestamp;
use crate::db::schema::{org_policies, organizations};
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;

/// Largest `max_key_lifetime_days` (keys live at most 365 days anyway, docs/spec.md §5).
pub const MAX_LIFETIME_DAYS: i64 = 365;

/// An organization's policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = org_policies)]
pub struct Policy {
    pub max_key_lifetime_days: Option<i64>,
    pub members_can_create_keys: bool,
    pub revoke_leaked_keys: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_key_lifetime_days: None,
            members_can_create_keys: true,
            revoke_leaked_keys: true,
        }
    }
}

/// The policies of `org_id` (the defaults when none were set).
pub fn load(conn: &mut DbConnection, org_id: &str) -> QueryResult<Policy> {
    Ok(org_policies::table
        .find(org_id)
        .select(Policy::as_select())
        .first(conn)
        .optional()?
        .unwrap_or_default())
}

impl Policy {
    /// Whether a key expiring at `expires_at` (None: never), made at `now`, fits
    /// `max_key_lifetime_days`; 400 naming the expiry fields otherwise.
    pub fn check_lifetime(
        &self,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), OpError> {
        let Some(days) = self.max_key_lifetime_days else {
            return Ok(());
        };
        let fits = expires_at.is_some_and(|t| t <= now + days * 86_400);
        if fits {
            Ok(())
        } else {
            Err(OpError::invalid(format!(
                "expires_in_days / expires_at: this organization's keys must expire within {days} days (max_key_lifetime_days)."
            )))
        }
    }

    /// Whether `actor` may create a key directly: admins always; members unless
    /// `members_can_create_keys` is false (then they ask: `POST /api/v1/key-requests`).
    pub fn check_may_create(&self, actor: &Actor) -> Result<(), OpError> {
        if actor.is_admin() || self.members_can_create_keys {
            Ok(())
        } else {
            Err(OpError::Forbidden(
                "Members of this organization may not create keys; ask an admin with POST /api/v1/key-requests.",
            ))
        }
    }
}

/// The organization as `GET/PATCH /api/v1/orgs/{id}` show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct OrgSettings {
    pub id: String,
    pub name: String,
    /// `free` or `pro`.
    pub plan: String,
    /// The organization's own per-minute limit, if any (docs/spec.md §10 budgets).
    pub rate_limit_per_minute: Option<i64>,
    /// Keys must expire within this many days; `null`: no cap.
    pub max_key_lifetime_days: Option<i64>,
    pub members_can_create_keys: bool,
    pub revoke_leaked_keys: bool,
}

/// `PATCH /api/v1/orgs/{id}`: every field optional; `max_key_lifetime_days: null` removes
/// the cap.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    #[serde(default)]
    pub name: Option<String>,
    /// 1–365, or `null` for no cap.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 365)]
    pub max_key_lifetime_days: Option<Option<i64>>,
    #[serde(default)]
    pub members_can_create_keys: Option<bool>,
    #[serde(default)]
    pub revoke_leaked_keys: Option<bool>,
    /// Units per minute shared by all the organization's keys (1–1000000), or `null` for
    /// no organization budget (docs/spec.md §10).
    /// Kept as JSON until `update` checks it, so that a mistyped value gets a 400 naming
    /// the field rather than the body parser's generic message.
    #[serde(default, deserialize_with = "present_value")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1000000)]
    pub rate_limit_per_minute: Option<serde_json::Value>,
}

/// A field that is present (`Some(value)`, `Some(None)` for `null`) or absent (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// Like [`present`], for a field checked later: `Some(Value::Null)` for `null`.
fn present_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// `rate_limit_per_minute` of a patch: `None` absent, `Some(None)` null, `Some(Some(n))`
/// an integer from 1 to [`super::ops::MAX_RATE_LIMIT`]; anything else is 400 naming it.
fn budget_of(patch: &OrgPatch) -> Result<Option<Option<i64>>, OpError> {
    let max = super::ops::MAX_RATE_LIMIT;
    let invalid = || {
        OpError::invalid(format!(
            "rate_limit_per_minute must be an integer from 1 to {max}, or null."
        ))
    };
    match &patch.rate_limit_per_minute {
        None => Ok(None),
        Some(serde_json::Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_i64() {
            Some(n) if (1..=max).contains(&n) => Ok(Some(Some(n))),
            _ => Err(invalid()),
        },
    }
}

fn settings_of(conn: &mut DbConnection, org_id: &str) -> Result<OrgSettings, OpError> {
    let org = super::store::find(conn, org_id)?.ok_or(OpError::NotFound("organization"))?;
    let p = load(conn, org_id)?;
    Ok(OrgSettings {
        id: org.id,
        name: org.name,
        plan: org.plan.as_str().to_string(),
        rate_limit_per_minute: org.rate_limit_per_minute,
        max_key_lifetime_days: p.max_key_lifetime_days,
        members_can_create_keys: p.members_can_create_keys,
        revoke_leaked_keys: p.revoke_leaked_keys,
    })
}

/// The actor's organization (any member); another organization is 404 (docs/security.md I8).
pub fn get(conn: &mut DbConnection, actor: &Actor, org_id: &str) -> Result<OrgSettings, OpError> {
    own_org(actor, org_id)?;
    settings_of(conn, org_id)
}

/// Changes the name and policies (admins), with an `org.updated` audit record naming the
/// fields that changed.
pub fn update(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    org_id: &str,
    patch: &OrgPatch,
) -> Result<OrgSettings, OpError> {
    own_org(actor, org_id)?;
    actor.require_admin()?;
    let name = match &patch.name {
        Some(n) => Some(
            super::validate_name(n)
                .map_err(|_| {
                    OpError::invalid("name must be 1-200 characters, no control characters.")
                })?
                .to_string(),
        ),
        None => None,
    };
    if let Some(Some(d)) = patch.max_key_lifetime_days
        && !(1..=MAX_LIFETIME_DAYS).contains(&d)
    {
        return Err(OpError::invalid(format!(
            "max_key_lifetime_days must be from 1 to {MAX_LIFETIME_DAYS}, or null."
        )));
    }
    let budget = budget_of(patch)?;
    write_tx(conn, |conn| -> Result<OrgSettings, OpError> {
        let before = settings_of(conn, org_id)?;
        if let Some(n) = &name {
            diesel::update(organizations::table.find(org_id))
                .set(organizations::name.eq(n))
                .execute(conn)?;
        }
        // The budget reaches keys already cached within `--cache-ttl-ms`.
        if let Some(budget) = budget {
            diesel::update(organizations::table.find(org_id))
                .set(organizations::rate_limit_per_minute.eq(budget))
                .execute(conn)?;
        }
        let old = load(conn, org_id)?;
        let new = Policy {
            max_key_lifetime_days: patch
                .max_key_lifetime_days
                .unwrap_or(old.max_key_lifetime_days),
            members_can_create_keys: patch
                .members_can_create_keys
                .unwrap_or(old.members_can_create_keys),
            revoke_leaked_keys: patch.revoke_leaked_keys.unwrap_or(old.revoke_leaked_keys),
        };
        save(conn, org_id, &new, ctx.now)?;
        let after = settings_of(conn, org_id)?;
        let mut changed = serde_json::Map::new();
        let (b, a) = (json!(before), json!(after));
        if let (Some(b), Some(a)) = (b.as_object(), a.as_object()) {
            for (k, v) in a {
                if b.get(k) != Some(v) {
                    changed.insert(k.clone(), v.clone());
                }
            }
        }
        actor.audit(
            conn,
            "org.updated",
            ("organization", org_id),
            serde_json::Value::Object(changed),
            ctx.now,
        )?;
        Ok(after)
    })
}

fn save(conn: &mut DbConnection, org_id: &str, p: &Policy, now: Timestamp) -> QueryResult<()> {
    let updated = diesel::update(org_policies::table.find(org_id))
        .set((
            org_policies::max_key_lifetime_days.eq(p.max_key_lifetime_days),
            org_policies::members_can_create_keys.eq(p.members_can_create_keys),
            org_policies::revoke_leaked_keys.eq(p.revoke_leaked_keys),
            org_policies::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(org_policies::table)
            .values((
                org_policies::org_id.eq(org_id),
                org_policies::max_key_lifetime_days.eq(p.max_key_lifetime_days),
                org_policies::members_can_create_keys.eq(p.members_can_create_keys),
                org_policies::revoke_leaked_keys.eq(p.revoke_leaked_keys),
                org_policies::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orgs::Role;

    #[test]
    fn lifetime_cap_refuses_never_and_too_late() {
        let p = Policy {
            max_key_lifetime_days: Some(30),
            ..Policy::default()
        };
        let now = 1_000_000;
        assert!(p.check_lifetime(Some(now + 30 * 86_400), now).is_ok());
        for bad in [None, Some(now + 30 * 86_400 + 1)] {
            let e = p.check_lifetime(bad, now).expect_err("refused").to_string();
            assert!(e.contains("expires_in_days") && e.contains("30"), "{e}");
        }
        assert!(Policy::default().check_lifetime(None, now).is_ok());
    }

    #[test]
    fn only_admins_create_when_members_may_not() {
        let p = Policy {
            members_can_create_keys: false,
            ..Policy::default()
        };
        let mut a = Actor::cli("org");
        assert!(p.check_may_create(&a).is_ok());
        a.role = Role::Member;
        assert!(p.check_may_create(&a).is_err());
        assert!(Policy::default().check_may_create(&a).is_ok());
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let p: OrgPatch = serde_json::from_str(r#"{"max_key_lifetime_days": null}"#).expect("ok");
        assert_eq!(p.max_key_lifetime_days, Some(None));
        let p: OrgPatch = serde_json::from_str(r#"{}"#).expect("ok");
        assert_eq!(p.max_key_lifetime_days, None);
        let p: OrgPatch = serde_json::from_str(r#"{"max_key_lifetime_days": 7}"#).expect("ok");
        assert_eq!(p.max_key_lifetime_days, Some(Some(7)));
    }
}
