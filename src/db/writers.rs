//! This process's SQLite writers: how many there are ([`sqlite_writers`], which the janitor
//! yields to) and the fair queue they take turns in ([`sqlite_gate`]); docs/security.md R12.

use std::time::Duration;

use super::DbConnection;

/// SQLite transactions of [`super::write_tx`] in this process that wait for or hold the write lock.
static SQLITE_WRITERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many [`super::write_tx`] transactions of this process are waiting for or holding SQLite's
/// write lock right now (any database file). The janitor lets them through before each
/// batch (docs/security.md R12): SQLite has no queue for its lock, and a writer sleeping in
/// the busy handler (up to 100 ms a sleep) keeps missing short gaps between batches.
pub fn sqlite_writers() -> usize {
    SQLITE_WRITERS.load(std::sync::atomic::Ordering::SeqCst)
}

/// Counts one SQLite writer in [`SQLITE_WRITERS`] while it lives.
pub(crate) struct SqliteWriter;

impl SqliteWriter {
    pub(crate) fn enter() -> Self {
        SQLITE_WRITERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self
    }
}

impl Drop for SqliteWriter {
    fn drop(&mut self) {
        SQLITE_WRITERS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The queue in front of SQLite's write lock for this process (docs/security.md R12).
/// SQLite has no queue of its own: a writer that finds the lock taken sleeps in the busy
/// handler (up to 100 ms a sleep) and, while others keep taking the lock, can miss every
/// gap until its `busy_timeout` runs out, even though the lock is never held for long. A
/// fair (FIFO, hand-over) mutex makes this process's writers take turns instead; the busy
/// handler is left to arbitrate only between processes (the CLI beside a server).
static SQLITE_GATE: parking_lot::FairMutex<()> = parking_lot::const_fair_mutex(());

thread_local! {
    /// Set while this thread holds [`SQLITE_GATE`], so that a write inside a write does not
    /// wait for itself.
    static HOLDS_SQLITE_GATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// This thread's turn at SQLite's write lock (see [`SQLITE_GATE`]); released on drop.
pub struct SqliteGate {
    guard: Option<parking_lot::FairMutexGuard<'static, ()>>,
}

impl Drop for SqliteGate {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            HOLDS_SQLITE_GATE.with(|held| held.set(false));
            // Hand the lock straight to the longest waiter.
            parking_lot::FairMutexGuard::unlock_fair(guard);
        }
    }
}

/// Waits for this process's turn to write to a SQLite database, at most as long as the
/// connection's `busy_timeout` (so the same `--db-timeout-ms` deadline bounds the queue
/// and the lock). PostgreSQL connections pass at once (row locks queue on the server).
/// Errors: the wait ran out → a "database is locked" error, which [`super::is_unavailable`] maps
/// to 503.
pub fn sqlite_gate(conn: &mut DbConnection) -> diesel::QueryResult<SqliteGate> {
    let DbConnection::Sqlite(c) = conn else {
        return Ok(SqliteGate { guard: None });
    };
    if HOLDS_SQLITE_GATE.with(|held| held.get()) {
        return Ok(SqliteGate { guard: None });
    }
    #[derive(diesel::QueryableByName)]
    struct BusyTimeout {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        timeout: i64,
    }
    use diesel::RunQueryDsl;
    let wait = diesel::sql_query("PRAGMA busy_timeout")
        .get_result::<BusyTimeout>(c)
        .map(|t| Duration::from_millis(t.timeout.max(0).unsigned_abs()))?;
    match SQLITE_GATE.try_lock_for(wait) {
        Some(guard) => {
            HOLDS_SQLITE_GATE.with(|held| held.set(true));
            Ok(SqliteGate { guard: Some(guard) })
        }
        None => Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(format!(
                "database is locked: no turn to write within {} ms",
                wait.as_millis()
            )),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    fn sqlite(busy_ms: u64) -> DbConnection {
        let mut c = DbConnection::Sqlite(
            diesel::SqliteConnection::establish(":memory:").expect("in-memory SQLite"),
        );
        c.batch_execute(&format!("PRAGMA busy_timeout = {busy_ms};"))
            .expect("pragma");
        c
    }

    #[test]
    fn r12_writers_take_turns_a_nested_write_passes_and_a_timed_out_wait_is_unavailable() {
        // The queue is the process's: other tests' writers may hold it for a while, so
        // the turns this test expects to get wait long; only the refused one waits 100 ms.
        let mut conn = sqlite(30_000);
        let held = sqlite_gate(&mut conn).expect("first turn");
        // The same thread again (a write inside a write) does not wait for itself.
        drop(sqlite_gate(&mut conn).expect("nested turn"));
        // Another thread waits its connection's busy_timeout, then gets a 503-class error.
        let waited = std::thread::spawn(|| {
            let mut other = sqlite(100);
            let started = std::time::Instant::now();
            let err = sqlite_gate(&mut other).err().expect("no turn while held");
            (started.elapsed(), super::super::is_unavailable(&err))
        })
        .join()
        .expect("thread");
        assert!(waited.0 >= Duration::from_millis(100), "{waited:?}");
        assert!(waited.1, "a timed-out wait maps to 503");
        // Released: the other thread gets its turn.
        drop(held);
        std::thread::spawn(|| {
            let mut other = sqlite(30_000);
            drop(sqlite_gate(&mut other).expect("turn after release"));
        })
        .join()
        .expect("thread");
    }
}
