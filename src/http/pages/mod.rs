//! HTML pages (askama templates, no JavaScript beyond a same-origin copy button): one
//! module per page family, and the helpers they share. Handlers extract ([`signed_in`]),
//! call one feature operation, and render.

pub mod account;
pub mod accounts;
pub mod apps;
pub mod audit;
pub mod authorize;
pub mod clients;
pub mod dashboard;
pub mod device;
pub mod invitations;
pub mod key_requests;
pub mod keys;
pub mod layout;
pub mod members;
pub mod organization;
pub mod profile;
pub mod signed_in;
pub mod usage;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::app::AppState;
use crate::clock::{Timestamp, rfc3339};
use crate::error::AppError;
use crate::http::with_db;
use crate::sessions::{self, Session};

/// Renders a page. Pages are never cached: they carry CSRF tokens and, some, secrets.
pub fn page(status: StatusCode, tmpl: &impl Template) -> HttpResponse {
    match tmpl.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body(body),
        Err(e) => AppError::Internal(Box::new(e)).into_response(),
    }
}

trait IntoResponse {
    fn into_response(self) -> HttpResponse;
}

impl IntoResponse for AppError {
    fn into_response(self) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub heading: &'a str,
    pub message: &'a str,
    /// The OAuth error code (RFC 6749 §4.1.2.1, RFC 7591 §3.2.2), shown so that a
    /// developer can fix their request; `None` on pages that are not about one.
    pub code: Option<&'a str>,
    /// The status line shown with it, e.g. `404`.
    pub status: u16,
}

/// An HTML error page with no `Location` header (docs/security.md A3).
pub fn error_page(status: StatusCode, heading: &str, message: &str) -> HttpResponse {
    page(
        status,
        &ErrorPage {
            heading,
            message,
            code: None,
            status: status.as_u16(),
        },
    )
}

/// An HTML error page that names the OAuth error `code` (`invalid_client`,
/// `invalid_redirect_uri`, `invalid_request`) visibly, in an element with id `error-code`.
pub fn oauth_error_page(
    status: StatusCode,
    code: &str,
    heading: &str,
    message: &str,
) -> HttpResponse {
    page(
        status,
        &ErrorPage {
            heading,
            message,
            code: Some(code),
            status: status.as_u16(),
        },
    )
}

/// A 303 See Other (never 307/308 after a credential POST, docs/security.md A9).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// Cookies are HttpOnly, SameSite=Lax, and Secure whenever the issuer is https.
pub fn cookie<'c>(state: &AppState, name: &'c str, value: String, max_age: i64) -> Cookie<'c> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.issuer.starts_with("https://"))
        .max_age(actix_web::cookie::time::Duration::seconds(max_age))
        .finish()
}

/// The signed-in session, if the cookie names a live one.
pub async fn current_session(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<Option<Session>, AppError> {
    let Some(raw) = req.cookie(sessions::COOKIE).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    let now = state.clock.now();
    with_db(state, move |conn| {
        sessions::find(conn, &raw, now).map_err(AppError::from)
    })
    .await
}

/// True unless a browser-supplied `Origin` names another site: a cross-site form post is
/// refused even before its CSRF token is checked (docs/security.md H1). Browsers send
/// `Origin: null` for our own forms because every page has `Referrer-Policy: no-referrer`,
/// so `null` proves nothing either way and the CSRF token decides.
pub fn same_origin(req: &HttpRequest, state: &AppState) -> bool {
    match req.headers().get("Origin").and_then(|v| v.to_str().ok()) {
        None | Some("null") => true,
        Some(origin) => {
            let ours = url::Url::parse(&state.issuer)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            origin == ours || origin == format!("http://{}", req.connection_info().host())
        }
    }
}

/// The copy button of pages that show a secret once (a same-origin script; CSP allows
/// `script-src 'self'` and nothing inline).
pub async fn copy_script_get() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../../static/copy.js"))
}

pub async fn stylesheet_get() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../../static/tessera.css"))
}

/// The first value of query parameter `name`, if any.
pub fn query_param(req: &actix_web::HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The icon browsers show in tabs and bookmarks: an SVG from `static/`, same-origin (CSP
/// `img-src 'self'`), at `/static/favicon.svg` (linked from every page) and at
/// `/favicon.ico`, where browsers look by default.
pub async fn favicon_get() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(include_str!("../../../static/favicon.svg"))
}

/// A time to the second, as the audit log shows it: `2026-11-25 06:48:29 UTC`.
pub fn when_exact(t: Timestamp) -> String {
    rfc3339(t)
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_string()
        + " UTC"
}

/// A time as the other pages show it, to the minute: `2026-11-25 06:48 UTC`.
pub fn when(t: Timestamp) -> String {
    let exact = rfc3339(t);
    // RFC 3339 from `rfc3339` is `YYYY-MM-DDTHH:MM:SSZ`: keep up to the minute.
    let minute = exact.get(..16).unwrap_or(&exact);
    minute.replacen('T', " ", 1) + " UTC"
}

/// How long before `now` a time was, as the dashboard says it: `just now`, `5 min ago`,
/// `3 h ago`, `2 days ago` (seconds, rounded down; a time after `now` is `just now`).
pub fn ago(t: Timestamp, now: Timestamp) -> String {
    let s = now.saturating_sub(t).max(0);
    match s {
        0..60 => "just now".to_string(),
        60..3_600 => format!("{} min ago", s / 60),
        3_600..86_400 => format!("{} h ago", s / 3_600),
        86_400..172_800 => "1 day ago".to_string(),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// The day of a time, for table columns: `2026-11-25` (UTC).
pub fn day(t: Timestamp) -> String {
    let exact = rfc3339(t);
    exact.get(..10).unwrap_or(&exact).to_string()
}

/// The confirmation step before a destructive action.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage<'a> {
    /// The signed-in frame (templates/signed_in.html).
    pub nav: Option<layout::Nav>,
    pub heading: &'a str,
    pub message: &'a str,
    pub action: &'a str,
    pub button: &'a str,
    pub cancel: &'a str,
    pub csrf_token: &'a str,
}

#[cfg(test)]
mod time_tests {
    use super::{ago, day, when};

    #[test]
    fn times_read_as_pages_show_them() {
        assert_eq!(
            when(1_764_028_800 + 6 * 3_600 + 48 * 60 + 29),
            "2025-11-25 06:48 UTC"
        );
        assert_eq!(day(1_764_028_800 + 6 * 3_600), "2025-11-25");
        let now = 1_000_000;
        assert_eq!(ago(now - 59, now), "just now");
        assert_eq!(ago(now + 5, now), "just now");
        assert_eq!(ago(now - 5 * 60, now), "5 min ago");
        assert_eq!(ago(now - 3 * 3_600 - 1, now), "3 h ago");
        assert_eq!(ago(now - 86_400, now), "1 day ago");
        assert_eq!(ago(now - 3 * 86_400, now), "3 days ago");
    }
}
