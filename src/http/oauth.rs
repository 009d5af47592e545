//! `/oauth/*` handlers: extract, call `crate::oauth`, map.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::api_keys::verify::{self, Counting};
use crate::app::AppState;
use crate::clock::Timestamp;
use crate::error::{ErrorCode, OAuthError};
use crate::http::with_db;
use crate::introspection::{self, Context, JwtCheck};
use crate::oauth::client_auth;
use crate::oauth::form::StrictForm;
use crate::oauth::token::{self, SENSITIVE_PARAMS};
use crate::scope::ScopeSet;
use crate::tokens::jwt::AccessTokenClaims;
use crate::tokens::keys::KeySet;

/// Largest token request body accepted (docs/security.md J6).
pub const TOKEN_BODY_LIMIT: usize = 16 * 1024;

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The common front of the POST-only OAuth endpoints: a form body (D1), nothing in the
/// query string that belongs in the body (D7), no repeated parameter (J1).
pub(crate) fn read_form(req: &HttpRequest, body: &[u8]) -> Result<StrictForm, OAuthError> {
    if !is_form(req) {
        return Err(OAuthError::invalid_request(
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    let query = StrictForm::parse(req.query_string().as_bytes())
        .map_err(|_| OAuthError::invalid_request("The query string is malformed."))?;
    if query.contains_any(SENSITIVE_PARAMS) || query.contains_any(&["token", "token_type_hint"]) {
        return Err(OAuthError::invalid_request(
            "Parameters must be sent in the body, not the URL.",
        ));
    }
    let form = StrictForm::parse(body)
        .map_err(|_| OAuthError::invalid_request("The body is not valid form encoding."))?;
    // RFC 8707 §2: `resource` may repeat (docs/security.md J1); nothing else may.
    if form.repeated_except(&["resource"]).is_some() {
        return Err(OAuthError::invalid_request("A parameter is repeated."));
    }
    Ok(form)
}

/// The `token` of an introspection or revocation request. One with characters outside
/// VSCHAR cannot be a token we issued: it is looked up as the empty string, which matches
/// nothing, so the authenticated caller hears `{"active": false}` (RFC 7662 §2.2) or a
/// plain 200 (RFC 7009 §2.2), as for any other unknown token. `token_type_hint` is only a
/// hint and is not read (RFC 7009 §2.1).
fn token_param(form: &StrictForm) -> Result<String, OAuthError> {
    if form.is_unprintable("token") {
        return Ok(String::new());
    }
    form.get("token")
        .map(str::to_string)
        .ok_or_else(|| OAuthError::invalid_request("token is missing."))
}

pub(crate) fn authorization_header(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""))
}

pub(crate) fn peer_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

/// `POST /oauth/token` (RFC 6749 §3.2).
pub async fn token_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = read_form(&req, &body)?;
    let authorization = authorization_header(&req);
    let presented = client_auth::presented(authorization, &form)?;
    let request = token::parse(&form)?;
    let resources = crate::oauth::resource::requested(&form)?;
    let grant = request.grant_type();
    // docs/security.md K2: a client id (or an address) guessing secrets is slowed down.
    let ip = peer_ip(&req);
    let client_id = presented.client_id().to_string();
    refuse_throttled_client(&state, &client_id, &ip)?;
    // docs/spec.md §8: a metadata document client is checked against its (cached)
    // document before every grant, so a withdrawn or changed document takes effect.
    let document = crate::http::client_metadata::resolve(&state, Some(&client_id))
        .await
        .map_err(|r| r.oauth_error())?;
    // docs/spec.md §8: a client with a `jwks_uri` has its key set fetched first.
    let presented =
        crate::http::client_keys::attach(&state, presented, document.as_ref().map(|d| &d.1))
            .await
            .map_err(|e| count_failed_client(&state, &client_id, &ip, e))?;
    // docs/spec.md §7: a client that authenticated with this secret within the cache TTL
    // gets its client_credentials token without the database.
    let cached = token::client_credentials_cached(
        state.issuing(),
        &state.api_keys.clients,
        &state.api_keys.health,
        &presented,
        &request,
        &resources,
    );
    let result = match cached {
        Some(answer) => answer,
        None => {
            let st = state.clone();
            with_db(&state, move |conn| {
                if let Some((url, client)) = &document {
                    crate::clients::metadata_document::upsert(conn, &st.ctx(), url, client)?;
                }
                let cache = Some(&st.api_keys.clients);
                token::exchange(conn, st.issuing(), cache, &presented, request, &resources)
            })
            .await
        }
    };
    let response = match result {
        Err(e) if e.code == ErrorCode::InvalidClient => {
            return Err(count_failed_client(&state, &client_id, &ip, e));
        }
        Err(e) if e.code == ErrorCode::InvalidGrant => {
            // A replayed code or refresh token may have revoked its grant (committed
            // before this answer): cached JWT liveness is void from the next request on.
            state.live_tokens.bump();
            return Err(e);
        }
        other => other?,
    };
    state.metrics.token_issued(grant);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response))
}

