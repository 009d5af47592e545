//! API keys (docs/spec.md §5): the key format and its offline checksum ([`format`]), creation
//! and storage ([`store`]).

pub mod cache;
pub mod format;
pub mod ops;
pub mod ratelimit;
pub mod store;
pub mod verify;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    diesel::AsExpression,
    diesel::FromSqlRow,
    utoipa::ToSchema,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Secret,
    Publishable,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Publishable => "publishable",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "secret" => Some(Self::Secret),
            "publishable" => Some(Self::Publishable),
            _ => None,
        }
    }
    /// The two letters after the prefix: `sk` or `pk`.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Secret => "sk",
            Self::Publishable => "pk",
        }
    }
}

crate::text_column!(KeyType);
