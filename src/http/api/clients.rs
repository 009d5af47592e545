//! `/api/v1/clients` (docs/spec.md §5): extract, call `clients::ops`, answer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::{ApiError, ApiJson, ApiJsonOrDefault, Overlap, Principal, json_response, no_content};
use crate::app::AppState;
use crate::clients::ops::{self, ClientInput};
use crate::clients::store::{self, ClientRow};
use crate::http::with_db;

fn with_secret(row: &ClientRow, secret: Option<String>) -> Value {
    let mut v = store::metadata(row);
    if let Some(s) = secret {
        if let Some(o) = v.as_object_mut() {
            o.insert("client_secret".into(), json!(s));
        }
        if let Some(o) = v.as_object_mut() {
            o.insert("client_secret_expires_at".into(), json!(0));
        }
    }
    v
}

/// `POST /api/v1/clients`: any member. The secret appears only in this body.
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
pub async fn list_get(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = with_db(&state, move |conn| ops::list(conn, &p.actor)).await?;
    let data: Vec<Value> = rows.iter().map(store::metadata).collect();
    Ok(json_response(StatusCode::OK, None, json!({ "data": data })))
}

/// `GET /api/v1/clients/{client_id}`
pub async fn get(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let row = with_db(&state, move |conn| ops::get(conn, &p.actor, &id)).await?;
    Ok(json_response(StatusCode::OK, None, store::metadata(&row)))
}

/// `PUT /api/v1/clients/{client_id}`: replaces the metadata.
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
    Ok(json_response(StatusCode::OK, None, store::metadata(&row)))
}

/// `DELETE /api/v1/clients/{client_id}` (admins)
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
        json!({
            "client_id": id,
            "client_secret": secret,
            "old_secret_expires_at": crate::clock::rfc3339(old_end),
        }),
    ))
}
