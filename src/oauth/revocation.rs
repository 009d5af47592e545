//! Token revocation (RFC 7009). A refresh token takes its whole grant with it (every
//! access and refresh token of it, §2.1); an access token's `jti` goes on the revocation
//! list until it would have expired. Unknown tokens are a success (§2.2); another
//! client's token is refused and stays valid (§2.1, docs/security.md G6). The write commits
//! before the 200 (docs/security.md §2 (1), G7).

use diesel::prelude::*;

use super::codes::revoke_grant;
use crate::clients::store::ClientRow;
use crate::clock::Timestamp;
use crate::crypto::sha256_hex;
use crate::db::DbConnection;
use crate::db::schema::{refresh_tokens, revoked_jtis};
use crate::error::{ErrorCode, OAuthError};
use crate::metrics::Revocation;
use crate::tokens::keys::KeySet;
use crate::tokens::verify::{Expect, verify_access_token};

fn not_yours() -> OAuthError {
    OAuthError::new(
        ErrorCode::UnauthorizedClient,
        "The token was not issued to this client.",
    )
}

/// Revokes `token` on behalf of `client` (call in a write transaction). Returns what was
/// revoked now: nothing for an unknown, dead or already revoked token.
pub fn revoke(
    conn: &mut DbConnection,
    keys: &KeySet,
    expect: Expect<'_>,
    key_prefix: &str,
    client: &ClientRow,
    token: &str,
    now: Timestamp,
) -> Result<Option<Revocation>, OAuthError> {
    if token.matches('.').count() == 2 {
        let Some(claims) = verify_access_token(keys, token, expect) else {
            return Ok(None);
        };
        if claims.client_id != client.id {
            return Err(not_yours());
        }
        let exists = revoked_jtis::table
            .find(&claims.jti)
            .select(revoked_jtis::jti)
            .first::<String>(conn)
            .optional()?;
        if exists.is_none() {
            diesel::insert_into(revoked_jtis::table)
                .values((
                    revoked_jtis::jti.eq(&claims.jti),
                    revoked_jtis::revoked_at.eq(now),
                    revoked_jtis::expires_at.eq(claims.exp),
                ))
                .execute(conn)?;
            return Ok(Some(Revocation::AccessToken));
        }
        return Ok(None);
    }
    if token.starts_with(&format!("{key_prefix}_rt_")) {
        let row: Option<(String, String)> = refresh_tokens::table
            .find(sha256_hex(token))
            .select((refresh_tokens::grant_id, refresh_tokens::client_id))
            .first(conn)
            .optional()?;
        let Some((grant_id, owner)) = row else {
            return Ok(None);
        };
        if owner != client.id {
            return Err(not_yours());
        }
        let newly = revoke_grant(conn, &grant_id, now)?;
        return Ok(newly.then_some(Revocation::RefreshToken));
    }
    if crate::api_keys::format::parse(token, key_prefix).is_ok() {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedTokenType,
            "API keys are revoked through /api/v1/api-keys.",
        ));
    }
    Ok(None)
}

/// RFC 7009 §2.1: authenticates the client, then revokes `token` for it in one write
/// transaction; cached JWT liveness on this instance is void from the next request on.
pub fn revoke_for_client(
    conn: &mut DbConnection,
    st: &crate::app::AppState,
    presented: &super::client_auth::Presented,
    token: &str,
) -> Result<(), OAuthError> {
    let ctx = st.ctx();
    let client = super::client_auth::authenticate(
        conn,
        presented,
        super::client_assertion::Expect::at(&st.issuer, &st.settings, ctx.now),
    )?;
    let keys = st.keys.snapshot();
    let expect = Expect {
        issuer: &st.issuer,
        audiences: &[],
        leeway: st.settings.jwt_leeway_seconds,
        now: ctx.now,
    };
    let revoked = crate::db::write_tx(conn, |conn| {
        revoke(
            conn,
            &keys,
            expect,
            &st.settings.key_prefix,
            &client,
            token,
            ctx.now,
        )
    })?;
    ctx.tokens_changed();
    if let Some(kind) = revoked {
        ctx.revoked(kind);
    }
    Ok(())
}

/// Grants and access tokens revoked since `since` (grant ids and jtis), for the other
/// instances' caches (see `tokens::cache`).
pub fn revoked_since(conn: &mut DbConnection, since: Timestamp) -> QueryResult<Vec<String>> {
    use crate::db::schema::grants;
    let mut ids: Vec<String> = grants::table
        .filter(grants::revoked_at.ge(since))
        .select(grants::id)
        .load(conn)?;
    ids.extend(
        revoked_jtis::table
            .filter(revoked_jtis::revoked_at.ge(since))
            .select(revoked_jtis::jti)
            .load::<String>(conn)?,
    );
    Ok(ids)
}
