//! Dynamic client registration: RFC 7591 `POST /oauth/register` (authorized by a bearer
//! credential of an organization with `admin`, like `/api/v1`), and RFC 7592
//! read/update/delete at `/oauth/register/{client_id}` with the registration access
//! token handed out at registration. Extract, call `clients::registration`, answer;
//! invalid metadata is 400 `invalid_redirect_uri` / `invalid_client_metadata` (§3.2.2).
//! Every error answers in the OAuth shape `{"error", "error_description"}` (RFC 7591
//! §3.2.2, RFC 6750 §3.1 for the credential), whatever its status, so OAuth client
//! libraries can read it (docs/spec.md §3).

use actix_web::body::BoxBody;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::app::AppState;
use crate::clients::open_registration::{self, Refused, RegistrationMode};
use crate::clients::registration::{self, Metadata};
use crate::clients::store::{self, ClientRow};
use crate::error::{AppError, ErrorJson, OpError};
use crate::http::api::{self, ApiError};
use crate::http::with_db;
use crate::orgs::Actor;

/// 400 on `/oauth/register`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 400,
    description = "invalid_redirect_uri or invalid_client_metadata (RFC 7591 §3.2.2: bad metadata, a body that is not JSON), or invalid_request (a malformed Tessera-Organization header)"
)]
pub struct InvalidMetadata(pub ErrorJson);

/// What `/oauth/register` answers when its bearer credential fails, in the OAuth error
/// shape (RFC 6750 §3.1 codes).
#[derive(utoipa::IntoResponses)]
pub enum RegistrationBearerErrors {
    /// No credential, or one that is unknown, expired or revoked: `invalid_token`.
    #[response(
        status = 401,
        headers(("WWW-Authenticate" = String, description = "RFC 6750 §3 `Bearer` challenge"))
    )]
    Unauthorized(ErrorJson),
    /// The credential lacks `admin` (`insufficient_scope`), or may not act for the
    /// organization named (`access_denied`).
    #[response(status = 403)]
    Forbidden(ErrorJson),
    /// The credential's rate limit is spent (`slow_down`).
    #[response(status = 429, headers(("Retry-After" = i64)))]
    TooManyRequests(ErrorJson),
    /// The database cannot be reached (`temporarily_unavailable`).
    #[response(status = 503, headers(("Retry-After" = i64)))]
    Unavailable(ErrorJson),
}

/// 413: the body is larger than 64 KiB (`invalid_request`).
#[derive(utoipa::IntoResponses)]
#[response(status = 413, description = "The body is larger than 64 KiB")]
pub struct RegistrationTooLarge(pub ErrorJson);

/// What a call with a registration access token may answer besides its own success.
#[derive(utoipa::IntoResponses)]
pub enum TokenErrors {
    /// The token is missing, or not this client's (`invalid_token`).
    #[response(
        status = 401,
        headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tessera\", error=\"invalid_token\"`"))
    )]
    Unauthorized(ErrorJson),
    /// The database cannot be reached (`temporarily_unavailable`).
    #[response(status = 503, headers(("Retry-After" = i64)))]
    Unavailable(ErrorJson),
}

/// A registered client as RFC 7591 §3.2.1 and RFC 7592 §3 answer it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RegistrationResponse {
    pub client_id: String,
    /// Absent when the client registered without one (RFC 7591 §2: optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<&'static str>,
    pub response_types: Vec<&'static str>,
    pub token_endpoint_auth_method: &'static str,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// The JWK set of a `private_key_jwt` client (RFC 7591 §2); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Where a `private_key_jwt` client publishes its JWK set (RFC 7591 §2); absent
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Present (`true`) for a resource server only (docs/spec.md §8).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resource_server: bool,
    /// RFC 8707 resource URIs of a resource server; absent when it has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// RP-Initiated Logout 1.0 §3 (docs/spec.md §9); absent when none are registered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// `RS256`, `ES256` or `EdDSA` (docs/spec.md §9).
    pub id_token_signed_response_alg: String,
    /// Epoch seconds.
    pub client_id_issued_at: i64,
    /// Where RFC 7592 reads, updates and deletes this registration.
    pub registration_client_uri: String,
    /// Only in the registration answer of a confidential client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// 0 (never); only with `client_secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// Only in the registration answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<String>,
}

/// An RFC 7591 §3.2.2 error, or a failure of the credential or of storage, answered with
/// its own status and headers and an OAuth-shaped body.
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
                .json(ErrorJson::new(code, description)),
            Self::Api(e) => {
                // Status, challenge, Retry-After and rate-limit headers as on /api/v1; the
                // body in the OAuth shape.
                let body = ErrorJson::new(oauth_code(e), &e.message);
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                e.error_response().set_body(BoxBody::new(bytes))
            }
        }
    }
}

