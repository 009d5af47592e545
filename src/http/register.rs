//! Dynamic client registration: RFC 7591 `POST /oauth/register` (authorized by a bearer
//! credential of an organization with `admin`, like `/api/v1`), and RFC 7592
//! read/update/delete at `/oauth/register/{client_id}` with the registration access
//! token handed out at registration. Extract, call `clients::registration`, answer;
//! invalid metadata is 400 `invalid_redirect_uri` / `invalid_client_metadata` (§3.2.2).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::clients::registration::{self, Metadata};
use crate::clients::store::{self, ClientRow};
use crate::error::{AppError, OpError};
use crate::http::api::{self, ApiError};
use crate::http::with_db;
use crate::orgs::Actor;

/// An RFC 7591 §3.2.2 error, or any `/api/v1`-style failure (authentication, storage).
#[derive(Debug)]
pub enum RegisterError {
    Metadata {
        code: &'static str,
        description: String,
    },
    Api(ApiError),
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Metadata { code, description } => write!(f, "{code}: {description}"),
            Self::Api(e) => e.fmt(f),
        }
    }
}

impl ResponseError for RegisterError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Metadata { .. } => StatusCode::BAD_REQUEST,
            Self::Api(e) => e.status,
        }
    }
    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Metadata { code, description } => HttpResponse::BadRequest()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(json!({"error": code, "error_description": description})),
            Self::Api(e) => e.error_response(),
        }
    }
}

impl From<ApiError> for RegisterError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<AppError> for RegisterError {
    fn from(e: AppError) -> Self {
        Self::Api(e.into())
    }
}

impl From<OpError> for RegisterError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::InvalidRedirectUri(description) => Self::Metadata {
                code: "invalid_redirect_uri",
                description,
            },
            OpError::Invalid(description) => Self::Metadata {
                code: "invalid_client_metadata",
                description,
            },
            other => Self::Api(other.into()),
        }
    }
}

fn parse_metadata(req: &HttpRequest, body: &[u8]) -> Result<Metadata, RegisterError> {
    api::json_body(req, body).map_err(|e| RegisterError::Metadata {
        code: "invalid_client_metadata",
        description: e.message,
    })
}

fn answer(
    state: &AppState,
    row: &ClientRow,
    secret: Option<String>,
    token: Option<String>,
) -> Value {
    let mut v = store::metadata(row);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("resource_server");
        obj.retain(|_, val| !val.is_null());
    }
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "registration_client_uri".into(),
            json!(format!("{}/oauth/register/{}", state.issuer, row.id)),
        );
    }
    if let Some(s) = secret {
        if let Some(o) = v.as_object_mut() {
            o.insert("client_secret".into(), json!(s));
        }
        if let Some(o) = v.as_object_mut() {
            o.insert("client_secret_expires_at".into(), json!(0));
        }
    }
    if let Some(t) = token
        && let Some(o) = v.as_object_mut()
    {
        o.insert("registration_access_token".into(), json!(t));
    }
    v
}

fn no_store(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// `POST /oauth/register` (RFC 7591 §3).
pub async fn register_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RegisterError> {
    let p = api::auth::authenticate(&req, &state).await?;
    let meta = parse_metadata(&req, &body)?;
    let st = state.clone();
    let reg = with_db(&state, move |conn| {
        registration::register(conn, &st.ctx(), &p.actor, &meta)
    })
    .await?;
    Ok(no_store(
        StatusCode::CREATED,
        answer(
            &state,
            &reg.row,
            reg.secret,
            Some(reg.registration_access_token),
        ),
    ))
}

/// The client a registration access token manages, with an actor acting for it.
async fn managed(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    id: String,
) -> Result<(ClientRow, Actor), RegisterError> {
    let invalid = || {
        RegisterError::Api(ApiError::invalid_token(
            "The registration access token is not valid for this client.",
        ))
    };
    let token = api::auth::bearer(req).map_err(|_| invalid())?;
    with_db(state, move |conn| registration::managed(conn, &id, &token))
        .await?
        .ok_or_else(invalid)
}

/// `GET /oauth/register/{client_id}` (RFC 7592 §2.1).
pub async fn read_get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RegisterError> {
    let (row, _) = managed(&req, &state, path.into_inner()).await?;
    Ok(no_store(StatusCode::OK, answer(&state, &row, None, None)))
}

/// `PUT /oauth/register/{client_id}` (RFC 7592 §2.2): replaces the metadata.
pub async fn update_put(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RegisterError> {
    let (row, actor) = managed(&req, &state, path.into_inner()).await?;
    let meta = parse_metadata(&req, &body)?;
    let st = state.clone();
    let updated = with_db(&state, move |conn| {
        registration::update(conn, &st.ctx(), &actor, &row, &meta)
    })
    .await?;
    Ok(no_store(
        StatusCode::OK,
        answer(&state, &updated, None, None),
    ))
}

/// `DELETE /oauth/register/{client_id}` (RFC 7592 §2.3): 204; the client and its tokens
/// are gone.
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RegisterError> {
    let (row, actor) = managed(&req, &state, path.into_inner()).await?;
    let st = state.clone();
    with_db(&state, move |conn| {
        registration::delete(conn, &st.ctx(), &actor, &row)
    })
    .await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
