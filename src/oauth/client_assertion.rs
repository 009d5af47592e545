//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, RFC 7521 §4.2, OIDC
//! Core §9; docs/spec.md §8, docs/security.md D13): the client sends
//! `client_assertion_type` = [`ASSERTION_TYPE`] and `client_assertion`, a JWT signed by
//! one of the keys it registered (`clients::jwks`). Nothing in the assertion chooses how it
//! is checked: no `jku`, `jwk`, `x5u` or `x5c` is used (RFC 8725 §3.10), the algorithm is
//! one of [`SIGNING_ALGS`] and must be the key's own (`none` and HMAC never verify), and
//! the claims are typed. Every failure is `invalid_client` (RFC 7521 §4.2.1), counted by
//! the client-authentication throttle like a wrong secret (docs/security.md K2).

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use crate::clients::jwks::KeySet;
pub use crate::clients::jwks::SIGNING_ALGS;
use crate::clients::store::ClientRow;
use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::client_assertion_jtis;
use crate::error::OAuthError;

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An assertion's `exp` may be at most this many seconds after now (plus the leeway),
/// which bounds how long its `jti` is stored.
pub const MAX_LIFETIME_SECONDS: i64 = 300;

/// Longest assertion read, in bytes.
const MAX_ASSERTION_BYTES: usize = 8192;
/// Longest `jti` accepted, in characters.
const MAX_JTI_CHARS: usize = 256;

/// The JWK set fetched from a client's `jwks_uri` for one request (docs/spec.md §8): the
/// HTTP layer fetches it before the database work (`crate::http::client_keys`), and
/// [`verify`] uses it only for the client that registered exactly this `uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedKeys {
    /// The `jwks_uri` it was fetched from.
    pub uri: String,
    /// Its canonical JSON (`clients::jwks_uri::keys_of`).
    pub jwks: String,
}

/// The key an assertion's header asks for: its `alg` (one of [`SIGNING_ALGS`]) and `kid`,
/// read without verifying anything; `None` for a header that does not parse.
pub fn wanted_key(assertion: &str) -> Option<(Algorithm, Option<String>)> {
    decode_header(assertion).ok().map(|h| (h.alg, h.kid))
}

/// What the assertion is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The issuer identifier; `aud` must be it or `<issuer>/oauth/token`.
    pub issuer: &'a str,
    /// The house leeway for `exp`, `iat` and `nbf`, seconds (`--jwt-leeway-seconds`).
    pub leeway: i64,
    pub now: Timestamp,
}

