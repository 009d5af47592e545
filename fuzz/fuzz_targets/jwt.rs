//! The access-token verifier (RFC 9068 §4, RFC 8725): arbitrary tokens are refused without a
//! panic; claims the fuzzer writes are signed for real and must verify only when they are
//! well-typed, ours and within their lifetime.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera::tokens::keys::{KeySet, SigningAlg};
use tessera::tokens::verify::{Expect, verify_access_token};

const NOW: i64 = 1_800_000_000;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::in_memory(SigningAlg::ES256, NOW - 10).expect("a key"))
}

fuzz_target!(|data: &[u8]| {
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
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(token) = keys().sign_jwt(&claims, NOW) {
            if let Some(verified) = verify_access_token(keys(), &token, expect) {
                assert_eq!(verified.iss, "https://as.example");
                assert!(verified.exp + 30 > NOW);
            }
        }
    }
});
