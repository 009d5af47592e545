//! The Device Authorization Grant (RFC 8628; docs/spec.md §9): device codes and user codes
//! (both stored as SHA-256 only), the person's decision at `/device`, and the token
//! endpoint's polling answers. Every state change is a conditional UPDATE whose row count
//! decides a race: a decision is taken once, a poll inside the interval is `slow_down`, and
//! tokens are issued once (docs/security.md C8).

use diesel::prelude::*;
use serde::Serialize;

use super::client_auth::{self, Presented};
use super::refresh;
use super::resource;
use super::token::{self, Issuing, OpenId, Refusal, TokenResponse};
use crate::clients::GrantType;
use crate::clients::store::ClientRow;
use crate::clock::Timestamp;
use crate::crypto::{random_bytes, random_token, sha256_hex};
use crate::db::DbConnection;
use crate::db::schema::{device_codes, grants};
use crate::error::{AppError, ErrorCode, OAuthError};
use crate::scope::ScopeSet;

/// RFC 8628 §6.1: 20 consonants, no vowels (no words), no look-alikes.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters of a user code (34.6 bits), shown as `XXXX-XXXX`.
pub const USER_CODE_LEN: usize = 8;
/// RFC 8628 §3.2 `interval`: the first polling interval, seconds.
pub const INTERVAL_SECONDS: i64 = 5;
/// RFC 8628 §3.5: what a `slow_down` adds to the interval, seconds.
pub const SLOW_DOWN_STEP_SECONDS: i64 = 5;

/// The most device codes of one client that may wait for a person at once (undecided and
/// unexpired); beyond it the device authorization endpoint answers 429 `slow_down` with
/// `Retry-After` (docs/spec.md §9). Bounds the rows one client, public ones included,
/// can make.
pub const MAX_WAITING_PER_CLIENT: i64 = 1000;

const PENDING: &str = "pending";
const APPROVED: &str = "approved";
const DENIED: &str = "denied";
const ISSUED: &str = "issued";

/// RFC 8628 §3.2: the device authorization response.
#[derive(Debug, Serialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    /// Seconds.
    pub expires_in: i64,
    /// Seconds between polls.
    pub interval: i64,
}

/// A fresh user code, uniform over the alphabet (rejection sampling), without the dash.
#[expect(
    clippy::indexing_slicing,
    reason = "indexes are taken modulo the alphabet size"
)]
fn new_user_code() -> String {
    let mut out = String::with_capacity(USER_CODE_LEN);
    while out.len() < USER_CODE_LEN {
        for b in random_bytes::<32>() {
            // 240 = 12 * 20: values at or above it would bias the first letters.
            if b < 240 && out.len() < USER_CODE_LEN {
                out.push(USER_CODE_ALPHABET[usize::from(b % 20)] as char);
            }
        }
    }
    out
}

/// What a person typed, in normal form: case-insensitive, dashes and spaces ignored.
/// `None` when it cannot be a user code (wrong length or letters).
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// `XXXX-XXXX` (RFC 8628 §6.1: easier to read and type).
pub fn display_user_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len().min(USER_CODE_LEN / 2));
    format!("{a}-{b}")
}

