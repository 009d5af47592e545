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
    pub key_type: String,
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
}

/// The 201 body of key creation (SPEC.md §5); `key` is the only place the plaintext appears.
#[derive(Debug, serde::Serialize)]
pub struct CreatedApiKey {
    pub id: String,
    pub key: String,
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub scopes: Vec<String>,
    pub last_six: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub rate_limit_per_minute: i64,
}

/// The effective per-minute limit of a key: its own, else its organization's custom one,
/// else the plan's.
pub fn effective_limit(
    own: Option<i64>,
    org_custom: Option<i64>,
    plan: Plan,
    plans: &PlanLimits,
) -> i64 {
    own.or(org_custom).unwrap_or(match plan {
        Plan::Free => plans.free,
        Plan::Pro => plans.pro,
    })
}

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
        return Err(invalid("name must be 1-200 characters"));
    }
    if new.scopes.is_empty() {
        return Err(invalid("at least one scope is required"));
    }
    catalogue
        .check(&new.scopes)
        .map_err(|_| invalid("a scope is not in the catalogue"))?;
    if new.key_type == KeyType::Publishable && !new.scopes.all_read() {
        return Err(invalid(
            "publishable keys may only carry read scopes (*:read)",
        ));
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
    let plan = Plan::parse(&org.plan).unwrap_or(Plan::Free);

    let plain: PlainApiKey = format::generate(key_prefix, new.key_type);
    let row = ApiKeyRow {
        id: crate::crypto::new_id("key_"),
        org_id: org.id.clone(),
        name: name.to_string(),
        key_type: new.key_type.as_str().to_string(),
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
    let actor = match &new.created_by {
        Some(u) => format!("user:{u}"),
        None => "cli".to_string(),
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
        rate_limit_per_minute: effective_limit(
            new.rate_limit_per_minute,
            org.rate_limit_per_minute,
            plan,
            plans,
        ),
    })
}

pub fn find_by_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .filter(api_keys::key_hash.eq(hash))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()
}
