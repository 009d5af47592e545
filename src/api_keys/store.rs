//! Creation and storage of API keys. Only the SHA-256 of a key is stored, with its
//! last six characters for display.

use diesel::prelude::*;
use serde_json::json;

use super::KeyType;
use super::format::{self, PlainApiKey};
use crate::clock::{Timestamp, rfc3339};
use crate::config::PlanLimits;
use crate::db::DbConnection;
use crate::db::schema::api_keys;
use crate::orgs::Plan;
use crate::scope::{Catalogue, ScopeSet};

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("organization {0} does not exist")]
    OrgNotFound(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

fn invalid(msg: impl Into<String>) -> ApiKeyError {
    ApiKeyError::Invalid(msg.into())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub key_type: KeyType,
    pub key_hash: String,
    pub prefix: String,
    pub last_six: String,
    pub scope: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub rate_limit_per_minute: Option<i64>,
}

/// When a new key expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    InDays(i64),
    At(Timestamp),
}

impl Expiry {
    pub fn resolve(self, now: Timestamp) -> Result<Option<Timestamp>, ApiKeyError> {
        match self {
            Self::Never => Ok(None),
            Self::InDays(d) if (1..=365).contains(&d) => Ok(Some(now + d * 86_400)),
            Self::InDays(_) => Err(invalid("expires_in_days must be between 1 and 365")),
            Self::At(t) if t > now => Ok(Some(t)),
            Self::At(_) => Err(invalid("expires_at must be in the future")),
        }
    }
}

/// What a new key asks for.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub org_id: String,
    pub name: String,
    pub key_type: KeyType,
    pub scopes: ScopeSet,
    pub expiry: Expiry,
    pub rate_limit_per_minute: Option<i64>,
    /// `None`: made with the CLI (acts as an organization admin).
    pub created_by: Option<String>,
    /// Who made it, for the audit log (`key:<id>`, `user:<id>`, `cli`); `None`: the
    /// person in `created_by`, else `cli`.
    pub audited_as: Option<String>,
}

/// The 201 body of key creation (docs/spec.md §5); `key` is the only place the plaintext appears.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    pub key: String,
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub scopes: Vec<String>,
    pub last_six: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    pub rate_limit_per_minute: i64,
}

/// The per-minute limit of a key: its own, else its organization's plan's (docs/spec.md
/// §5). An organization's own budget (§10) limits its keys besides, in the limiter.
pub fn effective_limit(own: Option<i64>, plan: Plan, plans: &PlanLimits) -> i64 {
    own.unwrap_or(match plan {
        Plan::Free => plans.free,
        Plan::Pro => plans.pro,
    })
}

/// Read scopes a publishable key may not carry: they read the organization's own data
/// (`analytics:read`: `GET /api/v1/usage`, docs/spec.md §10).
pub const NOT_PUBLISHABLE: &[&str] = &["analytics:read"];

