//! RFC 8414 authorization server metadata and the RFC 7517 JWKS.

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::AppError;
use crate::http::with_db;

/// The client authentication methods of the token and revocation endpoints (RFC 6749
/// §2.3; `private_key_jwt`: RFC 7523 §2.2, docs/spec.md §8).
pub const AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];

/// The metadata document. It lists exactly what works: endpoints join it in the same
/// change that makes them work (docs/security.md G8).
pub fn metadata(state: &AppState) -> Value {
    let issuer = &state.issuer;
    let scopes: Vec<&str> = state.settings.scopes.names().collect();
    let mut m = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "scopes_supported": scopes,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        // Refused by redirect (docs/spec.md §3); said explicitly, since OpenID Connect
        // Discovery §3 (whose fields RFC 8414 §7.1.2 registers) makes an omitted
        // `request_uri_parameter_supported` mean true.
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            crate::clients::DEVICE_CODE_GRANT,
        ],
        "device_authorization_endpoint": format!("{issuer}/oauth/device_authorization"),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": crate::oauth::client_assertion::SIGNING_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": crate::oauth::client_assertion::SIGNING_ALGS,
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "registration_endpoint": format!("{issuer}/oauth/register"),
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": crate::oauth::client_assertion::SIGNING_ALGS,
        // docs/spec.md §8: a client_id may be the https URL of its metadata document.
        "client_id_metadata_document_supported": true,
    });
    if let Some(o) = m.as_object_mut() {
        crate::http::oidc::extend_metadata(issuer, o);
    }
    m
}

pub async fn metadata_get(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(metadata(&state))
}

/// Public keys only; reloads first so a key added by `tessera keys rotate` on any instance
/// is published at once.
pub async fn jwks_get(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let st = state.clone();
    with_db(&state, move |conn| {
        st.keys.reload(conn).map_err(AppError::from)
    })
    .await?;
    let body = state.keys.jwks(state.clock.now());
    Ok(HttpResponse::Ok()
        .insert_header((
            "Cache-Control",
            format!("public, max-age={}", state.settings.jwks_max_age_seconds),
        ))
        .json(body))
}
