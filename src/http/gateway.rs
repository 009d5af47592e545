//! `/gateway/check` (docs/spec.md §11): a reverse proxy (nginx `auth_request`, Traefik
//! `forwardAuth`, Envoy `ext_authz`) asks whether the original request may pass. The
//! original method and URI come from `X-Forwarded-Method` / `X-Original-Method` and
//! `X-Forwarded-Uri` / `X-Original-URI` (for Envoy, which appends the original path to
//! the check's, from the path below `/gateway/check/` and the check's own method). The
//! order: the route (no match, or a refused path → 403 before any credential is looked
//! at), the credential (missing or bad → 401), the route's scopes (403
//! `insufficient_scope`), the budget (429, or with `X-Auth-Mode: nginx` 403 with
//! `X-Auth-Error: rate_limited`). API keys go through the same checks, caches and budgets
//! as `/api/v1/keys/verify` (spending the route's `cost`); access tokens through those of
//! introspection, and must name `[gateway] audience`. Identity headers (`X-Auth-*`) are
//! outputs only: the check never reads them.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde_json::json;

use crate::api_keys::ratelimit::RateState;
use crate::api_keys::verify::{self, Code, Counting};
use crate::app::AppState;
use crate::error::AppError;
use crate::gateway::Matched;
use crate::http::with_db;
use crate::introspection::{self, Context, JwtCheck};
use crate::scope::ScopeSet;

/// The check's own path; Envoy appends the original path to it.
pub const CHECK_PATH: &str = "/gateway/check";

/// The pattern the check is mounted at: [`CHECK_PATH`], alone or followed by the original
/// path Envoy appends (`/gateway/check/v1/models`).
pub const CHECK_MOUNT: &str = "/gateway/check{original:(/.*)?}";

fn first_header<'a>(h: &'a HeaderMap, names: [&str; 2]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| h.get(*n).and_then(|v| v.to_str().ok()))
}

/// The original method and URI.
fn original(req: &HttpRequest) -> (String, Option<String>) {
    let h = req.headers();
    let method = first_header(h, ["x-forwarded-method", "x-original-method"])
        .unwrap_or(req.method().as_str())
        .to_string();
    let uri = first_header(h, ["x-forwarded-uri", "x-original-uri"])
        .map(str::to_string)
        .or_else(|| {
            // Envoy ext_authz: `/gateway/check` + the original path and query.
            let tail = req.uri().path().strip_prefix(CHECK_PATH)?;
            tail.starts_with('/').then(|| match req.uri().query() {
                Some(q) => format!("{tail}?{q}"),
                None => tail.to_string(),
            })
        });
    (method, uri)
}

