//! Redirect URIs (RFC 6749 §3.1.2, RFC 8252 §7.3): validation never panics, and matching is
//! byte equality except the port of a loopback URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::clients::redirect_uri::{matches, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // The input is "registered\nrequested".
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
    assert_eq!(matches(registered, requested), matches(requested, registered));
});
