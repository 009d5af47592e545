//! `/api/v1/api-keys` (docs/spec.md §5): extract, call `api_keys::ops`, answer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::openapi::{BearerErrors, InvalidRequest, TooLarge};
use super::{ApiError, ApiJson, ApiJsonOrDefault, Overlap, Principal, json_response, no_content};
use crate::api_keys::ops::{self, CreateKey};
use crate::api_keys::store::{CreatedApiKey, KeySummary};
use crate::app::AppState;

/// The 200 body of `GET /api/v1/api-keys`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<KeySummary>,
}

/// `POST /api/v1/api-keys`: any member (only admins grant `admin`). The plaintext key
/// appears only in this body.
#[utoipa::path(
    post,
    path = "/api/v1/api-keys",
    operation_id = "createApiKey",
    tag = "api-keys",
    summary = "Create a key; the plaintext appears only in this answer",
    security(("bearer" = [])),
    request_body = CreateKey,
    responses(
        (status = 201, description = "The new key", body = CreatedApiKey),
        InvalidRequest, BearerErrors, TooLarge
    )
)]
pub async fn create_post(
    p: Principal,
    ApiJson(input): ApiJson<CreateKey>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let created = p
        .run(&state, move |conn, ctx, actor| {
            ops::create(conn, ctx, actor, &input)
        })
        .await?;
    Ok(json_response(StatusCode::CREATED, None, created))
}

/// `GET /api/v1/api-keys[?unused_for_days=N]`: any member; never the secret. Each key
/// carries `age_days`; `unused_for_days` (1–3650) keeps keys whose last use, or creation
/// when never used, is at least N days ago (docs/spec.md §10).
#[utoipa::path(
    get,
    path = "/api/v1/api-keys",
    operation_id = "listApiKeys",
    tag = "api-keys",
    summary = "List the organization's keys (never the secret)",
    security(("bearer" = [])),
    params(("unused_for_days" = Option<i64>, Query, description = "Only keys not used for this many days (1–3650)")),
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
        InvalidRequest, BearerErrors
    )
)]
pub async fn list_get(
    p: Principal,
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = url::form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()));
    let unused = crate::api_keys::hygiene::parse_list_query(params)?;
    let data = p
        .run(&state, move |conn, ctx, actor| {
            crate::api_keys::hygiene::list(conn, ctx, actor, unused)
        })
        .await?;
    Ok(json_response(StatusCode::OK, None, ApiKeyList { data }))
}

/// `DELETE /api/v1/api-keys/{id}`: admins; the key is refused from the next request on.
#[utoipa::path(
    delete,
    path = "/api/v1/api-keys/{id}",
    operation_id = "revokeApiKey",
    tag = "api-keys",
    summary = "Revoke a key (admins)",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked; refused from the next request on"),
        InvalidRequest, BearerErrors
    )
)]
pub async fn delete(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    p.run(&state, move |conn, ctx, actor| {
        ops::revoke(conn, ctx, actor, &id)
    })
    .await?;
    Ok(no_content(None))
}

/// `POST /api/v1/api-keys/{id}/roll` `{expire_old_in_seconds?}`: admins. 201 with the new
/// key.
#[utoipa::path(
    post,
    path = "/api/v1/api-keys/{id}/roll",
    operation_id = "rollApiKey",
    tag = "api-keys",
    summary = "Roll a key (admins): a new key with the same settings",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id")),
    request_body(content = Option<Overlap>, description = "May be left out (no overlap)"),
    responses(
        (status = 201, description = "The new key", body = CreatedApiKey),
        InvalidRequest, BearerErrors, TooLarge
    )
)]
pub async fn roll_post(
    p: Principal,
    path: web::Path<String>,
    ApiJsonOrDefault(input): ApiJsonOrDefault<Overlap>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let overlap = input.expire_old_in_seconds.unwrap_or(0);
    let created = p
        .run(&state, move |conn, ctx, actor| {
            ops::roll(conn, ctx, actor, &id, overlap)
        })
        .await?;
    Ok(json_response(StatusCode::CREATED, None, created))
}
