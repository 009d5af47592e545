//! Headers every response carries (docs/spec.md §6, docs/security.md H2/H3), and the refusal of
//! oversized request heads and compressed request bodies (docs/security.md J6: nothing is ever
//! decompressed, so a gzip bomb cannot inflate in memory).

use actix_web::HttpResponse;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// docs/security.md J6: the longest request target (path and query) accepted; longer is
/// 414 URI Too Long (RFC 9110 §15.5.15).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// docs/security.md J6: the most header bytes accepted, every name and value counted; more
/// is 431 Request Header Fields Too Large (RFC 6585 §5). actix-http itself answers 431 to a
/// request head over 128 KiB or with more than 96 header fields, before this is reached.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Why a request is refused before routing.
fn refusal(req: &ServiceRequest) -> Option<HttpResponse> {
    let uri = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri > MAX_URI_BYTES {
        return Some(
            HttpResponse::UriTooLong()
                .content_type("text/plain; charset=utf-8")
                .body(format!(
                    "The URL is longer than {} KiB.",
                    MAX_URI_BYTES / 1024
                )),
        );
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        return Some(
            HttpResponse::build(actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
                .content_type("text/plain; charset=utf-8")
                .body(format!(
                    "The request headers are larger than {} KiB.",
                    MAX_HEADER_BYTES / 1024
                )),
        );
    }
    let compressed = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    compressed.then(|| {
        HttpResponse::UnsupportedMediaType()
            .json(serde_json::json!({"error": "invalid_request", "error_description": "Compressed request bodies are not accepted."}))
    })
}

pub async fn apply(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let mut res = match refusal(&req) {
        Some(resp) => req.into_response(resp).map_into_right_body(),
        None => next.call(req).await?.map_into_left_body(),
    };
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    Ok(res)
}
