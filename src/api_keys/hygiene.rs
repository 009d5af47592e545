//! Key hygiene (docs/spec.md §10): the key list filtered to keys not used for N days.

use super::ops;
use super::store::KeySummary;
use crate::app::Ctx;
use crate::db::DbConnection;
use crate::error::OpError;
use crate::orgs::Actor;

/// Largest `unused_for_days` accepted.
pub const MAX_UNUSED_DAYS: i64 = 3650;

/// Parses the query of `GET /api/v1/api-keys`: only `unused_for_days`, at most once, an
/// integer 1–3650. Anything else is a 400 naming the parameter.
pub fn parse_list_query(
    params: impl IntoIterator<Item = (String, String)>,
) -> Result<Option<i64>, OpError> {
    let mut days = None;
    for (k, v) in params {
        if k != "unused_for_days" {
            return Err(OpError::invalid(format!(
                "Unknown parameter {k:?}: the list takes unused_for_days."
            )));
        }
        if days.is_some() {
            return Err(OpError::invalid(
                "The parameter unused_for_days is repeated.",
            ));
        }
        let n = v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_UNUSED_DAYS).contains(n))
            .ok_or_else(|| {
                OpError::invalid(format!(
                    "unused_for_days must be a whole number from 1 to {MAX_UNUSED_DAYS}."
                ))
            })?;
        days = Some(n);
    }
    Ok(days)
}

/// The organization's live keys; with `unused_for_days = Some(n)`, only those whose last
/// use (or, never used, their creation) is at least `n` days ago.
pub fn list(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    unused_for_days: Option<i64>,
) -> Result<Vec<KeySummary>, OpError> {
    let all = ops::list(conn, ctx, actor)?;
    Ok(match unused_for_days {
        None => all,
        Some(n) => {
            let cutoff = ctx.now - n * 86_400;
            all.into_iter()
                .filter(|k| k.last_active <= cutoff)
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<Option<i64>, String> {
        parse_list_query(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_filter_is_one_whole_number_of_days() {
        assert_eq!(q(&[]), Ok(None));
        assert_eq!(q(&[("unused_for_days", "30")]), Ok(Some(30)));
        for bad in ["0", "-1", "x", "1.5", "3651", ""] {
            let e = q(&[("unused_for_days", bad)]).expect_err(bad);
            assert!(e.contains("unused_for_days"), "{e}");
        }
        assert!(
            q(&[("unused_for_days", "1"), ("unused_for_days", "2")])
                .expect_err("repeated")
                .contains("unused_for_days")
        );
        assert!(q(&[("sort", "age")]).expect_err("unknown").contains("sort"));
    }
}
