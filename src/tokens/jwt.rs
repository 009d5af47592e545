//! JWT access tokens (RFC 9068): the claim set and issuance with the active signing key.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::tokens::keys::{KeyError, Keystore};

/// RFC 9068 §2.2 claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// The user id, or the client id for `client_credentials` (ids are prefixed, `usr_` vs
    /// `cli_`, so the two can never be confused).
    pub sub: String,
    /// The resource(s) the token is meant for (RFC 8707 §2, RFC 9068 §3): the requested
    /// `resource` URIs, else the configured audience.
    pub aud: Audience,
    pub exp: Timestamp,
    pub iat: Timestamp,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// The grant the token comes from (absent for `client_credentials`): revoking the
    /// grant (refresh-token revocation, code replay, consent withdrawal) makes every access
    /// token of it inactive at introspection. A private claim (RFC 9068 §2.2 allows them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// Never issued by us; typed so that a token carrying a malformed one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<Timestamp>,
}

/// RFC 7519 §4.1.3 `aud`: one audience is written as a string, several as an array;
/// either form is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience(pub Vec<String>);

impl Audience {
    /// Whether `uri` is one of the audiences.
    pub fn contains(&self, uri: &str) -> bool {
        self.0.iter().any(|a| a == uri)
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Form::deserialize(d)? {
            Form::One(a) => Self(vec![a]),
            Form::Many(v) => Self(v),
        })
    }
}

/// What an access token is issued for.
#[derive(Debug, Clone)]
pub struct AccessTokenRequest<'a> {
    pub issuer: &'a str,
    /// One or more audiences (never empty).
    pub audience: &'a [String],
    pub subject: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub lifetime: i64,
    pub grant_id: Option<&'a str>,
}

/// Signs an access token valid from `now` for `req.lifetime` seconds; returns it with its
/// claims (the `jti` is what a revocation records).
pub fn issue_access_token(
    keys: &Keystore,
    req: &AccessTokenRequest<'_>,
    now: Timestamp,
) -> Result<(String, AccessTokenClaims), KeyError> {
    let claims = AccessTokenClaims {
        iss: req.issuer.to_string(),
        sub: req.subject.to_string(),
        aud: Audience(req.audience.to_vec()),
        exp: now + req.lifetime,
        iat: now,
        jti: crate::crypto::random_base62(22),
        client_id: req.client_id.to_string(),
        scope: req.scope.to_string(),
        gid: req.grant_id.map(str::to_string),
        nbf: None,
    };
    let token = keys.sign_jwt(&claims, now)?;
    Ok((token, claims))
}
