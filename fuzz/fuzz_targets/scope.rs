//! Scope parsing (RFC 6749 §3.3): a scope string parses into tokens that print back to
//! a string that parses to the same set.
//! The body is `bodies::scope` (fuzz/bodies.rs), shared with the smoke test that `cargo test`
//! runs (tests/api/fuzz_smoke.rs).
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::scope(data));
