//! The usage report of docs/spec.md §10, shared by `GET /api/v1/usage`, the usage page and
//! its CSV download.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::{DAY, HOUR, store};
use crate::clock::{Timestamp, parse_rfc3339, rfc3339};
use crate::db::DbConnection;
use crate::db::schema::api_keys;
use crate::error::OpError;
use crate::orgs::Actor;

/// The longest period one report covers, days.
pub const MAX_RANGE_DAYS: i64 = 400;

/// Bucket width of a report.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn seconds(self) -> i64 {
        match self {
            Self::Hour => HOUR,
            Self::Day => DAY,
        }
    }
    /// The UTC bucket that holds `t`.
    pub fn floor(self, t: Timestamp) -> Timestamp {
        t - t.rem_euclid(self.seconds())
    }
}

/// A report request, already parsed: buckets of `granularity` from the one holding `start`
/// up to `end` (exclusive), optionally of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub start: Timestamp,
    pub end: Timestamp,
    pub granularity: Granularity,
    pub key_id: Option<String>,
}

impl UsageQuery {
    /// Parses the query parameters of `GET /api/v1/usage` (`start`, `end`: RFC 3339;
    /// `granularity`: `hour` (default) or `day`; `key_id`). Each parameter at most once;
    /// a bad one is a 400 naming it.
    pub fn parse(params: impl IntoIterator<Item = (String, String)>) -> Result<Self, OpError> {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in params {
            if !["start", "end", "granularity", "key_id"].contains(&k.as_str()) {
                return Err(OpError::invalid(format!(
                    "Unknown parameter {k:?}: use start, end, granularity and key_id."
                )));
            }
            if seen.insert(k.clone(), v).is_some() {
                return Err(OpError::invalid(format!("The parameter {k} is repeated.")));
            }
        }
        let time = |name: &str| -> Result<Timestamp, OpError> {
            let v = seen
                .get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| OpError::invalid(format!("{name} is required (RFC 3339).")))?;
            parse_rfc3339(v).ok_or_else(|| {
                OpError::invalid(format!(
                    "{name} must be an RFC 3339 date-time like 2026-01-31T00:00:00Z."
                ))
            })
        };
        let start = time("start")?;
        let end = time("end")?;
        let granularity = match seen.get("granularity").map(String::as_str) {
            None | Some("") | Some("hour") => Granularity::Hour,
            Some("day") => Granularity::Day,
            Some(_) => return Err(OpError::invalid("granularity must be hour or day.")),
        };
        let key_id = seen.get("key_id").filter(|v| !v.is_empty()).cloned();
        Self::new(start, end, granularity, key_id)
    }

    /// Checks the period: `end` after `start`, at most [`MAX_RANGE_DAYS`].
    pub fn new(
        start: Timestamp,
        end: Timestamp,
        granularity: Granularity,
        key_id: Option<String>,
    ) -> Result<Self, OpError> {
        if end <= start {
            return Err(OpError::invalid("end must be after start."));
        }
        if end - start > MAX_RANGE_DAYS * DAY {
            return Err(OpError::invalid(format!(
                "end must be at most {MAX_RANGE_DAYS} days after start."
            )));
        }
        Ok(Self {
            start,
            end,
            granularity,
            key_id,
        })
    }
}

/// One bucket of the report: requests of one key with one verdict `code`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct UsagePoint {
    pub key_id: String,
    /// The bucket's first second, RFC 3339 (UTC, aligned to the hour or day).
    pub start: String,
    /// The verdict: `VALID`, `EXPIRED`, `REVOKED`, `INSUFFICIENT_SCOPE` or `RATE_LIMITED`.
    pub code: String,
    pub count: i64,
    #[serde(skip)]
    pub start_epoch: Timestamp,
}

/// The actor's organization's usage for `q`, ordered by bucket, key and code. Any member
/// may read it (the transport checks the credential's scope: `analytics:read` or `admin`).
/// A `key_id` that is not one of the organization's keys (revoked ones included) is 404
/// (docs/security.md I8).
pub fn report(
    conn: &mut DbConnection,
    actor: &Actor,
    q: &UsageQuery,
) -> Result<Vec<UsagePoint>, OpError> {
    if let Some(k) = &q.key_id {
        let owned: i64 = api_keys::table
            .filter(api_keys::id.eq(k))
            .filter(api_keys::org_id.eq(&actor.org_id))
            .count()
            .get_result(conn)?;
        if owned == 0 {
            return Err(OpError::NotFound("API key"));
        }
    }
    let from = q.granularity.floor(q.start);
    let rows = store::rows(conn, &actor.org_id, q.key_id.as_deref(), from, q.end)?;
    let mut buckets: BTreeMap<(Timestamp, String, String), i64> = BTreeMap::new();
    for (key_id, hour, code, count) in rows {
        *buckets
            .entry((q.granularity.floor(hour), key_id, code))
            .or_insert(0) += count;
    }
    Ok(buckets
        .into_iter()
        .map(|((start, key_id, code), count)| UsagePoint {
            key_id,
            start: rfc3339(start),
            code,
            count,
            start_epoch: start,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Result<UsageQuery, OpError> {
        UsageQuery::parse(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn message(r: Result<UsageQuery, OpError>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(q) => format!("accepted {q:?}"),
        }
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let s = ("start", "2026-01-01T00:00:00Z");
        let e = ("end", "2026-01-02T00:00:00Z");
        assert!(message(p(&[e])).contains("start"));
        assert!(message(p(&[s])).contains("end"));
        assert!(message(p(&[("start", "yesterday"), e])).contains("start"));
        assert!(message(p(&[s, e, ("granularity", "week")])).contains("granularity"));
        assert!(message(p(&[s, e, ("foo", "1")])).contains("foo"));
        assert!(message(p(&[s, e, e])).contains("end"));
        assert!(
            message(p(&[
                ("start", "2026-01-02T00:00:00Z"),
                ("end", "2026-01-01T00:00:00Z")
            ]))
            .contains("end")
        );
        assert!(message(p(&[("start", "2024-01-01T00:00:00Z"), e])).contains("end"));
        let ok = p(&[s, e, ("granularity", "day"), ("key_id", "k")]).expect("valid");
        assert_eq!(ok.granularity, Granularity::Day);
        assert_eq!(ok.key_id.as_deref(), Some("k"));
        assert_eq!(p(&[s, e]).expect("valid").granularity, Granularity::Hour);
    }

    #[test]
    fn buckets_are_utc_aligned() {
        let t = parse_rfc3339("2026-03-04T05:06:07Z").expect("t");
        assert_eq!(rfc3339(Granularity::Hour.floor(t)), "2026-03-04T05:00:00Z");
        assert_eq!(rfc3339(Granularity::Day.floor(t)), "2026-03-04T00:00:00Z");
    }
}
