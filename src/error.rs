//! The one mapping from failures to HTTP. Policy: a client error says what was wrong in
//! RFC-shaped terms; a server error says nothing about its cause (the cause is logged here,
//! once, with its chain). Storage that is unreachable is 503 `temporarily_unavailable`
//! with `Retry-After`, never a decision in the caller's favour (docs/security.md §2 (3)).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// The cause of a server-side failure, kept with its own chain of sources.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database (or another dependency) cannot be reached right now.
    #[error("service unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
}

impl AppError {
    pub fn from_db(e: diesel::result::Error) -> Self {
        if crate::db::is_unavailable(&e) {
            Self::Unavailable(Box::new(e))
        } else {
            Self::Internal(Box::new(e))
        }
    }

    /// The cause and each of its sources, `: `-separated: what is logged, once, where the
    /// failure becomes a 5xx.
    pub fn chain(&self) -> String {
        let (Self::Unavailable(c) | Self::Internal(c)) = self;
        let mut out = c.to_string();
        let mut next = c.source();
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        Self::from_db(e)
    }
}

impl From<crate::tokens::keys::KeyError> for AppError {
    fn from(e: crate::tokens::keys::KeyError) -> Self {
        match e {
            crate::tokens::keys::KeyError::Db(db) => Self::from_db(db),
            other => Self::Internal(Box::new(other)),
        }
    }
}

/// Why a feature operation refused. The operations (`api_keys::ops`, `clients::ops`,
/// `orgs::members`, `consent::decision`) return it whatever the transport; `http::errors`
/// maps each variant to the `/api/v1` JSON, RFC 7591 JSON or an HTML page. The HTTP status
/// derives from the variant, never from the message.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Malformed input or a broken rule (400); the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// A redirect URI is malformed or not allowed (400; RFC 7591 §3.2.2
    /// `invalid_redirect_uri` at registration).
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// The actor may not do this (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such thing in the actor's organization (404); names the thing.
    #[error("No such {0}.")]
    NotFound(&'static str),
    /// The change would break an invariant (409).
    #[error("{0}")]
    Conflict(&'static str),
    /// Storage failed (503 when unreachable, else 500); the cause is logged once.
    #[error(transparent)]
    App(#[from] AppError),
}

impl OpError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// For reads that can only fail in storage: the storage error, or an internal error
    /// naming the unexpected refusal.
    pub fn into_app(self) -> AppError {
        match self {
            Self::App(a) => a,
            other => AppError::Internal(format!("unexpected refusal: {other}").into()),
        }
    }
}

impl From<diesel::result::Error> for OpError {
    fn from(e: diesel::result::Error) -> Self {
        Self::App(AppError::from_db(e))
    }
}

impl From<crate::api_keys::store::ApiKeyError> for OpError {
    fn from(e: crate::api_keys::store::ApiKeyError) -> Self {
        use crate::api_keys::store::ApiKeyError;
        match e {
            ApiKeyError::Invalid(m) => Self::Invalid(m),
            ApiKeyError::OrgNotFound(_) => Self::NotFound("organization"),
            ApiKeyError::Db(d) => d.into(),
        }
    }
}

impl From<crate::clients::ClientError> for OpError {
    fn from(e: crate::clients::ClientError) -> Self {
        use crate::clients::ClientError;
        match e {
            ClientError::InvalidRedirectUri { uri, reason } => {
                Self::InvalidRedirectUri(format!("redirect URI '{uri}': {reason}"))
            }
            ClientError::InvalidMetadata(m) => Self::Invalid(m),
            ClientError::OrgNotFound(_) => Self::NotFound("organization"),
            ClientError::Db(d) => d.into(),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unavailable(_) => {
                tracing::error!(cause = %self.chain(), "dependency unavailable");
                HttpResponse::ServiceUnavailable()
                    .insert_header(("Retry-After", "1"))
                    .insert_header(("Cache-Control", "no-store"))
                    .json(ErrorJson::new(
                        "temporarily_unavailable",
                        "The service is temporarily unavailable. Retry shortly.",
                    ))
            }
            Self::Internal(_) => {
                tracing::error!(cause = %self.chain(), "internal error");
                HttpResponse::InternalServerError()
                    .insert_header(("Cache-Control", "no-store"))
                    .json(json!({"error": "server_error"}))
            }
        }
    }
}

/// The body of every OAuth-shaped error: `{"error", "error_description"}` (RFC 6749
/// §5.2; also RFC 7009 §2.2.1, RFC 7662 §2.3, RFC 7591 §3.2.2). The fields are private:
/// [`ErrorJson::new`] is the one place a description is written, and it keeps it within
/// RFC 6749's character set (docs/security.md D3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = OAuthErrorBody)]
pub struct ErrorJson {
    /// The error code.
    error: String,
    /// Printable ASCII without `"` and `\` (RFC 6749 §5.2).
    error_description: String,
}

impl ErrorJson {
    pub fn new(error: &str, description: &str) -> Self {
        Self {
            error: error.to_string(),
            error_description: description_text(description),
        }
    }
    pub fn error(&self) -> &str {
        &self.error
    }
    pub fn description(&self) -> &str {
        &self.error_description
    }
}

/// RFC 6749 §5.2: `error_description` holds only %x20-21 / %x23-5B / %x5D-7E. Text is
/// mapped into that set rather than refused, so a message that names a field or echoes
/// an input stays readable: `"` becomes `'`, `\` becomes `/`, `§` becomes `section `,
/// whitespace a space, and any other character `?`.
pub fn description_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push('\''),
            '\\' => out.push('/'),
            '§' => out.push_str("section "),
            ' '..='~' => out.push(c),
            c if c.is_whitespace() => out.push(' '),
            _ => out.push('?'),
        }
    }
    out
}

