//! Scopes (RFC 6749 §3.3): a configured catalogue of scopes with human descriptions, and
//! [`ScopeSet`], a parsed, de-duplicated, ordered scope list.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One scope token: `1*NQCHAR` (%x21 / %x23-5B / %x5D-7E).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(ScopeError::Syntax)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Read scopes end in `:read`; only these may go on publishable API keys.
    pub fn is_read(&self) -> bool {
        self.0.ends_with(":read")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("a scope is empty or has characters outside RFC 6749's NQCHAR")]
    Syntax,
    #[error("a scope is not in the catalogue")]
    Unknown,
}

/// A space-delimited scope list (RFC 6749 §3.3), de-duplicated and ordered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// Parses `scope-token *( SP scope-token )`: exactly one space between tokens.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        if s.is_empty() {
            return Ok(Self::default());
        }
        s.split(' ')
            .map(Scope::parse)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    /// Parses several values each of which may hold space-separated scopes (the CLI's
    /// repeated `--scope`); runs of whitespace are tolerated here.
    pub fn parse_many<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, ScopeError> {
        let mut set = BTreeSet::new();
        for v in values {
            for token in v.split_whitespace() {
                set.insert(Scope::parse(token)?);
            }
        }
        Ok(Self(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
    pub fn contains(&self, s: &str) -> bool {
        self.0.iter().any(|x| x.0 == s)
    }
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }
    /// Whether a client registered for `registered` may ask for these scopes: each is
    /// registered, or is `offline_access`, which docs/spec.md §2 (OIDC Core §11) accepts
    /// from any client.
    pub fn allowed_by(&self, registered: &ScopeSet) -> bool {
        self.0
            .iter()
            .all(|s| s.0 == OFFLINE_ACCESS || registered.0.contains(s))
    }
    pub fn all_read(&self) -> bool {
        self.0.iter().all(Scope::is_read)
    }
    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }
}

/// Scopes as JSON bodies carry them: an array of names or one space-separated string.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ScopesInput {
    List(Vec<String>),
    Text(String),
}

impl ScopesInput {
    /// The set, or 400 naming the field `scopes`.
    pub fn parse(&self) -> Result<ScopeSet, crate::error::OpError> {
        let parsed = match self {
            Self::List(v) => ScopeSet::parse_many(v.iter().map(String::as_str)),
            Self::Text(s) => ScopeSet::parse_many([s.as_str()]),
        };
        parsed.map_err(|_| {
            crate::error::OpError::invalid(
                "scopes must be scope names (printable ASCII without spaces, quotes or backslashes).",
            )
        })
    }
}

/// The scope that lets a credential use the management API (`/api/v1`), and that only an
/// organization admin may give a key.
pub const MANAGEMENT_SCOPE: &str = "admin";

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(&s.0)?;
            first = false;
        }
        Ok(())
    }
}

/// The scopes this server knows, each with the description shown on the consent page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue(BTreeMap<String, String>);

/// OIDC Core §11: asks for a refresh token; accepted from any client (docs/spec.md §2).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The OpenID Connect scopes (docs/spec.md §9, OpenID Connect Core §3.1.2.1, §5.4,
/// §11), with their consent descriptions: always in the catalogue; a configured
/// `[scopes]` table may reword them.
pub const OPENID_SCOPES: [(&str, &str); 4] = [
    ("openid", "Sign you in with your tessera account"),
    ("profile", "See your name"),
    ("email", "See your email address"),
    (
        "offline_access",
        "Stay connected when you are not using the app",
    ),
];

impl Default for Catalogue {
    fn default() -> Self {
        let mut entries = BTreeMap::from([
            (
                "inference:read".into(),
                "Read inference capabilities".into(),
            ),
            ("inference:write".into(), "Make inference requests".into()),
            ("analytics:read".into(), "Access usage analytics".into()),
            (
                "admin".into(),
                "Administrative operations: manage API keys and clients of the organization".into(),
            ),
        ]);
        with_openid_scopes(&mut entries);
        Self(entries)
    }
}

fn with_openid_scopes(entries: &mut BTreeMap<String, String>) {
    for (name, description) in OPENID_SCOPES {
        entries
            .entry(name.to_string())
            .or_insert_with(|| description.to_string());
    }
}

impl Catalogue {
    /// Builds a catalogue from configuration, checking every name is a valid scope token.
    pub fn new(entries: BTreeMap<String, String>) -> Result<Self, String> {
        if entries.is_empty() {
            return Err("the scope catalogue is empty".into());
        }
        for name in entries.keys() {
            Scope::parse(name).map_err(|_| format!("{name:?} is not a valid scope name"))?;
        }
        let mut entries = entries;
        with_openid_scopes(&mut entries);
        Ok(Self(entries))
    }
    pub fn description(&self, scope: &str) -> Option<&str> {
        self.0.get(scope).map(String::as_str)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
    /// The catalogue's scope names, space-separated: what messages list as valid.
    pub fn listed(&self) -> String {
        self.names().collect::<Vec<_>>().join(" ")
    }

    /// Every scope of `set` is in the catalogue; else a message naming those that are not
    /// and listing the valid ones (docs/spec.md §5).
    pub fn check_named(&self, set: &ScopeSet) -> Result<(), String> {
        let unknown: Vec<&str> = set
            .iter()
            .map(Scope::as_str)
            .filter(|s| !self.0.contains_key(*s))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(format!(
            "Scope not in the catalogue: {}. Valid scopes: {}.",
            unknown.join(" "),
            self.listed()
        ))
    }

    /// Every scope of `set` is in the catalogue.
    pub fn check(&self, set: &ScopeSet) -> Result<(), ScopeError> {
        if set.iter().all(|s| self.0.contains_key(s.as_str())) {
            Ok(())
        } else {
            Err(ScopeError::Unknown)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d10_scope_syntax_follows_rfc_6749() {
        assert!(ScopeSet::parse("b a").is_ok());
        assert_eq!(ScopeSet::parse("b a").expect("ok").to_string(), "a b");
        assert_eq!(ScopeSet::parse("a a").expect("ok").to_vec(), vec!["a"]);
        assert_eq!(ScopeSet::parse("a  b"), Err(ScopeError::Syntax));
        assert_eq!(ScopeSet::parse("a\"b"), Err(ScopeError::Syntax));
        assert_eq!(ScopeSet::parse("a\\b"), Err(ScopeError::Syntax));
        assert_eq!(ScopeSet::parse("é"), Err(ScopeError::Syntax));
        assert_eq!(ScopeSet::parse(" a"), Err(ScopeError::Syntax));
        assert!(ScopeSet::parse("").expect("ok").is_empty());
    }

    #[test]
    fn catalogue_rejects_unknown_scopes() {
        let c = Catalogue::default();
        assert!(
            c.check(&ScopeSet::parse("inference:read admin").expect("ok"))
                .is_ok()
        );
        assert_eq!(
            c.check(&ScopeSet::parse("root").expect("ok")),
            Err(ScopeError::Unknown)
        );
    }

    #[test]
    fn parse_many_accepts_repeated_and_space_separated_values() {
        let s = ScopeSet::parse_many(["inference:read analytics:read", "admin"]).expect("ok");
        assert_eq!(s.to_string(), "admin analytics:read inference:read");
        assert!(!s.all_read());
        assert!(
            ScopeSet::parse_many(["inference:read"])
                .expect("ok")
                .all_read()
        );
    }
}
