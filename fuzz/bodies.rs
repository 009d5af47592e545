//! The bodies of the fuzz targets (docs/security.md J7), one function per target of
//! `fuzz/fuzz_targets/`. Shared by path (`#[path]`) between the cargo-fuzz targets, which
//! libFuzzer drives for minutes (`bash .ci/fuzz`), and the smoke test
//! `tests/api/fuzz_smoke.rs`, which `cargo test` runs on stable over the seed corpus
//! (`fuzz/seeds/<target>/`) and a few thousand generated inputs. A panic is a finding.

use std::sync::OnceLock;

use tessera::api_keys::format::{check, checksum, parse};
use tessera::clients::redirect_uri::{matches, validate};
use tessera::oauth::client_auth::{Presented, presented};
use tessera::oauth::form::StrictForm;
use tessera::scope::ScopeSet;
use tessera::tokens::keys::{KeySet, SigningAlg};
use tessera::tokens::verify::{Expect, verify_access_token};

/// A target's body: one input, no result (a panic is a finding).
pub type Body = fn(&[u8]);

/// Every target: its name (as in `fuzz/fuzz_targets/` and `fuzz/seeds/`) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("api_json", api_json),
    ("api_key", api_key),
    ("basic_header", basic_header),
    ("jwt", jwt),
    ("oauth_form", oauth_form),
    ("redirect_uri", redirect_uri),
    ("scope", scope),
];

/// The JSON bodies of `/api/v1` and `/oauth/register` (docs/spec.md §5, RFC 7591 §2): any
/// bytes deserialize or are refused, and what deserializes validates without a panic.
pub fn api_json(data: &[u8]) {
    let catalogue = tessera::scope::Catalogue::default();
    if let Ok(body) = serde_json::from_slice::<tessera::api_keys::ops::CreateKey>(data) {
        let _ = body.scopes.parse();
    }
    if let Ok(body) = serde_json::from_slice::<tessera::clients::ops::ClientInput>(data) {
        let _ = tessera::clients::ops::parse_grant_list(
            body.grant_types.as_deref().unwrap_or_default(),
        );
        if let Ok(new) = body.to_new(&tessera::orgs::Actor::cli("org_fuzz")) {
            let _ = new.validate(&catalogue);
        }
    }
    let _ = serde_json::from_slice::<tessera::clients::registration::Metadata>(data);
    let _ = serde_json::from_slice::<tessera::http::api::verify::VerifyBody>(data);
    let _ = serde_json::from_slice::<tessera::http::api::members::ChangeRole>(data);
    let _ = serde_json::from_slice::<tessera::http::api::Overlap>(data);
}

/// The API-key format and checksum (docs/spec.md §5): any string parses or is refused; a
/// key that parses has a valid checksum over everything before it.
pub fn api_key(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((_, key)) = parse(s, "tsr") {
        let k = key.expose();
        let (body, sum) = k.split_at(k.len() - 6);
        assert_eq!(checksum(body), sum);
        assert!(check(s, "tsr"));
    }
}

/// Client authentication from an `Authorization` header (RFC 6749 §2.3.1, RFC 7617): any
/// header value is either a Basic credential or refused, never a panic.
pub fn basic_header(data: &[u8]) {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(empty) = StrictForm::parse(b"") else {
        return;
    };
    if let Ok(Presented::Basic { client_id, .. }) = presented(Some(header), &empty) {
        assert!(!client_id.is_empty());
    }
    if let Ok(body) = StrictForm::parse(format!("client_id={header}").as_bytes()) {
        let _ = presented(Some(header), &body);
        let _ = presented(None, &body);
    }
}

const NOW: i64 = 1_800_000_000;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::in_memory(SigningAlg::ES256, NOW - 10).expect("a key"))
}

/// The access-token verifier (RFC 9068 §4, RFC 8725): arbitrary tokens are refused without
/// a panic; claims the fuzzer writes are signed for real and must verify only when they are
/// well-typed, ours and within their lifetime.
pub fn jwt(data: &[u8]) {
    let expect = Expect {
        issuer: "https://as.example",
        audiences: &["https://as.example"],
        leeway: 30,
        now: NOW,
    };
    if let Ok(token) = std::str::from_utf8(data) {
        assert!(verify_access_token(keys(), token, expect).is_none() || token.len() <= 8192);
    }
    // The input as claims: sign them and verify.
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(token) = keys().sign_jwt(&claims, NOW)
        && let Some(verified) = verify_access_token(keys(), &token, expect)
    {
        assert_eq!(verified.iss, "https://as.example");
        assert!(verified.exp + 30 > NOW);
    }
}

/// The strict `application/x-www-form-urlencoded` parser of the OAuth endpoints: any bytes
/// either parse or are refused, and what parses reads back consistently.
pub fn oauth_form(data: &[u8]) {
    if let Ok(form) = StrictForm::parse(data) {
        let _ = form.repeated();
        for name in [
            "grant_type",
            "code",
            "scope",
            "client_id",
            "redirect_uri",
            "state",
        ] {
            if let Some(v) = form.get(name) {
                // What parsed is text without the encoding's metacharacters left raw.
                assert!(!v.contains('\0') || data.windows(3).any(|w| w == b"%00"));
            }
        }
        let _ = form.contains_any(&["request", "request_uri"]);
    }
}

/// Redirect URIs (RFC 6749 §3.1.2, RFC 8252 §7.3): validation never panics, and matching is
/// byte equality except the port of a loopback URI. The input is "registered\nrequested".
pub fn redirect_uri(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (registered, requested) = s.split_once('\n').unwrap_or((s, s));
    let _ = validate(registered, true);
    let _ = validate(requested, false);
    assert!(matches(registered, registered));
    if matches(registered, requested) && registered != requested {
        // Only loopback http URIs may differ, and only in the port.
        let loopback = |u: &str| {
            ["http://127.0.0.1", "http://[::1]", "http://localhost"]
                .iter()
                .any(|p| u.starts_with(p))
        };
        assert!(loopback(registered));
        assert!(loopback(requested));
    }
    assert_eq!(
        matches(registered, requested),
        matches(requested, registered)
    );
}

/// Scope parsing (RFC 6749 §3.3): a scope string parses into tokens that print back to a
/// string that parses to the same set.
pub fn scope(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = ScopeSet::parse(s) {
        let printed = set.to_vec().join(" ");
        let again = ScopeSet::parse(&printed).expect("printed scopes parse");
        assert!(set.is_subset(&again) && again.is_subset(&set));
        let catalogue = tessera::scope::Catalogue::default();
        let _ = catalogue.check(&set);
    }
}
