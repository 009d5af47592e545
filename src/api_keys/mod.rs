//! API keys (docs/spec.md §5): the key format and its offline checksum ([`format`]), creation
//! and storage ([`store`]).

pub mod cache;
pub mod format;
pub mod hygiene;
pub mod ops;
pub mod ratelimit;
pub mod redis_limits;
pub mod requests;
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

/// Whole days from `created_at` to `now` (docs/spec.md §10 `age_days`).
pub fn age_days(created_at: crate::clock::Timestamp, now: crate::clock::Timestamp) -> i64 {
    (now - created_at).max(0) / 86_400
}

/// docs/spec.md §10: a key older than this many days is marked for rotation.
pub const ROTATE_AFTER_DAYS: i64 = 90;
