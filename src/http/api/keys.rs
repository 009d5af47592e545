//! `/api/v1/api-keys` (docs/spec.md §5): extract, call `api_keys::ops`, answer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{ApiError, ApiJson, ApiJsonOrDefault, Overlap, Principal, json_response, no_content};
use crate::api_keys::ops::{self, CreateKey};
use crate::app::AppState;
use crate::http::with_db;

/// `POST /api/v1/api-keys`: any member (only admins grant `admin`). The plaintext key
/// appears only in this body.
pub async fn create_post(
    p: Principal,
    ApiJson(input): ApiJson<CreateKey>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    let created = with_db(&state, move |conn| {
        ops::create(conn, &st.ctx(), &p.actor, &input)
    })
    .await?;
    Ok(json_response(StatusCode::CREATED, None, created))
}

/// `GET /api/v1/api-keys`: any member; never the secret.
pub async fn list_get(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    let data = with_db(&state, move |conn| ops::list(conn, &st.ctx(), &p.actor)).await?;
    Ok(json_response(StatusCode::OK, None, json!({ "data": data })))
}

/// `DELETE /api/v1/api-keys/{id}`: admins; the key is refused from the next request on.
pub async fn delete(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let st = state.clone();
    with_db(&state, move |conn| {
        ops::revoke(conn, &st.ctx(), &p.actor, &id)
    })
    .await?;
    Ok(no_content(None))
}

/// `POST /api/v1/api-keys/{id}/roll` `{expire_old_in_seconds?}`: admins. 201 with the new
/// key.
pub async fn roll_post(
    p: Principal,
    path: web::Path<String>,
    ApiJsonOrDefault(input): ApiJsonOrDefault<Overlap>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let st = state.clone();
    let overlap = input.expire_old_in_seconds.unwrap_or(0);
    let created = with_db(&state, move |conn| {
        ops::roll(conn, &st.ctx(), &p.actor, &id, overlap)
    })
    .await?;
    Ok(json_response(StatusCode::CREATED, None, created))
}
