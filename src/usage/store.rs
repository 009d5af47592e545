//! The `key_usage` table (docs/spec.md §10): one row per key, UTC hour and `code`.

use diesel::prelude::*;

use super::{Cell, Counter};
use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::key_usage;

/// Writes this instance's pending counts in one transaction: each cell is added to its row
/// (update, else insert). On failure every count goes back to `counter` and the next flush
/// retries them, so nothing is lost or counted twice. Called with the rate-limit flush,
/// about once a second, and at shutdown.
pub fn flush(conn: &mut DbConnection, counter: &Counter) -> QueryResult<usize> {
    let cells = counter.take();
    if cells.is_empty() {
        return Ok(0);
    }
    let written = crate::db::write_tx(conn, |conn| -> QueryResult<()> {
        for (cell, n) in &cells {
            add(conn, cell, *n)?;
        }
        Ok(())
    });
    match written {
        Ok(()) => Ok(cells.len()),
        Err(e) => {
            counter.restore(cells);
            Err(e)
        }
    }
}

fn add(conn: &mut DbConnection, cell: &Cell, n: i64) -> QueryResult<()> {
    let code = cell.code.as_str();
    let updated = diesel::update(
        key_usage::table
            .filter(key_usage::key_id.eq(&cell.key_id))
            .filter(key_usage::hour_start.eq(cell.hour_start))
            .filter(key_usage::code.eq(code)),
    )
    .set(key_usage::count.eq(key_usage::count + n))
    .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(key_usage::table)
            .values((
                key_usage::org_id.eq(&cell.org_id),
                key_usage::key_id.eq(&cell.key_id),
                key_usage::hour_start.eq(cell.hour_start),
                key_usage::code.eq(code),
                key_usage::count.eq(n),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// One stored row: (key id, hour start, code, count).
pub type Row = (String, Timestamp, String, i64);

/// The organization's rows with `from <= hour_start < until`, optionally of one key.
pub fn rows(
    conn: &mut DbConnection,
    org_id: &str,
    key_id: Option<&str>,
    from: Timestamp,
    until: Timestamp,
) -> QueryResult<Vec<Row>> {
    let mut q = key_usage::table
        .filter(key_usage::org_id.eq(org_id))
        .filter(key_usage::hour_start.ge(from))
        .filter(key_usage::hour_start.lt(until))
        .select((
            key_usage::key_id,
            key_usage::hour_start,
            key_usage::code,
            key_usage::count,
        ))
        .order((key_usage::hour_start, key_usage::key_id, key_usage::code))
        .into_boxed();
    if let Some(k) = key_id {
        q = q.filter(key_usage::key_id.eq(k.to_string()));
    }
    q.load(conn)
}

/// Deletes the rows of the oldest stored hour that ended before `before` (the janitor,
/// after `--usage-retention-days`): one hour per statement, so each delete stays short.
/// Returns how many rows went (0: nothing older is left).
pub fn prune(conn: &mut DbConnection, before: Timestamp) -> QueryResult<usize> {
    let oldest: Option<Timestamp> = key_usage::table
        .filter(key_usage::hour_start.lt(before))
        .select(diesel::dsl::min(key_usage::hour_start))
        .first(conn)?;
    match oldest {
        None => Ok(0),
        Some(h) => {
            diesel::delete(key_usage::table.filter(key_usage::hour_start.eq(h))).execute(conn)
        }
    }
}
