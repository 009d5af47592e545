//! Client authentication at the token endpoint (RFC 6749 §2.3): `client_secret_basic`
//! (credentials form-urlencoded before base64, §2.3.1), `client_secret_post`,
//! `private_key_jwt` (RFC 7523 §2.2, [`super::client_assertion`]), or `none` for public
//! clients; exactly one method per request (§2.3). Secrets are compared as SHA-256 digests
//! in constant time: no slow hash on this path (docs/security.md §4 policy 6). The same
//! functions authenticate clients at the device authorization, introspection and
//! revocation endpoints.

use base64::Engine;

use super::client_assertion::{self, ASSERTION_TYPE, Expect, FetchedKeys};
use super::form::StrictForm;
use crate::api_keys::cache::{AuthenticatedClient, CredentialCache, Resources};
use crate::clients::store::{self, ClientRow};
use crate::db::DbConnection;
use crate::error::OAuthError;

/// How the client presented itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Presented {
    Basic {
        client_id: String,
        secret: String,
    },
    Post {
        client_id: String,
        secret: String,
    },
    /// A public client: `client_id` in the body and no secret.
    None {
        client_id: String,
    },
    /// RFC 7523 §2.2 `private_key_jwt`: `client_assertion` (of type [`ASSERTION_TYPE`]);
    /// `client_id` from the body, or else the one the assertion names.
    Assertion {
        client_id: String,
        assertion: String,
        /// The client's JWK set fetched from its `jwks_uri` for this request (filled in by
        /// `crate::http::client_keys`); `None` for a client with an inline `jwks`.
        keys: Option<FetchedKeys>,
    },
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (method, id) = match self {
            Self::Basic { client_id, .. } => ("basic", client_id),
            Self::Post { client_id, .. } => ("post", client_id),
            Self::None { client_id } => ("none", client_id),
            Self::Assertion { client_id, .. } => ("private_key_jwt", client_id),
        };
        write!(f, "Presented({method}, {id})")
    }
}

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Self::Basic { client_id, .. }
            | Self::Post { client_id, .. }
            | Self::None { client_id }
            | Self::Assertion { client_id, .. } => client_id,
        }
    }
    pub fn secret(&self) -> Option<&str> {
        match self {
            Self::Basic { secret, .. } | Self::Post { secret, .. } => Some(secret),
            Self::None { .. } | Self::Assertion { .. } => None,
        }
    }
}

/// Whether a resource server's credentials authenticated recently (the credential cache
/// of `api_keys::cache`): if so (`Some`, with its resource URIs), the database is not
/// asked again.
pub fn resource_server_cached(
    rt: &crate::api_keys::verify::KeyRuntime,
    p: &Presented,
) -> Option<Resources> {
    p.secret()
        .and_then(|s| rt.clients.check(p.client_id(), s, &rt.health))
}

/// Authenticates a caller that must be a `--resource-server` client, and remembers a
/// success, with the client's resource URIs, in the credential cache. `Ok(None)`:
/// authenticated, not a resource server; `Ok(Some(resources))`: a resource server.
pub fn authenticate_resource_server(
    conn: &mut DbConnection,
    rt: &crate::api_keys::verify::KeyRuntime,
    p: &Presented,
    at: Expect<'_>,
) -> Result<Option<Resources>, OAuthError> {
    let client = authenticate(conn, p, at)?;
    if !client.is_resource_server {
        return Ok(None);
    }
    let resources: Resources = crate::oauth::resource::of_client(conn, &client.id)?.into();
    if let Some(secret) = p.secret() {
        rt.clients
            .remember(p.client_id(), secret, resources.clone());
    }
    Ok(Some(resources))
}

/// Form-urldecoding of one Basic credential half (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Option<String> {
    // Nothing to decode (the usual id or secret): the text itself, no form parse.
    if s.bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'%' | b'+' | b'&' | b'='))
    {
        return Some(s.to_string());
    }
    let form = StrictForm::parse(format!("v={s}").as_bytes()).ok()?;
    if form.is_unprintable("v") {
        return None;
    }
    Some(form.get("v").unwrap_or_default().to_string())
}

