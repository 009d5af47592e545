//! Strict parsing of OAuth form bodies and query strings (docs/security.md J1–J4):
//! a repeated parameter is remembered, never resolved (RFC 6749 §3.1, §3.2), an empty value
//! is the same as an absent one, malformed percent-encoding is refused. A value with a
//! character outside VSCHAR (%x20-7E, RFC 6749 Appendix A) is flagged per parameter and
//! reads as absent, so that each endpoint answers with the error code of the parameter
//! that carries it (a bad `scope` is `invalid_scope`, a bad `grant_type`
//! `unsupported_grant_type`, ...), and an unknown parameter stays ignored (§3.1). Map-based
//! parsing would silently keep the last of two values; this never does.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the parameters are not valid form encoding")]
    Encoding,
    #[error("a parameter name has control or non-ASCII characters")]
    Characters,
}

/// A parsed form: the first value of each name, which names were repeated, and which
/// values have characters outside VSCHAR.
#[derive(Debug, Default, Clone)]
pub struct StrictForm {
    params: BTreeMap<String, String>,
    repeated: BTreeSet<String>,
    unprintable: BTreeSet<String>,
    /// The second and later values of repeated names, for the parameters that may repeat
    /// (RFC 8707 `resource`).
    more: BTreeMap<String, Vec<String>>,
}

/// RFC 6749 Appendix A: `VSCHAR = %x20-7E`.
fn is_vschar(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

#[expect(
    clippy::indexing_slicing,
    reason = "i < bytes.len() by the loop condition"
)]
fn decode(raw: &str) -> Result<String, FormError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(FormError::Encoding)?;
                // Two hex digits exactly: `from_str_radix` alone would take "+1" as 0x01.
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(FormError::Encoding);
                }
                let s = std::str::from_utf8(hex).map_err(|_| FormError::Encoding)?;
                out.push(u8::from_str_radix(s, 16).map_err(|_| FormError::Encoding)?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::Encoding)
}