fn no_store(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// `POST /oauth/introspect` (RFC 7662): resource servers only.
pub async fn introspect_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = read_form(&req, &body)?;
    let presented = client_auth::presented(authorization_header(&req), &form)?;
    let token = token_param(&form)?;
    let ip = peer_ip(&req);
    let caller = presented.client_id().to_string();
    let now = state.clock.now();
    if let Some(wait) = state.introspection_throttle.check(&caller, &ip, now) {
        return Err(OAuthError {
            retry_after: Some(wait),
            ..OAuthError::new(
                ErrorCode::SlowDown,
                "Too many inactive tokens introspected. Retry later.",
            )
        });
    }
    // `Some(resources)`: a resource server authenticated recently, with its resource URIs
    // (docs/spec.md §8: it sees only tokens meant for one of them).
    let cached_caller = client_auth::resource_server_cached(&state.api_keys, &presented);
    let presented = match cached_caller {
        Some(_) => presented,
        None => crate::http::client_keys::attach(&state, presented, None)
            .await
            .map_err(|e| count_failed_client(&state, &caller, &ip, e))?,
    };
    // The hot path: for a recently authenticated resource server, whatever can be decided
    // without the database is decided here, and what is left (a JWT's revocation status,
    // an uncached key's row) goes on to the database without being checked twice.
    let mut pending = Pending::Anything;
    if let Some(resources) = &cached_caller {
        let keys = state.keys.snapshot();
        if token.matches('.').count() == 2 {
            match introspection::access_token_cached(introspection_ctx(&state, &keys, now), &token)
            {
                JwtCheck::Done(answer) => {
                    let answer = introspection::for_caller(answer, resources);
                    return Ok(introspected(&state, answer, &caller, &ip, now));
                }
                JwtCheck::Verified(c) => pending = Pending::Jwt(Box::new(c)),
            }
        } else {
            match verify::check_cached(
                &state.api_keys,
                &state.settings.key_prefix,
                &token,
                &ScopeSet::default(),
                Counting::Peek,
                now,
            )? {
                Ok(v) if v.key.is_some() => {
                    let answer = introspection::api_key_answer(&state.issuer, v);
                    let answer = introspection::for_caller(answer, resources);
                    return Ok(introspected(&state, answer, &caller, &ip, now));
                }
                Err(hash) => pending = Pending::KeyDigest(hash),
                // Not an API key at all: the general path below.
                Ok(_) => {}
            }
        }
    }
    let st = state.clone();
    let answer = with_db(
        &state,
        move |conn| -> Result<serde_json::Value, OAuthError> {
            let resources = match cached_caller {
                Some(r) => r,
                None => client_auth::authenticate_resource_server(
                    conn,
                    &st.api_keys,
                    &presented,
                    crate::oauth::client_assertion::Expect::at(&st.issuer, &st.settings, now),
                )?
                .ok_or_else(|| OAuthError {
                    forbidden: true,
                    ..OAuthError::new(
                        ErrorCode::UnauthorizedClient,
                        "Only resource servers may introspect tokens.",
                    )
                })?,
            };
            let keys = st.keys.snapshot();
            let ctx = introspection_ctx(&st, &keys, now);
            let answer = match pending {
                Pending::Anything => introspection::introspect(conn, ctx, &token)?,
                Pending::Jwt(c) => introspection::access_token_live(conn, ctx, &token, *c)?,
                Pending::KeyDigest(hash) => {
                    let v = verify::check_digest(
                        conn,
                        &st.api_keys,
                        &st.settings.plan_limits,
                        &hash,
                        &ScopeSet::default(),
                        Counting::Peek,
                        now,
                    )?;
                    introspection::api_key_answer(&st.issuer, v)
                }
            };
            Ok(introspection::for_caller(answer, &resources))
        },
    )
    .await;
    let answer = match answer {
        Err(e) if e.code == ErrorCode::InvalidClient => {
            return Err(count_failed_client(&state, &caller, &ip, e));
        }
        other => other?,
    };
    Ok(introspected(&state, answer, &caller, &ip, now))
}

