//! The access-token verifier (RFC 9068 §4, RFC 8725): arbitrary tokens are refused without a
//! panic; claims the fuzzer writes are signed for real and must verify only when they are
//! well-typed, ours and within their lifetime.
//! The body is `bodies::jwt` (fuzz/bodies.rs), shared with the smoke test that `cargo test`
//! runs (tests/api/fuzz_smoke.rs).
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::jwt(data));
