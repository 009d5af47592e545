//! Authorization codes (RFC 6749 §4.1.2, §10.5): 256-bit random, stored as SHA-256, single
//! use decided by a conditional UPDATE, 60 s, bound to client, redirect URI, PKCE challenge
//! and scope. A replayed code revokes the grant it started (docs/security.md C1).

use diesel::prelude::*;

use crate::clock::Timestamp;
use crate::crypto::{constant_time_eq, random_token, sha256_hex};
use crate::db::DbConnection;
use crate::db::schema::{authorization_codes, grants, refresh_tokens};
use crate::error::{ErrorCode, OAuthError};
use crate::scope::ScopeSet;

/// What a code is issued for.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    pub client_id: &'a str,
    pub user_id: &'a str,
    /// The authorization request's `redirect_uri` exactly as sent ("" when omitted).
    pub redirect_uri: &'a str,
    pub scope: &'a ScopeSet,
    pub code_challenge: &'a str,
    /// RFC 8707: the resources the authorization request named (none: the default
    /// audience), sorted.
    pub resources: &'a [String],
    /// OpenID Connect Core §3.1.2.1 `nonce`, for the ID token.
    pub nonce: Option<&'a str>,
    /// When the person signed in (epoch seconds): the ID token's `auth_time`.
    pub auth_time: Timestamp,
}

/// Starts a grant and issues its code. Returns the plaintext code.
pub fn issue(
    conn: &mut DbConnection,
    new: &NewCode<'_>,
    ttl: i64,
    now: Timestamp,
) -> QueryResult<String> {
    let grant_id = crate::crypto::new_id("grt_");
    diesel::insert_into(grants::table)
        .values((
            grants::id.eq(&grant_id),
            grants::client_id.eq(new.client_id),
            grants::user_id.eq(new.user_id),
            grants::scope.eq(new.scope.to_string()),
            grants::created_at.eq(now),
            grants::resource.eq(super::resource::to_column(new.resources)),
            grants::auth_time.eq(Some(new.auth_time)),
        ))
        .execute(conn)?;
    let code = random_token();
    diesel::insert_into(authorization_codes::table)
        .values((
            authorization_codes::code_hash.eq(sha256_hex(&code)),
            authorization_codes::client_id.eq(new.client_id),
            authorization_codes::user_id.eq(new.user_id),
            authorization_codes::grant_id.eq(&grant_id),
            authorization_codes::redirect_uri.eq(new.redirect_uri),
            authorization_codes::scope.eq(new.scope.to_string()),
            authorization_codes::code_challenge.eq(new.code_challenge),
            authorization_codes::created_at.eq(now),
            authorization_codes::expires_at.eq(now + ttl),
            authorization_codes::nonce.eq(new.nonce),
            authorization_codes::auth_time.eq(Some(new.auth_time)),
        ))
        .execute(conn)?;
    Ok(code)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = authorization_codes)]
struct CodeRow {
    client_id: String,
    user_id: String,
    grant_id: String,
    redirect_uri: String,
    scope: String,
    code_challenge: String,
    expires_at: i64,
    nonce: Option<String>,
    auth_time: Option<i64>,
}

/// A redeemed code: the grant it belongs to.
#[derive(Debug, Clone)]
pub struct Redeemed {
    pub grant_id: String,
    pub user_id: String,
    pub scope: ScopeSet,
    /// The authorization request's `nonce` (OpenID Connect Core §3.1.2.1).
    pub nonce: Option<String>,
    /// When the person signed in, epoch seconds.
    pub auth_time: Option<Timestamp>,
}