/// RFC 8628 §3.1–3.2: authenticates the client (as the token endpoint does), checks that it
/// may use the grant, the scope (default: everything it registered) and the resources
/// (RFC 8707), and starts a device authorization.
pub fn authorize(
    conn: &mut DbConnection,
    ctx: Issuing<'_>,
    presented: &Presented,
    scope: Option<ScopeSet>,
    resources: &[String],
) -> Result<DeviceAuthorization, OAuthError> {
    let client = client_auth::authenticate(conn, presented, ctx.assertion())?;
    token::require_grant(&client, GrantType::DeviceCode)?;
    let scope = token::granted_scope(&client, scope, ctx.settings)?;
    if !resource::all_known(conn, ctx.issuer, ctx.audience, resources)? {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "The resource is unknown.",
        ));
    }
    let waiting: i64 = device_codes::table
        .filter(device_codes::client_id.eq(&client.id))
        .filter(device_codes::status.eq(PENDING))
        .filter(device_codes::expires_at.gt(ctx.now))
        .count()
        .get_result(conn)?;
    if waiting >= MAX_WAITING_PER_CLIENT {
        let mut e = OAuthError::new(
            ErrorCode::SlowDown,
            "Too many device codes of this client are waiting; try again later.",
        );
        e.retry_after = Some(60);
        return Err(e);
    }
    let device_code = random_token();
    let ttl = ctx.settings.device_code_ttl_seconds;
    // A collision of user codes among live ones is possible (34.6 bits): draw again.
    for _ in 0..5 {
        let user_code = new_user_code();
        let inserted = diesel::insert_into(device_codes::table)
            .values((
                device_codes::device_code_hash.eq(sha256_hex(&device_code)),
                device_codes::user_code_hash.eq(sha256_hex(&user_code)),
                device_codes::client_id.eq(&client.id),
                device_codes::scope.eq(scope.to_string()),
                device_codes::resource.eq(resource::to_column(resources)),
                device_codes::status.eq(PENDING),
                device_codes::poll_interval.eq(INTERVAL_SECONDS),
                device_codes::created_at.eq(ctx.now),
                device_codes::expires_at.eq(ctx.now + ttl),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {
                let shown = display_user_code(&user_code);
                let verification_uri = format!("{}/device", ctx.issuer);
                let complete = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("user_code", &shown)
                    .finish();
                return Ok(DeviceAuthorization {
                    device_code,
                    verification_uri_complete: format!("{verification_uri}?{complete}"),
                    verification_uri,
                    user_code: shown,
                    expires_in: ttl,
                    interval: INTERVAL_SECONDS,
                });
            }
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Internal("no free user code".into()).into())
}

/// A device authorization waiting for the person at `/device`.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub client: ClientRow,
    pub scope: ScopeSet,
    pub resources: Vec<String>,
}

/// The pending, unexpired device authorization of a user code (normal form), if any.
pub fn waiting(
    conn: &mut DbConnection,
    user_code: &str,
    now: Timestamp,
) -> Result<Option<Waiting>, AppError> {
    let row: Option<(String, String, String)> = device_codes::table
        .filter(device_codes::user_code_hash.eq(sha256_hex(user_code)))
        .filter(device_codes::status.eq(PENDING))
        .filter(device_codes::expires_at.gt(now))
        .select((
            device_codes::client_id,
            device_codes::scope,
            device_codes::resource,
        ))
        .first(conn)
        .optional()
        .map_err(AppError::from_db)?;
    let Some((client_id, scope, resources)) = row else {
        return Ok(None);
    };
    let Some(client) = crate::clients::store::find(conn, &client_id).map_err(AppError::from_db)?
    else {
        return Ok(None);
    };
    let scope = ScopeSet::parse(&scope)
        .map_err(|_| AppError::Internal("stored scope is malformed".into()))?;
    Ok(Some(Waiting {
        client,
        scope,
        resources: resource::from_column(&resources),
    }))
}

/// The person's decision on a waiting device authorization. True when it was still
/// pending (a second decision, or one after expiry, changes nothing and is false). An
/// approval is also remembered as the person's consent for the client
/// (`consent::remember`), in the same transaction.
pub fn decide(
    conn: &mut DbConnection,
    user_code: &str,
    user_id: &str,
    auth_time: Timestamp,
    approve: bool,
    now: Timestamp,
) -> Result<bool, AppError> {
    let hash = sha256_hex(user_code);
    crate::db::write_tx(conn, |conn| -> Result<bool, AppError> {
        let n = diesel::update(
            device_codes::table
                .filter(device_codes::user_code_hash.eq(&hash))
                .filter(device_codes::status.eq(PENDING))
                .filter(device_codes::expires_at.gt(now)),
        )
        .set((
            device_codes::status.eq(if approve { APPROVED } else { DENIED }),
            device_codes::user_id.eq(user_id),
            device_codes::auth_time.eq(auth_time),
        ))
        .execute(conn)?;
        if n != 1 {
            return Ok(false);
        }
        if approve {
            // Remembered like the code flow's consent: the app shows on `/account/apps`,
            // and withdrawing it there revokes the device's grant too (docs/spec.md §6).
            let (client_id, scope, resource): (String, String, String) = device_codes::table
                .filter(device_codes::user_code_hash.eq(&hash))
                .select((
                    device_codes::client_id,
                    device_codes::scope,
                    device_codes::resource,
                ))
                .first(conn)?;
            let scope = ScopeSet::parse(&scope)
                .map_err(|_| AppError::Internal("stored device scope".into()))?;
            let org_id = crate::clients::store::find(conn, &client_id)?.and_then(|c| c.org_id);
            crate::consent::remember(
                conn,
                user_id,
                &client_id,
                org_id.as_deref(),
                &crate::consent::Remembered {
                    scope,
                    resources: resource::from_column(&resource),
                },
                now,
            )?;
        }
        Ok(true)
    })
}

