//! `/api/v1/clients` (SPEC.md §5): an organization's OAuth clients. Members create, list,
//! read, update and rotate secrets; admins also delete. Another organization's client is
//! 404 (SECURITY.md I8). The operations here are shared with the developer pages and RFC
//! 7591/7592 registration, so every door applies the same rules and writes the same audit
//! entries.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Principal, ScopesInput, authenticate, json_body, json_response};
use crate::app::AppState;
use crate::clients::store::{self, ClientRow};
use crate::clients::{ClientError, GrantType, NewClient};
use crate::db::DbConnection;
use crate::http::with_db;

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::InvalidRedirectUri { uri, reason } => {
                ApiError::invalid(format!("redirect URI {uri:?}: {reason}"))
            }
            ClientError::InvalidMetadata(m) => ApiError::invalid(m),
            ClientError::OrgNotFound(_) => ApiError::not_found("organization"),
            ClientError::Db(d) => d.into(),
        }
    }
}

/// Grant type names as JSON lists carry them (`/api/v1/clients`, RFC 7591).
pub fn parse_grant_list(list: &[String]) -> Result<Vec<GrantType>, String> {
    list.iter()
        .map(|g| GrantType::parse(g).ok_or_else(|| format!("unsupported grant type {g:?}")))
        .collect()
}

/// A client as `/api/v1/clients` describes it.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    pub name: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `confidential` (default) or `public`.
    #[serde(rename = "type", default)]
    pub client_type: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub scopes: Option<ScopesInput>,
    #[serde(default)]
    pub logo_uri: Option<String>,
    #[serde(default)]
    pub client_uri: Option<String>,
}

impl ClientInput {
    pub fn to_new(&self, p: &Principal) -> Result<NewClient, ApiError> {
        let public = match self.client_type.as_deref().unwrap_or("confidential") {
            "confidential" => false,
            "public" => true,
            _ => return Err(ApiError::invalid("type must be confidential or public.")),
        };
        let grant_types = self
            .grant_types
            .as_deref()
            .map(parse_grant_list)
            .transpose()
            .map_err(ApiError::invalid)?;
        Ok(NewClient {
            name: self.name.clone(),
            redirect_uris: self.redirect_uris.clone(),
            public,
            resource_server: false,
            grant_types,
            scope: self.scopes.as_ref().map(ScopesInput::parse).transpose()?,
            org_id: Some(p.org_id.clone()),
            logo_uri: self.logo_uri.clone().filter(|s| !s.is_empty()),
            client_uri: self.client_uri.clone().filter(|s| !s.is_empty()),
            created_by: p.user_id.clone(),
        })
    }
}

fn audit(
    conn: &mut DbConnection,
    p: &Principal,
    action: &str,
    client: &ClientRow,
    details: Value,
    now: i64,
) -> Result<(), ApiError> {
    p.audit(conn, action, ("client", &client.id), details, now)
}

/// Registers a client for the principal's organization. Returns it with its secret (for
/// confidential clients; the only time the secret exists in plaintext).
pub fn create(
    conn: &mut DbConnection,
    st: &AppState,
    p: &Principal,
    new: NewClient,
) -> Result<(ClientRow, Option<String>), ApiError> {
    let valid = new.validate(&st.settings.scopes)?;
    let now = st.clock.now();
    crate::db::write_tx(conn, |conn| {
        let (row, secret) = store::insert(conn, &valid, &st.settings.key_prefix, now)?;
        audit(
            conn,
            p,
            "client.created",
            &row,
            json!({"name": row.name}),
            now,
        )?;
        Ok((row, secret))
    })
}

/// Replaces a client's metadata; its kind (public or confidential) stays.
pub fn update(
    conn: &mut DbConnection,
    st: &AppState,
    p: &Principal,
    id: &str,
    mut new: NewClient,
) -> Result<ClientRow, ApiError> {
    let current =
        store::find_in_org(conn, &p.org_id, id)?.ok_or_else(|| ApiError::not_found("client"))?;
    new.public = current.is_public;
    new.resource_server = current.is_resource_server;
    new.org_id = current.org_id.clone();
    new.created_by = current.created_by.clone();
    let valid = new.validate(&st.settings.scopes)?;
    let now = st.clock.now();
    crate::db::write_tx(conn, |conn| {
        store::update(conn, id, &valid, now)?;
        let row = store::find(conn, id)?.ok_or_else(|| ApiError::not_found("client"))?;
        audit(
            conn,
            p,
            "client.updated",
            &row,
            json!({"name": row.name}),
            now,
        )?;
        Ok(row)
    })
}

