//! `POST /oauth/device_authorization` (RFC 8628 §3.1–3.2; docs/spec.md §9): extract,
//! call `oauth::device::authorize`, map. Client authentication and its throttle are the
//! token endpoint's (docs/security.md K2).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::error::{ErrorCode, OAuthError};
use crate::http::oauth::{
    authorization_header, count_failed_client, peer_ip, read_form, refuse_throttled_client,
};
use crate::http::with_db;
use crate::oauth::client_auth;
use crate::scope::ScopeSet;

/// RFC 8628 §3.1: form body `client_id` (public clients) or client credentials, optional
/// `scope` (default: the client's registered scope) and RFC 8707 `resource`s. 200 with the
/// §3.2 JSON; errors are RFC 6749 §5.2 JSON (`invalid_client` 401, `unauthorized_client`
/// for a client not registered for the device-code grant, `invalid_scope`,
/// `invalid_target`, `invalid_request`).
pub async fn device_authorization_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = read_form(&req, &body)?;
    let presented = client_auth::presented(authorization_header(&req), &form)?;
    if form.is_unprintable("scope") {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "The scope has characters outside RFC 6749's NQCHAR.",
        ));
    }
    let scope = form
        .get("scope")
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "The scope is malformed."))?;
    let resources = crate::oauth::resource::requested(&form)?;
    let ip = peer_ip(&req);
    let client_id = presented.client_id().to_string();
    refuse_throttled_client(&state, &client_id, &ip)?;
    let presented = crate::http::client_keys::attach(&state, presented, None)
        .await
        .map_err(|e| count_failed_client(&state, &client_id, &ip, e))?;
    let st = state.clone();
    let result = with_db(&state, move |conn| {
        crate::oauth::device::authorize(conn, st.issuing(), &presented, scope, &resources)
    })
    .await;
    let answer = match result {
        Err(e) if e.code == ErrorCode::InvalidClient => {
            return Err(count_failed_client(&state, &client_id, &ip, e));
        }
        other => other?,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(answer))
}
