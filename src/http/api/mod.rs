//! `/api/v1`: the JSON management API and key verification (docs/spec.md §5).
//!
//! Every call carries `Authorization: Bearer <API key or access token>` (verify: HTTP
//! Basic as a resource server). Credentials in the URL are refused (docs/security.md I7).
//! Errors are `{"error": {"type", "message"}}`; bearer failures carry the RFC 6750 §3
//! challenge; every answer about an existing key carries the X-RateLimit headers.

pub mod auth;
pub mod clients;
pub mod invitations;
pub mod key_requests;
pub mod keys;
pub mod members;
pub mod openapi;
pub mod orgs;
pub mod secret_scanning;
pub mod usage;
pub mod verify;

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;

use crate::api_keys::ratelimit::RateState;
pub use crate::http::errors::{ApiError, rate_headers, secs};
pub use auth::Principal;

/// Largest JSON body accepted on `/api/v1`.
pub const API_BODY_LIMIT: usize = 64 * 1024;

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
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Overlap {
    /// Seconds the old key or secret keeps working (default 0: it stops at once).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2592000)]
    pub expire_old_in_seconds: Option<i64>,
}

/// `/api/v1` and the OAuth endpoints (`/oauth/*` but the consent page) answer in JSON even
/// when the body is refused before a handler runs (over [`API_BODY_LIMIT`], or over
/// `oauth::TOKEN_BODY_LIMIT` at the token, introspection, revocation and device
/// authorization endpoints; docs/security.md J6): RFC 6749 §5.2 `invalid_request` with 413
/// (RFC 7591 §3.2.2 at `/oauth/register`). actix's own answer is text.
pub async fn json_payload_errors(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<
    actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    let path = req.path();
    let registration = path.starts_with("/oauth/register");
    let oauth = path.starts_with("/oauth/") && path != "/oauth/authorize";
    let api = path.starts_with("/api/v1/") || oauth;
    let res = next.call(req).await?;
    if api && res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = if oauth && !registration {
            crate::http::oauth::TOKEN_BODY_LIMIT
        } else {
            API_BODY_LIMIT
        };
        let message = format!("The body is larger than {} KiB.", limit / 1024);
        let too_large = if oauth {
            // RFC 7591 §3.2.2: registration answers in the OAuth error shape.
            HttpResponse::PayloadTooLarge()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(crate::error::ErrorJson::new("invalid_request", &message))
        } else {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                message,
            )
            .error_response()
        };
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

/// Parses a JSON body strictly: `application/json`, valid, the expected shape, no NUL
/// character in any string (`http::bad_input`). The message never echoes the body (it
/// may hold a key).
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
    // A JSON string can only carry a NUL as the escape `\u0000`: look closer only then.
    if body.windows(5).any(|w| w.eq_ignore_ascii_case(b"u0000"))
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(field) = crate::http::bad_input::json_nul_field(&value)
    {
        return Err(ApiError::invalid(crate::http::bad_input::message(&field)));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // The path names fields by our own names and array positions, never a value.
        let path = e.path().to_string();
        let e = e.into_inner();
        let what = match e.classify() {
            serde_json::error::Category::Data => match named_field(&e.to_string()) {
                Some((kind, field)) if path == "." || path == field => {
                    format!("has {kind} field {field}")
                }
                Some((kind, field)) => format!("has {kind} field {field} in {path}"),
                None if path != "." => format!("has a field of the wrong type or value: {path}"),
                None => "has a missing, unknown or mistyped field".into(),
            },
            _ => "is not valid JSON".into(),
        };
        ApiError::invalid(format!(
            "The body {what} (line {}, column {}).",
            e.line(),
            e.column()
        ))
    })
}

/// The field a serde error names when it is missing, unknown or repeated: a field name
/// from our own types or the caller's keys, never a value (which may hold a secret).
fn named_field(serde_message: &str) -> Option<(&'static str, &str)> {
    [
        ("missing field `", "a missing"),
        ("unknown field `", "an unknown"),
        ("duplicate field `", "a repeated"),
    ]
    .into_iter()
    .find_map(|(pattern, kind)| {
        let (_, rest) = serde_message.split_once(pattern)?;
        let (field, _) = rest.split_once('`')?;
        Some((kind, field))
    })
}

/// A JSON body parsed by [`json_body`]: `application/json`, valid, the expected shape;
/// anything else is 400 naming what was wrong. Declare it after [`Principal`] so that an
/// unauthenticated call is 401 whatever its body.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let bytes = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = bytes.await?;
            Ok(ApiJson(json_body(&req, &body)?))
        })
    }
}

/// [`ApiJson`] for bodies that may be left out entirely (every field optional).
pub struct ApiJsonOrDefault<T>(pub T);

impl<T: serde::de::DeserializeOwned + Default + 'static> FromRequest for ApiJsonOrDefault<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let bytes = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = bytes.await?;
            Ok(ApiJsonOrDefault(json_body_or_default(&req, &body)?))
        })
    }
}