/// What an introspection still needs from the database once the cached checks ran.
enum Pending {
    /// Everything: the caller is not cached, or the token is neither a JWT nor a key.
    Anything,
    /// A verified JWT: only its revocation status.
    Jwt(Box<AccessTokenClaims>),
    /// A well-formed API key that was not cached: its row, by digest.
    KeyDigest(String),
}

fn introspection_ctx<'a>(st: &'a AppState, keys: &'a KeySet, now: Timestamp) -> Context<'a> {
    Context {
        keys,
        issuer: &st.issuer,
        audience: &st.audience,
        leeway: st.settings.jwt_leeway_seconds,
        key_prefix: &st.settings.key_prefix,
        api_keys: &st.api_keys,
        live_tokens: &st.live_tokens,
        plans: &st.settings.plan_limits,
        now,
    }
}

/// The introspection answer, counting inactive ones against the caller (docs/security.md G4).
fn introspected(
    state: &AppState,
    answer: serde_json::Value,
    caller: &str,
    ip: &str,
    now: Timestamp,
) -> HttpResponse {
    if answer.get("active") != Some(&serde_json::Value::Bool(true)) {
        state.introspection_throttle.record_failure(caller, ip, now);
    }
    no_store(answer)
}

/// `POST /oauth/revoke` (RFC 7009).
pub async fn revoke_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = read_form(&req, &body)?;
    let presented = client_auth::presented(authorization_header(&req), &form)?;
    let token = token_param(&form)?;
    let presented = crate::http::client_keys::attach(&state, presented, None).await?;
    let st = state.clone();
    with_db(&state, move |conn| {
        crate::oauth::revocation::revoke_for_client(conn, &st, &presented, &token)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// docs/security.md K2, for every endpoint that authenticates clients like the token
/// endpoint: a client id (or an address) that failed too often within the minute is
/// refused with `slow_down` (429, `Retry-After`) before its credentials are looked at.
pub(crate) fn refuse_throttled_client(
    state: &AppState,
    client_id: &str,
    ip: &str,
) -> Result<(), OAuthError> {
    match state
        .client_auth_throttle
        .check(client_id, ip, state.clock.now())
    {
        None => Ok(()),
        Some(wait) => Err(OAuthError {
            retry_after: Some(wait),
            ..OAuthError::new(
                ErrorCode::SlowDown,
                "Too many failed client authentications. Retry later.",
            )
        }),
    }
}

/// Counts an `invalid_client` answer against the client id and address (K2); returns it.
pub(crate) fn count_failed_client(
    state: &AppState,
    client_id: &str,
    ip: &str,
    e: OAuthError,
) -> OAuthError {
    state
        .client_auth_throttle
        .record_failure(client_id, ip, state.clock.now());
    e
}