fn base(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

fn refused(
    status: StatusCode,
    error: &str,
    description: &str,
    challenge: Option<String>,
) -> HttpResponse {
    let mut b = base(status);
    if let Some(c) = challenge {
        b.insert_header((header::WWW_AUTHENTICATE, c));
    }
    b.json(json!({"error": error, "error_description": description}))
}

/// 403 without a challenge: no route allows this request.
fn no_route(description: &str) -> HttpResponse {
    refused(StatusCode::FORBIDDEN, "forbidden", description, None)
}

/// RFC 6750 §3.1: no credential → a bare challenge; a bad one → `invalid_token`.
fn unauthorized(bad: Option<&str>) -> HttpResponse {
    match bad {
        None => refused(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "A bearer credential is required.",
            Some(r#"Bearer realm="tessera""#.into()),
        ),
        Some(why) => refused(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            why,
            Some(format!(
                r#"Bearer realm="tessera", error="invalid_token", error_description="{why}""#
            )),
        ),
    }
}

fn insufficient_scope(scopes: &ScopeSet, rate: Option<RateState>) -> HttpResponse {
    let scope = scopes.to_vec().join(" ");
    let mut resp = refused(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "The credential lacks a scope this route requires.",
        Some(format!(
            r#"Bearer realm="tessera", error="insufficient_scope", scope="{scope}""#
        )),
    );
    add_rate(resp.headers_mut(), rate);
    resp
}

fn add_rate(h: &mut HeaderMap, rate: Option<RateState>) {
    for (name, value) in rate.iter().flat_map(RateState::header_fields) {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            h.insert(header::HeaderName::from_static(name), v);
        }
    }
}

/// 429 with `Retry-After`, or for nginx (which passes only 2xx, 401 and 403 back) 403
/// with `X-Auth-Error: rate_limited`.
fn rate_limited(rate: RateState, now: i64, nginx: bool) -> HttpResponse {
    let wait = rate.retry_after(now);
    let status = if nginx {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    let mut b = base(status);
    b.insert_header((header::RETRY_AFTER, wait.to_string()));
    if nginx {
        b.insert_header(("X-Auth-Error", "rate_limited"));
    }
    let mut resp = b.json(json!({
        "error": "rate_limited",
        "error_description": format!("Rate limit exceeded. Please retry after {wait} seconds."),
    }));
    add_rate(resp.headers_mut(), Some(rate));
    resp
}

/// `/gateway/check` (any method; docs/spec.md §11).
pub async fn check(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let gw = &state.settings.gateway;
    let (method, uri) = original(&req);
    let Some(uri) = uri else {
        return no_route("The original URI is missing (X-Forwarded-Uri or X-Original-URI).");
    };
    let route = match gw.route(&method, &uri) {
        Matched::Route(r) => r.clone(),
        Matched::NoRoute => return no_route("No gateway route allows this request."),
        Matched::Refused => return no_route("The request path is not allowed."),
    };
    let nginx = req
        .headers()
        .get("x-auth-mode")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("nginx"));
    let token = match req.headers().get(header::AUTHORIZATION).map(|v| {
        v.to_str()
            .ok()
            .and_then(|a| crate::oauth::client_auth::credentials(a, "Bearer"))
    }) {
        None | Some(None) => return unauthorized(None),
        Some(Some("")) => return unauthorized(Some("The bearer credential is empty.")),
        Some(Some(t)) => t.to_string(),
    };
    let now = state.clock.now();
    let result = if token.matches('.').count() == 2 {
        access_token(&state, token, route.scopes, now).await
    } else {
        api_key(&state, token, route.scopes, route.cost, now, nginx).await
    };
    result.unwrap_or_else(|e| {
        actix_web::ResponseError::error_response(&crate::http::errors::ApiError::from(e))
    })
}

async fn api_key(
    state: &web::Data<AppState>,
    token: String,
    scopes: ScopeSet,
    cost: i64,
    now: i64,
    nginx: bool,
) -> Result<HttpResponse, AppError> {
    let counting = Counting::Cost(cost);
    let prefix = &state.settings.key_prefix;
    let v = match verify::check_cached(&state.api_keys, prefix, &token, &scopes, counting, now)? {
        Ok(v) => v,
        Err(hash) => {
            let st = state.clone();
            let required = scopes.clone();
            with_db(state, move |conn| {
                verify::check_digest(
                    conn,
                    &st.api_keys,
                    &st.settings.plan_limits,
                    &hash,
                    &required,
                    counting,
                    now,
                )
            })
            .await?
        }
    };
    state.metrics.verification(v.code);
    let rate = v.rate;
    Ok(match (v.code, v.key) {
        (Code::Valid, Some(key)) => {
            let mut b = base(StatusCode::OK);
            b.insert_header(("X-Auth-Subject", key.id.clone()))
                .insert_header(("X-Auth-Org-Id", key.org_id.clone()))
                .insert_header(("X-Auth-Scopes", key.scopes.to_vec().join(" ")))
                .insert_header(("X-Auth-Credential", "api_key"))
                .insert_header(("X-Auth-Key-Id", key.id.clone()));
            let mut resp = b.finish();
            add_rate(resp.headers_mut(), rate);
            resp
        }
        (Code::InsufficientScope, _) => insufficient_scope(&scopes, rate),
        (Code::RateLimited, _) => {
            state.metrics.rate_limited();
            match rate {
                Some(r) => rate_limited(r, now, nginx),
                None => unauthorized(Some("The credential is not valid.")),
            }
        }
        (Code::Expired, _) => unauthorized(Some("The API key has expired.")),
        (Code::Revoked, _) => unauthorized(Some("The API key has been revoked.")),
        (Code::NotFound | Code::Valid, _) => unauthorized(Some("The credential is not valid.")),
    })
}

fn ctx<'a>(
    st: &'a AppState,
    keys: &'a crate::tokens::keys::KeySet,
    audience: &'a str,
    now: i64,
) -> Context<'a> {
    Context {
        keys,
        issuer: &st.issuer,
        audience,
        leeway: st.settings.jwt_leeway_seconds,
        key_prefix: &st.settings.key_prefix,
        api_keys: &st.api_keys,
        live_tokens: &st.live_tokens,
        plans: &st.settings.plan_limits,
        now,
    }
}

