//! Token introspection (RFC 7662): one answer shape for JWT access tokens, refresh tokens
//! and API keys. Anything not active — unknown, expired, revoked, forged, garbage — is
//! `{"active": false}` and nothing more (§2.2). The hot path is one signature check or one
//! indexed lookup, plus the revocation lookups; no writes.

use diesel::prelude::*;
use serde_json::{Value, json};

use crate::api_keys::format as key_format;
use crate::clock::Timestamp;
use crate::crypto::sha256_hex;
use crate::db::DbConnection;
use crate::db::schema::{grants, refresh_tokens, revoked_jtis};
use crate::tokens::keys::KeySet;
use crate::tokens::verify::{Expect, verify_access_token, within_lifetime};

#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub keys: &'a KeySet,
    pub issuer: &'a str,
    /// The default audience (`--audience`); with `<issuer>/api/v1` and the registered
    /// resource URIs, the audiences a token of ours may name (docs/spec.md §8).
    pub audience: &'a str,
    pub leeway: i64,
    pub key_prefix: &'a str,
    pub api_keys: &'a crate::api_keys::verify::KeyRuntime,
    pub live_tokens: &'a crate::tokens::cache::LiveTokens,
    pub plans: &'a crate::config::PlanLimits,
    pub now: Timestamp,
}

impl Context<'_> {
    fn expect(&self) -> Expect<'_> {
        Expect {
            issuer: self.issuer,
            // Checked against the known resources by `access_token_live` (it needs the
            // database); which resource server may see the token is `for_caller`'s.
            audiences: &[],
            leeway: self.leeway,
            now: self.now,
        }
    }
}

/// How far a JWT access token gets without the database.
pub enum JwtCheck {
    /// The answer: inactive (it does not verify, or is past its lifetime), or active
    /// from the liveness cache.
    Done(Value),
    /// Signature and claims are good; its revocation status needs [`access_token_live`].
    Verified(crate::tokens::jwt::AccessTokenClaims),
}

/// The checks of a JWT access token that need no database. The signature is verified at
/// most once per request: a `Verified` result carries the claims on.
pub fn access_token_cached(ctx: Context<'_>, token: &str) -> JwtCheck {
    if let Some(c) = ctx.live_tokens.get(token, &ctx.api_keys.health) {
        return JwtCheck::Done(if within_lifetime(&c, ctx.expect()) {
            active_answer(&c)
        } else {
            inactive()
        });
    }
    match verify_access_token(ctx.keys, token, ctx.expect()) {
        None => JwtCheck::Done(inactive()),
        Some(c) => JwtCheck::Verified(c),
    }
}

/// The revocation lookups for verified claims: the `jti` list, and the grant (or, for a
/// `client_credentials` token, its client). A live answer is cached.
pub fn access_token_live(
    conn: &mut DbConnection,
    ctx: Context<'_>,
    token: &str,
    c: crate::tokens::jwt::AccessTokenClaims,
) -> QueryResult<Value> {
    // Read before the lookups: a revocation committing meanwhile voids what we store.
    let epoch = ctx.live_tokens.epoch();
    // docs/security.md F4: every audience must be one we issue for.
    if c.aud.0.is_empty()
        || !crate::oauth::resource::all_known(conn, ctx.issuer, ctx.audience, &c.aud.0)?
    {
        return Ok(inactive());
    }
    if jti_revoked(conn, &c.jti)? {
        return Ok(inactive());
    }
    match &c.gid {
        Some(gid) if !grant_live(conn, gid)? => return Ok(inactive()),
        // A client_credentials token has no grant: it lives as long as its client.
        None if crate::clients::store::find(conn, &c.client_id)?.is_none() => {
            return Ok(inactive());
        }
        _ => {}
    }
    let answer = active_answer(&c);
    ctx.live_tokens.remember(token, c, epoch);
    Ok(answer)
}

fn active_answer(c: &crate::tokens::jwt::AccessTokenClaims) -> Value {
    json!({
        "active": true,
        "token_type": "Bearer",
        "scope": c.scope,
        "client_id": c.client_id,
        "sub": c.sub,
        "aud": c.aud,
        "iss": c.iss,
        "exp": c.exp,
        "iat": c.iat,
        "jti": c.jti,
    })
}

/// docs/spec.md §8: a resource server that registered resource URIs sees only access
/// tokens whose `aud` names one of them; anything else is inactive for it. One without
/// resources sees every active token.
pub fn for_caller(answer: Value, caller_resources: &[String]) -> Value {
    if caller_resources.is_empty() || answer.get("active") != Some(&Value::Bool(true)) {
        return answer;
    }
    let named = |a: &Value| {
        a.as_str()
            .is_some_and(|a| caller_resources.iter().any(|r| r == a))
    };
    let meant = answer.get("token_type").and_then(Value::as_str) == Some("Bearer")
        && match answer.get("aud") {
            Some(Value::Array(auds)) => auds.iter().any(named),
            Some(a) => named(a),
            None => false,
        };
    if meant { answer } else { inactive() }
}