/// The credentials of an `Authorization` header value if its scheme is `scheme`:
/// `credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]` (RFC 9110 §11.4), the
/// scheme compared case-insensitively (RFC 9110 §11.1: `Basic`, `BASIC`, `bearer` …).
/// Every place that reads an `Authorization` header goes through this function.
pub fn credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = header.split_once(' ').unwrap_or((header, ""));
    name.eq_ignore_ascii_case(scheme)
        .then(|| rest.trim_matches(' '))
}

/// Reads the credentials from the `Authorization` header and the body.
pub fn presented(authorization: Option<&str>, form: &StrictForm) -> Result<Presented, OAuthError> {
    // docs/security.md J4: a client id or secret outside VSCHAR (RFC 6749 Appendix A) is a
    // malformed request; it never reads as absent and never matches a stored client.
    if form
        .unprintable_among(&["client_id", "client_secret"])
        .is_some()
    {
        return Err(OAuthError::invalid_request(
            "client_id or client_secret has characters outside RFC 6749's VSCHAR.",
        ));
    }
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    if form.contains_any(&["client_assertion", "client_assertion_type"]) {
        if authorization.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "Use exactly one client authentication method.",
            ));
        }
        return assertion(form, body_id);
    }
    if let Some(header) = authorization {
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "Use exactly one client authentication method.",
            ));
        }
        let encoded = credentials(header, "Basic").ok_or_else(OAuthError::invalid_client)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| OAuthError::invalid_client())?;
        let raw = String::from_utf8(raw).map_err(|_| OAuthError::invalid_client())?;
        let (id, secret) = raw.split_once(':').ok_or_else(OAuthError::invalid_client)?;
        let (client_id, secret) = match (form_decode(id), form_decode(secret)) {
            (Some(i), Some(s)) if !i.is_empty() => (i, s),
            _ => return Err(OAuthError::invalid_client()),
        };
        if body_id.is_some_and(|b| b != client_id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the authenticated client.",
            ));
        }
        return Ok(Presented::Basic { client_id, secret });
    }
    match (body_id, body_secret) {
        (Some(id), Some(secret)) => Ok(Presented::Post {
            client_id: id.to_string(),
            secret: secret.to_string(),
        }),
        (Some(id), None) => Ok(Presented::None {
            client_id: id.to_string(),
        }),
        (None, _) => Err(OAuthError::invalid_client()),
    }
}

/// RFC 7523 §2.2: `client_assertion_type` must be [`ASSERTION_TYPE`] and
/// `client_assertion` present; the client is `client_id` when sent, else the one the
/// assertion names (checked when the assertion is verified).
fn assertion(form: &StrictForm, body_id: Option<&str>) -> Result<Presented, OAuthError> {
    if form.get("client_assertion_type") != Some(ASSERTION_TYPE) {
        return Err(OAuthError::invalid_request(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
        ));
    }
    let assertion = form
        .get("client_assertion")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("client_assertion is missing."))?;
    if form.is_unprintable("client_assertion") {
        return Err(OAuthError::invalid_client());
    }
    let client_id = match body_id {
        Some(id) => id.to_string(),
        None => client_assertion::unverified_client_id(assertion)
            .ok_or_else(OAuthError::invalid_client)?,
    };
    Ok(Presented::Assertion {
        client_id,
        assertion: assertion.to_string(),
        keys: None,
    })
}

/// Checks the presented credentials against the client's registration; `at` is what a
/// client assertion is checked against (issuer, leeway, now).
pub fn authenticate(
    conn: &mut DbConnection,
    p: &Presented,
    at: Expect<'_>,
) -> Result<ClientRow, OAuthError> {
    authenticate_remembered(conn, None, p, at)
}

