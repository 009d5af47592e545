//! `/api/v1/key-requests` (docs/spec.md §10): members ask for keys, admins approve or deny,
//! the requester claims the key once. Extract, call `api_keys::requests`, answer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::openapi::{BearerErrors, Conflict, InvalidRequest, TooLarge};
use super::{ApiError, ApiJson, Principal, json_response};
use crate::api_keys::requests::{self, ClaimError, KeyRequest, NewKeyRequest};
use crate::api_keys::store::CreatedApiKey;
use crate::app::AppState;

/// The 200 body of `GET /api/v1/key-requests`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyRequestList {
    pub data: Vec<KeyRequest>,
}

/// 410: the key of this request was already claimed.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 410,
    description = "The key was already claimed (a claim succeeds once)"
)]
pub struct Gone(pub crate::http::errors::ErrorBody);

/// `POST /api/v1/key-requests`: any member asks for a key; 201 `{id, status: "pending", …}`.
#[utoipa::path(
    post,
    path = "/api/v1/key-requests",
    operation_id = "createKeyRequest",
    tag = "key-requests",
    summary = "Ask the organization's admins for a key",
    security(("bearer" = [])),
    request_body = NewKeyRequest,
    responses(
        (status = 201, description = "The pending request", body = KeyRequest),
        InvalidRequest, BearerErrors, TooLarge
    )
)]
pub async fn create_post(
    p: Principal,
    ApiJson(input): ApiJson<NewKeyRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let made = p
        .run(&state, move |conn, ctx, actor| {
            requests::create(conn, ctx, actor, &input)
        })
        .await?;
    Ok(json_response(StatusCode::CREATED, None, made))
}

/// `GET /api/v1/key-requests`: admins see the organization's, members their own.
#[utoipa::path(
    get,
    path = "/api/v1/key-requests",
    operation_id = "listKeyRequests",
    tag = "key-requests",
    summary = "List key requests (admins: all; members: their own)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The requests, newest first", body = KeyRequestList),
        InvalidRequest, BearerErrors
    )
)]
pub async fn list_get(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let data = p
        .run(&state, move |conn, _, actor| requests::list(conn, actor))
        .await?;
    Ok(json_response(StatusCode::OK, None, KeyRequestList { data }))
}

async fn decide(
    p: Principal,
    id: String,
    state: web::Data<AppState>,
    approve: bool,
) -> Result<HttpResponse, ApiError> {
    let done = p
        .run(&state, move |conn, ctx, actor| {
            requests::decide(conn, ctx, actor, &id, approve)
        })
        .await?;
    Ok(json_response(StatusCode::OK, None, done))
}

/// `POST /api/v1/key-requests/{id}/approve` (admins): 200 with the request; 409 unless pending.
#[utoipa::path(
    post,
    path = "/api/v1/key-requests/{id}/approve",
    operation_id = "approveKeyRequest",
    tag = "key-requests",
    summary = "Approve a pending request (admins)",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "Approved", body = KeyRequest),
        InvalidRequest, BearerErrors, Conflict
    )
)]
pub async fn approve_post(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(p, path.into_inner(), state, true).await
}

/// `POST /api/v1/key-requests/{id}/deny` (admins): 200 with the request; 409 unless pending.
#[utoipa::path(
    post,
    path = "/api/v1/key-requests/{id}/deny",
    operation_id = "denyKeyRequest",
    tag = "key-requests",
    summary = "Deny a pending request (admins)",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "Denied", body = KeyRequest),
        InvalidRequest, BearerErrors, Conflict
    )
)]
pub async fn deny_post(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(p, path.into_inner(), state, false).await
}

/// `POST /api/v1/key-requests/{id}/claim` (the requester only): 201 with the key, once;
/// then 410. Pending or denied: 409; anyone else: 404.
#[utoipa::path(
    post,
    path = "/api/v1/key-requests/{id}/claim",
    operation_id = "claimKeyRequest",
    tag = "key-requests",
    summary = "Claim the key of an approved request (requester only, once)",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 201, description = "The new key; the plaintext appears only here", body = CreatedApiKey),
        InvalidRequest, BearerErrors, Conflict, Gone
    )
)]
pub async fn claim_post(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let claimed = p
        .run(&state, move |conn, ctx, actor| {
            requests::claim(conn, ctx, actor, &id)
        })
        .await;
    match claimed {
        Ok(key) => Ok(json_response(StatusCode::CREATED, None, key)),
        Err(ClaimError::Gone) => Err(ApiError::new(
            StatusCode::GONE,
            "invalid_request_error",
            ClaimError::Gone.to_string(),
        )),
        Err(ClaimError::Op(e)) => Err(e.into()),
    }
}
