//! Who a management credential acts as (docs/spec.md §5): an API key (counted against its
//! rate limit; its creator's current role, or admin for a CLI-made key) or a user's access
//! token carrying `admin` (its user, in the organization named by `Tessera-Organization`
//! when they belong to several). `/api/v1` and RFC 7591 registration authenticate here.

use super::{Actor, Role};
use crate::api_keys::ratelimit::RateState;
use crate::api_keys::verify::{self, Code, Counting};
use crate::app::AppState;
use crate::db::DbConnection;
use crate::error::AppError;
use crate::scope::{MANAGEMENT_SCOPE, ScopeSet};

/// The `Tessera-Organization` header picks the organization when a user token's user
/// belongs to several.
pub const ORG_HEADER: &str = "Tessera-Organization";

/// Why a bearer credential cannot act (RFC 6750 §3.1 where it applies).
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    /// 401 `invalid_token`.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// 403 `insufficient_scope`: the credential lacks [`MANAGEMENT_SCOPE`].
    #[error("The credential lacks the scope admin.")]
    InsufficientScope,
    /// 429: the key's window is full; retry after `wait` seconds.
    #[error("Rate limit exceeded. Please retry after {wait} seconds.")]
    RateLimited { rate: Box<RateState>, wait: i64 },
    /// 403.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: the named organization is not one of the user's.
    #[error("No such organization.")]
    NoSuchOrganization,
    /// 400: the user belongs to several organizations and named none.
    #[error("The user belongs to several organizations: name one in the {ORG_HEADER} header.")]
    AmbiguousOrganization,
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for BearerError {
    fn from(e: diesel::result::Error) -> Self {
        Self::App(AppError::from_db(e))
    }
}

/// The actor of a bearer credential, with the key's rate-limit state (API keys only).
/// On failure, the rate-limit state is returned beside the error (a counted key's
/// answer carries its headers whatever the verdict). The credential must carry
/// [`MANAGEMENT_SCOPE`].
pub fn resolve(
    conn: &mut DbConnection,
    st: &AppState,
    token: &str,
    org_hint: Option<&str>,
) -> Result<(Actor, Option<RateState>), (BearerError, Option<RateState>)> {
    resolve_accepting(conn, st, token, org_hint, &[MANAGEMENT_SCOPE])
}

/// [`resolve`] for a credential that must carry one of `accepted` (e.g. `analytics:read`
/// or `admin` for the usage report, docs/spec.md §10). An API key is looked up without
/// counting, then decided once, counted, against the first accepted scope it carries.
pub fn resolve_accepting(
    conn: &mut DbConnection,
    st: &AppState,
    token: &str,
    org_hint: Option<&str>,
    accepted: &[&str],
) -> Result<(Actor, Option<RateState>), (BearerError, Option<RateState>)> {
    let now = st.clock.now();
    if token.matches('.').count() == 2 {
        return access_token_actor(conn, st, token, org_hint, accepted, now)
            .map(|a| (a, None))
            .map_err(|e| (e, None));
    }
    let first = accepted.first().copied().unwrap_or(MANAGEMENT_SCOPE);
    let peeked = verify::check(
        conn,
        &st.api_keys,
        &st.settings.plan_limits,
        &st.settings.key_prefix,
        token,
        &ScopeSet::default(),
        Counting::Peek,
        now,
    )
    .map_err(|e| (BearerError::from(e), None))?;
    let v = match peeked.key {
        None => peeked,
        Some(key) => {
            // A publishable key never reads the organization's data, whatever an older
            // row says (docs/spec.md §5; `store::NOT_PUBLISHABLE`): it is refused for lack
            // of a scope it cannot have (`admin` is not a read scope).
            let publishable = key.key_type == crate::api_keys::KeyType::Publishable;
            let usable = |s: &&&str| {
                key.scopes.contains(s)
                    && !(publishable && crate::api_keys::store::NOT_PUBLISHABLE.contains(*s))
            };
            let wanted = accepted
                .iter()
                .find(usable)
                .copied()
                .unwrap_or(if publishable { MANAGEMENT_SCOPE } else { first });
            let required = ScopeSet::parse(wanted).unwrap_or_default();
            verify::decide(&st.api_keys, key, &required, Counting::Count, now)
                .map_err(|e| (BearerError::from(e), None))?
        }
    };
    let rate = v.rate;
    let fail = |e: BearerError| Err((e, rate));
    let key = match (v.code, v.key) {
        (Code::Valid, Some(key)) => key,
        (Code::NotFound, _) | (Code::Valid, None) => {
            return fail(BearerError::InvalidToken("The credential is not valid."));
        }
        (Code::Expired, _) => return fail(BearerError::InvalidToken("The API key has expired.")),
        (Code::Revoked, _) => {
            return fail(BearerError::InvalidToken("The API key has been revoked."));
        }
        (Code::InsufficientScope, _) => return fail(BearerError::InsufficientScope),
        (Code::RateLimited, _) => {
            let empty = crate::api_keys::ratelimit::Budget {
                limit: 0,
                remaining: 0,
            };
            let rate = rate.unwrap_or(RateState::new(empty, None, now));
            return fail(BearerError::RateLimited {
                rate: Box::new(rate),
                wait: rate.retry_after(now),
            });
        }
    };
    let role = match &key.created_by {
        None => Role::Admin,
        Some(user) => match crate::orgs::store::role_of(conn, &key.org_id, user) {
            Ok(Some(role)) => role,
            Ok(None) => {
                return fail(BearerError::Forbidden(
                    "The user who made this key is no longer a member of its organization.",
                ));
            }
            Err(e) => return fail(e.into()),
        },
    };
    Ok((
        Actor {
            org_id: key.org_id.clone(),
            user_id: key.created_by.clone(),
            role,
            label: format!("key:{}", key.id),
        },
        rate,
    ))
}

