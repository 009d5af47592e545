//! `POST /api/v1/keys/verify` (docs/spec.md §5): resource servers (HTTP Basic) ask
//! whether an API key is good. Always 200 with a verdict for a well-formed request; counts
//! `cost` (default 1) of a good key's budgets. The hot path needs no database when the caller
//! and the key are cached.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::openapi::TooLarge;
use super::{ApiError, json_body, json_response};
use crate::api_keys::KeyType;
use crate::api_keys::ratelimit::RateState;
use crate::api_keys::verify::{self, Code, Counting};
use crate::app::AppState;
use crate::http::errors::ErrorBody;
use crate::http::with_db;
use crate::oauth::client_auth;
use crate::scope::ScopesInput;

/// `{key, scopes?, cost?}`: the key to judge, the scopes it must carry, and how many units
/// of its budgets the request spends (integer 1–1000, default 1; docs/spec.md §10).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VerifyRequest)]
pub struct VerifyBody {
    pub key: String,
    #[serde(default)]
    pub scopes: Option<ScopesInput>,
    /// Units to spend, 1–1000 (default 1). A request over budget spends nothing.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub cost: Option<serde_json::Value>,
}

/// docs/spec.md §10: `cost` is an integer from 1 to [`verify::MAX_COST`]; anything else is
/// a 400 naming the field.
pub(crate) fn parse_cost(cost: Option<&serde_json::Value>) -> Result<i64, ApiError> {
    let Some(v) = cost else {
        return Ok(1);
    };
    match v.as_i64() {
        Some(c) if (1..=verify::MAX_COST).contains(&c) => Ok(c),
        _ => Err(ApiError::invalid(format!(
            "cost must be an integer from 1 to {}.",
            verify::MAX_COST
        ))),
    }
}

/// The verdict (docs/spec.md §5); the key's facts are null when there is no such key.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub valid: bool,
    pub code: Code,
    pub key_id: Option<String>,
    pub org_id: Option<String>,
    #[serde(rename = "type")]
    pub key_type: Option<KeyType>,
    pub scopes: Option<Vec<String>>,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    pub ratelimit: Option<RateState>,
}

/// What verify answers besides its verdict.
#[derive(utoipa::IntoResponses)]
pub enum VerifyErrors {
    /// A malformed body or scopes.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No HTTP Basic credential, or not a valid client's.
    #[response(
        status = 401,
        headers(("WWW-Authenticate" = String, description = "`Basic realm=\"tessera\", charset=\"UTF-8\"`"))
    )]
    Unauthorized(ErrorBody),
    /// The caller is a client but not a resource server.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Too many failed authentications from this caller.
    #[response(status = 429, headers(("Retry-After" = i64)))]
    TooManyRequests(ErrorBody),
    /// The database cannot be reached.
    #[response(status = 503, headers(("Retry-After" = i64)))]
    Unavailable(ErrorBody),
}

fn basic_required() -> ApiError {
    ApiError {
        challenge: Some(crate::error::BASIC_CHALLENGE.into()),
        ..ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "Authenticate as a resource server with HTTP Basic.",
        )
    }
}

/// Authenticates the caller of verify as a resource server (and caches the success).
fn authenticate_verifier(
    conn: &mut crate::db::DbConnection,
    st: &AppState,
    presented: &client_auth::Presented,
    now: i64,
) -> Result<(), ApiError> {
    match client_auth::authenticate_resource_server(
        conn,
        &st.api_keys,
        presented,
        crate::oauth::client_assertion::Expect::at(&st.issuer, &st.settings, now),
    ) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::forbidden(
            "Only resource servers may verify keys.",
        )),
        Err(e) => Err(e.cause.map(ApiError::from).unwrap_or_else(basic_required)),
    }
}

