//! An "inference API" that protects itself with tessera: the resource-server side of the
//! platform, as a customer would write it.
//!
//! ```text
//! GET  /v1/models             needs inference:read
//! POST /v1/chat/completions   needs inference:write (returns a canned completion)
//! ```
//!
//! Callers send `Authorization: Bearer <access token or API key>`.
//! - JWT access tokens are verified locally against tessera's JWKS (cached; fetched again
//!   when a token names a key id we have not seen, at most once per 10 s): signature with
//!   the key's own algorithm, `typ: at+jwt`, `iss`, `aud`, `exp`/`nbf`. Local checks cannot
//!   see a revocation, so a token that passes them is then introspected, and the answer is
//!   cached for `RS_REVOCATION_CACHE_MS` (default 1000; 0 asks every time).
//! - API keys go to `POST /api/v1/keys/verify`, which also counts the request against the
//!   key's rate limit; the X-RateLimit headers of a live key are passed through (a revoked,
//!   expired or unknown key has none), and RATE_LIMITED becomes 429 with `Retry-After`.
//! - Failures follow RFC 6750 §3: 401 with `WWW-Authenticate: Bearer` (with
//!   `error="invalid_token"` when a credential was sent), 403 `insufficient_scope` naming
//!   the scope; tessera unreachable is 503, never a pass.
//! - With a resource URI (`RS_RESOURCE`, RFC 8707, registered with `tessera client create
//!   --resource-server --resource URI`), access tokens must name it in `aud` (tessera only
//!   shows this resource server tokens meant for it anyway), `GET
//!   /.well-known/oauth-protected-resource` serves its RFC 9728 metadata, and every 401
//!   challenge carries `resource_metadata` (RFC 9728 §5.1), so that a client (an MCP
//!   client, say) can start from this server's URL alone.
//!
//! Run it next to a tessera server:
//! ```text
//! tessera client create --name "Inference API" --resource-server \
//!     --resource http://127.0.0.1:9090                                  # → id, secret
//! TESSERA_URL=http://127.0.0.1:8080 RS_CLIENT_ID=... RS_CLIENT_SECRET=... \
//!     RS_RESOURCE=http://127.0.0.1:9090 \
//!     cargo run --example resource_server            # serves on 127.0.0.1:9090 (RS_BIND)
//! ```

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

/// Where tessera is and who we are to it.
#[derive(Debug, Clone)]
pub struct Config {
    /// tessera's base URL; also the expected `iss` and `aud` of access tokens.
    pub tessera_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// This server's RFC 8707 resource URI (scheme, host, port, no path), which access
    /// tokens must name in `aud`; `None`: tokens for tessera's default audience.
    pub resource: Option<String>,
    /// How long an introspection answer for a JWT is reused.
    pub revocation_cache: Duration,
    /// At most one JWKS fetch per this interval when tokens name unknown key ids (so
    /// forged kids cannot make us hammer tessera).
    pub jwks_refetch_interval: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let var = |n: &str| std::env::var(n).map_err(|_| format!("{n} is not set"));
        Ok(Self {
            tessera_url: std::env::var("TESSERA_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:8080".into())
                .trim_end_matches('/')
                .to_string(),
            client_id: var("RS_CLIENT_ID")?,
            client_secret: var("RS_CLIENT_SECRET")?,
            resource: std::env::var("RS_RESOURCE")
                .ok()
                .filter(|r| !r.is_empty())
                .map(|r| r.trim_end_matches('/').to_string()),
            revocation_cache: Duration::from_millis(
                std::env::var("RS_REVOCATION_CACHE_MS")
                    .ok()
                    .map(|v| {
                        v.parse()
                            .map_err(|_| "RS_REVOCATION_CACHE_MS: not a number")
                    })
                    .transpose()?
                    .unwrap_or(1000),
            ),
            jwks_refetch_interval: Duration::from_secs(10),
        })
    }
}

struct Keys {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    fetched: Option<Instant>,
}

/// Who called, once the credential checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub scopes: Vec<String>,
}

/// A refusal, already shaped as the HTTP answer.
pub struct Refusal(HttpResponse);

/// The credential check, shared by every handler.
pub struct Guard {
    cfg: Config,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    introspected: RwLock<HashMap<String, (Instant, Option<Caller>)>>,
}