fn access_token_actor(
    conn: &mut DbConnection,
    st: &AppState,
    token: &str,
    org_hint: Option<&str>,
    accepted: &[&str],
    now: i64,
) -> Result<Actor, BearerError> {
    let keys = st.keys.snapshot();
    // docs/spec.md §8: `/api/v1` accepts tokens meant for it (RFC 8707 resource
    // `{issuer}/api/v1`) or for the default audience, and no other resource's.
    let api = crate::oauth::resource::api_resource(&st.issuer);
    let audiences = [st.audience.as_str(), api.as_str()];
    let expect = crate::tokens::verify::Expect {
        issuer: &st.issuer,
        audiences: &audiences,
        leeway: st.settings.jwt_leeway_seconds,
        now,
    };
    let invalid =
        || BearerError::InvalidToken("The access token is not valid, expired or revoked.");
    let claims =
        crate::tokens::verify::verify_access_token(&keys, token, expect).ok_or_else(invalid)?;
    if crate::introspection::jti_revoked(conn, &claims.jti)? {
        return Err(invalid());
    }
    if let Some(gid) = &claims.gid
        && !crate::introspection::grant_live(conn, gid)?
    {
        return Err(invalid());
    }
    let scopes = ScopeSet::parse(&claims.scope).map_err(|_| invalid())?;
    if !accepted.iter().any(|s| scopes.contains(s)) {
        return Err(BearerError::InsufficientScope);
    }
    if claims.sub == claims.client_id {
        return Err(BearerError::Forbidden(
            "A client's own token cannot manage an organization; use a user's token or an API key.",
        ));
    }
    let orgs = crate::orgs::store::orgs_of(conn, &claims.sub)?;
    let org_id = match (org_hint, orgs.as_slice()) {
        (Some(o), _) if orgs.iter().any(|m| m == o) => o.to_string(),
        (Some(_), _) => return Err(BearerError::NoSuchOrganization),
        (None, [only]) => only.clone(),
        (None, []) => {
            return Err(BearerError::Forbidden(
                "The user belongs to no organization.",
            ));
        }
        (None, _) => return Err(BearerError::AmbiguousOrganization),
    };
    let role = crate::orgs::store::role_of(conn, &org_id, &claims.sub)?
        .ok_or(BearerError::NoSuchOrganization)?;
    Ok(Actor {
        org_id,
        user_id: Some(claims.sub.clone()),
        role,
        label: format!("user:{}", claims.sub),
    })
}
