//! Redirect URIs: what may be registered (docs/security.md A7) and how a request's URI is matched
//! against the registered ones (A1, A2). Matching is byte equality of the raw strings; the
//! only exception is RFC 8252 §7.3: for a registered `http` loopback URI (an IP literal, or
//! `localhost` for public clients, docs/spec.md §8), the port of the request may differ.

use super::ClientError;

fn reject(uri: &str, reason: &'static str) -> ClientError {
    ClientError::InvalidRedirectUri {
        uri: uri.to_string(),
        reason,
    }
}

/// A loopback IP literal host as RFC 8252 §7.3 recommends (`localhost` is not accepted:
/// it can resolve elsewhere, §8.3).
fn is_loopback_ip(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(_) => false,
    }
}

/// Checks that `uri` may be registered as a redirect URI; `public`: the client has no
/// secret, so `http://localhost` is allowed too (RFC 8252 §7.3, docs/spec.md §8; it may
/// resolve elsewhere, §8.3, so a confidential client keeps to IP literals).
pub fn validate(uri: &str, public: bool) -> Result<(), ClientError> {
    if uri.is_empty() || uri.len() > 2000 {
        return Err(reject(uri, "must be 1-2000 characters"));
    }
    if uri.bytes().any(|b| b <= 0x20 || b >= 0x7f || b == b'\\') {
        return Err(reject(
            uri,
            "must be printable ASCII without spaces or backslashes",
        ));
    }
    if uri.contains('#') {
        return Err(reject(uri, "must not contain a fragment (RFC 6749 §3.1.2)"));
    }
    if uri.contains('*') {
        return Err(reject(uri, "must not contain wildcards"));
    }
    let Some((scheme, _)) = uri.split_once(':') else {
        return Err(reject(uri, "must be an absolute URI"));
    };
    let lower = scheme.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "javascript" | "data" | "vbscript" | "file" | "about" | "blob" | "filesystem"
    ) {
        return Err(reject(uri, "this scheme is never allowed"));
    }
    if scheme != lower {
        return Err(reject(uri, "write the scheme in lowercase"));
    }
    let parsed = url::Url::parse(uri).map_err(|_| reject(uri, "must be an absolute URI"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() || uri.contains('@') {
        return Err(reject(uri, "must not contain user information"));
    }
    match scheme {
        "https" => {
            if parsed.host().is_none() {
                return Err(reject(uri, "must name a host"));
            }
            Ok(())
        }
        "http" => match parsed.host() {
            Some(h) if is_loopback_ip(&h) => Ok(()),
            // Written exactly `http://localhost[:port]`, so the matcher knows it.
            Some(url::Host::Domain("localhost"))
                if public && loopback_without_port(uri).is_some() =>
            {
                Ok(())
            }
            _ => Err(reject(
                uri,
                "http is only allowed for loopback IP literals (127.0.0.1, [::1]), or localhost for public clients; use https",
            )),
        },
        // RFC 8252 §7.1: private-use schemes of native apps are reverse domain names.
        s if s.contains('.') => Ok(()),
        _ => Err(reject(
            uri,
            "use https, an http loopback IP, or a reverse-domain private-use scheme",
        )),
    }
}

/// Splits `http://HOST:PORT/rest` into (`http://HOST`, `/rest`) when HOST is a loopback IP
/// literal or `localhost` (lowercase); `None` otherwise. Works on the raw string: nothing is normalized.
fn loopback_without_port(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("http://")?;
    let (host, after_host) = if let Some(v6) = rest.strip_prefix('[') {
        let end = v6.find(']')?;
        (&rest[..end + 2], &rest[end + 2..])
    } else {
        let end = rest.find([':', '/', '?']).unwrap_or(rest.len());
        (&rest[..end], &rest[end..])
    };
    if !matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
        return None;
    }
    let path = match after_host.strip_prefix(':') {
        Some(p) => {
            let end = p.find(['/', '?']).unwrap_or(p.len());
            let port = &p[..end];
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            &p[end..]
        }
        None => after_host,
    };
    Some((&uri[..7 + host.len()], path))
}

