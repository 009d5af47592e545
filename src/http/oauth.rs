//! `/oauth/*` handlers: extract, call `crate::oauth`, map.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::{ErrorCode, OAuthError};
use crate::http::with_db;
use crate::oauth::client_auth;
use crate::oauth::form::StrictForm;
use crate::oauth::token::{self, Issuing, SENSITIVE_PARAMS};
use crate::startup::AppState;

/// Largest token request body accepted (SECURITY.md J6).
pub const TOKEN_BODY_LIMIT: usize = 16 * 1024;

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `POST /oauth/token` (RFC 6749 §3.2).
pub async fn token_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    if !is_form(&req) {
        return Err(OAuthError::invalid_request(
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    let query = StrictForm::parse(req.query_string().as_bytes())
        .map_err(|_| OAuthError::invalid_request("The query string is malformed."))?;
    if query.contains_any(SENSITIVE_PARAMS) {
        return Err(OAuthError::invalid_request(
            "Parameters must be sent in the body, not the URL.",
        ));
    }
    let form = StrictForm::parse(&body)
        .map_err(|_| OAuthError::invalid_request("The body is not valid form encoding."))?;
    if form.repeated().is_some() {
        return Err(OAuthError::invalid_request("A parameter is repeated."));
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let presented = client_auth::presented(authorization, &form)?;
    let request = token::parse(&form)?;
    // SECURITY.md K2: a client id (or an address) guessing secrets is slowed down.
    let ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let client_id = presented.client_id().to_string();
    if let Some(wait) = state
        .client_auth_throttle
        .check(&client_id, &ip, state.clock.now())
    {
        return Err(OAuthError {
            retry_after: Some(wait),
            ..OAuthError::new(
                ErrorCode::SlowDown,
                "Too many failed client authentications. Retry later.",
            )
        });
    }
    let st = state.clone();
    let result = with_db(&state, move |conn| {
        let ctx = Issuing {
            settings: &st.settings,
            issuer: &st.issuer,
            audience: &st.audience,
            keys: &st.keys,
            now: st.clock.now(),
        };
        token::exchange(conn, ctx, &presented, request)
    })
    .await;
    let response = match result {
        Err(e) if e.code == ErrorCode::InvalidClient => {
            state
                .client_auth_throttle
                .record_failure(&client_id, &ip, state.clock.now());
            return Err(e);
        }
        other => other?,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response))
}

/// Any other method on a POST-only OAuth endpoint (SECURITY.md D1).
pub async fn post_only() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "POST"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"error": "invalid_request", "error_description": "Use POST."}))
}