async fn access_token(
    state: &web::Data<AppState>,
    token: String,
    scopes: ScopeSet,
    now: i64,
) -> Result<HttpResponse, AppError> {
    const BAD: &str = "The access token is not valid, expired, revoked or not for this API.";
    let Some(audience) = state.settings.gateway.audience.clone() else {
        return Ok(unauthorized(Some(BAD)));
    };
    let keys = state.keys.snapshot();
    let answer = match introspection::access_token_cached(ctx(state, &keys, &audience, now), &token)
    {
        JwtCheck::Done(a) => a,
        JwtCheck::Verified(c) => {
            let st = state.clone();
            let aud = audience.clone();
            with_db(state, move |conn| {
                let keys = st.keys.snapshot();
                introspection::access_token_live(conn, ctx(&st, &keys, &aud, now), &token, c)
                    .map_err(AppError::from)
            })
            .await?
        }
    };
    // A cached answer may come from introspection with another audience: check it here.
    let field = |k: &str| answer.get(k).and_then(serde_json::Value::as_str);
    let active = answer.get("active").and_then(serde_json::Value::as_bool);
    if active != Some(true) || field("aud") != Some(audience.as_str()) {
        return Ok(unauthorized(Some(BAD)));
    }
    let granted = ScopeSet::parse(field("scope").unwrap_or_default()).unwrap_or_default();
    if !scopes.is_subset(&granted) {
        return Ok(insufficient_scope(&scopes, None));
    }
    let text = |k: &str| field(k).unwrap_or_default().to_string();
    let (sub, client_id) = (text("sub"), text("client_id"));
    // docs/spec.md §11: a client_credentials token (its `sub` is its client) acts for the
    // client's organization; a user's token carries no organization.
    let org = if sub == client_id {
        client_org(state, &client_id).await?
    } else {
        None
    };
    let mut b = base(StatusCode::OK);
    b.insert_header(("X-Auth-Subject", sub))
        .insert_header(("X-Auth-Scopes", granted.to_vec().join(" ")))
        .insert_header(("X-Auth-Credential", "access_token"))
        .insert_header(("X-Auth-Client-Id", client_id));
    if let Some(org) = org {
        b.insert_header(("X-Auth-Org-Id", org));
    }
    Ok(b.finish())
}

/// The organization of `client_id` (`None`: it has none), from `AppState::gateway_orgs`
/// or the database.
async fn client_org(
    state: &web::Data<AppState>,
    client_id: &str,
) -> Result<Option<String>, AppError> {
    if let Some(org) = state.gateway_orgs.get(client_id) {
        return Ok(org);
    }
    let id = client_id.to_string();
    let row = with_db(state, move |conn| {
        crate::clients::store::find(conn, &id).map_err(AppError::from_db)
    })
    .await?;
    let org = row.and_then(|r| r.org_id);
    state.gateway_orgs.insert(client_id, org.clone());
    Ok(org)
}