/// Whether a requested redirect URI matches a registered one (A1, A2).
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (
        loopback_without_port(registered),
        loopback_without_port(requested),
    ) {
        (Some((rh, rp)), Some((qh, qp))) => rh == qh && rp == qp,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a7_unsafe_redirect_uris_cannot_be_registered() {
        for bad in [
            "http://x.example/cb",
            "https://a/cb#x",
            "JavaScript:alert(1)",
            "javascript:alert(1)",
            " data:text/html,x",
            "data:text/html,x",
            "vbscript:msgbox",
            "https://*.a/cb",
            "https://u@a/cb",
            "/relative",
            "http://localhost.evil.test/cb",
            "http://LOCALHOST/cb",
            "myapp:/cb",
            "HTTPS://a/cb",
        ] {
            assert!(validate(bad, false).is_err(), "{bad:?} was accepted");
            assert!(
                validate(bad, true).is_err(),
                "{bad:?} was accepted (public)"
            );
        }
        for good in [
            "https://app.example/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8000/cb",
            "com.example.app:/oauth",
        ] {
            assert!(validate(good, false).is_ok(), "{good:?} was refused");
        }
        // RFC 8252 §7.3: localhost for public clients only.
        for uri in ["http://localhost/cb", "http://localhost:3000/cb"] {
            assert!(validate(uri, false).is_err(), "{uri:?} (confidential)");
            assert!(validate(uri, true).is_ok(), "{uri:?} (public)");
        }
    }

    #[test]
    fn a1_redirect_uri_is_matched_exactly() {
        let reg = "https://app.example/cb";
        assert!(matches(reg, reg));
        for bad in [
            "https://app.example/CB",
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/cb/../cb",
            "https://app.example/cb%2F",
            "https://app.example.evil/cb",
            "https://u@app.example/cb",
            "https://app.example/cb#f",
            "HTTPS://app.example/cb",
        ] {
            assert!(!matches(reg, bad), "{bad:?} matched");
        }
    }

    #[test]
    fn a2_loopback_redirect_only_the_port_may_vary() {
        let reg = "http://127.0.0.1/cb";
        assert!(matches(reg, "http://127.0.0.1:51004/cb"));
        for bad in [
            "http://127.0.0.1:51004/cb?x",
            "http://127.0.0.1.nip.io/cb",
            "http://localhost.evil.test/cb",
            "http://127.0.0.1:51004/cb/",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:5x/cb",
            "http://localhost:51004/cb",
        ] {
            assert!(!matches(reg, bad), "{bad:?} matched");
        }
        assert!(matches("http://localhost/cb", "http://localhost:51004/cb"));
        for bad in [
            "http://127.0.0.1:51004/cb",
            "http://localhost.evil.test:1/cb",
            "http://LOCALHOST:1/cb",
            "http://localhost:1/cb/",
        ] {
            assert!(!matches("http://localhost/cb", bad), "{bad:?} matched");
        }
        assert!(matches("http://[::1]:80/cb", "http://[::1]:9/cb"));
        assert!(!matches(
            "https://app.example/cb",
            "https://app.example:8443/cb"
        ));
    }

    proptest::proptest! {
        /// J7 (A1, A2): the matcher is byte equality, except that the port of an http
        /// loopback IP literal or `localhost` may differ (RFC 8252 §7.3).
        #[test]
        fn j7_matching_is_byte_equality_except_the_loopback_port(
            scheme in proptest::sample::select(vec!["http", "https", "com.example.app"]),
            hosts in (0usize..5, 0usize..5),
            ports in (proptest::option::of(0u16..65535), proptest::option::of(0u16..65535)),
            paths in (proptest::sample::select(vec!["/cb", "/cb/", "/CB", "", "/cb?x=1"]),
                      proptest::sample::select(vec!["/cb", "/cb/", "/CB", "", "/cb?x=1"])),
        ) {
            const HOSTS: [&str; 5] = ["127.0.0.1", "[::1]", "localhost", "app.example", "127.0.0.2"];
            let uri = |host: &str, port: Option<u16>, path: &str| match port {
                Some(p) => format!("{scheme}://{host}:{p}{path}"),
                None => format!("{scheme}://{host}{path}"),
            };
            let (h1, h2) = (HOSTS[hosts.0], HOSTS[hosts.1]);
            let registered = uri(h1, ports.0, paths.0);
            let requested = uri(h2, ports.1, paths.1);
            let loopback = scheme == "http" && matches!(h1, "127.0.0.1" | "[::1]" | "localhost");
            let expected = registered == requested || (loopback && h1 == h2 && paths.0 == paths.1);
            proptest::prop_assert_eq!(matches(&registered, &requested), expected,
                "{} vs {}", registered, requested);
        }
    }
}