/// `POST /api/v1/keys/verify`: resource servers (HTTP Basic). Always 200 with a verdict
/// for a well-formed request; spends `cost` (default 1) of a good key's budgets.
#[utoipa::path(
    post,
    path = "/api/v1/keys/verify",
    operation_id = "verifyApiKey",
    tag = "verification",
    summary = "Verify a key and spend `cost` of its budgets (resource servers)",
    security(("basic" = [])),
    request_body = VerifyBody,
    responses(
        (
            status = 200,
            description = "The verdict; X-RateLimit headers when the key exists",
            body = Verification,
            headers(
                ("X-RateLimit-Limit" = i64),
                ("X-RateLimit-Remaining" = i64),
                ("X-RateLimit-Reset" = i64, description = "Epoch seconds"),
                ("RateLimit-Policy" = String, description = "draft-ietf-httpapi-ratelimit-headers: `\"key\";q=100;w=60[, \"org\";q=…;w=60]`"),
                ("RateLimit" = String, description = "draft-ietf-httpapi-ratelimit-headers: `\"key\";r=42;t=17[, \"org\";r=…;t=…]`")
            )
        ),
        VerifyErrors, TooLarge
    )
)]
pub async fn verify_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::auth::refuse_credentials_in_url(&req)?;
    let presented = match crate::http::oauth::authorization_header(&req) {
        Some(a) if client_auth::credentials(a, "Basic").is_some() => {
            client_auth::presented(Some(a), &crate::oauth::form::StrictForm::default())
                .map_err(|_| basic_required())?
        }
        _ => return Err(basic_required()),
    };
    let input: VerifyBody = json_body(&req, &body)?;
    let required = match &input.scopes {
        Some(s) => s.parse()?,
        None => Default::default(),
    };
    let counting = Counting::Cost(parse_cost(input.cost.as_ref())?);
    let ip = crate::http::oauth::peer_ip(&req);
    let caller = presented.client_id().to_string();
    let now = state.clock.now();
    if let Some(wait) = state.client_auth_throttle.check(&caller, &ip, now) {
        return Err(ApiError {
            retry_after: Some(super::secs(wait)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!("Too many failed authentications. Please retry after {wait} seconds."),
            )
        });
    }
    let rt = &state.api_keys;
    let prefix = &state.settings.key_prefix;
    let cached_caller = client_auth::resource_server_cached(rt, &presented).is_some();
    // The hot path: a recently authenticated resource server and a cached (or malformed)
    // key need no database at all; an uncached key goes on with its digest.
    let fast = if cached_caller {
        Some(verify::check_cached(
            rt, prefix, &input.key, &required, counting, now,
        )?)
    } else {
        None
    };
    let st = state.clone();
    let result = match fast {
        Some(Ok(v)) => Ok(v),
        pending => {
            with_db(&state, move |conn| -> Result<_, ApiError> {
                let Some(Err(hash)) = pending else {
                    // The caller is not cached: authenticate it, then the whole check.
                    authenticate_verifier(conn, &st, &presented, now)?;
                    return Ok(verify::check(
                        conn,
                        &st.api_keys,
                        &st.settings.plan_limits,
                        &st.settings.key_prefix,
                        &input.key,
                        &required,
                        counting,
                        now,
                    )?);
                };
                Ok(verify::check_digest(
                    conn,
                    &st.api_keys,
                    &st.settings.plan_limits,
                    &hash,
                    &required,
                    counting,
                    now,
                )?)
            })
            .await
        }
    };
    let v = match result {
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            state.client_auth_throttle.record_failure(&caller, &ip, now);
            return Err(e);
        }
        other => other?,
    };
    state.metrics.verification(v.code);
    if v.code == Code::RateLimited {
        state.metrics.rate_limited();
        tracing::warn!(key_id = ?v.key.as_ref().map(|k| &k.id), "verify: API key rate limit spent");
    }
    let rate = v.rate;
    let key = v.key.as_ref();
    Ok(json_response(
        StatusCode::OK,
        rate,
        Verification {
            valid: v.code == Code::Valid,
            code: v.code,
            key_id: key.map(|k| k.id.clone()),
            org_id: key.map(|k| k.org_id.clone()),
            key_type: key.map(|k| k.key_type),
            scopes: key.map(|k| k.scopes.to_vec()),
            expires_at: key.and_then(|k| k.expires_at).map(crate::clock::rfc3339),
            ratelimit: rate,
        },
    ))
}