pub fn inactive() -> Value {
    json!({"active": false})
}

/// True when the grant exists and is not revoked.
pub fn grant_live(conn: &mut DbConnection, grant_id: &str) -> QueryResult<bool> {
    let revoked: Option<Option<i64>> = grants::table
        .find(grant_id)
        .select(grants::revoked_at)
        .first(conn)
        .optional()?;
    Ok(matches!(revoked, Some(None)))
}

pub fn jti_revoked(conn: &mut DbConnection, jti: &str) -> QueryResult<bool> {
    revoked_jtis::table
        .find(jti)
        .select(revoked_jtis::jti)
        .first::<String>(conn)
        .optional()
        .map(|r| r.is_some())
}

/// Introspects `token`. Database errors (and an unreachable rate-limit store) are
/// returned, never turned into an answer.
pub fn introspect(
    conn: &mut DbConnection,
    ctx: Context<'_>,
    token: &str,
) -> Result<Value, crate::error::AppError> {
    if token.matches('.').count() == 2 {
        return Ok(access_token(conn, ctx, token)?);
    }
    if token.starts_with(&format!("{}_rt_", ctx.key_prefix)) {
        return Ok(refresh_token(conn, ctx, token)?);
    }
    if key_format::parse(token, ctx.key_prefix).is_ok() {
        return api_key(conn, ctx, token);
    }
    Ok(inactive())
}

fn access_token(conn: &mut DbConnection, ctx: Context<'_>, token: &str) -> QueryResult<Value> {
    match access_token_cached(ctx, token) {
        JwtCheck::Done(answer) => Ok(answer),
        JwtCheck::Verified(c) => access_token_live(conn, ctx, token, c),
    }
}

fn refresh_token(conn: &mut DbConnection, ctx: Context<'_>, token: &str) -> QueryResult<Value> {
    type Row = (
        String,
        String,
        Option<String>,
        String,
        i64,
        i64,
        i64,
        Option<i64>,
        Option<i64>,
    );
    let row: Option<Row> = refresh_tokens::table
        .find(sha256_hex(token))
        .select((
            refresh_tokens::grant_id,
            refresh_tokens::client_id,
            refresh_tokens::user_id,
            refresh_tokens::scope,
            refresh_tokens::created_at,
            refresh_tokens::expires_at,
            refresh_tokens::absolute_expires_at,
            refresh_tokens::rotated_at,
            refresh_tokens::revoked_at,
        ))
        .first(conn)
        .optional()?;
    let Some((grant_id, client_id, user_id, scope, iat, idle, absolute, rotated, revoked)) = row
    else {
        return Ok(inactive());
    };
    let exp = idle.min(absolute);
    if rotated.is_some() || revoked.is_some() || ctx.now >= exp || !grant_live(conn, &grant_id)? {
        return Ok(inactive());
    }
    Ok(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": scope,
        "client_id": client_id,
        "sub": user_id.unwrap_or_else(|| client_id.clone()),
        "iss": ctx.issuer,
        "exp": exp,
        "iat": iat,
    }))
}

fn api_key(
    conn: &mut DbConnection,
    ctx: Context<'_>,
    token: &str,
) -> Result<Value, crate::error::AppError> {
    use crate::api_keys::verify::{self, Counting};
    let v = verify::check(
        conn,
        ctx.api_keys,
        ctx.plans,
        ctx.key_prefix,
        token,
        &crate::scope::ScopeSet::default(),
        Counting::Peek,
        ctx.now,
    )?;
    Ok(api_key_answer(ctx.issuer, v))
}

/// The introspection answer for a checked API key (docs/spec.md §5).
pub fn api_key_answer(issuer: &str, v: crate::api_keys::verify::Verification) -> Value {
    use crate::api_keys::verify;
    let (Some(key), Some(rate), true) = (v.key, v.rate, v.code == verify::Code::Valid) else {
        return inactive();
    };
    let mut out = json!({
        "active": true,
        "token_type": "api_key",
        "scope": key.scopes.to_string(),
        "org_id": key.org_id,
        "key_id": key.id,
        "iss": issuer,
        "iat": key.created_at,
        // An extension member (RFC 7662 §2.2): the key's budget, not spent by introspection.
        "ratelimit": rate,
    });
    if let Some(e) = key.expires_at
        && let Some(o) = out.as_object_mut()
    {
        o.insert("exp".into(), json!(e));
    }
    out
}