impl<'a> Expect<'a> {
    /// The expectations of this server at `now`.
    pub fn at(issuer: &'a str, settings: &crate::config::Settings, now: Timestamp) -> Self {
        Self {
            issuer,
            leeway: settings.jwt_leeway_seconds,
            now,
        }
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims RFC 7523 §3 requires, typed: a string `exp` does not parse.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// `invalid_client`, with the one body every cause shares (docs/security.md D4); the
/// rule broken goes to the log only (no part of the assertion is logged).
fn refused(reason: &'static str) -> OAuthError {
    tracing::info!(reason, "client assertion refused");
    OAuthError::invalid_client()
}

/// The client id an assertion names (`sub`, else `iss`), read without verifying it: the
/// client to look up when the request carries no `client_id` (RFC 7521 §4.2). The
/// verification ([`verify`]) then requires `iss` = `sub` = that client.
pub fn unverified_client_id(assertion: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Names {
        iss: Option<String>,
        sub: Option<String>,
    }
    use base64::Engine;
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let names: Names = serde_json::from_slice(&bytes).ok()?;
    names.sub.or(names.iss)
}

/// RFC 7523 §3: verifies `assertion` as `client`'s authentication and uses up its `jti`
/// (stored until `exp`; a second use, even concurrent, is refused). `Err` is always
/// `invalid_client`, with a description of the first rule broken.
pub fn verify(
    conn: &mut DbConnection,
    client: &ClientRow,
    assertion: &str,
    fetched: Option<&FetchedKeys>,
    expect: Expect<'_>,
) -> Result<(), OAuthError> {
    let claims = verified_claims(client, assertion, fetched)?;
    check_claims(client, &claims, expect)?;
    let jti = claims
        .jti
        .as_deref()
        .filter(|j| !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS)
        .ok_or_else(|| {
            refused("The client assertion needs a jti of 1 to 256 characters (single use).")
        })?;
    use_jti(conn, &client.id, jti, claims.exp)
}

/// The header and signature checks: the claims of an assertion signed by one of the
/// client's keys (its `jwks`, or the set `fetched` from its `jwks_uri`).
fn verified_claims(
    client: &ClientRow,
    assertion: &str,
    fetched: Option<&FetchedKeys>,
) -> Result<Claims, OAuthError> {
    if assertion.len() > MAX_ASSERTION_BYTES || assertion.split('.').count() != 3 {
        return Err(refused("The client assertion is not a signed JWT."));
    }
    // `none` is no member of jsonwebtoken's `Algorithm`: such a header does not parse.
    let header = decode_header(assertion).map_err(|_| {
        refused("The client assertion's header is malformed or its alg unsupported.")
    })?;
    if header.jku.is_some()
        || header.jwk.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some()
    {
        return Err(refused(
            "The client assertion's header may not carry jku, jwk, x5u, x5c or crit.",
        ));
    }
    let alg = header.alg;
    if !matches!(alg, Algorithm::ES256 | Algorithm::RS256 | Algorithm::EdDSA) {
        return Err(refused(
            "The client assertion's alg must be ES256, RS256 or EdDSA.",
        ));
    }
    let set = match (&client.jwks_uri, fetched) {
        (Some(uri), Some(f)) if f.uri == *uri => Some(f.jwks.as_str()),
        (Some(_), _) => None,
        (None, _) => client.jwks.as_deref(),
    };
    let keys = set
        .and_then(KeySet::parse)
        .ok_or_else(|| refused("The client has no keys for private_key_jwt."))?;
    let mut v = Validation::new(alg);
    // Times and audience are checked by `check_claims` against our clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v.set_required_spec_claims::<&str>(&[]);
    for jwk in keys.candidates(alg, header.kid.as_deref()) {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match decode::<Claims>(assertion, &key, &v) {
            Ok(data) => return Ok(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::Json(_)) => {
                return Err(refused(
                    "The client assertion's claims are malformed: iss, sub, aud and a numeric exp are required.",
                ));
            }
            Err(_) => {}
        }
    }
    Err(refused(
        "The client assertion's signature matches none of the client's keys.",
    ))
}

/// RFC 7523 §3 claims: `iss` = `sub` = the client; `aud` the issuer or the token
/// endpoint; `exp` in the future but at most [`MAX_LIFETIME_SECONDS`] ahead; `iat` and
/// `nbf` not in the future; each within the leeway.
fn check_claims(client: &ClientRow, c: &Claims, e: Expect<'_>) -> Result<(), OAuthError> {
    if c.iss != client.id || c.sub != client.id {
        return Err(refused(
            "The client assertion's iss and sub must both be the client_id.",
        ));
    }
    let token_endpoint = format!("{}/oauth/token", e.issuer);
    let ours = |a: &String| a == e.issuer || *a == token_endpoint;
    let aud_ok = match &c.aud {
        Audience::One(a) => ours(a),
        Audience::Many(list) => list.iter().any(ours),
    };
    if !aud_ok {
        return Err(refused(
            "The client assertion's aud must be the issuer or the token endpoint.",
        ));
    }
    if c.exp + e.leeway <= e.now {
        return Err(refused("The client assertion has expired."));
    }
    if c.exp > e.now + MAX_LIFETIME_SECONDS + e.leeway {
        return Err(refused(
            "The client assertion's exp is more than 300 seconds ahead.",
        ));
    }
    if c.iat.is_some_and(|iat| iat > e.now + e.leeway) {
        return Err(refused("The client assertion's iat is in the future."));
    }
    if c.nbf.is_some_and(|nbf| nbf > e.now + e.leeway) {
        return Err(refused("The client assertion is not valid yet (nbf)."));
    }
    Ok(())
}

/// Records the `jti` as used until `exp`; a second use (the row exists, whoever inserted
/// it first) is refused. One insert against the primary key decides a race.
fn use_jti(
    conn: &mut DbConnection,
    client_id: &str,
    jti: &str,
    exp: Timestamp,
) -> Result<(), OAuthError> {
    use diesel::prelude::*;
    let hash = crate::crypto::sha256_hex(&format!("{client_id}\n{jti}"));
    let inserted = diesel::insert_into(client_assertion_jtis::table)
        .values((
            client_assertion_jtis::jti_hash.eq(&hash),
            client_assertion_jtis::client_id.eq(client_id),
            client_assertion_jtis::expires_at.eq(exp),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(()),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Err(refused("The client assertion was already used (jti).")),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unverified_client_id_is_sub_then_iss() {
        use base64::Engine;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let a = format!("{}.{}.sig", enc("{}"), enc(r#"{"iss":"i","sub":"s"}"#));
        assert_eq!(unverified_client_id(&a).as_deref(), Some("s"));
        let a = format!("{}.{}.sig", enc("{}"), enc(r#"{"iss":"i"}"#));
        assert_eq!(unverified_client_id(&a).as_deref(), Some("i"));
        assert_eq!(unverified_client_id("not a jwt"), None);
    }
}
