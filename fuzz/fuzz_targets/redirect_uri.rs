//! Redirect URIs (RFC 6749 §3.1.2, RFC 8252 §7.3): validation never panics, and matching is
//! byte equality except the port of a loopback URI.
//! The body is `bodies::redirect_uri` (fuzz/bodies.rs), shared with the smoke test that `cargo test`
//! runs (tests/api/fuzz_smoke.rs).
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::redirect_uri(data));
