//! `/api/v1`: the JSON management API and key verification (SPEC.md §5).
//!
//! Every call carries `Authorization: Bearer <API key or access token>` (verify: HTTP
//! Basic as a resource server). Credentials in the URL are refused (SECURITY.md I7).
//! Errors are `{"error": {"type", "message"}}`; bearer failures carry the RFC 6750 §3
//! challenge; every answer about an existing key carries the X-RateLimit headers.

pub mod clients;
pub mod keys;
pub mod members;
pub mod openapi;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError, web};
use serde_json::json;

use crate::api_keys::ratelimit::RateState;
use crate::api_keys::verify::{self, Code, Counting};
use crate::app::AppState;
use crate::db::DbConnection;
use crate::error::AppError;
use crate::orgs::Role;
use crate::scope::ScopeSet;

/// Largest JSON body accepted on `/api/v1`.
pub const API_BODY_LIMIT: usize = 64 * 1024;

/// The scope a credential needs to use the management API.
pub const MANAGEMENT_SCOPE: &str = "admin";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub challenge: Option<String>,
    pub rate: Option<RateState>,
    /// Seconds for `Retry-After` (u32 keeps the error small).
    pub retry_after: Option<u32>,
    pub cause: Option<Box<AppError>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.kind, self.message)
    }
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            challenge: None,
            rate: None,
            retry_after: None,
            cause: None,
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("No such {what}."),
        )
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "invalid_request_error", message)
    }
    /// RFC 6750 §3: no credential at all: a challenge without an error code.
    fn missing_credential() -> Self {
        Self {
            challenge: Some(r#"Bearer realm="tessera""#.into()),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "No credential: send Authorization: Bearer <API key or access token>.",
            )
        }
    }
    /// RFC 6750 §3.1 `invalid_token`.
    pub fn invalid_token(message: &'static str) -> Self {
        Self {
            challenge: Some(format!(
                r#"Bearer realm="tessera", error="invalid_token", error_description="{message}""#
            )),
            ..Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
        }
    }
    /// RFC 6750 §3.1 `insufficient_scope`, naming the scope needed.
    pub fn insufficient_scope(scope: &str) -> Self {
        Self {
            challenge: Some(format!(
                r#"Bearer realm="tessera", error="insufficient_scope", scope="{scope}""#
            )),
            ..Self::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                format!("The credential lacks the scope {scope}."),
            )
        }
    }
    pub fn rate_limited(rate: RateState, now: i64) -> Self {
        let wait = rate.retry_after(now);
        Self {
            rate: Some(rate),
            retry_after: Some(secs(wait)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!("Rate limit exceeded. Please retry after {wait} seconds."),
            )
        }
    }
    pub fn with_rate(mut self, rate: Option<RateState>) -> Self {
        if self.rate.is_none() {
            self.rate = rate;
        }
        self
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let (status, message) = match &e {
            AppError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is temporarily unavailable. Retry shortly.",
            ),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error."),
        };
        Self {
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
            cause: Some(Box::new(e)),
            ..Self::new(status, "api_error", message)
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::from_db(&e).into()
    }
}

/// Seconds as a `Retry-After` value.
pub fn secs(s: i64) -> u32 {
    u32::try_from(s.max(0)).unwrap_or(u32::MAX)
}

/// Adds the X-RateLimit headers of RFC 6585-style limits (SPEC.md §5).
pub fn rate_headers(b: &mut HttpResponseBuilder, rate: Option<RateState>) {
    if let Some(r) = rate {
        b.insert_header(("X-RateLimit-Limit", r.limit.to_string()))
            .insert_header(("X-RateLimit-Remaining", r.remaining.to_string()))
            .insert_header(("X-RateLimit-Reset", r.reset.to_string()));
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        match self.cause.as_deref() {
            Some(AppError::Unavailable(c)) => tracing::error!(cause = %c, "dependency unavailable"),
            Some(AppError::Internal(c)) => tracing::error!(cause = %c, "internal error"),
            None => {}
        }
        let mut b = HttpResponse::build(self.status);
        b.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(c) = &self.challenge {
            b.insert_header((header::WWW_AUTHENTICATE, c.as_str()));
        }
        if let Some(s) = self.retry_after {
            b.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        rate_headers(&mut b, self.rate);
        let mut error = json!({"type": self.kind, "message": self.message});
        if let Some(s) = self.retry_after
            && self.status == StatusCode::TOO_MANY_REQUESTS
        {
            error["retry_after"] = json!(s);
        }
        b.json(json!({ "error": error }))
    }
}

/// A JSON answer with `Cache-Control: no-store` and the caller's rate-limit headers.
pub fn json_response(
    status: StatusCode,
    rate: Option<RateState>,
    body: impl serde::Serialize,
) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    rate_headers(&mut b, rate);
    b.json(body)
}