/// Deletes a client (admins): its codes, grants, refresh and access tokens die with it.
/// The caller voids the caches afterwards ([`after_client_change`]).
pub fn delete(
    conn: &mut DbConnection,
    st: &AppState,
    p: &Principal,
    id: &str,
) -> Result<(), ApiError> {
    let row =
        store::find_in_org(conn, &p.org_id, id)?.ok_or_else(|| ApiError::not_found("client"))?;
    p.require_admin()?;
    let now = st.clock.now();
    crate::db::write_tx(conn, |conn| {
        audit(
            conn,
            p,
            "client.deleted",
            &row,
            json!({"name": row.name}),
            now,
        )?;
        store::delete(conn, id)?;
        Ok(())
    })
}

/// Rotates a confidential client's secret; the old one keeps working for the overlap.
pub fn rotate_secret(
    conn: &mut DbConnection,
    st: &AppState,
    p: &Principal,
    id: &str,
    overlap: i64,
) -> Result<(String, i64), ApiError> {
    let overlap = super::check_overlap(overlap)?;
    let row =
        store::find_in_org(conn, &p.org_id, id)?.ok_or_else(|| ApiError::not_found("client"))?;
    if row.is_public {
        return Err(ApiError::invalid("A public client has no secret."));
    }
    let now = st.clock.now();
    crate::db::write_tx(conn, |conn| {
        let (secret, old_end) =
            store::rotate_secret(conn, id, &st.settings.key_prefix, overlap, now)?;
        audit(
            conn,
            p,
            "client.secret_rotated",
            &row,
            json!({"old_secret_expires_at": old_end}),
            now,
        )?;
        Ok((secret, old_end))
    })
}

/// After a client was deleted or its secret rotated on this instance: cached credentials
/// and token answers are void from the next request on (other instances: the poll).
pub fn after_client_change(state: &AppState, client_id: &str) {
    state.api_keys.clients.forget_client(client_id);
    state.live_tokens.bump();
}

fn with_secret(row: &ClientRow, secret: Option<String>) -> Value {
    let mut v = store::metadata(row);
    if let Some(s) = secret {
        v["client_secret"] = json!(s);
        v["client_secret_expires_at"] = json!(0);
    }
    v
}

/// `POST /api/v1/clients`
pub async fn create_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let input: ClientInput = json_body(&req, &body).map_err(|e| e.with_rate(rate))?;
    let st = state.clone();
    let (row, secret) = with_db(&state, move |conn| {
        let new = input.to_new(&p)?;
        create(conn, &st, &p, new)
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    Ok(json_response(
        StatusCode::CREATED,
        rate,
        with_secret(&row, secret),
    ))
}

/// `GET /api/v1/clients`
pub async fn list_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let rows = with_db(&state, move |conn| -> Result<_, ApiError> {
        Ok(store::list(conn, &p.org_id)?)
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    let data: Vec<Value> = rows.iter().map(store::metadata).collect();
    Ok(json_response(StatusCode::OK, rate, json!({ "data": data })))
}

/// `GET /api/v1/clients/{client_id}`
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let id = path.into_inner();
    let row = with_db(&state, move |conn| -> Result<_, ApiError> {
        store::find_in_org(conn, &p.org_id, &id)?.ok_or_else(|| ApiError::not_found("client"))
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    Ok(json_response(StatusCode::OK, rate, store::metadata(&row)))
}

/// `PUT /api/v1/clients/{client_id}`: replaces the metadata.
pub async fn update_put(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let input: ClientInput = json_body(&req, &body).map_err(|e| e.with_rate(rate))?;
    let id = path.into_inner();
    let st = state.clone();
    let row = with_db(&state, move |conn| {
        if store::find_in_org(conn, &p.org_id, &id)?.is_none() {
            return Err(ApiError::not_found("client"));
        }
        let new = input.to_new(&p)?;
        update(conn, &st, &p, &id, new)
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    Ok(json_response(StatusCode::OK, rate, store::metadata(&row)))
}

/// `DELETE /api/v1/clients/{client_id}` (admins)
pub async fn delete_client(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let id = path.into_inner();
    let st = state.clone();
    let client_id = id.clone();
    with_db(&state, move |conn| delete(conn, &st, &p, &client_id))
        .await
        .map_err(|e| e.with_rate(rate))?;
    after_client_change(&state, &id);
    Ok(super::no_content(rate))
}

/// `POST /api/v1/clients/{client_id}/secret` `{expire_old_in_seconds?}`
pub async fn secret_post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let input: super::Overlap =
        super::json_body_or_default(&req, &body).map_err(|e| e.with_rate(rate))?;
    let id = path.into_inner();
    let st = state.clone();
    let client_id = id.clone();
    let (secret, old_end) = with_db(&state, move |conn| {
        rotate_secret(
            conn,
            &st,
            &p,
            &client_id,
            input.expire_old_in_seconds.unwrap_or(0),
        )
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    after_client_change(&state, &id);
    Ok(json_response(
        StatusCode::CREATED,
        rate,
        json!({
            "client_id": id,
            "client_secret": secret,
            "old_secret_expires_at": crate::clock::rfc3339(old_end),
        }),
    ))
}
