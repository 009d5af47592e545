//! `/api/v1/api-keys` and `/api/v1/keys/verify` (SPEC.md §5).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Principal, ScopesInput, authenticate, json_body, json_response};
use crate::api_keys::KeyType;
use crate::api_keys::store::{self, ApiKeyError, Expiry, KeySummary, NewApiKey};
use crate::api_keys::verify::{self, Code, Counting};
use crate::app::AppState;
use crate::http::with_db;
use crate::oauth::client_auth;

impl From<ApiKeyError> for ApiError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Invalid(m) => ApiError::invalid(m),
            ApiKeyError::OrgNotFound(_) => ApiError::not_found("organization"),
            ApiKeyError::Db(d) => d.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    pub scopes: ScopesInput,
    #[serde(rename = "type", default = "secret")]
    pub key_type: KeyType,
    #[serde(default)]
    pub expires_in_days: Option<i64>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub rate_limit_per_minute: Option<i64>,
}

fn secret() -> KeyType {
    KeyType::Secret
}

impl CreateKey {
    /// The expiry asked for: days, a date, or neither (never).
    pub fn expiry(&self) -> Result<Expiry, ApiError> {
        match (self.expires_in_days, &self.expires_at) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "Give expires_in_days or expires_at, not both.",
            )),
            (Some(d), None) => Ok(Expiry::InDays(d)),
            (None, Some(at)) => crate::clock::parse_rfc3339(at)
                .map(Expiry::At)
                .ok_or_else(|| ApiError::invalid("expires_at must be an RFC 3339 date-time.")),
            (None, None) => Ok(Expiry::Never),
        }
    }
}

/// Checks a creation request against what the caller may grant, then creates the key.
/// Shared by the API and the `/settings/api-keys` page.
pub fn create_for(
    conn: &mut crate::db::DbConnection,
    st: &AppState,
    principal: &Principal,
    body: &CreateKey,
) -> Result<store::CreatedApiKey, ApiError> {
    let scopes = body.scopes.parse()?;
    // Admins grant any catalogue scope; a member only what their own credential holds.
    if principal.role != crate::orgs::Role::Admin && !scopes.is_subset(&principal.scopes) {
        return Err(ApiError::forbidden(
            "A member cannot give a key a scope they do not hold.",
        ));
    }
    let new = NewApiKey {
        org_id: principal.org_id.clone(),
        name: body.name.clone(),
        key_type: body.key_type,
        scopes,
        expiry: body.expiry()?,
        rate_limit_per_minute: body.rate_limit_per_minute,
        created_by: principal.user_id.clone(),
    };
    let now = st.clock.now();
    Ok(crate::db::write_tx(conn, |conn| {
        store::create(
            conn,
            new,
            &st.settings.scopes,
            &st.settings.key_prefix,
            &st.settings.plan_limits,
            now,
        )
    })?)
}

/// `POST /api/v1/api-keys`: any member. The plaintext key appears only in this body.
pub async fn create_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let input: CreateKey = json_body(&req, &body).map_err(|e| e.with_rate(rate))?;
    let st = state.clone();
    let created = with_db(&state, move |conn| create_for(conn, &st, &p, &input))
        .await
        .map_err(|e| e.with_rate(rate))?;
    Ok(json_response(StatusCode::CREATED, rate, created))
}

