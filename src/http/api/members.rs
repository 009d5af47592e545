//! `/api/v1/orgs/{id}/members` (docs/spec.md §5): extract, call `orgs::members`, answer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::openapi::{BearerErrors, Conflict, InvalidRequest, TooLarge};
use super::{ApiError, ApiJson, Principal, json_response, no_content};
use crate::app::AppState;
use crate::http::with_db;
use crate::orgs::Role;
use crate::orgs::members::{self, AddMember};
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

/// `POST /api/v1/orgs/{id}/members` `{email, role}`
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/members",
    operation_id = "addMember",
    tag = "members",
    summary = "Add an existing user by email (admins)",
    security(("bearer" = [])),
    params(("org_id" = String, Path, description = "The caller's organization")),
    request_body = AddMember,
    responses(
        (status = 201, description = "Added", body = Member),
        InvalidRequest, BearerErrors, Conflict, TooLarge
    )
)]
pub async fn add_post(
    p: Principal,
    path: web::Path<String>,
    ApiJson(input): ApiJson<AddMember>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let st = state.clone();
    let added = with_db(&state, move |conn| {
        members::own_org(&p.actor, &org_id)?;
        members::add(conn, &st.ctx(), &p.actor, &input)
    })
    .await?;
    Ok(json_response(StatusCode::CREATED, None, added))
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

/// `DELETE /api/v1/orgs/{id}/members/{user_id}`
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/members/{user_id}",
    operation_id = "removeMember",
    tag = "members",
    summary = "Remove a member (admins; the last admin stays: 409)",
    security(("bearer" = [])),
    params(
        ("org_id" = String, Path, description = "The caller's organization"),
        ("user_id" = String, Path, description = "The member's user id")
    ),
    responses(
        (status = 204, description = "Removed"),
        InvalidRequest, BearerErrors, Conflict
    )
)]
pub async fn delete(
    p: Principal,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, user_id) = path.into_inner();
    let st = state.clone();
    with_db(&state, move |conn| {
        members::own_org(&p.actor, &org_id)?;
        members::remove(conn, &st.ctx(), &p.actor, &user_id)
    })
    .await?;
    Ok(no_content(None))
}
