//! The one mapping from failures to the wire for `/api/v1` and the pages: [`ApiError`]
//! (`{"error": {"type", "message"}}` with RFC 6750 challenges and rate-limit headers) and
//! [`shown`] (an HTML page's status and message). A feature's [`OpError`] becomes either
//! by its variant, never by its text; OAuth endpoints answer with `error::OAuthError`
//! (RFC 6749 §5.2) and registration with `http::register::RegisterError` (RFC 7591 §3.2.2),
//! both built from the same variants.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};

use crate::api_keys::ratelimit::RateState;
use crate::error::{AppError, OpError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub challenge: Option<String>,
    /// Boxed: the state carries both budgets, and errors should stay small.
    pub rate: Option<Box<RateState>>,
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
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
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
    pub(crate) fn missing_credential() -> Self {
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
    /// 403 for a credential that carries none of `accepted` (any one would do): the
    /// message names them joined by "or" (`analytics:read or admin`); the RFC 6750 §3
    /// challenge lists them space-separated.
    pub fn insufficient_scope_any(accepted: &[&str]) -> Self {
        let mut e = Self::insufficient_scope(&accepted.join(" "));
        e.message = format!("The credential lacks the scope {}.", accepted.join(" or "));
        e
    }
    /// 429 with `Retry-After: wait` (seconds).
    pub fn rate_limited(rate: RateState, wait: i64) -> Self {
        Self {
            rate: Some(Box::new(rate)),
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
            self.rate = rate.map(Box::new);
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

/// Seconds as a `Retry-After` value.
pub fn secs(s: i64) -> u32 {
    u32::try_from(s.max(0)).unwrap_or(u32::MAX)
}

/// Adds the X-RateLimit headers (docs/spec.md §5) and the IETF `RateLimit-Policy` and
/// `RateLimit` fields (§10) of a live key's budget ([`RateState::header_fields`]).
pub fn rate_headers(b: &mut HttpResponseBuilder, rate: Option<RateState>) {
    if let Some(r) = rate {
        for field in r.header_fields() {
            b.insert_header(field);
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        match self.cause.as_deref() {
            Some(e @ AppError::Unavailable(_)) => {
                tracing::error!(cause = %e.chain(), "dependency unavailable")
            }
            Some(e @ AppError::Internal(_)) => {
                tracing::error!(cause = %e.chain(), "internal error")
            }
            None => {}
        }
        let mut b = HttpResponse::build(self.status);
        b.insert_header((header::CACHE_CONTROL, "no-store"));
        match &self.challenge {
            Some(c) => {
                b.insert_header((header::WWW_AUTHENTICATE, c.as_str()));
            }
            // RFC 9110 §15.5.2: a 401 always names how to authenticate; `/api/v1` and
            // registration take bearer credentials (RFC 6750 §3).
            None if self.status == StatusCode::UNAUTHORIZED => {
                b.insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="tessera""#));
            }
            None => {}
        }
        if let Some(s) = self.retry_after {
            b.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        rate_headers(&mut b, self.rate.as_deref().copied());
        b.json(ErrorBody {
            error: ErrorDetail {
                kind: self.kind,
                message: self.message.clone(),
                retry_after: self
                    .retry_after
                    .filter(|_| self.status == StatusCode::TOO_MANY_REQUESTS),
            },
        })
    }
}

/// The body of every `/api/v1` error (docs/spec.md §5).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a machine-readable `type` and a human-readable `message`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    #[schema(value_type = ErrorType)]
    pub kind: &'static str,
    pub message: String,
    /// Seconds to wait; only on 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
}

/// The values of an error's `type`.
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequestError,
    AuthenticationError,
    PermissionError,
    NotFoundError,
    RateLimitError,
    ApiError,
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Invalid(m) | OpError::InvalidRedirectUri(m) => Self::invalid(m),
            OpError::Forbidden(m) => Self::forbidden(m),
            OpError::NotFound(what) => Self::not_found(what),
            OpError::Conflict(m) => Self::conflict(m),
            OpError::App(e) => e.into(),
        }
    }
}

/// A failure of an operation called from a page: storage failures propagate (the error
/// page of [`AppError`]), the rest is shown on the form with its status.
pub fn shown(e: OpError) -> Result<(StatusCode, String), AppError> {
    let status = match &e {
        OpError::Invalid(_) | OpError::InvalidRedirectUri(_) => StatusCode::BAD_REQUEST,
        OpError::Forbidden(_) => StatusCode::FORBIDDEN,
        OpError::NotFound(_) => StatusCode::NOT_FOUND,
        OpError::Conflict(_) => StatusCode::CONFLICT,
        OpError::App(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    match e {
        OpError::App(a) => Err(a),
        other => Ok((status, other.to_string())),
    }
}