#[derive(Queryable)]
struct DeviceRow {
    client_id: String,
    scope: String,
    resource: String,
    status: String,
    user_id: Option<String>,
    auth_time: Option<i64>,
    expires_at: i64,
}

fn refuse(code: ErrorCode, description: &'static str) -> Refusal {
    Refusal::Refuse(OAuthError::new(code, description))
}

/// RFC 8628 §3.4–3.5: one poll of the token endpoint by the client that started the
/// authorization. In order: an unknown code (or another client's) → `invalid_grant`;
/// expired → `expired_token`; sooner than the interval after the last accepted poll →
/// `slow_down`, and the interval grows by 5 s; then `authorization_pending`,
/// `access_denied`, the tokens (once: a code already used → `invalid_grant`).
pub fn exchange(
    conn: &mut DbConnection,
    ctx: Issuing<'_>,
    client: &ClientRow,
    device_code: &str,
    requested: &[String],
) -> Result<TokenResponse, OAuthError> {
    let hash = sha256_hex(device_code);
    token::commit_refusals(conn, |conn| {
        let row: Option<DeviceRow> = device_codes::table
            .find(&hash)
            .filter(device_codes::client_id.eq(&client.id))
            .select((
                device_codes::client_id,
                device_codes::scope,
                device_codes::resource,
                device_codes::status,
                device_codes::user_id,
                device_codes::auth_time,
                device_codes::expires_at,
            ))
            .first(conn)
            .optional()?;
        let Some(row) = row else {
            return Err(refuse(
                ErrorCode::InvalidGrant,
                "The device code is invalid.",
            ));
        };
        if row.status == ISSUED {
            return Err(refuse(
                ErrorCode::InvalidGrant,
                "The device code was already used.",
            ));
        }
        if row.expires_at <= ctx.now {
            return Err(refuse(
                ErrorCode::ExpiredToken,
                "The device code has expired.",
            ));
        }
        // The poll is accepted only if the interval has passed since the last accepted
        // one; decided by the UPDATE itself, so parallel polls cannot all pass.
        let accepted =
            diesel::update(device_codes::table.find(&hash).filter(
                device_codes::polled_at.is_null().or(
                    (device_codes::polled_at + device_codes::poll_interval.nullable()).le(ctx.now),
                ),
            ))
            .set(device_codes::polled_at.eq(ctx.now))
            .execute(conn)?;
        if accepted == 0 {
            diesel::update(device_codes::table.find(&hash))
                .set(
                    device_codes::poll_interval
                        .eq(device_codes::poll_interval + SLOW_DOWN_STEP_SECONDS),
                )
                .execute(conn)?;
            return Err(refuse(
                ErrorCode::PollTooSoon,
                "Polling too fast: wait 5 seconds longer between requests.",
            ));
        }
        match row.status.as_str() {
            PENDING => {
                return Err(refuse(
                    ErrorCode::AuthorizationPending,
                    "The person has not decided yet.",
                ));
            }
            DENIED => {
                return Err(refuse(
                    ErrorCode::AccessDenied,
                    "The person denied the request.",
                ));
            }
            _ => {}
        }
        // RFC 8707 before the code is used: a poll asking for a resource outside the
        // grant is `invalid_target` and leaves the code usable (docs/spec.md §8).
        let granted = resource::from_column(&row.resource);
        let audiences = resource::audiences(conn, ctx.issuer, ctx.audience, requested, &granted)
            .map_err(Refusal::from)?;
        let used = diesel::update(
            device_codes::table
                .find(&hash)
                .filter(device_codes::status.eq(APPROVED)),
        )
        .set(device_codes::status.eq(ISSUED))
        .execute(conn)?;
        let (1, Some(user_id)) = (used, row.user_id) else {
            return Err(refuse(
                ErrorCode::InvalidGrant,
                "The device code was already used.",
            ));
        };
        issue(
            conn,
            ctx,
            client,
            &row.client_id,
            &row.scope,
            &row.resource,
            &user_id,
            row.auth_time,
            &audiences,
        )
    })
}