/// The OAuth error code for a credential or storage failure: the RFC 6750 code of its
/// challenge when it has one, else one that fits its status.
fn oauth_code(e: &ApiError) -> &'static str {
    let challenged = e.challenge.as_deref().and_then(|c| {
        ["invalid_request", "invalid_token", "insufficient_scope"]
            .into_iter()
            .find(|code| c.contains(&format!("error=\"{code}\"")))
    });
    if let Some(code) = challenged {
        return code;
    }
    match e.status {
        StatusCode::UNAUTHORIZED => "invalid_token",
        StatusCode::FORBIDDEN => "access_denied",
        StatusCode::TOO_MANY_REQUESTS => "slow_down",
        StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
        s if s.is_server_error() => "server_error",
        StatusCode::CONFLICT => "invalid_client_metadata",
        _ => "invalid_request",
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

/// The metadata of a request body: a JSON object (RFC 7591 §3.1); anything else, or a
/// body that is not JSON at all, is `invalid_client_metadata`.
fn parse_metadata(req: &HttpRequest, body: &[u8]) -> Result<Metadata, RegisterError> {
    let invalid = |description: String| RegisterError::Metadata {
        code: "invalid_client_metadata",
        description,
    };
    let meta = api::json_body(req, body).map_err(|e| invalid(e.message))?;
    // serde would also read a struct from a JSON array.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(invalid(
            "The body must be a JSON object of client metadata.".into(),
        ));
    }
    Ok(meta)
}

fn answer(
    state: &AppState,
    row: &ClientRow,
    secret: Option<String>,
    token: Option<String>,
) -> RegistrationResponse {
    let m = store::metadata(row);
    RegistrationResponse {
        registration_client_uri: format!("{}/oauth/register/{}", state.issuer, m.client_id),
        client_id: m.client_id,
        client_name: Some(m.client_name).filter(|n| !n.is_empty()),
        redirect_uris: m.redirect_uris,
        grant_types: m.grant_types,
        response_types: m.response_types,
        token_endpoint_auth_method: m.token_endpoint_auth_method,
        jwks: m.jwks,
        jwks_uri: m.jwks_uri,
        scope: m.scope,
        logo_uri: m.logo_uri,
        client_uri: m.client_uri,
        resource_server: m.resource_server,
        resources: m.resources,
        post_logout_redirect_uris: m.post_logout_redirect_uris,
        id_token_signed_response_alg: m.id_token_signed_response_alg,
        client_id_issued_at: m.client_id_issued_at,
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
        registration_access_token: token,
    }
}

fn no_store(status: StatusCode, body: RegistrationResponse) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// `POST /oauth/register` (RFC 7591 §3).
#[utoipa::path(
    post,
    path = "/oauth/register",
    operation_id = "registerClient",
    tag = "registration",
    summary = "RFC 7591 dynamic client registration (a bearer credential with admin)",
    security(("bearer" = [])),
    request_body = Metadata,
    responses(
        (
            status = 201,
            description = "Registered, with registration_access_token and registration_client_uri",
            body = RegistrationResponse
        ),
        InvalidMetadata, RegistrationBearerErrors, RegistrationTooLarge
    )
)]
pub async fn register_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RegisterError> {
    if state.settings.registration == RegistrationMode::Open
        && crate::http::oauth::authorization_header(&req).is_none()
    {
        return register_open(req, body, state).await;
    }
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

/// `POST /oauth/register` without a credential under `--registration open`
/// (docs/spec.md §8): a public code-flow client, at most 10 per IP per hour (then 429 with
/// `Retry-After`).
async fn register_open(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RegisterError> {
    let meta = parse_metadata(&req, &body)?;
    let ip = crate::http::oauth::peer_ip(&req);
    let st = state.clone();
    let reg = with_db(&state, move |conn| {
        Ok::<_, AppError>(open_registration::register(conn, &st.ctx(), &ip, &meta))
    })
    .await?;
    let reg = match reg {
        Ok(reg) => reg,
        Err(Refused::Op(e)) => return Err(e.into()),
        Err(Refused::TooMany { retry_after }) => {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "Too many registrations from this address. Please retry after {retry_after} seconds."
                ),
            );
            e.retry_after = Some(u32::try_from(retry_after).unwrap_or(u32::MAX));
            return Err(RegisterError::Api(e));
        }
    };
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
#[utoipa::path(
    get,
    path = "/oauth/register/{client_id}",
    operation_id = "readClientRegistration",
    tag = "registration",
    summary = "RFC 7592 read",
    security(("registrationToken" = [])),
    params(("client_id" = String, Path, description = "The registered client's id")),
    responses(
        (status = 200, description = "The metadata", body = RegistrationResponse),
        TokenErrors
    )
)]
pub async fn read_get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RegisterError> {
    let (row, _) = managed(&req, &state, path.into_inner()).await?;
    Ok(no_store(StatusCode::OK, answer(&state, &row, None, None)))
}

/// `PUT /oauth/register/{client_id}` (RFC 7592 §2.2): replaces the metadata.
#[utoipa::path(
    put,
    path = "/oauth/register/{client_id}",
    operation_id = "updateClientRegistration",
    tag = "registration",
    summary = "RFC 7592 update (send client_id; the auth method cannot change)",
    security(("registrationToken" = [])),
    params(("client_id" = String, Path, description = "The registered client's id")),
    request_body = Metadata,
    responses(
        (status = 200, description = "The metadata", body = RegistrationResponse),
        InvalidMetadata, TokenErrors, RegistrationTooLarge
    )
)]
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
#[utoipa::path(
    delete,
    path = "/oauth/register/{client_id}",
    operation_id = "deleteClientRegistration",
    tag = "registration",
    summary = "RFC 7592 delete",
    security(("registrationToken" = [])),
    params(("client_id" = String, Path, description = "The registered client's id")),
    responses((status = 204, description = "Deleted; the client and its tokens are gone"), TokenErrors)
)]
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