fn error(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

fn body(kind: &str, message: &str) -> Value {
    json!({"error": {"type": kind, "message": message}})
}

fn unauthorized(cfg: &Config, message: &str, sent: bool) -> Refusal {
    let mut challenge = if sent {
        format!(r#"Bearer realm="inference", error="invalid_token", error_description="{message}""#)
    } else {
        r#"Bearer realm="inference""#.to_string()
    };
    if let Some(resource) = &cfg.resource {
        challenge.push_str(&format!(
            r#", resource_metadata="{resource}/.well-known/oauth-protected-resource""#
        ));
    }
    Refusal(
        error(StatusCode::UNAUTHORIZED)
            .insert_header((header::WWW_AUTHENTICATE, challenge))
            .json(body("authentication_error", message)),
    )
}

fn insufficient_scope(scope: &str) -> Refusal {
    let message = format!("This call needs the scope {scope}.");
    Refusal(
        error(StatusCode::FORBIDDEN)
            .insert_header((
                header::WWW_AUTHENTICATE,
                format!(r#"Bearer realm="inference", error="insufficient_scope", scope="{scope}""#),
            ))
            .json(body("permission_error", &message)),
    )
}

fn unavailable() -> Refusal {
    let message = "The authorization server cannot be reached. Retry shortly.";
    Refusal(
        error(StatusCode::SERVICE_UNAVAILABLE)
            .insert_header((header::RETRY_AFTER, "1"))
            .json(body("api_error", message)),
    )
}

/// tessera answered 401 or 403 to this server's own client credentials (introspection or key
/// verification): a configuration mistake of this server, not an outage. Logged on stderr,
/// naming the endpoint, status and client id, and answered 500: the caller cannot fix it and
/// retrying will not help.
fn refused_credentials(endpoint: &str, status: u16, client_id: &str) -> Refusal {
    eprintln!(
        "resource_server: ERROR: tessera refused this server's own credentials: {endpoint} answered \
         {status} for RS_CLIENT_ID={client_id}. Check RS_CLIENT_ID and RS_CLIENT_SECRET, and that \
         the client was created with --resource-server."
    );
    let message = "This API is misconfigured: the authorization server refused its credentials.";
    Refusal(error(StatusCode::INTERNAL_SERVER_ERROR).json(body("api_error", message)))
}

/// An answer from tessera to this server's own credentials that is not a success: a
/// refusal of those credentials (401, 403) or tessera being unavailable (anything else).
fn tessera_failed(endpoint: &str, status: u16, client_id: &str) -> Refusal {
    if status == 401 || status == 403 {
        refused_credentials(endpoint, status, client_id)
    } else {
        unavailable()
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "a separate program: it reads its own clock, not tessera's clock.rs"
)]
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The X-RateLimit headers of a verify answer, to pass through.
type RateHeaders = Vec<(String, String)>;

impl Guard {
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            keys: RwLock::new(Keys {
                by_kid: HashMap::new(),
                fetched: None,
            }),
            introspected: RwLock::new(HashMap::new()),
        }
    }

    /// Checks the request's bearer credential for `scope`. On success, also returns the
    /// rate-limit headers to put on the answer (API keys).
    pub async fn check(
        &self,
        req: &HttpRequest,
        scope: &str,
    ) -> Result<(Caller, RateHeaders), Refusal> {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                &self.cfg,
                "Send Authorization: Bearer <token or API key>.",
                false,
            ));
        };
        let value = value.to_str().unwrap_or("");
        let token = match value.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
                t.trim()
            }
            _ => {
                return Err(unauthorized(
                    &self.cfg,
                    "Send Authorization: Bearer <token or API key>.",
                    false,
                ));
            }
        };
        if token.matches('.').count() == 2 {
            let caller = self.check_jwt(token).await?;
            if !caller.scopes.iter().any(|s| s == scope) {
                return Err(insufficient_scope(scope));
            }
            Ok((caller, Vec::new()))
        } else {
            self.check_api_key(token, scope).await
        }
    }

    async fn refresh_keys(&self, force: bool) -> Result<(), Refusal> {
        {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            if let Some(at) = keys.fetched
                && (!force || at.elapsed() < self.cfg.jwks_refetch_interval)
            {
                return Ok(());
            }
        }
        let set: JwkSet = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.cfg.tessera_url))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|_| unavailable())?
            .json()
            .await
            .map_err(|_| unavailable())?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(alg)) = (&jwk.common.key_id, &jwk.common.key_algorithm) else {
                continue;
            };
            let Ok(alg) = format!("{alg:?}").parse::<Algorithm>() else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                by_kid.insert(kid.clone(), (key, alg));
            }
        }
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        *keys = Keys {
            by_kid,
            fetched: Some(Instant::now()),
        };
        Ok(())
    }

    fn key_for(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.by_kid.get(kid).cloned()
    }

    async fn check_jwt(&self, token: &str) -> Result<Caller, Refusal> {
        let invalid = || {
            unauthorized(
                &self.cfg,
                "The access token is not valid, expired or revoked.",
                true,
            )
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.typ.as_deref() != Some("at+jwt") {
            return Err(invalid());
        }
        let kid = header.kid.ok_or_else(invalid)?;
        self.refresh_keys(false).await?;
        let (key, alg) = match self.key_for(&kid) {
            Some(k) => k,
            None => {
                // A key we have not seen: tessera may have rotated. Fetch again (rate-limited).
                self.refresh_keys(true).await?;
                self.key_for(&kid).ok_or_else(invalid)?
            }
        };
        // The algorithm comes from our copy of the key, never from the token (alg: none, HS256...).
        if header.alg != alg {
            return Err(invalid());
        }
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.cfg.tessera_url]);
        // RFC 8707: a token meant for another resource is not for us.
        v.set_audience(&[self
            .cfg
            .resource
            .as_deref()
            .unwrap_or(&self.cfg.tessera_url)]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = 30;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &v)
            .map_err(|e| match e.kind() {
                // Tell the client why: it asked tessera for a token without this
                // server's `resource` (RFC 8707), or for another one.
                jsonwebtoken::errors::ErrorKind::InvalidAudience => unauthorized(
                    &self.cfg,
                    "The access token was issued for another resource (its aud is not this server).",
                    true,
                ),
                _ => invalid(),
            })?
            .claims;
        let jti = claims
            .get("jti")
            .unwrap_or(&Value::Null)
            .as_str()
            .ok_or_else(invalid)?
            .to_string();
        // Revocation: introspect (cached briefly).
        self.introspect_cached(&jti, token)
            .await?
            .ok_or_else(invalid)
    }

    async fn introspect_cached(&self, jti: &str, token: &str) -> Result<Option<Caller>, Refusal> {
        if !self.cfg.revocation_cache.is_zero() {
            let cache = self.introspected.read().unwrap_or_else(|p| p.into_inner());
            if let Some((at, answer)) = cache.get(jti)
                && at.elapsed() < self.cfg.revocation_cache
            {
                return Ok(answer.clone());
            }
        }
        let r = self
            .http
            .post(format!("{}/oauth/introspect", self.cfg.tessera_url))
            .basic_auth(&self.cfg.client_id, Some(&self.cfg.client_secret))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|_| unavailable())?;
        if !r.status().is_success() {
            let status = r.status().as_u16();
            return Err(tessera_failed(
                "/oauth/introspect",
                status,
                &self.cfg.client_id,
            ));
        }
        let v: Value = r.json().await.map_err(|_| unavailable())?;
        let answer = (v.get("active") == Some(&Value::Bool(true))).then(|| Caller {
            subject: v
                .get("sub")
                .unwrap_or(&Value::Null)
                .as_str()
                .unwrap_or_default()
                .to_string(),
            scopes: v
                .get("scope")
                .unwrap_or(&Value::Null)
                .as_str()
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        });
        if !self.cfg.revocation_cache.is_zero() {
            let mut cache = self.introspected.write().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(jti.to_string(), (Instant::now(), answer.clone()));
        }
        Ok(answer)
    }

    async fn check_api_key(
        &self,
        key: &str,
        scope: &str,
    ) -> Result<(Caller, RateHeaders), Refusal> {
        let r = self
            .http
            .post(format!("{}/api/v1/keys/verify", self.cfg.tessera_url))
            .basic_auth(&self.cfg.client_id, Some(&self.cfg.client_secret))
            .json(&json!({"key": key, "scopes": [scope]}))
            .send()
            .await
            .map_err(|_| unavailable())?;
        if r.status().as_u16() != 200 {
            let status = r.status().as_u16();
            return Err(tessera_failed(
                "/api/v1/keys/verify",
                status,
                &self.cfg.client_id,
            ));
        }
        let rate: RateHeaders = [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ]
        .iter()
        .filter_map(|h| {
            r.headers()
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| (h.to_string(), v.to_string()))
        })
        .collect();
        let v: Value = r.json().await.map_err(|_| unavailable())?;
        let with_rate = |mut refusal: Refusal| {
            for (k, val) in &rate {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::try_from(k.as_str()),
                    header::HeaderValue::from_str(val),
                ) {
                    refusal.0.headers_mut().insert(name, value);
                }
            }
            refusal
        };
        match v.get("code").unwrap_or(&Value::Null).as_str().unwrap_or("") {
            "VALID" => Ok((
                Caller {
                    subject: v
                        .get("key_id")
                        .unwrap_or(&Value::Null)
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    scopes: v
                        .get("scopes")
                        .unwrap_or(&Value::Null)
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                },
                rate,
            )),
            "INSUFFICIENT_SCOPE" => Err(with_rate(insufficient_scope(scope))),
            "RATE_LIMITED" => {
                let reset = v
                    .get("ratelimit")
                    .and_then(|x| x.get("reset"))
                    .unwrap_or(&Value::Null)
                    .as_i64()
                    .unwrap_or(0);
                let wait = (reset - now_secs()).max(1);
                let message = format!("Rate limit exceeded. Please retry after {wait} seconds.");
                Err(with_rate(Refusal(
                    error(StatusCode::TOO_MANY_REQUESTS)
                        .insert_header((header::RETRY_AFTER, wait.to_string()))
                        .json(json!({"error": {"type": "rate_limit_error", "message": message, "retry_after": wait}})),
                )))
            }
            // A key that is not live has no budget: no rate-limit headers (docs/spec.md §5).
            "EXPIRED" => Err(unauthorized(&self.cfg, "The API key has expired.", true)),
            "REVOKED" => Err(unauthorized(
                &self.cfg,
                "The API key has been revoked.",
                true,
            )),
            _ => Err(unauthorized(&self.cfg, "The API key is not valid.", true)),
        }
    }
}