/// Starts the grant of an approved device authorization and issues its tokens for
/// `audiences` (checked by the caller before the code was used).
#[expect(clippy::too_many_arguments, reason = "the columns of one row")]
fn issue(
    conn: &mut DbConnection,
    ctx: Issuing<'_>,
    client: &ClientRow,
    client_id: &str,
    scope: &str,
    resources: &str,
    user_id: &str,
    auth_time: Option<Timestamp>,
    audiences: &[String],
) -> Result<TokenResponse, Refusal> {
    let scope = ScopeSet::parse(scope).map_err(|_| {
        Refusal::Abort(AppError::Internal("stored scope is malformed".into()).into())
    })?;
    let grant_id = crate::crypto::new_id("grt_");
    diesel::insert_into(grants::table)
        .values((
            grants::id.eq(&grant_id),
            grants::client_id.eq(client_id),
            grants::user_id.eq(user_id),
            grants::scope.eq(scope.to_string()),
            grants::created_at.eq(ctx.now),
            grants::resource.eq(resources),
            grants::auth_time.eq(auth_time),
        ))
        .execute(conn)?;
    let refresh_token = if client.grant_type_list().contains(&GrantType::RefreshToken) {
        let scope = scope.to_string();
        let family = refresh::Family {
            grant_id: &grant_id,
            client_id,
            user_id: Some(user_id),
            scope: &scope,
            absolute_expires_at: 0,
        };
        Some(refresh::issue_first(
            conn,
            &ctx.settings.key_prefix,
            family,
            token::refresh_policy(ctx.settings),
            ctx.now,
        )?)
    } else {
        None
    };
    let response = token::respond(
        ctx,
        client,
        user_id,
        scope.clone(),
        refresh_token,
        Some(&grant_id),
        audiences,
    )
    .map_err(Refusal::Abort)?;
    let openid = OpenId {
        nonce: None,
        auth_time,
    };
    token::with_id_token(conn, ctx, client, user_id, &scope, openid, response)
        .map_err(Refusal::Abort)
}

/// Device authorizations past `expires_at` by `cutoff`, at most `limit` per call (the
/// janitor's step): an expired code answers `expired_token` only while its row exists,
/// and `invalid_grant` after, which RFC 8628 §3.5 allows.
pub fn prune(conn: &mut DbConnection, cutoff: Timestamp, limit: i64) -> QueryResult<usize> {
    let keys: Vec<String> = device_codes::table
        .filter(device_codes::expires_at.le(cutoff))
        .select(device_codes::device_code_hash)
        .limit(limit)
        .load(conn)?;
    if keys.is_empty() {
        return Ok(0);
    }
    diesel::delete(device_codes::table.filter(device_codes::device_code_hash.eq_any(&keys)))
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_consonants_shown_with_a_dash() {
        for _ in 0..200 {
            let c = new_user_code();
            assert_eq!(c.len(), USER_CODE_LEN);
            assert!(c.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)), "{c}");
            let shown = display_user_code(&c);
            assert_eq!(shown.len(), 9);
            assert_eq!(normalize_user_code(&shown).as_deref(), Some(c.as_str()));
        }
    }

    #[test]
    fn typed_codes_are_case_insensitive_and_the_dash_is_optional() {
        assert_eq!(
            normalize_user_code("bcdf-ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalize_user_code(" BCDFghjk ").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(
            normalize_user_code("ABCD-EFGH"),
            None,
            "vowels are not in it"
        );
        assert_eq!(normalize_user_code("BCDF-GHJK-L"), None);
    }
}
