//! The [`Principal`] extractor: who calls `/api/v1`, from the bearer credential (an API
//! key, counted against its rate limit, or a user's access token with `admin`).
//! Credentials in the URL are refused (docs/security.md I7).

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::api_keys::ratelimit::RateState;
use crate::app::AppState;
use crate::error::AppError;
use crate::http::errors::ApiError;
use crate::orgs::Actor;
use crate::orgs::bearer::{self, BearerError, ORG_HEADER};
use crate::scope::MANAGEMENT_SCOPE;

/// docs/security.md I7: credentials never ride in a URL.
pub(crate) fn refuse_credentials_in_url(req: &HttpRequest) -> Result<(), ApiError> {
    let named =
        |n: &str| form_urlencoded_names(req.query_string()).any(|k| k.eq_ignore_ascii_case(n));
    if ["api_key", "access_token", "key", "token"]
        .iter()
        .any(|n| named(n))
    {
        return Err(credentials_in_url());
    }
    Ok(())
}

fn credentials_in_url() -> ApiError {
    ApiError {
        challenge: Some(
            r#"Bearer realm="tessera", error="invalid_request", error_description="Credentials must not be sent in the URL.""#
                .into(),
        ),
        ..ApiError::invalid(
            "Credentials must not be sent in the URL; use the Authorization header.",
        )
    }
}

fn form_urlencoded_names(q: &str) -> impl Iterator<Item = String> + '_ {
    url::form_urlencoded::parse(q.as_bytes()).map(|(k, _)| k.into_owned())
}

pub(crate) fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::missing_credential());
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("The Authorization header is malformed."))?;
    // RFC 6750 §2.1 under RFC 9110 §11.1: `Bearer`, `bearer`, `BEARER` are one scheme.
    let Some(token) = crate::oauth::client_auth::credentials(value, "Bearer") else {
        return Err(ApiError::missing_credential());
    };
    if token.is_empty() {
        return Err(ApiError::invalid_token("The bearer credential is empty."));
    }
    Ok(token.to_string())
}

/// Who is calling `/api/v1`: the acting [`Actor`] and, for an API key, its rate-limit
/// state (the `/api/v1` scope's middleware adds it to every answer as X-RateLimit headers).
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    pub rate: Option<RateState>,
}

impl Principal {
    /// Runs operation `op` as this principal: on the blocking pool with a pooled
    /// connection (`http::with_db`), with the context read there (`AppState::ctx`) and the
    /// principal's actor. The preamble every `/api/v1` handler that calls a feature
    /// operation shares.
    pub async fn run<T, E, F>(self, state: &web::Data<AppState>, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut crate::db::DbConnection, &crate::app::Ctx<'_>, &Actor) -> Result<T, E>
            + Send
            + 'static,
        T: Send + 'static,
        E: From<crate::error::AppError> + Send + 'static,
    {
        let st = state.clone();
        crate::http::with_db(state, move |conn| op(conn, &st.ctx(), &self.actor)).await
    }
}

/// The rate-limit state of this request's credential, for [`rate_limit_headers`].
#[derive(Debug, Clone, Copy)]
pub struct CallerRate(pub Option<RateState>);

impl From<BearerError> for ApiError {
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::InvalidToken(m) => ApiError::invalid_token(m),
            BearerError::InsufficientScope => ApiError::insufficient_scope(MANAGEMENT_SCOPE),
            BearerError::RateLimited { rate, wait } => ApiError::rate_limited(*rate, wait),
            BearerError::Forbidden(m) => ApiError::forbidden(m),
            BearerError::NoSuchOrganization => ApiError::not_found("organization"),
            e @ BearerError::AmbiguousOrganization => ApiError::invalid(e.to_string()),
            BearerError::App(e) => e.into(),
        }
    }
}

/// Authenticates the bearer credential of an `/api/v1` call. An API key is counted against
/// its rate limit; a user access token must carry `admin` and acts for its user.
pub async fn authenticate(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<Principal, ApiError> {
    authenticate_accepting(req, state, &[MANAGEMENT_SCOPE]).await
}

/// [`authenticate`] for a credential that must carry one of `accepted` (docs/spec.md §10:
/// the usage report takes `analytics:read` or `admin`).
pub async fn authenticate_accepting(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    accepted: &'static [&'static str],
) -> Result<Principal, ApiError> {
    refuse_credentials_in_url(req)?;
    let token = bearer(req)?;
    let org_hint = req
        .headers()
        .get(ORG_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let st = state.clone();
    let resolved = crate::http::with_db(state, move |conn| {
        Ok::<_, AppError>(bearer::resolve_accepting(
            conn,
            &st,
            &token,
            org_hint.as_deref(),
            accepted,
        ))
    })
    .await;
    let resolved = match resolved {
        Ok(r) => r,
        Err(e) => return Err(ApiError::from(e)),
    };
    match resolved {
        Ok((actor, rate)) => {
            req.extensions_mut().insert(CallerRate(rate));
            Ok(Principal { actor, rate })
        }
        Err((e, rate)) => {
            req.extensions_mut().insert(CallerRate(rate));
            if matches!(e, BearerError::RateLimited { .. }) {
                state.metrics.rate_limited();
            }
            let e = match e {
                BearerError::InsufficientScope => ApiError::insufficient_scope_any(accepted),
                e => ApiError::from(e),
            };
            Err(e.with_rate(rate))
        }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::from(AppError::Internal("no app state".into())))?;
            authenticate(&req, &state).await
        })
    }
}

/// Middleware of the `/api/v1` scope: every answer to a counted API key carries its
/// X-RateLimit headers (docs/spec.md §5) and IETF `RateLimit-Policy` / `RateLimit` fields
/// (§10), whatever the handler returned.
pub async fn rate_limit_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let rate = res
        .request()
        .extensions()
        .get::<CallerRate>()
        .and_then(|r| r.0);
    if let Some(r) = rate
        && !res.headers().contains_key("x-ratelimit-limit")
    {
        let h = res.headers_mut();
        for (name, value) in r.header_fields() {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
    }
    Ok(res)
}
