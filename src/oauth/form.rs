//! Strict parsing of OAuth form bodies and query strings (docs/security.md J1–J4):
//! a repeated parameter is an error (RFC 6749 §3.1, §3.2), an empty value is the same as
//! an absent one, malformed percent-encoding and control characters are refused. Map-based
//! parsing would silently keep the last of two values; this never does.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("a parameter is repeated")]
    Repeated,
    #[error("the parameters are not valid form encoding")]
    Encoding,
    #[error("a parameter has control or non-ASCII characters")]
    Characters,
}

/// A parsed form: each name at most once, values non-empty.
#[derive(Debug, Default, Clone)]
pub struct StrictForm {
    params: BTreeMap<String, String>,
    repeated: Option<String>,
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
    /// Parses `application/x-www-form-urlencoded` text. Repeats are remembered (so the
    /// caller can decide which error to give), not resolved.
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
            // VSCHAR (%x20-7E) only: no NUL, CR, LF, TAB, DEL or non-ASCII in OAuth values.
            if !k
                .bytes()
                .chain(v.bytes())
                .all(|b| (0x20..=0x7e).contains(&b))
            {
                return Err(FormError::Characters);
            }
            if form.params.contains_key(&k) {
                form.repeated.get_or_insert(k);
                continue;
            }
            form.params.insert(k, v);
        }
        Ok(form)
    }

    /// The first repeated parameter name, if any.
    pub fn repeated(&self) -> Option<&str> {
        self.repeated.as_deref()
    }

    /// A parameter's value; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

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
    fn j4_control_and_non_ascii_characters_are_refused() {
        for bad in [
            &b"client_id=abc%00x"[..],
            b"state=%0d%0a",
            b"a=%09",
            b"a=%7f",
            b"a=%C3%A9",
        ] {
            assert_eq!(StrictForm::parse(bad).err(), Some(FormError::Characters));
        }
        let f = StrictForm::parse(b"a=b+c%2Bd").expect("parses");
        assert_eq!(f.get("a"), Some("b c+d"));
    }
}
