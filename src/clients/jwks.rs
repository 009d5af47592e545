//! The JWK set of a `private_key_jwt` client (RFC 7523 §2.2, OIDC Core §9, docs/spec.md
//! §8): validated once at registration ([`validate`]), stored as canonical JSON in
//! `clients.jwks`, and read at each client assertion ([`KeySet::parse`]). Only public
//! signing keys of the algorithms in [`SIGNING_ALGS`] are accepted: EC P-256 (`ES256`),
//! RSA of at least 2048 bits (`RS256`) and Ed25519 (`EdDSA`); symmetric keys (`oct`) and
//! any private member are refused, so the set never holds a secret.

use base64::Engine;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use serde_json::Value;

use super::ClientError;

/// The JWS algorithms a client assertion may use (`token_endpoint_auth_signing_alg_values_supported`,
/// RFC 8414 §2). `none` and the HMAC algorithms are never accepted.
pub const SIGNING_ALGS: [&str; 3] = ["ES256", "RS256", "EdDSA"];

/// At most this many keys in one set.
pub const MAX_KEYS: usize = 10;
/// At most this many bytes of canonical JSON.
pub const MAX_BYTES: usize = 16 * 1024;
/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;

/// Members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4;
/// RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn bad(msg: impl std::fmt::Display) -> ClientError {
    ClientError::InvalidMetadata(format!("jwks: {msg}"))
}

/// The algorithm a key of this kind signs with, or `None` for a kind tessera refuses.
fn alg_of(jwk: &Jwk) -> Option<Algorithm> {
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }
}

/// RFC 7517 §5: validates a client's JWK set; returns its canonical JSON (what is
/// stored). Errors are `invalid_client_metadata` naming `jwks` and the key's index.
pub fn validate(value: &Value) -> Result<String, ClientError> {
    let keys = value
        .as_object()
        .and_then(|o| o.get("keys"))
        .and_then(Value::as_array)
        .ok_or_else(|| bad("must be a JSON object with a \"keys\" array (RFC 7517 section 5)."))?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(bad(format!("must hold 1 to {MAX_KEYS} keys.")));
    }
    let mut kids: Vec<&str> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let obj = key
            .as_object()
            .ok_or_else(|| bad(format!("key {i} is not a JSON object.")))?;
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(bad(format!(
                "key {i} has the private member \"{m}\"; register public keys only."
            )));
        }
        let jwk: Jwk = serde_json::from_value(key.clone()).map_err(|e| {
            bad(format!(
                "key {i} is not a JWK of a supported type (EC P-256, RSA, OKP Ed25519): {e}."
            ))
        })?;
        let alg = alg_of(&jwk).ok_or_else(|| {
            bad(format!(
                "key {i} must be an EC P-256, RSA or OKP Ed25519 public key."
            ))
        })?;
        if let Some(declared) = obj.get("alg") {
            let name = declared.as_str().unwrap_or_default();
            if name != alg_name(alg) {
                return Err(bad(format!(
                    "key {i}: alg {declared} does not fit the key; this key signs with {}.",
                    alg_name(alg)
                )));
            }
        }
        if let Some(u) = obj.get("use")
            && u.as_str() != Some("sig")
        {
            return Err(bad(format!("key {i}: use must be \"sig\".")));
        }
        if let AlgorithmParameters::RSA(p) = &jwk.algorithm {
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&p.n)
                .map_err(|_| bad(format!("key {i}: n is not base64url.")))?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return Err(bad(format!(
                    "key {i}: an RSA modulus must have at least {MIN_RSA_BITS} bits."
                )));
            }
        }
        jsonwebtoken::DecodingKey::from_jwk(&jwk)
            .map_err(|e| bad(format!("key {i} cannot be used: {e}.")))?;
        if let Some(kid) = obj.get("kid") {
            let kid = kid
                .as_str()
                .ok_or_else(|| bad(format!("key {i}: kid must be a string.")))?;
            if kids.contains(&kid) {
                return Err(bad(format!("key {i}: kid {kid:?} is used twice.")));
            }
            kids.push(kid);
        }
    }
    let json = serde_json::to_string(value).map_err(|e| bad(e.to_string()))?;
    if json.len() > MAX_BYTES {
        return Err(bad(format!("must be at most {MAX_BYTES} bytes.")));
    }
    Ok(json)
}

/// The JOSE name of an algorithm tessera accepts for assertions.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        Algorithm::EdDSA => "EdDSA",
        _ => "",
    }
}

/// A stored JWK set, parsed for verifying client assertions.
pub struct KeySet(JwkSet);

impl KeySet {
    /// Parses a set stored by [`validate`] (or fetched from a `jwks_uri`); `None` when it
    /// does not parse.
    pub fn parse(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok().map(Self)
    }

    /// The keys that may have signed an assertion with header `alg` and `kid`: keys of
    /// the kind that signs with `alg` (an `alg` a key declares must match it, a `use`
    /// must be `sig`), with that `kid` when one is given.
    pub fn candidates(&self, alg: Algorithm, kid: Option<&str>) -> Vec<&Jwk> {
        self.0
            .keys
            .iter()
            .filter(|k| alg_of(k) == Some(alg))
            .filter(|k| {
                k.common.key_algorithm.as_ref().is_none_or(|a| {
                    matches!(
                        (a, alg),
                        (KeyAlgorithm::ES256, Algorithm::ES256)
                            | (KeyAlgorithm::RS256, Algorithm::RS256)
                            | (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
                    )
                })
            })
            .filter(|k| {
                k.common
                    .public_key_use
                    .as_ref()
                    .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature)
            })
            .filter(|k| kid.is_none_or(|kid| k.common.key_id.as_deref() == Some(kid)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn ec() -> Value {
        json!({"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "a", "alg": "ES256", "use": "sig"})
    }

    #[test]
    fn a_public_p256_key_is_accepted_and_found_by_alg_and_kid() {
        let json = validate(&json!({"keys": [ec()]})).expect("valid");
        let set = KeySet::parse(&json).expect("parses");
        assert_eq!(set.candidates(Algorithm::ES256, Some("a")).len(), 1);
        assert_eq!(set.candidates(Algorithm::ES256, None).len(), 1);
        assert!(set.candidates(Algorithm::ES256, Some("b")).is_empty());
        assert!(set.candidates(Algorithm::RS256, None).is_empty());
        assert!(set.candidates(Algorithm::HS256, None).is_empty());
    }

    #[test]
    fn private_symmetric_mismatched_and_malformed_sets_are_refused_naming_jwks() {
        let mut private = ec();
        private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        let mut wrong_alg = ec();
        wrong_alg["alg"] = json!("RS256");
        let mut enc = ec();
        enc["use"] = json!("enc");
        let small_rsa = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"});
        for bad_set in [
            json!([ec()]),
            json!({"keys": []}),
            json!({"keys": [private]}),
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            json!({"keys": [wrong_alg]}),
            json!({"keys": [enc]}),
            json!({"keys": [small_rsa]}),
            json!({"keys": [ec(), ec()]}),
            json!({"keys": [{"kty": "EC", "crv": "P-384", "x": EC_X, "y": EC_Y}]}),
        ] {
            let e = validate(&bad_set).expect_err(&bad_set.to_string());
            assert!(e.to_string().contains("jwks:"), "{e}");
        }
    }
}
