//! Text that can never be stored: the NUL character (U+0000). PostgreSQL's text types
//! cannot hold it, so a query carrying one fails inside the database; SQLite would store
//! it. Either way it is never meaningful input, so it is refused where requests are read,
//! as bad input in the shape of the endpoint, never as a 5xx (docs/spec.md §7,
//! docs/security.md J4):
//!
//! - the path and query of every URL: [`refuse_nul_in_url`], a middleware (`/api/v1` JSON
//!   error, OAuth error JSON on `/oauth/*`, an HTML error page elsewhere);
//!   `/oauth/authorize` is left to its own query parser, which refuses control
//!   characters (`oauth::form::StrictForm`) with an error page or a redirect;
//! - JSON bodies (`/api/v1`, `/oauth/register`): `http::api::json_body` with
//!   [`json_nul_field`], naming the field;
//! - page forms: `CsrfForm` and the login and signup forms with [`nul_field`];
//! - OAuth forms and HTTP Basic credentials: `oauth::form::StrictForm` (VSCHAR only);
//! - headers: the HTTP parser refuses control characters in header values (400).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};

use crate::error::ErrorJson;
use crate::http::errors::ApiError;

/// The message for a field holding a NUL character.
pub fn message(field: &str) -> String {
    format!("{field} contains a NUL character, which is not allowed.")
}

/// The first of `fields` (name, value) whose name or value holds a NUL character.
pub fn nul_field<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    fields
        .into_iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| {
            if k.contains('\0') {
                "A field name".to_string()
            } else {
                format!("The field {k}")
            }
        })
}

/// The path of the first string (or object key) of a JSON document that holds a NUL
/// character: `client_name`, `redirect_uris[1]`; `None` when there is none.
pub fn json_nul_field(value: &serde_json::Value) -> Option<String> {
    fn walk(v: &serde_json::Value, at: &str) -> Option<String> {
        let here = || {
            if at.is_empty() {
                "The body".to_string()
            } else {
                format!("The field {at}")
            }
        };
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Some(here()),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, &format!("{at}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, item)| {
                if k.contains('\0') {
                    return Some(format!("A field name in {}", here().to_lowercase()));
                }
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                walk(item, &path)
            }),
            _ => None,
        }
    }
    walk(value, "")
}

/// Whether percent-encoded text (a URL's path or query) decodes to a NUL character. A
/// raw NUL cannot reach here: the HTTP parser refuses it in the request line.
fn encodes_nul(raw: &str) -> bool {
    raw.contains("%00")
}

/// Refuses a URL whose path or query carries `%00` before any handler runs (ids in path
/// segments are looked up in the database), in the error shape of the route's family.
pub async fn refuse_nul_in_url(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let path = req.path();
    let authorize = path == "/oauth/authorize";
    let in_path = encodes_nul(path);
    let in_query = !authorize && encodes_nul(req.query_string());
    if !in_path && !in_query {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let part = if in_path {
        "The URL path"
    } else {
        "The query string"
    };
    let text = message(part);
    let resp = if path.starts_with("/api/v1/") {
        ApiError::invalid(text).error_response()
    } else if path.starts_with("/oauth/") && path != "/oauth/end_session" {
        // The logout endpoint answers a person's browser: its errors are pages (§9).
        HttpResponse::BadRequest()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(ErrorJson::new("invalid_request", &text))
    } else {
        crate::http::pages::error_page(StatusCode::BAD_REQUEST, "Bad request", &text)
    };
    Ok(req.into_response(resp).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn j4_nul_characters_are_found_and_named() {
        assert_eq!(nul_field([("email", "a@b.c"), ("password", "x")]), None);
        assert_eq!(
            nul_field([("email", "a@b.c"), ("password", "x\0y")]).as_deref(),
            Some("The field password")
        );
        assert_eq!(nul_field([("e\0", "v")]).as_deref(), Some("A field name"));
        let body = serde_json::json!({"client_name": "ok", "redirect_uris": ["https://a", "https://b\u{0}"]});
        assert_eq!(
            json_nul_field(&body).as_deref(),
            Some("The field redirect_uris[1]")
        );
        let body = serde_json::json!({"a": {"b\u{0}": 1}});
        assert_eq!(
            json_nul_field(&body).as_deref(),
            Some("A field name in the field a")
        );
        assert_eq!(
            json_nul_field(&serde_json::json!("\u{0}")).as_deref(),
            Some("The body")
        );
        assert_eq!(
            json_nul_field(&serde_json::json!({"a": [1, "b", null]})),
            None
        );
        assert!(encodes_nul("/api/v1/clients/a%00b") && !encodes_nul("/a%2500"));
    }
}
