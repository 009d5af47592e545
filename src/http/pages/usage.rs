//! `/settings/usage` and `/settings/usage.csv` (docs/spec.md §10): requests per bucket and
//! per key for `?range=24h|7d|30d` (default 7d), as a server-rendered SVG chart with the
//! same numbers in a table, and as CSV. Any member of the organization may read them.
//! Calls `usage::chart`, which builds on `usage::ops::report` (`GET /api/v1/usage`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::signed_in::SignedIn;
use super::{error_page, page};
use crate::app::AppState;
use crate::error::{AppError, OpError};
use crate::http::errors::shown;
use crate::http::with_db;
use crate::usage::chart::{self, Range, UsageView};

#[derive(Template)]
#[template(path = "settings_usage.html")]
struct UsagePage<'a> {
    nav: super::layout::Nav,
    org_name: &'a str,
    ranges: [Range; 3],
    view: UsageView,
    width: i64,
    height: i64,
    plot_left: i64,
    plot_right: i64,
}

/// The `range` query parameter; anything but one `range` is refused by `Range::parse`.
fn range_of(req: &HttpRequest) -> Result<Range, OpError> {
    let mut range = None;
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if k != "range" || range.is_some() {
            return Err(OpError::invalid("Use one parameter: range=24h, 7d or 30d."));
        }
        range = Some(v.into_owned());
    }
    Range::parse(range.as_deref())
}

fn bad_range(e: OpError) -> Result<HttpResponse, AppError> {
    let (status, message) = shown(e)?;
    Ok(error_page(status, "Unknown range", &message))
}

/// `GET /settings/usage?range=24h|7d|30d`
pub async fn usage_get(
    v: SignedIn,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let range = match range_of(&req) {
        Ok(r) => r,
        Err(e) => return bad_range(e),
    };
    let actor = v.actor.clone();
    let now = state.clock.now();
    let view = with_db(&state, move |conn| chart::view(conn, &actor, range, now))
        .await
        .map_err(OpError::into_app)?;
    Ok(page(
        StatusCode::OK,
        &UsagePage {
            nav: v.nav("/settings/usage"),
            org_name: &v.org_name,
            ranges: Range::ALL,
            view,
            width: chart::WIDTH,
            height: chart::HEIGHT,
            plot_left: chart::LEFT,
            plot_right: chart::WIDTH - chart::RIGHT,
        },
    ))
}

/// `GET /settings/usage.csv?range=24h|7d|30d`: `start,key_id,key_name,code,count`.
pub async fn usage_csv_get(
    v: SignedIn,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let range = match range_of(&req) {
        Ok(r) => r,
        Err(e) => return bad_range(e),
    };
    let actor = v.actor.clone();
    let now = state.clock.now();
    let body = with_db(&state, move |conn| chart::csv(conn, &actor, range, now))
        .await
        .map_err(OpError::into_app)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"usage-{}.csv\"", range.as_str()),
        ))
        .body(body))
}