/// Validates and inserts a key with its audit entry. Call inside a write transaction.
pub fn create(
    conn: &mut DbConnection,
    new: NewApiKey,
    catalogue: &Catalogue,
    key_prefix: &str,
    plans: &PlanLimits,
    now: Timestamp,
) -> Result<CreatedApiKey, ApiKeyError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(invalid(
            "name must be 1-200 characters, without control characters.",
        ));
    }
    if new.scopes.is_empty() {
        return Err(invalid(format!(
            "scopes: at least one scope is required. Valid scopes: {}.",
            catalogue.listed()
        )));
    }
    catalogue.check_named(&new.scopes).map_err(invalid)?;
    if new.key_type == KeyType::Publishable && !new.scopes.all_read() {
        let write: Vec<&str> = new
            .scopes
            .iter()
            .filter(|s| !s.is_read())
            .map(|s| s.as_str())
            .collect();
        return Err(invalid(format!(
            "publishable keys may only carry read scopes (*:read), not {}.",
            write.join(" ")
        )));
    }
    // docs/spec.md §5, §10: a publishable key ships in web pages; a scope that reads the
    // organization's own data (its usage) would hand that to anyone.
    if new.key_type == KeyType::Publishable
        && let Some(private) = NOT_PUBLISHABLE.iter().find(|s| new.scopes.contains(s))
    {
        return Err(invalid(format!(
            "scopes: publishable keys are public and may not carry {private} (it reads the organization's usage)."
        )));
    }
    if let Some(l) = new.rate_limit_per_minute
        && !(1..=1_000_000).contains(&l)
    {
        return Err(invalid(
            "rate_limit_per_minute must be between 1 and 1000000",
        ));
    }
    let expires_at = new.expiry.resolve(now)?;
    let org = crate::orgs::store::find(conn, &new.org_id)?
        .ok_or_else(|| ApiKeyError::OrgNotFound(new.org_id.clone()))?;
    let plan = org.plan;

    let plain: PlainApiKey = format::generate(key_prefix, new.key_type);
    let row = ApiKeyRow {
        id: crate::crypto::new_id("key_"),
        org_id: org.id.clone(),
        name: name.to_string(),
        key_type: new.key_type,
        key_hash: plain.hash(),
        prefix: format!("{key_prefix}_{}_", new.key_type.tag()),
        last_six: plain.last_six().to_string(),
        scope: new.scopes.to_string(),
        created_by: new.created_by.clone(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
        rate_limit_per_minute: new.rate_limit_per_minute,
    };
    diesel::insert_into(api_keys::table)
        .values(&row)
        .execute(conn)?;
    let actor = match (&new.audited_as, &new.created_by) {
        (Some(label), _) => label.clone(),
        (None, Some(u)) => format!("user:{u}"),
        (None, None) => "cli".to_string(),
    };
    crate::audit::record(
        conn,
        &crate::audit::Event {
            org_id: Some(&org.id),
            actor: &actor,
            action: "api_key.created",
            target_type: "api_key",
            target_id: &row.id,
            details: json!({"name": row.name, "last_six": row.last_six, "type": row.key_type, "scopes": row.scope}),
        },
        now,
    )?;
    Ok(CreatedApiKey {
        id: row.id,
        key: plain.expose().to_string(),
        name: row.name,
        key_type: new.key_type,
        scopes: new.scopes.to_vec(),
        last_six: row.last_six,
        created_at: rfc3339(now),
        expires_at: expires_at.map(rfc3339),
        rate_limit_per_minute: effective_limit(new.rate_limit_per_minute, plan, plans),
    })
}

pub fn find_by_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .filter(api_keys::key_hash.eq(hash))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()
}

/// A key as the list shows it (docs/spec.md §5): everything but the secret.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct KeySummary {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub scopes: Vec<String>,
    pub last_six: String,
    pub created_by: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    pub rate_limit_per_minute: i64,
    /// Whole days since the key was made (docs/spec.md §10: keys older than 90 are due
    /// for rotation).
    pub age_days: i64,
    /// Epoch seconds of the last use, else of creation (the `unused_for_days` filter).
    #[serde(skip)]
    pub last_active: Timestamp,
}

impl KeySummary {
    /// `limit` is the key's effective per-minute limit (its own, else the organization's).
    fn new(r: ApiKeyRow, limit: i64, now: Timestamp) -> Self {
        Self {
            age_days: crate::api_keys::age_days(r.created_at, now),
            last_active: r.last_used_at.unwrap_or(r.created_at),
            id: r.id,
            name: r.name,
            key_type: r.key_type,
            scopes: r.scope.split(' ').map(str::to_string).collect(),
            last_six: r.last_six,
            created_by: r.created_by,
            created_at: rfc3339(r.created_at),
            expires_at: r.expires_at.map(rfc3339),
            last_used_at: r.last_used_at.map(rfc3339),
            rate_limit_per_minute: limit,
        }
    }
}

/// The list of docs/spec.md §5: the organization's live keys with their effective limits.
pub fn summaries(
    conn: &mut DbConnection,
    org_id: &str,
    plans: &PlanLimits,
    now: Timestamp,
) -> QueryResult<Vec<KeySummary>> {
    let Some(org) = crate::orgs::store::find(conn, org_id)? else {
        return Ok(Vec::new());
    };
    let plan = org.plan;
    Ok(list(conn, org_id)?
        .into_iter()
        .map(|r| {
            let limit = effective_limit(r.rate_limit_per_minute, plan, plans);
            KeySummary::new(r, limit, now)
        })
        .collect())
}

