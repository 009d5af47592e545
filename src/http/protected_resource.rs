//! RFC 9728 protected resource metadata for tessera's own `/api/v1` (docs/spec.md §8):
//! the document at `/.well-known/oauth-protected-resource/api/v1` (RFC 9728 §3.1: the
//! well-known path inserted before the resource's path) and, for clients that look only
//! at the host, at `/.well-known/oauth-protected-resource`; and the `resource_metadata`
//! parameter on every `Bearer` challenge of a `/api/v1` 401 (RFC 9728 §5.1).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::oauth::resource::api_resource;

/// The path of `/api/v1`'s metadata document.
pub const API_METADATA_PATH: &str = "/.well-known/oauth-protected-resource/api/v1";

/// The URL of `/api/v1`'s metadata document.
pub fn metadata_url(issuer: &str) -> String {
    format!("{}{API_METADATA_PATH}", issuer.trim_end_matches('/'))
}

/// RFC 9728 §2: `resource` (the RFC 8707 resource URI clients ask tokens for),
/// `authorization_servers` (this issuer), `scopes_supported` (what `/api/v1` requires),
/// `bearer_methods_supported` (the header only: never a URL, docs/security.md I7).
pub fn document(state: &AppState) -> Value {
    json!({
        "resource": api_resource(&state.issuer),
        "authorization_servers": [state.issuer],
        "scopes_supported": [crate::scope::MANAGEMENT_SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "tessera management API",
        "resource_documentation": format!("{}/api/v1/openapi.json", state.issuer),
    })
}

/// `GET /.well-known/oauth-protected-resource[/api/v1]`.
pub async fn metadata_get(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(document(&state))
}

/// Middleware of the `/api/v1` scope: a 401 `Bearer` challenge gains
/// `resource_metadata="<metadata URL>"` (RFC 9728 §5.1), so a client can discover the
/// authorization server from the resource alone.
pub async fn challenge(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let issuer = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.issuer.clone());
    let mut res = next.call(req).await?;
    if res.status() != actix_web::http::StatusCode::UNAUTHORIZED {
        return Ok(res);
    }
    let Some(issuer) = issuer else {
        return Ok(res);
    };
    let current = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .filter(|c| c.len() >= 6 && c.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("bearer")))
        .map(str::to_string);
    if let Some(c) = current
        && let Ok(v) = HeaderValue::from_str(&format!(
            r#"{c}, resource_metadata="{}""#,
            metadata_url(&issuer)
        ))
    {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Ok(res)
}
