//! Verification of our own JWT access tokens (RFC 9068 §4, RFC 8725). Nothing in the
//! token chooses how it is checked: the key comes from our key set by `kid` (no `jku`,
//! `x5u` or `jwk` is ever fetched or used), the algorithm is the key's own, and the claims
//! are typed (`exp` as a string does not parse), with times checked against the injected
//! clock and a leeway of at most 60 s.

use jsonwebtoken::{Validation, decode, decode_header};

use super::jwt::AccessTokenClaims;
use super::keys::KeySet;
use crate::clock::Timestamp;

/// What a valid token must match.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    /// The `aud` values accepted (any one of them suffices); empty: any audience, since
    /// every token we sign names only audiences we issue for (introspection, revocation).
    pub audiences: &'a [&'a str],
    pub leeway: i64,
    pub now: Timestamp,
}

/// The claims of a token we issued that is valid at `now`, or `None`.
pub fn verify_access_token(
    keys: &KeySet,
    token: &str,
    expect: Expect<'_>,
) -> Option<AccessTokenClaims> {
    if token.len() > 8192 || token.split('.').count() != 3 {
        return None;
    }
    let header = decode_header(token).ok()?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    // We never issue these; a token carrying them is not ours (RFC 8725 §3.10).
    let foreign = header.jku.is_some()
        || header.jwk.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some();
    if !typ_ok || foreign {
        return None;
    }
    let kid = header
        .kid
        .as_deref()
        .filter(|k| k.len() <= 64 && k.bytes().all(|b| b.is_ascii_alphanumeric()))?;
    let key = keys.get(kid)?;
    // An ID-token key never vouches for an access token (docs/spec.md §9).
    if header.alg != key.jose_alg || key.purpose != super::keys::KeyUse::Access {
        return None;
    }
    let mut v = Validation::new(key.jose_alg);
    // Times are checked below against our clock; the library would read the system's.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    v.set_issuer(&[expect.issuer]);
    if expect.audiences.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(expect.audiences);
    }
    let claims = decode::<AccessTokenClaims>(token, key.decoding.as_ref()?, &v)
        .ok()?
        .claims;
    within_lifetime(&claims, expect).then_some(claims)
}

/// `exp`, `iat` and `nbf` against the clock, with the leeway.
pub fn within_lifetime(claims: &AccessTokenClaims, expect: Expect<'_>) -> bool {
    expect.now < claims.exp + expect.leeway
        && claims.iat <= expect.now + expect.leeway
        && claims
            .nbf
            .is_none_or(|nbf| nbf <= expect.now + expect.leeway)
}
