//! Client authentication from an `Authorization` header (RFC 6749 §2.3.1, RFC 7617): any
//! header value is either a Basic credential or refused, never a panic.
//! The body is `bodies::basic_header` (fuzz/bodies.rs), shared with the smoke test that `cargo test`
//! runs (tests/api/fuzz_smoke.rs).
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::basic_header(data));
