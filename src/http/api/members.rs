//! `/api/v1/orgs/{id}/members` (docs/spec.md §5): extract, call `orgs::members`, answer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiJson, Principal, json_response, no_content};
use crate::app::AppState;
use crate::http::with_db;
use crate::orgs::Role;
use crate::orgs::members::{self, AddMember};

/// `{role}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: Role,
}

/// `GET /api/v1/orgs/{id}/members`
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
    Ok(json_response(StatusCode::OK, None, json!({ "data": data })))
}

/// `POST /api/v1/orgs/{id}/members` `{email, role}`
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
        json!({"user_id": user_id, "role": role}),
    ))
}

/// `DELETE /api/v1/orgs/{id}/members/{user_id}`
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
