//! Dynamic client registration: RFC 7591 `POST /oauth/register` (authorized by a bearer
//! credential of an organization with `admin`, like `/api/v1`), and RFC 7592
//! read/update/delete at `/oauth/register/{client_id}` with the registration access
//! token handed out at registration. Unknown metadata is ignored (RFC 7591 §2); invalid
//! metadata is 400 `invalid_redirect_uri` / `invalid_client_metadata` (§3.2.2).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::clients::store::{self, ClientRow};
use crate::clients::{ClientError, NewClient};
use crate::http::api::{self, ApiError, Principal};
use crate::http::with_db;
use crate::orgs::Role;
use crate::scope::ScopeSet;

/// An RFC 7591 error, or any `/api/v1`-style failure (authentication, storage).
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
        // A validation failure of the shared rules is a metadata error here.
        if e.status == StatusCode::BAD_REQUEST && e.kind == "invalid_request_error" {
            return metadata_error(e.message);
        }
        Self::Api(e)
    }
}

impl From<ClientError> for RegisterError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::InvalidRedirectUri { uri, reason } => Self::Metadata {
                code: "invalid_redirect_uri",
                description: format!("redirect URI {uri:?}: {reason}"),
            },
            ClientError::InvalidMetadata(m) => metadata_error(m),
            other => Self::Api(other.into()),
        }
    }
}

impl From<crate::error::AppError> for RegisterError {
    fn from(e: crate::error::AppError) -> Self {
        Self::Api(e.into())
    }
}

impl From<diesel::result::Error> for RegisterError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Api(e.into())
    }
}

fn metadata_error(description: impl Into<String>) -> RegisterError {
    RegisterError::Metadata {
        code: "invalid_client_metadata",
        description: description.into(),
    }
}

/// RFC 7591 §2 client metadata (what we understand of it).
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub client_uri: Option<String>,
    #[serde(default)]
    pub logo_uri: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    // RFC 7592 §2.2: present on update.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
}

impl Metadata {
    /// Whether the client is public (`none`), else confidential.
    fn public(&self) -> Result<bool, RegisterError> {
        match self.token_endpoint_auth_method.as_deref() {
            None | Some("client_secret_basic") | Some("client_secret_post") => Ok(false),
            Some("none") => Ok(true),
            Some(other) => Err(metadata_error(format!(
                "token_endpoint_auth_method {other:?} is not supported"
            ))),
        }
    }

    fn to_new(&self) -> Result<NewClient, RegisterError> {
        let grant_types = self
            .grant_types
            .as_deref()
            .map(api::clients::parse_grant_list)
            .transpose()
            .map_err(metadata_error)?;
        if let Some(rt) = &self.response_types
            && rt.iter().any(|t| t != "code")
        {
            return Err(metadata_error(
                "only the response type \"code\" is supported",
            ));
        }
        let scope = match &self.scope {
            None => None,
            Some(s) => Some(ScopeSet::parse(s).map_err(|_| metadata_error("scope is malformed"))?),
        };
        Ok(NewClient {
            name: self.client_name.clone().unwrap_or_default(),
            redirect_uris: self.redirect_uris.clone(),
            public: self.public()?,
            resource_server: false,
            grant_types,
            scope,
            org_id: None,
            logo_uri: self.logo_uri.clone(),
            client_uri: self.client_uri.clone(),
            created_by: None,
        })
    }
}

fn parse_metadata(req: &HttpRequest, body: &[u8]) -> Result<Metadata, RegisterError> {
    api::json_body(req, body).map_err(|e| metadata_error(e.message))
}

fn registration_uri(state: &AppState, id: &str) -> String {
    format!("{}/oauth/register/{id}", state.issuer)
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
    v["registration_client_uri"] = json!(registration_uri(state, &row.id));
    if let Some(s) = secret {
        v["client_secret"] = json!(s);
        v["client_secret_expires_at"] = json!(0);
    }
    if let Some(t) = token {
        v["registration_access_token"] = json!(t);
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
    let p = api::authenticate(&req, &state).await?;
    let meta = parse_metadata(&req, &body)?;
    let st = state.clone();
    let (row, secret, token) = with_db(&state, move |conn| -> Result<_, RegisterError> {
        let mut new = meta.to_new()?;
        new.org_id = Some(p.org_id.clone());
        new.created_by = p.user_id.clone();
        // Validated here first so that redirect URI errors keep their RFC 7591 code.
        new.clone().validate(&st.settings.scopes)?;
        let (row, secret) = api::clients::create(conn, &st, &p, new)?;
        let token = store::new_registration_token(conn, &row.id, &st.settings.key_prefix)?;
        Ok((row, secret, token))
    })
    .await?;
    Ok(no_store(
        StatusCode::CREATED,
        answer(&state, &row, secret, Some(token)),
    ))
}

/// The client a registration access token manages, with a principal acting for it.
async fn managed(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    id: String,
) -> Result<(ClientRow, Principal), RegisterError> {
    let token = api::bearer(req).ok();
    let invalid = || {
        RegisterError::Api(ApiError::invalid_token(
            "The registration access token is not valid for this client.",
        ))
    };
    let Some(token) = token else {
        return Err(invalid());
    };
    let row = with_db(state, move |conn| -> Result<_, RegisterError> {
        Ok(store::find_by_registration_token(conn, &id, &token)?)
    })
    .await?
    .ok_or_else(invalid)?;
    let principal = Principal {
        org_id: row.org_id.clone().unwrap_or_default(),
        user_id: None,
        // The token manages exactly this client; deleting it is within that right.
        role: Role::Admin,
        scopes: ScopeSet::default(),
        actor: format!("registration:{}", row.id),
        rate: None,
    };
    Ok((row, principal))
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
    let id = path.into_inner();
    let (row, p) = managed(&req, &state, id.clone()).await?;
    let meta = parse_metadata(&req, &body)?;
    if meta.client_id.as_deref() != Some(id.as_str()) {
        return Err(metadata_error(
            "client_id must be present and match the client",
        ));
    }
    if meta.public()? != row.is_public {
        return Err(metadata_error(
            "token_endpoint_auth_method cannot change between none and a secret",
        ));
    }
    let st = state.clone();
    let updated = with_db(&state, move |conn| -> Result<_, RegisterError> {
        if let Some(secret) = &meta.client_secret
            && !store::secret_matches(conn, &id, secret, st.clock.now())?
        {
            return Err(metadata_error("client_secret does not match"));
        }
        let mut new = meta.to_new()?;
        new.org_id = row.org_id.clone();
        new.clone().validate(&st.settings.scopes)?;
        Ok(api::clients::update(conn, &st, &p, &id, new)?)
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
    let id = path.into_inner();
    let (_, p) = managed(&req, &state, id.clone()).await?;
    let st = state.clone();
    let client_id = id.clone();
    with_db(&state, move |conn| -> Result<_, RegisterError> {
        Ok(api::clients::delete(conn, &st, &p, &client_id)?)
    })
    .await?;
    api::clients::after_client_change(&state, &id);
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