/// [`authenticate`], and when a secret authenticated the client and `cache` is given,
/// remembers it there (`CredentialCache::client`), with the secret's expiry, so the next
/// `client_credentials` request of this client needs no database.
pub fn authenticate_remembered(
    conn: &mut DbConnection,
    cache: Option<&CredentialCache>,
    p: &Presented,
    at: Expect<'_>,
) -> Result<ClientRow, OAuthError> {
    let now = at.now;
    let fail = OAuthError::invalid_client;
    let Some(client) = store::find(conn, p.client_id())? else {
        // Same work as a real check, so timing does not tell unknown ids apart.
        let _ = crate::crypto::constant_time_eq(
            crate::crypto::sha256_hex(p.client_id()).as_bytes(),
            crate::crypto::sha256_hex("").as_bytes(),
        );
        return Err(fail());
    };
    match p {
        Presented::None { .. } if client.is_public => Ok(client),
        Presented::Basic { secret, .. } | Presented::Post { secret, .. }
            if !client.is_public && !client.uses_private_key_jwt() =>
        {
            let Some(secret_expires_at) = store::matching_secret(conn, &client.id, secret, now)?
            else {
                return Err(fail());
            };
            if let Some(cache) = cache {
                cache.remember_client(
                    secret,
                    AuthenticatedClient {
                        client: std::sync::Arc::new(client.clone()),
                        secret_expires_at,
                    },
                );
            }
            Ok(client)
        }
        Presented::Assertion {
            assertion, keys, ..
        } if client.uses_private_key_jwt() => {
            client_assertion::verify(conn, &client, assertion, keys.as_ref(), at)?;
            Ok(client)
        }
        _ => Err(fail()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    #[test]
    fn d5_basic_credentials_are_form_urldecoded() {
        let form = StrictForm::parse(b"grant_type=client_credentials").expect("form");
        let p = presented(Some(&basic("my%3Aid", "p%25s+s%2Bw")), &form).expect("ok");
        assert_eq!(
            p,
            Presented::Basic {
                client_id: "my:id".into(),
                secret: "p%s s+w".into()
            }
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_followed_by_one_or_more_spaces() {
        let form = StrictForm::parse(b"grant_type=client_credentials").expect("form");
        let encoded = base64::engine::general_purpose::STANDARD.encode("a:b");
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            for sep in [" ", "  "] {
                let header = format!("{scheme}{sep}{encoded}");
                assert_eq!(
                    presented(Some(&header), &form).expect(&header),
                    Presented::Basic {
                        client_id: "a".into(),
                        secret: "b".into()
                    }
                );
            }
        }
        for other in [
            format!("Bearer {encoded}"),
            format!("Basic{encoded}"),
            "Basic".into(),
        ] {
            let e = presented(Some(&other), &form).expect_err(&other);
            assert_eq!(e.code, crate::error::ErrorCode::InvalidClient, "{other}");
        }
        assert_eq!(credentials("BEARER tok", "Bearer"), Some("tok"));
        assert_eq!(credentials("bearer  tok ", "Bearer"), Some("tok"));
        assert_eq!(credentials("Bearertok", "Bearer"), None);
        assert_eq!(credentials("Basic tok", "Bearer"), None);
    }

    #[test]
    fn d6_one_method_per_request() {
        let form = StrictForm::parse(b"client_id=a&client_secret=b").expect("form");
        let e = presented(Some(&basic("a", "b")), &form).expect_err("two methods");
        assert_eq!(e.code, crate::error::ErrorCode::InvalidRequest);
    }

    #[test]
    fn body_credentials_are_post_or_none() {
        let post = StrictForm::parse(b"client_id=a&client_secret=b").expect("form");
        assert!(matches!(presented(None, &post), Ok(Presented::Post { .. })));
        let none = StrictForm::parse(b"client_id=a").expect("form");
        assert!(matches!(presented(None, &none), Ok(Presented::None { .. })));
        let nothing = StrictForm::parse(b"grant_type=x").expect("form");
        assert!(presented(None, &nothing).is_err());
    }
}
