//! `/api/v1/clients` (docs/spec.md §5): extract, call `clients::ops`, answer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::openapi::{BearerErrors, InvalidRequest, TooLarge};
use super::{ApiError, ApiJson, ApiJsonOrDefault, Overlap, Principal, json_response, no_content};
use crate::app::AppState;
use crate::clients::ops::{self, ClientInput};
use crate::clients::store::{self, ClientMetadata, ClientRow};
use crate::http::with_db;

/// A client as `/api/v1/clients` answers it: its metadata, and on creation its secret.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Client {
    #[serde(flatten)]
    pub metadata: ClientMetadata,
    /// Only in the answer that creates a confidential client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// 0 (the secret does not expire); only with `client_secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
}

/// The 200 body of `GET /api/v1/clients`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ClientList {
    pub data: Vec<Client>,
}

/// The 201 body of a secret rotation.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    pub client_id: String,
    pub client_secret: String,
    /// When the previous secret stops working.
    #[schema(format = DateTime)]
    pub old_secret_expires_at: String,
}

fn with_secret(row: &ClientRow, secret: Option<String>) -> Client {
    Client {
        metadata: store::metadata(row),
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
    }
}

/// `POST /api/v1/clients`: any member. The secret appears only in this body.
#[utoipa::path(
    post,
    path = "/api/v1/clients",
    operation_id = "createClient",
    tag = "clients",
    summary = "Register an OAuth client; a confidential client's secret appears only here",
    security(("bearer" = [])),
    request_body = ClientInput,
    responses(
        (status = 201, description = "The client, with its secret", body = Client),
        InvalidRequest, BearerErrors, TooLarge
    )
)]
pub async fn create_post(
    p: Principal,
    ApiJson(input): ApiJson<ClientInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    let (row, secret) = with_db(&state, move |conn| {
        let new = input.to_new(&p.actor)?;
        ops::create(conn, &st.ctx(), &p.actor, new)
    })
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        None,
        with_secret(&row, secret),
    ))
}

/// `GET /api/v1/clients`
#[utoipa::path(
    get,
    path = "/api/v1/clients",
    operation_id = "listClients",
    tag = "clients",
    summary = "List the organization's OAuth clients",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The clients", body = ClientList),
        InvalidRequest, BearerErrors
    )
)]
pub async fn list_get(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = with_db(&state, move |conn| ops::list(conn, &p.actor)).await?;
    let data = rows.iter().map(|r| with_secret(r, None)).collect();
    Ok(json_response(StatusCode::OK, None, ClientList { data }))
}

/// `GET /api/v1/clients/{client_id}`
#[utoipa::path(
    get,
    path = "/api/v1/clients/{client_id}",
    operation_id = "getClient",
    tag = "clients",
    summary = "Read a client",
    security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    responses(
        (status = 200, description = "The client", body = Client),
        InvalidRequest, BearerErrors
    )
)]
pub async fn get(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let row = with_db(&state, move |conn| ops::get(conn, &p.actor, &id)).await?;
    Ok(json_response(StatusCode::OK, None, with_secret(&row, None)))
}

/// `PUT /api/v1/clients/{client_id}`: replaces the metadata.
#[utoipa::path(
    put,
    path = "/api/v1/clients/{client_id}",
    operation_id = "updateClient",
    tag = "clients",
    summary = "Replace a client's metadata",
    security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    request_body = ClientInput,
    responses(
        (status = 200, description = "The client", body = Client),
        InvalidRequest, BearerErrors, TooLarge
    )
)]
pub async fn update_put(
    p: Principal,
    path: web::Path<String>,
    ApiJson(input): ApiJson<ClientInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let st = state.clone();
    let row = with_db(&state, move |conn| {
        // Another organization's client is 404 before its body is judged.
        ops::get(conn, &p.actor, &id)?;
        let new = input.to_new(&p.actor)?;
        ops::update(conn, &st.ctx(), &p.actor, &id, new)
    })
    .await?;
    Ok(json_response(StatusCode::OK, None, with_secret(&row, None)))
}

/// `DELETE /api/v1/clients/{client_id}` (admins)
#[utoipa::path(
    delete,
    path = "/api/v1/clients/{client_id}",
    operation_id = "deleteClient",
    tag = "clients",
    summary = "Delete a client (admins): its tokens and codes die with it",
    security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    responses(
        (status = 204, description = "Deleted"),
        InvalidRequest, BearerErrors
    )
)]
pub async fn delete_client(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let st = state.clone();
    with_db(&state, move |conn| {
        ops::delete(conn, &st.ctx(), &p.actor, &id)
    })
    .await?;
    Ok(no_content(None))
}

/// `POST /api/v1/clients/{client_id}/secret` `{expire_old_in_seconds?}`
#[utoipa::path(
    post,
    path = "/api/v1/clients/{client_id}/secret",
    operation_id = "rotateClientSecret",
    tag = "clients",
    summary = "Rotate the secret; the old one works until old_secret_expires_at",
    security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    request_body(content = Option<Overlap>, description = "May be left out (no overlap)"),
    responses(
        (status = 201, description = "The new secret", body = RotatedSecret),
        InvalidRequest, BearerErrors, TooLarge
    )
)]
pub async fn secret_post(
    p: Principal,
    path: web::Path<String>,
    ApiJsonOrDefault(input): ApiJsonOrDefault<Overlap>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let st = state.clone();
    let client_id = id.clone();
    let overlap = input.expire_old_in_seconds.unwrap_or(0);
    let (secret, old_end) = with_db(&state, move |conn| {
        ops::rotate_secret(conn, &st.ctx(), &p.actor, &client_id, overlap)
    })
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        None,
        RotatedSecret {
            client_id: id,
            client_secret: secret,
            old_secret_expires_at: crate::clock::rfc3339(old_end),
        },
    ))
}
