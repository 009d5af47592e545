//! `GET/PATCH /api/v1/orgs/{org_id}` (docs/spec.md §10): the organization's settings and
//! policies. Extract, call `orgs::policy`, answer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::openapi::{BearerErrors, InvalidRequest, TooLarge};
use super::{ApiError, ApiJson, Principal, json_response};
use crate::app::AppState;
use crate::http::with_db;
use crate::orgs::policy::{self, OrgPatch, OrgSettings};

/// `GET /api/v1/orgs/{org_id}`: any member; another organization is 404.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}",
    operation_id = "getOrganization",
    tag = "organizations",
    summary = "The organization's settings and policies",
    security(("bearer" = [])),
    params(("org_id" = String, Path, description = "The caller's organization")),
    responses(
        (status = 200, description = "The organization", body = OrgSettings),
        InvalidRequest, BearerErrors
    )
)]
pub async fn org_get(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let org = with_db(&state, move |conn| policy::get(conn, &p.actor, &org_id)).await?;
    Ok(json_response(StatusCode::OK, None, org))
}

/// `PATCH /api/v1/orgs/{org_id}` `{name?, max_key_lifetime_days?, members_can_create_keys?,
/// revoke_leaked_keys?}`: admins; 200 with the organization as it now is.
#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org_id}",
    operation_id = "updateOrganization",
    tag = "organizations",
    summary = "Rename the organization or change its policies (admins)",
    security(("bearer" = [])),
    params(("org_id" = String, Path, description = "The caller's organization")),
    request_body = OrgPatch,
    responses(
        (status = 200, description = "The organization as it now is", body = OrgSettings),
        InvalidRequest, BearerErrors, TooLarge
    )
)]
pub async fn org_patch(
    p: Principal,
    path: web::Path<String>,
    ApiJson(patch): ApiJson<OrgPatch>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let st = state.clone();
    let org = with_db(&state, move |conn| {
        policy::update(conn, &st.ctx(), &p.actor, &org_id, &patch)
    })
    .await?;
    Ok(json_response(StatusCode::OK, None, org))
}