/// The organization's keys that are not revoked, newest first.
pub fn list(conn: &mut DbConnection, org_id: &str) -> QueryResult<Vec<ApiKeyRow>> {
    api_keys::table
        .filter(api_keys::org_id.eq(org_id))
        .filter(api_keys::revoked_at.is_null())
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .select(ApiKeyRow::as_select())
        .load(conn)
}

/// A live (not revoked) key, whichever organization it belongs to (the operator's CLI,
/// which then acts in that organization).
pub fn find_live(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .find(id)
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()
}

/// A live (not revoked) key of this organization; another organization's key is `None`,
/// exactly like a key that does not exist (docs/security.md I8).
pub fn find_in_org(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .find(id)
        .filter(api_keys::org_id.eq(org_id))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()
}

/// The ids of the live (not revoked) keys `user_id` created in this organization
/// (docs/spec.md §5, `revoke_keys`).
pub fn live_ids_created_by(
    conn: &mut DbConnection,
    org_id: &str,
    user_id: &str,
) -> QueryResult<Vec<String>> {
    api_keys::table
        .filter(api_keys::org_id.eq(org_id))
        .filter(api_keys::created_by.eq(user_id))
        .filter(api_keys::revoked_at.is_null())
        .order(api_keys::created_at.asc())
        .select(api_keys::id)
        .load(conn)
}

/// Revokes a key with its audit entry. Returns false when there was nothing to revoke.
pub fn revoke(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
    actor: &str,
    now: Timestamp,
) -> QueryResult<bool> {
    let Some(row) = find_in_org(conn, org_id, id)? else {
        return Ok(false);
    };
    diesel::update(
        api_keys::table
            .find(id)
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(now))
    .execute(conn)?;
    crate::audit::record(
        conn,
        &crate::audit::Event {
            org_id: Some(org_id),
            actor,
            action: "api_key.revoked",
            target_type: "api_key",
            target_id: id,
            details: json!({"name": row.name, "last_six": row.last_six}),
        },
        now,
    )?;
    Ok(true)
}

/// Rolls a key: a new key with the same name, type, scopes and rate limit, expiring after
/// the same lifetime from now (or never); the old key stops at `now + overlap` (or earlier,
/// if it already expires sooner). `None` when the key is not a live key of this
/// organization.
#[allow(clippy::too_many_arguments)]
pub fn roll(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
    overlap_seconds: i64,
    actor_user: Option<String>,
    actor: &str,
    catalogue: &Catalogue,
    key_prefix: &str,
    plans: &PlanLimits,
    now: Timestamp,
) -> Result<Option<CreatedApiKey>, ApiKeyError> {
    let Some(old) = find_in_org(conn, org_id, id)? else {
        return Ok(None);
    };
    let expiry = match old.expires_at {
        None => Expiry::Never,
        Some(e) => Expiry::At(now + (e - old.created_at).max(1)),
    };
    let created = create(
        conn,
        NewApiKey {
            org_id: org_id.to_string(),
            name: old.name.clone(),
            key_type: old.key_type,
            scopes: ScopeSet::parse(&old.scope).map_err(|_| invalid("stored scopes"))?,
            expiry,
            rate_limit_per_minute: old.rate_limit_per_minute,
            created_by: actor_user,
            audited_as: Some(actor.to_string()),
        },
        catalogue,
        key_prefix,
        plans,
        now,
    )?;
    let old_end = now + overlap_seconds;
    if old.expires_at.is_none_or(|e| e > old_end) {
        diesel::update(api_keys::table.find(id))
            .set(api_keys::expires_at.eq(Some(old_end)))
            .execute(conn)?;
    }
    crate::audit::record(
        conn,
        &crate::audit::Event {
            org_id: Some(org_id),
            actor,
            action: "api_key.rolled",
            target_type: "api_key",
            target_id: id,
            details: json!({"name": old.name, "last_six": old.last_six,
                            "new_key_id": created.id, "new_last_six": created.last_six,
                            "old_expires_at": old_end.min(old.expires_at.unwrap_or(i64::MAX))}),
        },
        now,
    )?;
    Ok(Some(created))
}