impl StrictForm {
    /// Parses `application/x-www-form-urlencoded` text. Repeats and unprintable values are
    /// remembered (so the caller can decide which error to give), not resolved.
    pub fn parse(input: &[u8]) -> Result<Self, FormError> {
        let text = std::str::from_utf8(input).map_err(|_| FormError::Encoding)?;
        let mut form = Self::default();
        for pair in text.split('&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            if k.is_empty() {
                return Err(FormError::Encoding);
            }
            // A name that is not VSCHAR cannot be told apart from a known one.
            if !is_vschar(&k) {
                return Err(FormError::Characters);
            }
            if !is_vschar(&v) {
                form.unprintable.insert(k.clone());
            }
            if form.params.contains_key(&k) {
                form.more.entry(k.clone()).or_default().push(v);
                form.repeated.insert(k);
                continue;
            }
            form.params.insert(k, v);
        }
        Ok(form)
    }

    /// A repeated parameter name, if any (the first in name order).
    pub fn repeated(&self) -> Option<&str> {
        self.repeated.first().map(String::as_str)
    }

    /// A repeated parameter name other than those that may repeat, if any.
    pub fn repeated_except(&self, may_repeat: &[&str]) -> Option<&str> {
        self.repeated
            .iter()
            .map(String::as_str)
            .find(|n| !may_repeat.contains(n))
    }

    /// Every non-empty value of a parameter that may repeat, in the order sent (an
    /// unprintable one: ask [`Self::is_unprintable`] first).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.params
            .get(name)
            .into_iter()
            .chain(self.more.get(name).into_iter().flatten())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// Whether `name` was sent more than once.
    pub fn is_repeated(&self, name: &str) -> bool {
        self.repeated.contains(name)
    }

    /// Whether a value of `name` has a character outside VSCHAR (NUL, CR, LF, TAB, DEL,
    /// non-ASCII).
    pub fn is_unprintable(&self, name: &str) -> bool {
        self.unprintable.contains(name)
    }

    /// The first of `names` that has an unprintable value.
    pub fn unprintable_among<'n>(&self, names: &[&'n str]) -> Option<&'n str> {
        names.iter().copied().find(|n| self.is_unprintable(n))
    }

    /// A parameter's value; empty values count as absent (RFC 6749 §3.1), and so do
    /// unprintable ones (ask [`Self::is_unprintable`] first to refuse them).
    pub fn get(&self, name: &str) -> Option<&str> {
        if self.is_unprintable(name) {
            return None;
        }
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Whether any of `names` was sent, with any value.
    pub fn contains_any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.params.contains_key(*n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn j1_repeated_parameters_are_flagged_not_resolved() {
        let f = StrictForm::parse(b"grant_type=a&scope=x&grant_type=b").expect("parses");
        assert_eq!(f.repeated(), Some("grant_type"));
        assert_eq!(f.get("grant_type"), Some("a"));
    }

    #[test]
    fn j2_empty_values_are_absent() {
        let f = StrictForm::parse(b"redirect_uri=&scope=").expect("parses");
        assert_eq!(f.get("redirect_uri"), None);
        assert_eq!(f.get("scope"), None);
    }

    #[test]
    fn j3_malformed_encoding_is_refused() {
        for bad in [
            &b"a=%zz"[..],
            b"a=%",
            b"a=%f",
            b"a=%ff",
            b"a=%ED%A0%80",
            b"=c",
            b"a=b&&=c",
        ] {
            assert!(
                StrictForm::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(StrictForm::parse(b"a=b&&c=d").is_ok());
    }

    #[test]
    fn j4_control_and_non_ascii_characters_are_flagged_per_parameter() {
        for (bad, name) in [
            (&b"client_id=abc%00x"[..], "client_id"),
            (b"state=%0d%0a", "state"),
            (b"a=%09", "a"),
            (b"a=%7f", "a"),
            (b"scope=%C3%A9", "scope"),
            (b"a=ok&a=%00", "a"),
        ] {
            let f = StrictForm::parse(bad).expect("parses");
            assert!(f.is_unprintable(name), "{name}");
            assert_eq!(f.get(name), None, "{name} reads as absent");
            assert_eq!(f.unprintable_among(&["x", name]), Some(name));
        }
        let f = StrictForm::parse(b"client_id=abc%00x&scope=a").expect("parses");
        assert_eq!(f.get("client_id"), None, "never reads as abc");
        assert_eq!(f.get("scope"), Some("a"));
        assert!(f.contains_any(&["client_id"]));
        assert_eq!(
            StrictForm::parse(b"a%00=b").err(),
            Some(FormError::Characters)
        );
        let f = StrictForm::parse(b"a=b+c%2Bd").expect("parses");
        assert_eq!(f.get("a"), Some("b c+d"));
    }

    #[test]
    fn j1_a_percent_sign_takes_two_hex_digits_exactly() {
        for bad in ["scope=%+1", "scope=%-1", "scope=%1", "scope=%G0", "scope=%"] {
            assert_eq!(
                StrictForm::parse(bad.as_bytes()).err(),
                Some(FormError::Encoding),
                "{bad}"
            );
        }
    }

    proptest::proptest! {
        /// J7: whatever `serde_urlencoded` encodes (distinct names, printable ASCII values)
        /// parses back to the same parameters.
        #[test]
        fn j7_the_parser_round_trips_what_serde_urlencoded_encodes(
            params in proptest::collection::btree_map("[a-z_]{1,12}", "[ -~]{1,40}", 0..8)
        ) {
            let encoded = serde_urlencoded::to_string(&params).expect("encodes");
            let form = StrictForm::parse(encoded.as_bytes()).expect("parses");
            proptest::prop_assert_eq!(form.repeated(), None);
            for (k, v) in &params {
                proptest::prop_assert_eq!(form.get(k), Some(v.as_str()));
            }
        }

        /// J7: the parser never panics, whatever the bytes.
        #[test]
        fn j7_any_bytes_parse_or_are_refused(input in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = StrictForm::parse(&input);
        }
    }
}