/// The body of a key roll or a secret rotation: how long the old credential keeps working.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlap {
    #[serde(default)]
    pub expire_old_in_seconds: Option<i64>,
}

/// Longest overlap a key roll or a secret rotation may give the old credential: 30 days.
pub const MAX_OVERLAP_SECONDS: i64 = 30 * 86_400;

/// Checks an overlap (`expire_old_in_seconds`) against its bounds.
pub fn check_overlap(seconds: i64) -> Result<i64, ApiError> {
    if (0..=MAX_OVERLAP_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(ApiError::invalid(format!(
            "expire_old_in_seconds must be between 0 and {MAX_OVERLAP_SECONDS}."
        )))
    }
}

/// `/api/v1` and `/oauth/register` answer in JSON even when the body is refused before
/// a handler runs (over [`API_BODY_LIMIT`], SECURITY.md J6); actix's own answer is text.
pub async fn json_payload_errors(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<
    actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    let api = req.path().starts_with("/api/v1/") || req.path().starts_with("/oauth/register");
    let res = next.call(req).await?;
    if api && res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let too_large = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("The body is larger than {} KiB.", API_BODY_LIMIT / 1024),
        )
        .error_response();
        return Ok(res.into_response(too_large).map_into_right_body());
    }
    Ok(res.map_into_left_body())
}

/// A 204 with `Cache-Control: no-store` and the caller's rate-limit headers.
pub fn no_content(rate: Option<RateState>) -> HttpResponse {
    let mut b = HttpResponse::NoContent();
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    rate_headers(&mut b, rate);
    b.finish()
}

/// [`json_body`] for bodies that may be left out entirely (every field optional).
pub fn json_body_or_default<T: serde::de::DeserializeOwned + Default>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    if body.is_empty() {
        Ok(T::default())
    } else {
        json_body(req, body)
    }
}

/// Parses a JSON body strictly: `application/json`, valid, the expected shape. The message
/// never echoes the body (it may hold a key).
pub fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::invalid(
            "The body must be JSON (Content-Type: application/json).",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "has a missing, unknown or mistyped field",
            _ => "is not valid JSON",
        };
        ApiError::invalid(format!(
            "The body {what} (line {}, column {}).",
            e.line(),
            e.column()
        ))
    })
}

/// Scopes given as a JSON array or one space-separated string.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum ScopesInput {
    List(Vec<String>),
    Text(String),
}

impl ScopesInput {
    pub fn parse(&self) -> Result<ScopeSet, ApiError> {
        let parsed = match self {
            Self::List(v) => ScopeSet::parse_many(v.iter().map(String::as_str)),
            Self::Text(s) => ScopeSet::parse_many([s.as_str()]),
        };
        parsed.map_err(|_| ApiError::invalid("scopes are malformed."))
    }
}

/// SECURITY.md I7: credentials never ride in a URL.
fn refuse_credentials_in_url(req: &HttpRequest) -> Result<(), ApiError> {
    let named =
        |n: &str| form_urlencoded_names(req.query_string()).any(|k| k.eq_ignore_ascii_case(n));
    if ["api_key", "access_token", "key", "token"]
        .iter()
        .any(|n| named(n))
    {
        return Err(credentials_in_url());
    }
    Ok(())
}

fn credentials_in_url() -> ApiError {
    ApiError {
        challenge: Some(
            r#"Bearer realm="tessera", error="invalid_request", error_description="Credentials must not be sent in the URL.""#
                .into(),
        ),
        ..ApiError::invalid(
            "Credentials must not be sent in the URL; use the Authorization header.",
        )
    }
}

fn form_urlencoded_names(q: &str) -> impl Iterator<Item = String> + '_ {
    url::form_urlencoded::parse(q.as_bytes()).map(|(k, _)| k.into_owned())
}

/// Who is calling `/api/v1`, and with what rights.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org_id: String,
    /// `None`: a key made with the CLI, acting as an organization admin.
    pub user_id: Option<String>,
    pub role: Role,
    pub scopes: ScopeSet,
    /// `key:<id>` or `user:<id>`, for the audit log.
    pub actor: String,
    pub rate: Option<RateState>,
}

impl Principal {
    /// Records what this principal did, inside the caller's transaction.
    pub fn audit(
        &self,
        conn: &mut DbConnection,
        action: &str,
        target: (&str, &str),
        details: serde_json::Value,
        now: i64,
    ) -> Result<(), ApiError> {
        crate::audit::record(
            conn,
            &crate::audit::Event {
                org_id: Some(&self.org_id),
                actor: &self.actor,
                action,
                target_type: target.0,
                target_id: target.1,
                details,
            },
            now,
        )?;
        Ok(())
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("Only organization admins may do this."))
        }
    }
}

/// The `Tessera-Organization` header picks the organization when a user token's user
/// belongs to several.
pub const ORG_HEADER: &str = "Tessera-Organization";

