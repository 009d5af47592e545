//! `/api/v1/orgs/{id}/members` (docs/spec.md §5): extract, call `orgs::members`, answer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::openapi::{BearerErrors, Conflict, InvalidRequest, TooLarge};
use super::{ApiError, ApiJson, Principal, json_response, no_content};
use crate::app::AppState;
use crate::http::with_db;
use crate::orgs::Role;
use crate::orgs::members;
use crate::orgs::store::Member;

/// `{role}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: Role,
}

/// The 200 body of a role change.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoleChanged {
    pub user_id: String,
    pub role: Role,
}

/// The 200 body of `GET /api/v1/orgs/{org_id}/members`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MemberList {
    pub data: Vec<Member>,
}

/// `GET /api/v1/orgs/{id}/members`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/members",
    operation_id = "listMembers",
    tag = "members",
    summary = "List members",
    security(("bearer" = [])),
    params(("org_id" = String, Path, description = "The caller's organization")),
    responses(
        (status = 200, description = "The members", body = MemberList),
        InvalidRequest, BearerErrors
    )
)]
pub async fn list_get(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let data = with_db(&state, move |conn| {
        members::own_org(&p.actor, &org_id)?;
        members::list(conn, &p.actor)
    })
    .await?;
    Ok(json_response(StatusCode::OK, None, MemberList { data }))
}

/// `PATCH /api/v1/orgs/{id}/members/{user_id}` `{role}`
#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org_id}/members/{user_id}",
    operation_id = "changeMemberRole",
    tag = "members",
    summary = "Change a member's role (admins; the last admin stays: 409)",
    security(("bearer" = [])),
    params(
        ("org_id" = String, Path, description = "The caller's organization"),
        ("user_id" = String, Path, description = "The member's user id")
    ),
    request_body = ChangeRole,
    responses(
        (status = 200, description = "Changed", body = RoleChanged),
        InvalidRequest, BearerErrors, Conflict, TooLarge
    )
)]
pub async fn role_patch(
    p: Principal,
    path: web::Path<(String, String)>,
    ApiJson(input): ApiJson<ChangeRole>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, user_id) = path.into_inner();
    let role = input.role;
    let st = state.clone();
    let uid = user_id.clone();
    with_db(&state, move |conn| {
        members::own_org(&p.actor, &org_id)?;
        members::change_role(conn, &st.ctx(), &p.actor, &uid, role)
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        None,
        RoleChanged { user_id, role },
    ))
}

/// `DELETE /api/v1/orgs/{id}/members/{user_id}[?revoke_keys=true]`: with `revoke_keys`,
/// every key the person created in the organization is revoked too (docs/spec.md §5).
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/members/{user_id}",
    operation_id = "removeMember",
    tag = "members",
    summary = "Remove a member (admins; the last admin stays: 409); revoke_keys=true also revokes their keys",
    security(("bearer" = [])),
    params(
        ("org_id" = String, Path, description = "The caller's organization"),
        ("user_id" = String, Path, description = "The member's user id"),
        ("revoke_keys" = Option<bool>, Query, description = "Also revoke every key this person created in the organization (default false)")
    ),
    responses(
        (status = 204, description = "Removed"),
        InvalidRequest, BearerErrors, Conflict
    )
)]
pub async fn delete(
    p: Principal,
    req: actix_web::HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, user_id) = path.into_inner();
    let params = url::form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()));
    let revoke_keys = members::parse_remove_query(params)?;
    p.run(&state, move |conn, ctx, actor| {
        members::own_org(actor, &org_id)?;
        members::remove(conn, ctx, actor, &user_id, revoke_keys)
    })
    .await?;
    Ok(no_content(None))
}
