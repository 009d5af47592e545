//! `PATCH /api/v1/orgs/{id}` (docs/spec.md §10): an organization's name and per-minute
//! budget, changed by its admins through `orgs::ops::update`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Deserializer};

use super::openapi::{BearerErrors, InvalidRequest, TooLarge};
use super::{ApiError, ApiJson, Principal, json_response};
use crate::app::AppState;
use crate::http::with_db;
use crate::orgs::members;
use crate::orgs::ops::{self, OrgChange};

/// `{name?, rate_limit_per_minute?: N | null}`: what to change; a field left out stays.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    #[serde(default)]
    pub name: Option<String>,
    /// Units per minute shared by all the organization's keys (1–1000000); `null` removes
    /// the budget.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, nullable)]
    pub rate_limit_per_minute: Option<serde_json::Value>,
}

/// Keeps an explicit `null` apart from a field left out.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// The 200 body: the organization after the change.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub rate_limit_per_minute: Option<i64>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// `PATCH /api/v1/orgs/{id}` (admins; another organization → 404)
#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org_id}",
    operation_id = "updateOrganization",
    tag = "organizations",
    summary = "Rename the organization or set its per-minute budget (admins)",
    security(("bearer" = [])),
    params(("org_id" = String, Path, description = "The caller's organization")),
    request_body = OrgPatch,
    responses(
        (status = 200, description = "Changed", body = OrgView),
        InvalidRequest, BearerErrors, TooLarge
    )
)]
pub async fn org_patch(
    p: Principal,
    path: web::Path<String>,
    ApiJson(input): ApiJson<OrgPatch>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let budget = match input.rate_limit_per_minute {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(v) => Some(Some(v.as_i64().ok_or_else(|| {
            ApiError::invalid("rate_limit_per_minute must be an integer or null.")
        })?)),
    };
    let change = OrgChange {
        name: input.name,
        plan: None,
        rate_limit_per_minute: budget,
    };
    let st = state.clone();
    let org = with_db(&state, move |conn| {
        members::own_org(&p.actor, &org_id)?;
        ops::update(conn, &st.ctx(), &p.actor, &change)
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        None,
        OrgView {
            id: org.id,
            name: org.name,
            plan: org.plan.as_str().to_string(),
            rate_limit_per_minute: org.rate_limit_per_minute,
            created_at: org.created_at,
        },
    ))
}
