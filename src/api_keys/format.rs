//! The API key format: `{prefix}_sk_` or `{prefix}_pk_`, 32 random base62 characters
//! (190 bits), then a 6-character base62 CRC-32 (IEEE) of everything before it, most
//! significant digit first, left-padded with `0`. The checksum lets secret scanners and
//! [`check`] reject typos and spot leaked keys without a database.

use std::fmt;

use super::KeyType;
use crate::crypto::{BASE62, base62_fixed, random_base62};

pub const RANDOM_LEN: usize = 32;
pub const CHECKSUM_LEN: usize = 6;

/// A plaintext API key. Exists only between creation and the 201 response, and while a
/// presented key is being checked; `Debug` shows only the last six characters.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainApiKey(String);

impl PlainApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn last_six(&self) -> &str {
        &self.0[self.0.len().saturating_sub(6)..]
    }
    /// The digest that is stored and looked up.
    pub fn hash(&self) -> String {
        crate::crypto::sha256_hex(&self.0)
    }
}

impl fmt::Debug for PlainApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainApiKey(…{})", self.last_six())
    }
}

/// The checksum of `body` (the prefix, type tag and random part).
pub fn checksum(body: &str) -> String {
    base62_fixed(u64::from(crc32fast::hash(body.as_bytes())), CHECKSUM_LEN)
}

/// Whether `sum` is the checksum of `body`, without building the checksum text.
fn checksum_matches(body: &str, sum: &str) -> bool {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62.get((n % 62) as usize).copied().unwrap_or(b'0');
        n /= 62;
    }
    sum.as_bytes() == digits
}

/// A fresh key of `key_type` with the configured prefix.
pub fn generate(prefix: &str, key_type: KeyType) -> PlainApiKey {
    let body = format!("{prefix}_{}_{}", key_type.tag(), random_base62(RANDOM_LEN));
    let sum = checksum(&body);
    PlainApiKey(body + &sum)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a key with this prefix")]
    Prefix,
    #[error("wrong length or characters")]
    Shape,
    #[error("checksum mismatch")]
    Checksum,
}

/// Checks the shape and checksum of `key` offline; returns its type and the key.
pub fn parse(key: &str, prefix: &str) -> Result<(KeyType, PlainApiKey), FormatError> {
    let rest = key
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(FormatError::Prefix)?;
    let key_type = if rest.starts_with("sk_") {
        KeyType::Secret
    } else if rest.starts_with("pk_") {
        KeyType::Publishable
    } else {
        return Err(FormatError::Prefix);
    };
    let tail = &rest[3..];
    // BASE62 is exactly the ASCII letters and digits.
    if tail.len() != RANDOM_LEN + CHECKSUM_LEN || !tail.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(FormatError::Shape);
    }
    let (body, sum) = key.split_at(key.len() - CHECKSUM_LEN);
    if !checksum_matches(body, sum) {
        return Err(FormatError::Checksum);
    }
    Ok((key_type, PlainApiKey(key.to_string())))
}

/// `tessera api-key check`: true when `key` is well formed with a valid checksum.
pub fn check(key: &str, prefix: &str) -> bool {
    parse(key, prefix).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_follow_the_spec_format() {
        let k = generate("tsr", KeyType::Secret);
        let s = k.expose();
        assert!(s.starts_with("tsr_sk_"));
        assert_eq!(s.len(), 7 + 32 + 6);
        assert_eq!(&s[s.len() - 6..], checksum(&s[..s.len() - 6]));
        assert_eq!(parse(s, "tsr").map(|(t, _)| t), Ok(KeyType::Secret));
        let p = generate("acme", KeyType::Publishable);
        assert!(p.expose().starts_with("acme_pk_"));
        assert!(check(p.expose(), "acme"));
        assert!(!check(p.expose(), "tsr"));
        assert!(BASE62.iter().all(u8::is_ascii_alphanumeric) && BASE62.len() == 62);
        let mut bad = s.to_string();
        bad.replace_range(10..11, if &s[10..11] == "a" { "b" } else { "a" });
        assert_eq!(parse(&bad, "tsr").err(), Some(FormatError::Checksum));
        bad.replace_range(10..11, "-");
        assert_eq!(parse(&bad, "tsr").err(), Some(FormatError::Shape));
    }

    #[test]
    fn checksum_is_base62_crc32_of_the_preceding_characters() {
        // Python: zlib.crc32(b"tsr_sk_" + b"0" * 32) == 0x7482F0E8
        let body = format!("tsr_sk_{}", "0".repeat(32));
        assert_eq!(crc32fast::hash(body.as_bytes()), 0x7482_F0E8);
        assert_eq!(checksum(&body), base62_fixed(0x7482_F0E8, 6));
        assert_eq!(checksum(&body), "28Hskq");
    }

    #[test]
    fn i1_a_one_character_change_is_caught_offline() {
        let k = generate("tsr", KeyType::Secret);
        let s = k.expose().to_string();
        for i in 7..s.len() {
            let mut bytes = s.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).expect("ascii");
            assert!(!check(&changed, "tsr"), "change at {i} not caught");
        }
        assert!(!check(&s[..s.len() - 1], "tsr"));
        assert!(!check(&format!("{s}x"), "tsr"));
        assert!(!check(
            "tsr_xx_00000000000000000000000000000000000000",
            "tsr"
        ));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = generate("tsr", KeyType::Secret);
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&k.expose()[..20]));
        assert!(dbg.contains(k.last_six()));
    }

    proptest::proptest! {
        /// J7 (docs/spec.md §5): changing any one character of a key to any other
        /// character makes it fail the offline check.
        #[test]
        fn j7_any_single_character_change_fails_the_checksum(
            secret in proptest::bool::ANY,
            at in 0usize..45,
            replacement in proptest::char::any(),
        ) {
            let key_type = if secret { KeyType::Secret } else { KeyType::Publishable };
            let key = generate("tsr", key_type);
            let original = key.expose();
            let chars: Vec<char> = original.chars().collect();
            let at = at % chars.len();
            proptest::prop_assume!(chars[at] != replacement);
            let mut changed = chars.clone();
            changed[at] = replacement;
            let changed: String = changed.into_iter().collect();
            proptest::prop_assert!(check(original, "tsr"));
            proptest::prop_assert!(!check(&changed, "tsr"), "{changed} passed the check");
        }
    }
}