fn invalid_grant(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, description)
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge.
pub fn s256(verifier: &str) -> String {
    use base64::Engine;
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Revokes a grant and every refresh token of it; true when the grant was live until now.
pub fn revoke_grant(conn: &mut DbConnection, grant_id: &str, now: Timestamp) -> QueryResult<bool> {
    let newly = diesel::update(
        grants::table
            .find(grant_id)
            .filter(grants::revoked_at.is_null()),
    )
    .set(grants::revoked_at.eq(now))
    .execute(conn)?;
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::grant_id.eq(grant_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(now))
    .execute(conn)?;
    Ok(newly > 0)
}

/// Revokes every live grant of `user_id` (each app they authorized, by any flow) with its
/// refresh tokens, codes and access tokens (BCP §4.14.2: on a password change); the
/// consents stay, so an app asks the person to sign in, not to consent again. Returns how
/// many grants were live. Call in the write transaction of the change, then
/// `Ctx::tokens_changed`; other instances see `grants.revoked_at` in their change poll.
pub fn revoke_grants_of_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: Timestamp,
) -> QueryResult<usize> {
    let live: Vec<String> = grants::table
        .filter(grants::user_id.eq(user_id))
        .filter(grants::revoked_at.is_null())
        .select(grants::id)
        .load(conn)?;
    for id in &live {
        revoke_grant(conn, id, now)?;
    }
    Ok(live.len())
}

/// Redeems a code for `client_id` (RFC 6749 §4.1.3). Call in a write transaction: the
/// conditional UPDATE decides a race between redemptions (exactly one wins, C2).
pub fn redeem(
    conn: &mut DbConnection,
    code: &str,
    client_id: &str,
    redirect_uri: Option<&str>,
    verifier: &str,
    now: Timestamp,
) -> Result<Redeemed, OAuthError> {
    let hash = sha256_hex(code);
    let row = authorization_codes::table
        .find(&hash)
        .select(CodeRow::as_select())
        .first(conn)
        .optional()?;
    let Some(CodeRow {
        client_id: code_client,
        user_id,
        grant_id,
        redirect_uri: bound_redirect,
        scope,
        code_challenge: challenge,
        expires_at,
        nonce,
        auth_time,
    }) = row
    else {
        return Err(invalid_grant("The code is invalid."));
    };
    // Bound to the client it was issued to (C4); another client cannot burn it either.
    if code_client != client_id {
        return Err(invalid_grant("The code is invalid."));
    }
    let consumed = diesel::update(
        authorization_codes::table
            .find(&hash)
            .filter(authorization_codes::consumed_at.is_null()),
    )
    .set(authorization_codes::consumed_at.eq(now))
    .execute(conn)?;
    if consumed == 0 {
        // A replay: whoever holds this code also got the first tokens. Revoke them (C1).
        revoke_grant(conn, &grant_id, now)?;
        tracing::warn!(%grant_id, %client_id, "authorization code replayed; grant revoked");
        return Err(invalid_grant("The code is invalid."));
    }
    if now >= expires_at {
        return Err(invalid_grant("The code has expired."));
    }
    let redirect_ok = match (bound_redirect.as_str(), redirect_uri) {
        ("", None) => true,
        (bound, Some(sent)) => bound == sent,
        (_, None) => false,
    };
    if !redirect_ok {
        return Err(invalid_grant(
            "redirect_uri does not match the authorization request.",
        ));
    }
    if !valid_verifier(verifier)
        || !constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
    {
        return Err(invalid_grant(
            "The code_verifier does not match the code_challenge.",
        ));
    }
    let revoked: Option<Option<i64>> = grants::table
        .find(&grant_id)
        .select(grants::revoked_at)
        .first(conn)
        .optional()?;
    if !matches!(revoked, Some(None)) {
        return Err(invalid_grant("The grant was revoked."));
    }
    let scope = ScopeSet::parse(&scope).map_err(|_| invalid_grant("The code is invalid."))?;
    Ok(Redeemed {
        grant_id,
        user_id,
        scope,
        nonce,
        auth_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b6_s256_matches_the_rfc_7636_appendix_b_vector() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn b4_verifier_syntax_is_enforced() {
        assert!(valid_verifier(&"a".repeat(43)));
        assert!(valid_verifier(&"a".repeat(128)));
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn c6_codes_are_unique_and_carry_at_least_128_bits() {
        use base64::Engine;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let c = random_token();
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&c)
                .expect("b64");
            assert!(raw.len() >= 16);
            assert!(seen.insert(c));
        }
    }
}