fn ok(rate: RateHeaders, body: Value) -> HttpResponse {
    let mut b = HttpResponse::Ok();
    for (k, v) in rate {
        b.insert_header((k, v));
    }
    b.json(body)
}

async fn models_get(req: HttpRequest, guard: web::Data<Guard>) -> HttpResponse {
    match guard.check(&req, "inference:read").await {
        Ok((_, rate)) => ok(
            rate,
            json!({"object": "list", "data": [
                {"id": "tessera-small", "object": "model", "owned_by": "example"},
                {"id": "tessera-large", "object": "model", "owned_by": "example"}
            ]}),
        ),
        Err(Refusal(r)) => r,
    }
}

async fn completions_post(req: HttpRequest, guard: web::Data<Guard>) -> HttpResponse {
    match guard.check(&req, "inference:write").await {
        Ok((caller, rate)) => ok(
            rate,
            json!({
                "id": "chatcmpl-example",
                "object": "chat.completion",
                "model": "tessera-small",
                "user": caller.subject,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "Hello from the inference API."}}]
            }),
        ),
        Err(Refusal(r)) => r,
    }
}

/// RFC 9728 §3: this server's protected resource metadata (404 without a resource URI).
async fn metadata_get(guard: web::Data<Guard>) -> HttpResponse {
    match &guard.cfg.resource {
        Some(resource) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .json(json!({
                "resource": resource,
                "authorization_servers": [guard.cfg.tessera_url],
                "scopes_supported": ["inference:read", "inference:write"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Example inference API",
            })),
        None => HttpResponse::NotFound().finish(),
    }
}

/// The routes, for `App::new().app_data(guard).configure(routes)`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/oauth-protected-resource",
        web::get().to(metadata_get),
    )
    .route("/v1/models", web::get().to(models_get))
    .route("/v1/chat/completions", web::post().to(completions_post));
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    // reqwest's rustls backend asks for the process's provider (tessera's HTTP fetcher
    // enables it in the same build).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "resource_server: {e}\n\nusage: TESSERA_URL=http://127.0.0.1:8080 RS_CLIENT_ID=... \
                 RS_CLIENT_SECRET=... [RS_RESOURCE=http://127.0.0.1:9090] [RS_BIND=127.0.0.1:9090] \
                 [RS_REVOCATION_CACHE_MS=1000] \
                 cargo run --example resource_server"
            );
            std::process::exit(2);
        }
    };
    let bind = std::env::var("RS_BIND").unwrap_or_else(|_| "127.0.0.1:9090".into());
    let guard = web::Data::new(Guard::new(cfg.clone()));
    println!(
        "inference API on http://{bind}, checking credentials with {}",
        cfg.tessera_url
    );
    actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(guard.clone())
            .configure(routes)
    })
    .bind(&bind)?
    .run()
    .await
}
