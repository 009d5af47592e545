//! The API-key operations (docs/spec.md §5): create, list, find, revoke, roll. The
//! `/api/v1/api-keys` handlers, the `/settings/api-keys` page and `tessera api-key create`
//! all call these, so each rule (who may grant what, who may revoke) is written once.
//! Each owns its permission check, its transaction, its audit record and the cache
//! invalidation that follows.

use serde::Deserialize;

use super::KeyType;
use super::store::{self, ApiKeyRow, CreatedApiKey, Expiry, KeySummary, NewApiKey};
use crate::app::Ctx;
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;
use crate::orgs::{Actor, Role};
use crate::scope::{Catalogue, MANAGEMENT_SCOPE, ScopesInput};

/// What a key creation asks for (`POST /api/v1/api-keys`, the page's form, the CLI).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    pub scopes: ScopesInput,
    #[serde(rename = "type", default = "secret")]
    #[schema(default = "secret")]
    pub key_type: KeyType,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: Option<i64>,
    /// RFC 3339 date-time.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000000)]
    pub rate_limit_per_minute: Option<i64>,
}

fn secret() -> KeyType {
    KeyType::Secret
}

impl CreateKey {
    /// The expiry asked for: days, a date, or neither (never).
    pub fn expiry(&self) -> Result<Expiry, OpError> {
        match (self.expires_in_days, &self.expires_at) {
            (Some(_), Some(_)) => Err(OpError::invalid(
                "Give expires_in_days or expires_at, not both.",
            )),
            (Some(d), None) => Ok(Expiry::InDays(d)),
            (None, Some(at)) => crate::clock::parse_rfc3339(at)
                .map(Expiry::At)
                .ok_or_else(|| OpError::invalid("expires_at must be an RFC 3339 date-time.")),
            (None, None) => Ok(Expiry::Never),
        }
    }
}

/// The catalogue scopes a role may give a key (docs/spec.md §5): admins any, members every
/// scope but `admin`.
pub fn grantable(catalogue: &Catalogue, role: Role) -> Vec<&str> {
    catalogue
        .names()
        .filter(|s| role == Role::Admin || *s != MANAGEMENT_SCOPE)
        .collect()
}

/// Creates a key for the actor's organization. 403 when a member asks for `admin`; 400
/// for a scope outside the catalogue or a bad expiry. The plaintext key exists only in
/// the answer.
pub fn create(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    input: &CreateKey,
) -> Result<CreatedApiKey, OpError> {
    let scopes = input.scopes.parse()?;
    if !actor.is_admin() && scopes.contains(MANAGEMENT_SCOPE) {
        return Err(OpError::Forbidden(
            "Only organization admins may give a key the admin scope.",
        ));
    }
    // docs/spec.md §10: the organization's policies (members may create; lifetime cap).
    let expiry = input.expiry()?;
    let policy = crate::orgs::policy::load(conn, &actor.org_id)?;
    policy.check_may_create(actor)?;
    policy.check_lifetime(expiry.resolve(ctx.now)?, ctx.now)?;
    let new = NewApiKey {
        org_id: actor.org_id.clone(),
        name: input.name.clone(),
        key_type: input.key_type,
        scopes,
        expiry,
        rate_limit_per_minute: input.rate_limit_per_minute,
        created_by: actor.user_id.clone(),
        audited_as: Some(actor.label.clone()),
    };
    let s = ctx.settings;
    Ok(write_tx(conn, |conn| {
        store::create(conn, new, &s.scopes, &s.key_prefix, &s.plan_limits, ctx.now)
    })?)
}

/// The organization's live keys with their effective limits (never the secret).
pub fn list(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
) -> Result<Vec<KeySummary>, OpError> {
    Ok(store::summaries(
        conn,
        &actor.org_id,
        &ctx.settings.plan_limits,
        ctx.now,
    )?)
}

/// The organization's live key rows, newest first (the settings page).
pub fn rows(conn: &mut DbConnection, actor: &Actor) -> Result<Vec<ApiKeyRow>, OpError> {
    Ok(store::list(conn, &actor.org_id)?)
}

/// One live key of the actor's organization; another organization's is 404 (docs/security.md
/// I8).
pub fn find(conn: &mut DbConnection, actor: &Actor, id: &str) -> Result<ApiKeyRow, OpError> {
    store::find_in_org(conn, &actor.org_id, id)?.ok_or(OpError::NotFound("API key"))
}

/// Revokes a key (admins): refused from the next request on, on this instance at once and
/// on others through the audit-log poll.
pub fn revoke(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: &str,
) -> Result<(), OpError> {
    // Another organization's key is a 404 whoever asks; a member learns nothing more.
    find(conn, actor, id)?;
    actor.require_admin()?;
    let revoked = write_tx(conn, |conn| {
        store::revoke(conn, &actor.org_id, id, &actor.label, ctx.now)
    })?;
    if !revoked {
        return Err(OpError::NotFound("API key"));
    }
    ctx.key_revoked(id);
    Ok(())
}

/// Longest overlap a key roll or a secret rotation may give the old credential: 30 days.
pub const MAX_OVERLAP_SECONDS: i64 = 30 * 86_400;

/// Checks an overlap (`expire_old_in_seconds`, seconds) against `0..=MAX_OVERLAP_SECONDS`.
pub fn check_overlap(seconds: i64) -> Result<i64, OpError> {
    if (0..=MAX_OVERLAP_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(OpError::invalid(format!(
            "expire_old_in_seconds must be between 0 and {MAX_OVERLAP_SECONDS}."
        )))
    }
}

/// Rolls a key (admins): a new key like the old one; the old one works for `overlap`
/// more seconds.
pub fn roll(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: &str,
    overlap: i64,
) -> Result<CreatedApiKey, OpError> {
    let overlap = check_overlap(overlap)?;
    find(conn, actor, id)?;
    actor.require_admin()?;
    let s = ctx.settings;
    let created = write_tx(conn, |conn| {
        store::roll(
            conn,
            &actor.org_id,
            id,
            overlap,
            actor.user_id.clone(),
            &actor.label,
            &s.scopes,
            &s.key_prefix,
            &s.plan_limits,
            ctx.now,
        )
    })?
    .ok_or(OpError::NotFound("API key"))?;
    // The old key's new expiry applies here from the next request on.
    ctx.key_changed(id);
    Ok(created)
}
