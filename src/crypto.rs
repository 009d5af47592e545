//! Small primitives on ring: random identifiers and secrets, SHA-256 digests of secrets,
//! constant-time comparison, base62.

use ring::rand::{SecureRandom, SystemRandom};

pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // SystemRandom only fails when the OS has no entropy source at all; there is no safe
    // way to go on issuing secrets then.
    #[expect(
        clippy::expect_used,
        reason = "no CSPRNG means no secure operation is possible"
    )]
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the OS random number generator failed");
    buf
}

/// `len` characters drawn uniformly from the base62 alphabet (rejection sampling, so no
/// modulo bias): 5.95 bits each.
#[expect(
    clippy::indexing_slicing,
    reason = "indexes are taken modulo the alphabet size"
)]
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<64>() {
            // 248 = 4 * 62: values at or above it would bias the first characters.
            if b < 248 {
                out.push(BASE62[(b % 62) as usize] as char);
                if out.len() == len {
                    break;
                }
            }
        }
    }
    out
}

/// A prefixed random identifier, e.g. `org_` + 22 base62 characters (131 bits).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", random_base62(22))
}

/// 32 random bytes as unpadded base64url (43 characters, 256 bits).
pub fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Lowercase hex SHA-256 of a secret: what is stored and looked up instead of the secret.
#[expect(
    clippy::indexing_slicing,
    reason = "indexes are taken modulo the alphabet size"
)]
pub fn sha256_hex(secret: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    hex
}

/// Constant-time equality of two byte strings (length may leak; contents do not).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // ring's own helper is deprecated "with no promises regarding side channels"; this is
    // the usual branch-free fold, with black_box so the optimiser cannot short-circuit it.
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Encodes `n` in base62, most significant digit first, left-padded with `0` to `width`.
#[expect(
    clippy::indexing_slicing,
    reason = "indexes are taken modulo the alphabet size"
)]
pub fn base62_fixed(mut n: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn random_base62_is_alphabet_only_and_unique() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let s = random_base62(32);
            assert_eq!(s.len(), 32);
            assert!(s.bytes().all(|b| BASE62.contains(&b)));
            assert!(seen.insert(s));
        }
    }

    #[test]
    fn sha256_hex_matches_the_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"short", b"longer"));
    }

    #[test]
    fn base62_fixed_pads_and_orders_digits() {
        assert_eq!(base62_fixed(0, 6), "000000");
        assert_eq!(base62_fixed(61, 6), "00000z");
        assert_eq!(base62_fixed(62, 6), "000010");
        assert_eq!(base62_fixed(u32::MAX as u64, 6), "4gfFC3");
    }

    #[test]
    fn tokens_carry_256_bits() {
        use base64::Engine;
        let t = random_token();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&t)
            .expect("b64");
        assert_eq!(raw.len(), 32);
    }
}
