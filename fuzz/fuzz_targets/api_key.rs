//! The API-key format and checksum (docs/spec.md §5): any string parses or is refused; a
//! key that parses has a valid checksum over everything before it.
//! The body is `bodies::api_key` (fuzz/bodies.rs), shared with the smoke test that `cargo test`
//! runs (tests/api/fuzz_smoke.rs).
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::api_key(data));