/// `GET /api/v1/api-keys`: any member; never the secret.
pub async fn list_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let org = p.org_id.clone();
    let st = state.clone();
    let data: Vec<KeySummary> = with_db(&state, move |conn| -> Result<_, ApiError> {
        Ok(store::summaries(conn, &org, &st.settings.plan_limits)?)
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    Ok(json_response(StatusCode::OK, rate, json!({ "data": data })))
}

/// `DELETE /api/v1/api-keys/{id}`: admins; the key is refused from the next request on.
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let id = path.into_inner();
    let st = state.clone();
    let key_id = id.clone();
    let revoked = with_db(&state, move |conn| -> Result<bool, ApiError> {
        // Another organization's key is a 404 whoever asks; a member learns nothing more.
        if store::find_in_org(conn, &p.org_id, &key_id)?.is_none() {
            return Err(ApiError::not_found("API key"));
        }
        p.require_admin()?;
        let now = st.clock.now();
        Ok(crate::db::write_tx(conn, |conn| {
            store::revoke(conn, &p.org_id, &key_id, &p.actor, now)
        })?)
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    if !revoked {
        return Err(ApiError::not_found("API key").with_rate(rate));
    }
    state.api_keys.revoked(&id);
    Ok(super::no_content(rate))
}

/// `POST /api/v1/api-keys/{id}/roll`: admins. 201 with the new key.
pub async fn roll_post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let input: super::Overlap =
        super::json_body_or_default(&req, &body).map_err(|e| e.with_rate(rate))?;
    let overlap = super::check_overlap(input.expire_old_in_seconds.unwrap_or(0))
        .map_err(|e| e.with_rate(rate))?;
    let id = path.into_inner();
    let old_id = id.clone();
    let st = state.clone();
    let created = with_db(&state, move |conn| -> Result<_, ApiError> {
        if store::find_in_org(conn, &p.org_id, &id)?.is_none() {
            return Err(ApiError::not_found("API key"));
        }
        p.require_admin()?;
        let now = st.clock.now();
        crate::db::write_tx(conn, |conn| {
            store::roll(
                conn,
                &p.org_id,
                &id,
                overlap,
                p.user_id.clone(),
                &p.actor,
                &st.settings.scopes,
                &st.settings.key_prefix,
                &st.settings.plan_limits,
                now,
            )
        })?
        .ok_or_else(|| ApiError::not_found("API key"))
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    // The old key's new expiry applies here from the next request on.
    state.api_keys.cache.evict_id(&old_id);
    Ok(json_response(StatusCode::CREATED, rate, created))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    key: String,
    #[serde(default)]
    scopes: Option<ScopesInput>,
}

fn basic_required() -> ApiError {
    ApiError {
        challenge: Some(r#"Basic realm="tessera""#.into()),
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
    match client_auth::authenticate_resource_server(conn, &st.api_keys, presented, now) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::forbidden(
            "Only resource servers may verify keys.",
        )),
        Err(e) => Err(e.cause.map(ApiError::from).unwrap_or_else(basic_required)),
    }
}

/// `POST /api/v1/keys/verify`: resource servers (HTTP Basic). Always 200 with a verdict
/// for a well-formed request; counts one request against a good key's limit.
pub async fn verify_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::refuse_credentials_in_url(&req)?;
    let presented = match crate::http::oauth::authorization_header(&req) {
        Some(a) if a.len() > 6 && a[..6].eq_ignore_ascii_case("basic ") => {
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
    let cached_caller = client_auth::resource_server_cached(rt, &presented);
    // The hot path: a recently authenticated resource server and a cached (or malformed)
    // key need no database at all; an uncached key goes on with its digest.
    let fast = if cached_caller {
        Some(verify::check_cached(
            rt,
            prefix,
            &input.key,
            &required,
            Counting::Count,
            now,
        ))
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
                        Counting::Count,
                        now,
                    )?);
                };
                Ok(verify::check_digest(
                    conn,
                    &st.api_keys,
                    &st.settings.plan_limits,
                    &hash,
                    &required,
                    Counting::Count,
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
    let rate = v.rate;
    let key = v.key.as_ref();
    Ok(json_response(
        StatusCode::OK,
        rate,
        json!({
            "valid": v.code == Code::Valid,
            "code": v.code,
            "key_id": key.map(|k| &k.id),
            "org_id": key.map(|k| &k.org_id),
            "type": key.map(|k| k.key_type),
            "scopes": key.map(|k| k.scopes.to_vec()),
            "expires_at": key.and_then(|k| k.expires_at).map(crate::clock::rfc3339),
            "ratelimit": rate,
        }),
    ))
}
