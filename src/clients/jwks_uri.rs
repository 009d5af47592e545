//! A `private_key_jwt` client's JWK set published at its `jwks_uri` (RFC 7591 §2, RFC 7523
//! §2.2; docs/spec.md §8, docs/security.md D13, K6).
//!
//! At registration, [`check`] refuses a `jwks_uri` that could never be fetched: not an
//! absolute `https` URL (`http` only with `--client-metadata-allow-loopback`, and then only
//! to loopback), user info, a fragment, or a host that is itself a non-public address
//! (an IP literal, or `localhost`). A name is resolved only when the set is fetched: the
//! guarded fetcher (`crate::fetch`) then refuses any non-public answer, connects only to
//! the addresses it checked, follows no redirect, and stops after 5 s or [`MAX_BYTES`].
//!
//! At client authentication the HTTP layer fetches the set (cached per the answer's
//! `Cache-Control`, 5 min–24 h), validates it like an inline `jwks` ([`keys_of`]), and
//! fetches it again once when an assertion names a `kid` (or an algorithm) the cached set
//! lacks — at most once per [`crate::fetch::REFETCH_INTERVAL`] per URL, so unknown `kid`s
//! cannot make tessera hammer a client's server.

use super::ClientError;
use crate::fetch::address::{self, Class};

/// A fetched JWK set is at most this many bytes (as it arrives); the same bound as an
/// inline `jwks` (16 KB).
pub const MAX_BYTES: usize = super::jwks::MAX_BYTES;

/// Longest `jwks_uri` accepted, in characters.
const MAX_URI_CHARS: usize = 2000;

fn bad(msg: &str) -> ClientError {
    ClientError::InvalidMetadata(format!("jwks_uri: {msg}"))
}

/// docs/spec.md §8: whether `uri` may be registered as a `jwks_uri`. `allow_loopback` is
/// `--client-metadata-allow-loopback`. Errors are `invalid_client_metadata` naming
/// `jwks_uri` and the problem.
pub fn check(uri: &str, allow_loopback: bool) -> Result<(), ClientError> {
    if uri.chars().count() > MAX_URI_CHARS {
        return Err(bad("must be at most 2000 characters."));
    }
    let url = url::Url::parse(uri).map_err(|_| bad("must be an absolute https URL."))?;
    if url.cannot_be_a_base()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return Err(bad(
            "must be an absolute https URL without user info or fragment.",
        ));
    }
    let class = match url.host() {
        None => return Err(bad("must be an absolute https URL.")),
        Some(url::Host::Ipv4(ip)) => address::classify(ip.into()),
        Some(url::Host::Ipv6(ip)) => address::classify(ip.into()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                Class::Loopback
            } else {
                Class::Public
            }
        }
    };
    if !class.allowed(allow_loopback) {
        return Err(bad(
            "its host is a private, loopback, link-local or other non-public address; it is never fetched.",
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_loopback && class == Class::Loopback => Ok(()),
        _ => Err(bad("must use https.")),
    }
}

/// A fetched JWK set checked like an inline `jwks` (`super::jwks::validate`: 1–10 public
/// signing keys, no private or symmetric member); its canonical JSON.
pub fn keys_of(json: &serde_json::Value) -> Result<String, ClientError> {
    super::jwks::validate(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k6_a_jwks_uri_must_be_https_to_a_host_that_may_be_public() {
        for ok in [
            "https://client.example/jwks.json",
            "https://client.example:8443/.well-known/jwks",
            "https://8.8.8.8/keys",
        ] {
            check(ok, false).expect(ok);
        }
        for refused in [
            "client.example/jwks",
            "http://client.example/jwks",
            "ftp://client.example/jwks",
            "https://user:pw@client.example/jwks",
            "https://client.example/jwks#k",
            "https://127.0.0.1/jwks",
            "https://localhost/jwks",
            "https://app.localhost./jwks",
            "https://[::1]/jwks",
            "https://[::ffff:127.0.0.1]/jwks",
            "https://[64:ff9b::7f00:1]/jwks",
            "https://10.1.2.3/jwks",
            "https://192.168.0.1/jwks",
            "https://169.254.169.254/latest/meta-data",
            "https://[fd00::1]/jwks",
            "https://[fe80::1]/jwks",
            "https://0.0.0.0/jwks",
        ] {
            let e = check(refused, false).expect_err(refused);
            assert!(e.to_string().contains("jwks_uri:"), "{refused}: {e}");
        }
        // The development flag lets loopback through (http too), nothing else.
        check("http://127.0.0.1:9/jwks", true).expect("loopback http");
        check("https://localhost/jwks", true).expect("loopback https");
        for refused in [
            "http://client.example/jwks",
            "https://10.1.2.3/jwks",
            "http://169.254.169.254/jwks",
        ] {
            check(refused, true).expect_err(refused);
        }
    }
}
