//! OpenID Connect endpoints (docs/spec.md §9): the discovery document (OpenID Connect
//! Discovery 1.0 §3, the same document as RFC 8414's) and `/oauth/userinfo` (OpenID
//! Connect Core §5.3).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::error::AppError;
use crate::http::with_db;
use crate::introspection::{self, Context, JwtCheck};
use crate::oauth::client_auth;
use crate::scope::ScopeSet;

/// The claims tessera can release (OpenID Connect Discovery §3 `claims_supported`).
pub const CLAIMS_SUPPORTED: [&str; 12] = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "azp",
    "email",
    "email_verified",
    "name",
];

/// The OpenID Connect Discovery §3 members the RFC 8414 document carries too (one source
/// for both documents, docs/spec.md §9).
pub fn extend_metadata(issuer: &str, m: &mut Map<String, Value>) {
    m.insert(
        "userinfo_endpoint".into(),
        json!(format!("{issuer}/oauth/userinfo")),
    );
    m.insert("subject_types_supported".into(), json!(["public"]));
    m.insert(
        "end_session_endpoint".into(),
        json!(format!("{issuer}{}", crate::http::logout::END_SESSION_PATH)),
    );
    m.insert(
        "id_token_signing_alg_values_supported".into(),
        json!(
            crate::tokens::keys::ID_TOKEN_ALGS
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
        ),
    );
    m.insert("claims_supported".into(), json!(CLAIMS_SUPPORTED));
    m.insert("claims_parameter_supported".into(), json!(false));
}

/// `GET /.well-known/openid-configuration`: the metadata document (OpenID Connect
/// Discovery 1.0 §4).
pub async fn openid_configuration_get(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(crate::http::well_known::metadata(&state))
}

/// Why userinfo refuses (RFC 6750 §3.1).
enum Refusal {
    /// 401 with a bare challenge: no credentials were sent.
    NoToken,
    /// 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// 401 `invalid_token`.
    InvalidToken,
    /// 403 `insufficient_scope`: the token has no `openid`, or is a client's own.
    InsufficientScope,
}

fn refuse(r: Refusal) -> HttpResponse {
    let (status, challenge, body) = match r {
        Refusal::NoToken => (
            StatusCode::UNAUTHORIZED,
            "Bearer realm=\"tessera\"".to_string(),
            json!({"error": "invalid_token", "error_description": "A bearer access token is required."}),
        ),
        Refusal::InvalidRequest(d) => (
            StatusCode::BAD_REQUEST,
            "Bearer realm=\"tessera\", error=\"invalid_request\"".to_string(),
            json!({"error": "invalid_request", "error_description": d}),
        ),
        Refusal::InvalidToken => (
            StatusCode::UNAUTHORIZED,
            "Bearer realm=\"tessera\", error=\"invalid_token\"".to_string(),
            json!({"error": "invalid_token", "error_description": "The access token is invalid, expired or revoked."}),
        ),
        Refusal::InsufficientScope => (
            StatusCode::FORBIDDEN,
            "Bearer realm=\"tessera\", error=\"insufficient_scope\", scope=\"openid\"".to_string(),
            json!({"error": "insufficient_scope", "error_description": "The access token lacks the scope openid."}),
        ),
    };
    HttpResponse::build(status)
        .insert_header((header::WWW_AUTHENTICATE, challenge))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `GET` and `POST /oauth/userinfo` (OpenID Connect Core §5.3): the bearer access token
/// (RFC 6750 §2.1, `Authorization` header only; never the query, docs/security.md I7) must
/// be a live user token with `openid`. Answers `sub` and the claims of its scopes
/// ([`crate::oidc::claims`]); errors per RFC 6750 §3.1.
pub async fn userinfo(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if let Ok(q) = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        && q.iter().any(|(k, _)| k == "access_token")
    {
        return Ok(refuse(Refusal::InvalidRequest(
            "Send the access token in the Authorization header, never in the URL.",
        )));
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| client_auth::credentials(h, "Bearer"))
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let Some(token) = token else {
        return Ok(refuse(Refusal::NoToken));
    };
    let st = state.clone();
    let answer = with_db(
        &state,
        move |conn| -> Result<Result<Value, Refusal>, AppError> {
            let keys = st.keys.snapshot();
            let ctx = Context {
                keys: &keys,
                issuer: &st.issuer,
                audience: &st.audience,
                leeway: st.settings.jwt_leeway_seconds,
                key_prefix: &st.settings.key_prefix,
                api_keys: &st.api_keys,
                live_tokens: &st.live_tokens,
                plans: &st.settings.plan_limits,
                now: st.clock.now(),
            };
            // Only JWT access tokens: an API key or refresh token is not a userinfo credential.
            if token.matches('.').count() != 2 {
                return Ok(Err(Refusal::InvalidToken));
            }
            let verdict = match introspection::access_token_cached(ctx, &token) {
                JwtCheck::Done(v) => v,
                JwtCheck::Verified(c) => introspection::access_token_live(conn, ctx, &token, c)
                    .map_err(AppError::from_db)?,
            };
            if verdict.get("active") != Some(&json!(true)) {
                return Ok(Err(Refusal::InvalidToken));
            }
            let scope = ScopeSet::parse(verdict.get("scope").and_then(Value::as_str).unwrap_or(""))
                .unwrap_or_default();
            let sub = verdict
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !scope.contains(crate::oidc::OPENID) || !sub.starts_with("usr_") {
                return Ok(Err(Refusal::InsufficientScope));
            }
            let claims =
                crate::oidc::claims::for_scope(conn, &sub, &scope).map_err(AppError::from_db)?;
            let mut body = json!({"sub": sub});
            if let (Some(o), Ok(Value::Object(extra))) =
                (body.as_object_mut(), serde_json::to_value(claims))
            {
                o.extend(extra);
            }
            Ok(Ok(body))
        },
    )
    .await?;
    Ok(match answer {
        Ok(body) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(body),
        Err(r) => refuse(r),
    })
}
