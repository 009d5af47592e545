//! `GET /api/v1/usage` (docs/spec.md §10): requests per key, bucket and verdict `code`, for
//! a credential carrying `analytics:read` or `admin`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::openapi::{BearerErrors, InvalidRequest};
use super::{ApiError, auth, json_response};
use crate::app::AppState;
use crate::http::with_db;
use crate::scope::MANAGEMENT_SCOPE;
use crate::usage::ops::{self, UsagePoint, UsageQuery};

/// The scopes that may read usage (docs/spec.md §10).
pub const USAGE_SCOPES: &[&str] = &["analytics:read", MANAGEMENT_SCOPE];

/// The 200 body of `GET /api/v1/usage`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    pub data: Vec<UsagePoint>,
}

/// `GET /api/v1/usage?start=&end=&granularity=hour|day[&key_id=]`: the organization's
/// requests per key, UTC-aligned bucket and `code`. `start`/`end` are RFC 3339 (`end`
/// exclusive, at most 400 days after `start`); a bad parameter is 400 naming it; another
/// organization's `key_id` is 404.
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    operation_id = "getUsage",
    tag = "usage",
    summary = "Requests per key, hour or day, and verdict code (analytics:read or admin)",
    security(("bearer" = [])),
    params(
        ("start" = String, Query, description = "RFC 3339; the bucket holding it is the first"),
        ("end" = String, Query, description = "RFC 3339, exclusive"),
        ("granularity" = Option<String>, Query, description = "`hour` (default) or `day`"),
        ("key_id" = Option<String>, Query, description = "Only this key")
    ),
    responses(
        (status = 200, description = "The counts, ordered by start, key_id, code", body = UsageReport),
        InvalidRequest, BearerErrors
    )
)]
pub async fn usage_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = auth::authenticate_accepting(&req, &state, USAGE_SCOPES).await?;
    let params = url::form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()));
    let query = UsageQuery::parse(params).map_err(ApiError::from)?;
    let data = with_db(&state, move |conn| ops::report(conn, &p.actor, &query)).await?;
    Ok(json_response(StatusCode::OK, None, UsageReport { data }))
}
