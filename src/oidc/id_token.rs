//! ID tokens (OpenID Connect Core §2, §3.1.3.6, §12.2): issued with the access token when
//! the granted scope has `openid`, signed by the ID-token key of the client's algorithm
//! (RS256 unless the client registered `id_token_signed_response_alg`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::claims::ProfileClaims;
use crate::clock::Timestamp;
use crate::tokens::keys::{KeyError, KeySet, KeyUse, Keystore, Lane, SigningAlg};

/// OpenID Connect Core §2 claims, plus the profile claims of the granted scopes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The client id.
    pub aud: String,
    pub exp: Timestamp,
    pub iat: Timestamp,
    /// When the person signed in (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<Timestamp>,
    /// The authorization request's `nonce`; absent on refreshes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// OpenID Connect Core §3.1.3.6: the left half of the hash of the access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The client the token was issued to.
    pub azp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What an ID token is issued for.
#[derive(Debug, Clone)]
pub struct IdTokenRequest<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub user_id: &'a str,
    /// The access token issued with it (for `at_hash`).
    pub access_token: &'a str,
    pub nonce: Option<&'a str>,
    pub auth_time: Option<Timestamp>,
    /// Seconds.
    pub lifetime: i64,
    pub alg: SigningAlg,
    pub profile: ProfileClaims,
}

/// OpenID Connect Core §3.1.3.6 `at_hash`: base64url of the left-most half of the hash
/// of the access token's ASCII, with the hash of the JWS algorithm (SHA-256 for RS256 and
/// ES256; SHA-512 for EdDSA over Ed25519, as OpenID Connect's errata set and certified
/// relying parties check).
pub fn at_hash(access_token: &str, alg: SigningAlg) -> String {
    let algorithm = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => &ring::digest::SHA256,
        SigningAlg::EdDSA => &ring::digest::SHA512,
    };
    let digest = ring::digest::digest(algorithm, access_token.as_bytes());
    let bytes = digest.as_ref();
    URL_SAFE_NO_PAD.encode(bytes.get(..bytes.len() / 2).unwrap_or(bytes))
}

/// Signs an ID token valid from `now` for `req.lifetime` seconds with the active ID-token
/// key of `req.alg`. Errors: no such key, or this instance lacks its private file.
pub fn issue(keys: &Keystore, req: IdTokenRequest<'_>, now: Timestamp) -> Result<String, KeyError> {
    let claims = IdTokenClaims {
        iss: req.issuer.to_string(),
        sub: req.user_id.to_string(),
        aud: req.client_id.to_string(),
        exp: now + req.lifetime,
        iat: now,
        auth_time: req.auth_time,
        nonce: req.nonce.map(str::to_string),
        at_hash: Some(at_hash(req.access_token, req.alg)),
        azp: req.client_id.to_string(),
        email: req.profile.email,
        email_verified: req.profile.email_verified,
        name: req.profile.name,
    };
    keys.snapshot()
        .sign_in(Lane::id_token(req.alg), &claims, now)
}

/// Verifies an ID token tessera issued, as an `id_token_hint` (OpenID Connect Core
/// §3.1.2.1) or at logout (RP-Initiated Logout 1.0 §2): signed by one of our ID-token keys
/// with that key's algorithm, our `iss`. Expiry is not checked: a hint may be expired.
/// `None` when it is not ours or does not verify.
pub fn verify_hint(keys: &KeySet, token: &str, issuer: &str) -> Option<IdTokenClaims> {
    if token.len() > 8192 {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    let key = keys.get(header.kid.as_deref()?)?;
    if key.purpose != KeyUse::IdToken || header.alg != key.jose_alg {
        return None;
    }
    let mut v = jsonwebtoken::Validation::new(key.jose_alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.set_required_spec_claims(&["iss", "sub", "aud"]);
    v.set_issuer(&[issuer]);
    jsonwebtoken::decode::<IdTokenClaims>(token, key.decoding.as_ref()?, &v)
        .ok()
        .map(|d| d.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l3_at_hash_matches_the_openid_connect_core_example() {
        // OpenID Connect Core Appendix A.4: the at_hash of this access token, RS256.
        assert_eq!(
            at_hash(
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y",
                SigningAlg::RS256
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(
            at_hash("x", SigningAlg::EdDSA).len(),
            43,
            "32 bytes, base64url"
        );
    }
}