pub(crate) fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::missing_credential());
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("The Authorization header is malformed."))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::missing_credential());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::invalid_token("The bearer credential is empty."));
    }
    Ok(token.to_string())
}

/// Authenticates the bearer credential of an `/api/v1` call. An API key is counted against
/// its rate limit; a user access token must carry `admin` and acts for its user.
pub async fn authenticate(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<Principal, ApiError> {
    refuse_credentials_in_url(req)?;
    let token = bearer(req)?;
    let org_hint = req
        .headers()
        .get(ORG_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let st = state.clone();
    crate::http::with_db(state, move |conn| {
        authenticate_in(conn, &st, &token, org_hint)
    })
    .await
}

fn authenticate_in(
    conn: &mut DbConnection,
    st: &AppState,
    token: &str,
    org_hint: Option<String>,
) -> Result<Principal, ApiError> {
    let now = st.clock.now();
    let required = ScopeSet::parse(MANAGEMENT_SCOPE).unwrap_or_default();
    if token.matches('.').count() == 2 {
        return access_token_principal(conn, st, token, &required, org_hint, now);
    }
    let v = verify::check(
        conn,
        &st.api_keys,
        &st.settings.plan_limits,
        &st.settings.key_prefix,
        token,
        &required,
        Counting::Count,
        now,
    )?;
    let rate = v.rate;
    let fail = |e: ApiError| Err(e.with_rate(rate));
    let key = match (v.code, v.key) {
        (Code::Valid, Some(key)) => key,
        (Code::NotFound, _) => {
            return fail(ApiError::invalid_token("The credential is not valid."));
        }
        (Code::Expired, _) => return fail(ApiError::invalid_token("The API key has expired.")),
        (Code::Revoked, _) => {
            return fail(ApiError::invalid_token("The API key has been revoked."));
        }
        (Code::InsufficientScope, _) => {
            return fail(ApiError::insufficient_scope(MANAGEMENT_SCOPE));
        }
        (Code::RateLimited, _) => {
            return fail(ApiError::rate_limited(
                rate.unwrap_or(RateState {
                    limit: 0,
                    remaining: 0,
                    reset: now + 60,
                }),
                now,
            ));
        }
        (Code::Valid, None) => {
            return fail(ApiError::invalid_token("The credential is not valid."));
        }
    };
    let role = match &key.created_by {
        None => Role::Admin,
        Some(user) => match crate::orgs::store::role_of(conn, &key.org_id, user)? {
            Some(role) => role,
            None => {
                return fail(ApiError::forbidden(
                    "The user who made this key is no longer a member of its organization.",
                ));
            }
        },
    };
    Ok(Principal {
        org_id: key.org_id,
        user_id: key.created_by,
        role,
        scopes: key.scopes,
        actor: format!("key:{}", key.id),
        rate,
    })
}

fn access_token_principal(
    conn: &mut DbConnection,
    st: &AppState,
    token: &str,
    required: &ScopeSet,
    org_hint: Option<String>,
    now: i64,
) -> Result<Principal, ApiError> {
    let keys = st.keys.snapshot();
    let expect = crate::tokens::verify::Expect {
        issuer: &st.issuer,
        audience: &st.audience,
        leeway: st.settings.jwt_leeway_seconds,
        now,
    };
    let invalid = || ApiError::invalid_token("The access token is not valid, expired or revoked.");
    let claims =
        crate::tokens::verify::verify_access_token(&keys, token, expect).ok_or_else(invalid)?;
    if crate::introspection::jti_revoked(conn, &claims.jti)? {
        return Err(invalid());
    }
    if let Some(gid) = &claims.gid
        && !crate::introspection::grant_live(conn, gid)?
    {
        return Err(invalid());
    }
    let scopes = ScopeSet::parse(&claims.scope).map_err(|_| invalid())?;
    if !required.is_subset(&scopes) {
        return Err(ApiError::insufficient_scope(MANAGEMENT_SCOPE));
    }
    if claims.sub == claims.client_id {
        return Err(ApiError::forbidden(
            "A client's own token cannot manage an organization; use a user's token or an API key.",
        ));
    }
    let orgs = crate::orgs::store::orgs_of(conn, &claims.sub)?;
    let org_id = match org_hint {
        Some(o) if orgs.contains(&o) => o,
        Some(_) => return Err(ApiError::not_found("organization")),
        None if orgs.len() == 1 => orgs[0].clone(),
        None if orgs.is_empty() => {
            return Err(ApiError::forbidden("The user belongs to no organization."));
        }
        None => {
            return Err(ApiError::invalid(format!(
                "The user belongs to several organizations: name one in the {ORG_HEADER} header."
            )));
        }
    };
    let role = crate::orgs::store::role_of(conn, &org_id, &claims.sub)?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(Principal {
        org_id,
        user_id: Some(claims.sub.clone()),
        role,
        scopes,
        actor: format!("user:{}", claims.sub),
        rate: None,
    })
}
