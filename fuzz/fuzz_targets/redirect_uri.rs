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
    let _ = validate(registered);
    let _ = validate(requested);
    assert!(matches(registered, registered));
    if matches(registered, requested) && registered != requested {
        // Only loopback http URIs may differ, and only in the port.
        assert!(registered.starts_with("http://127.0.0.1") || registered.starts_with("http://[::1]"));
        assert!(requested.starts_with("http://127.0.0.1") || requested.starts_with("http://[::1]"));
    }
    assert_eq!(matches(registered, requested), matches(requested, registered));
});