/// Whether `text` is within RFC 6749 §5.2's `error_description` character set.
pub fn is_description_text(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// The error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1 and RFC 7009 §2.2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AccessDenied,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidToken,
    InsufficientScope,
    ServerError,
    TemporarilyUnavailable,
    /// RFC 8628 §3.5, registered for OAuth: the caller must wait (answered with 429).
    SlowDown,
    /// RFC 8707 §2: a `resource` that is malformed, unknown, or wider than the grant.
    InvalidTarget,
    /// RFC 8628 §3.5: the person has not decided yet (400).
    AuthorizationPending,
    /// RFC 8628 §3.5: a device-code poll too soon; the interval grows by 5 s (400, unlike
    /// [`ErrorCode::SlowDown`]'s throttling answer).
    #[serde(rename = "slow_down")]
    PollTooSoon,
    /// RFC 8628 §3.5: the device code expired.
    ExpiredToken,
}

/// The challenge of a 401 from an endpoint whose callers authenticate as clients
/// (RFC 7617; RFC 6749 §2.3.1, §5.2).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"tessera\", charset=\"UTF-8\"";
const BEARER_INVALID_TOKEN: &str = "Bearer realm=\"tessera\", error=\"invalid_token\"";

/// An OAuth error answered as RFC 6749 §5.2 JSON. `description` is static text, or (only
/// through [`OAuthError::naming`]) a server-written message that names a problem; either
/// way it is mapped into RFC 6749 §5.2's character set when answered (docs/security.md D3).
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {description}")]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: std::borrow::Cow<'static, str>,
    /// Set for server-side failures; logged once when answered.
    pub cause: Option<AppError>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<i64>,
    /// Authenticated but not allowed here: 403 instead of 400.
    pub forbidden: bool,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: &'static str) -> Self {
        Self {
            code,
            description: std::borrow::Cow::Borrowed(description),
            cause: None,
            retry_after: None,
            forbidden: false,
        }
    }
    /// An error whose description the server composed to name the problem (e.g. which
    /// rule a client metadata document breaks, docs/spec.md §8). Never pass request input.
    pub fn naming(code: ErrorCode, description: String) -> Self {
        Self {
            description: std::borrow::Cow::Owned(description),
            ..Self::new(code, "")
        }
    }
    pub fn invalid_request(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }
    /// The one answer for every client-authentication failure, whatever method the client
    /// used or if it used none: unknown client and wrong secret are indistinguishable
    /// (docs/security.md D4), and the 401 always carries a Basic challenge (RFC 6749 §5.2,
    /// RFC 9110 §15.5.2).
    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "Client authentication failed.")
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> Self {
        let code = match e {
            AppError::Unavailable(_) => ErrorCode::TemporarilyUnavailable,
            AppError::Internal(_) => ErrorCode::ServerError,
        };
        Self {
            code,
            description: std::borrow::Cow::Borrowed(""),
            cause: Some(e),
            retry_after: None,
            forbidden: false,
        }
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::from_db(e).into()
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        if self.forbidden {
            return StatusCode::FORBIDDEN;
        }
        match self.code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::SlowDown => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.cause {
            // AppError's own response logs the cause and says nothing about it.
            return cause.error_response();
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header(("Cache-Control", "no-store"))
            .insert_header(("Pragma", "no-cache"));
        if let Some(seconds) = self.retry_after {
            resp.insert_header(("Retry-After", seconds.to_string()));
        }
        // RFC 9110 §15.5.2: every 401 carries a challenge. Clients authenticate to these
        // endpoints with HTTP Basic (or its body equivalent, RFC 6749 §2.3.1); a bearer
        // token is what `invalid_token` refuses (RFC 6750 §3).
        if self.status_code() == StatusCode::UNAUTHORIZED {
            resp.insert_header((
                "WWW-Authenticate",
                match self.code {
                    ErrorCode::InvalidToken => BEARER_INVALID_TOKEN,
                    _ => BASIC_CHALLENGE,
                },
            ));
        }
        let code = serde_json::to_value(self.code).unwrap_or_default();
        resp.json(ErrorJson::new(
            code.as_str().unwrap_or("server_error"),
            &self.description,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Unicode scalar value, alone and between text, comes out of
    /// [`description_text`] within RFC 6749 §5.2's set (docs/security.md D3).
    #[test]
    fn d3_every_character_maps_into_the_error_description_set() {
        for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            for text in [c.to_string(), format!("a {c}b\"{c}\\")] {
                let out = description_text(&text);
                assert!(is_description_text(&out), "{:?} -> {out:?}", c as u32);
            }
        }
        assert_eq!(
            description_text("redirect URI \"a\\b\": no fragment (RFC 6749 §3.1.2)\n"),
            "redirect URI 'a/b': no fragment (RFC 6749 section 3.1.2) "
        );
        assert_eq!(description_text("plain, ASCII!"), "plain, ASCII!");
        assert!(
            !is_description_text("a\"b") && !is_description_text("§") && !is_description_text("\t")
        );
    }

    /// Every OAuth error code answers with a body whose description is in the set.
    #[test]
    fn d3_oauth_error_bodies_stay_in_the_character_set() {
        use actix_web::body::MessageBody;
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidClient,
            ErrorCode::InvalidGrant,
            ErrorCode::UnauthorizedClient,
            ErrorCode::UnsupportedGrantType,
            ErrorCode::InvalidScope,
            ErrorCode::AccessDenied,
            ErrorCode::UnsupportedResponseType,
            ErrorCode::UnsupportedTokenType,
            ErrorCode::InvalidToken,
            ErrorCode::InsufficientScope,
            ErrorCode::SlowDown,
            ErrorCode::InvalidTarget,
            ErrorCode::AuthorizationPending,
            ErrorCode::PollTooSoon,
            ErrorCode::ExpiredToken,
        ] {
            let resp = OAuthError::new(code, "bad \"x\" § \\ é\u{0}").error_response();
            let bytes = resp.into_body().try_into_bytes().expect("bytes");
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            let d = body["error_description"].as_str().expect("description");
            assert!(is_description_text(d), "{code:?}: {d:?}");
            assert_eq!(body["error"], serde_json::to_value(code).expect("code"));
        }
    }
}
