//! The strict `application/x-www-form-urlencoded` parser of the OAuth endpoints: any bytes
//! either parse or are refused, and what parses reads back consistently.
//! The body is `bodies::oauth_form` (fuzz/bodies.rs), shared with the smoke test that `cargo test`
//! runs (tests/api/fuzz_smoke.rs).
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::oauth_form(data));
