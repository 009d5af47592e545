//! CORS for the endpoints a browser-based public client calls (docs/spec.md §3): metadata,
//! JWKS, token, revocation and registration answer cross-origin requests from any origin,
//! without credentials. Each such endpoint in `http::routes` is marked
//! `Endpoint::cross_origin`, which wraps it in [`open`]; every other resource (the authorization endpoint, introspection, `/api/v1`, the
//! pages) sends no CORS header at all (docs/security.md A8).
//!
//! Not `actix-cors`: its preflight answer is `200 OK` and the contract says 204, and all
//! this needs is a wildcard origin, which is three headers.

use actix_web::HttpResponse;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;

/// Request headers a cross-origin caller may send (Fetch: `Authorization` is never
/// covered by a wildcard, so it is named).
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, Tessera-Organization";
/// Response headers a cross-origin caller may read besides the CORS-safelisted ones.
pub const EXPOSE_HEADERS: &str = "WWW-Authenticate, Retry-After";
/// How long a browser may reuse a preflight answer, in seconds.
pub const MAX_AGE: &str = "86400";

/// A CORS preflight (Fetch §3.2.2): `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Answers a preflight with 204 and the resource's methods; adds
/// `Access-Control-Allow-Origin: *` to every other answer to a request that has an
/// `Origin`. Never `Access-Control-Allow-Credentials`: cookies play no part here.
pub async fn open(
    methods: std::rc::Rc<str>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if is_preflight(&req) {
        let resp = HttpResponse::build(StatusCode::NO_CONTENT)
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, &*methods))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE))
            .finish();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let cross_origin = req.headers().contains_key(header::ORIGIN);
    let mut res = next.call(req).await?.map_into_left_body();
    if cross_origin {
        let h = res.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    Ok(res)
}
