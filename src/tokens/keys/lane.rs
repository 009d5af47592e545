//! Key lanes: which keys succeed which. Access-token keys form one lane whatever their
//! algorithm (changing `--signing-alg` takes effect at the next rotation); ID-token keys
//! form one lane per algorithm, so a client's `id_token_signed_response_alg` always has a
//! key (docs/spec.md §9). Each lane has its own active key and its own staging.

use super::{SigningAlg, SigningKey};

/// The algorithms ID tokens are signed with; RS256 is the default (OpenID Connect Core
/// §3.1.3.7), ES256 and EdDSA on a client's `id_token_signed_response_alg`.
pub const ID_TOKEN_ALGS: [SigningAlg; 3] =
    [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

/// What a key signs; stored in `signing_keys.purpose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUse {
    /// RFC 9068 access tokens (`typ: at+jwt`).
    Access,
    /// OpenID Connect ID tokens (`typ: JWT`).
    IdToken,
}

impl KeyUse {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::IdToken => "id_token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(Self::Access),
            "id_token" => Some(Self::IdToken),
            _ => None,
        }
    }

    /// The JOSE `typ` header of the tokens such a key signs.
    pub fn typ(self) -> &'static str {
        match self {
            Self::Access => "at+jwt",
            Self::IdToken => "JWT",
        }
    }
}

/// A sequence of keys in which each newer key succeeds the older ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    purpose: KeyUse,
    /// `None` for the access lane (any algorithm).
    alg: Option<SigningAlg>,
}

impl Lane {
    pub const ACCESS: Self = Self {
        purpose: KeyUse::Access,
        alg: None,
    };

    pub fn id_token(alg: SigningAlg) -> Self {
        Self {
            purpose: KeyUse::IdToken,
            alg: Some(alg),
        }
    }

    pub fn of(key: &SigningKey) -> Self {
        match key.purpose {
            KeyUse::Access => Self::ACCESS,
            KeyUse::IdToken => Self::id_token(key.alg),
        }
    }

    pub fn contains(&self, key: &SigningKey) -> bool {
        key.purpose == self.purpose && self.alg.is_none_or(|a| a == key.alg)
    }
}
