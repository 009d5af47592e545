//! The JSON bodies of `/api/v1` and `/oauth/register` (docs/spec.md §5, RFC 7591 §2): any
//! bytes deserialize or are refused, and what deserializes validates without a panic.
//! The body is `bodies::api_json` (fuzz/bodies.rs), shared with the smoke test that `cargo test`
//! runs (tests/api/fuzz_smoke.rs).
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::api_json(data));
