//! Group commit on SQLite (docs/architecture.md §6.1): one writer thread owns one connection
//! and commits the write transactions of concurrent requests together, one `COMMIT` (one
//! fsync with `synchronous = FULL`) for a whole batch.
//!
//! A caller hands [`GroupCommit::run`] an owned job (`Send + 'static`) and waits. The writer
//! takes every job queued meanwhile (at most [`MAX_BATCH`]), runs `BEGIN IMMEDIATE`, each job
//! inside its own `SAVEPOINT` (a job that returns `Err` rolls back only its own writes), one
//! `COMMIT`, and only then answers each caller: nothing is acknowledged before it is durable.
//! If the `COMMIT` (or the transaction around the savepoints) fails, every job of the batch
//! gets that error and none of their writes exist. Jobs of one batch run one after the other
//! on one connection, so each sees the writes of those before it exactly as separate
//! `BEGIN IMMEDIATE` transactions would: single-use rules decided by a conditional `UPDATE`
//! (codes, refresh tokens) hold as they do with [`super::write_tx`].
//!
//! Other writers of the process (janitor, usage flush, admin operations) keep
//! [`super::write_tx`] on pooled connections; they and the writer serialize on SQLite's lock.
//! The writer waits for that lock up to `busy_timeout` (`--db-timeout-ms`) like every
//! pooled connection. PostgreSQL has no single writer to queue behind and commits many
//! connections in parallel, so this is used on SQLite only (BENCHMARKS.md, group commit).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::{DbConnection, DbPool, SqliteWriter};

/// The most jobs one transaction commits. Bounds the time the first caller of a batch waits
/// behind the others (a job of the hot paths is a few statements, ~50–100 µs).
pub const MAX_BATCH: usize = 64;

/// What a job answers once its batch is decided: `Ok(())` after the `COMMIT`, or the error
/// that undid the batch.
type Reply = Box<dyn FnOnce(Result<(), &DieselError>) + Send>;

/// A job on the writer's connection (`Err` when there is none): whether to keep its
/// savepoint, and how to answer its caller.
type Job = Box<dyn FnOnce(Result<&mut DbConnection, &DieselError>) -> (bool, Reply) + Send>;

/// Batch counters (for `tessera_group_commit_*` metrics and tests).
#[derive(Debug, Default)]
pub struct Stats {
    /// Transactions committed or attempted.
    pub batches: AtomicU64,
    /// Jobs run in them.
    pub jobs: AtomicU64,
    /// The largest batch so far.
    pub largest: AtomicU64,
    /// Callers whose job is queued or running and who wait for its answer.
    pub waiting: AtomicU64,
}

/// The handle to the writer thread. Dropping every handle ends the thread once its queue is
/// empty.
#[derive(Debug)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    wait: Duration,
    stats: Arc<Stats>,
}

impl GroupCommit {
    /// Starts the writer thread on `pool` (a pool of its own, one connection: the
    /// request pool's connections are held by the callers while they wait). `wait` is how
    /// long a caller waits for its answer (`--db-timeout-ms`); `on_batch` gets each batch's
    /// size. Fails only when the OS refuses a thread.
    pub fn start(
        pool: DbPool,
        wait: Duration,
        on_batch: Box<dyn Fn(usize) + Send>,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let stats = Arc::new(Stats::default());
        let counters = stats.clone();
        std::thread::Builder::new()
            .name("tessera-group-commit".into())
            .spawn(move || writer(&pool, &queue, &counters, on_batch.as_ref()))?;
        Ok(Self { jobs, wait, stats })
    }

    /// The batch counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Runs `f` in the writer's next transaction and returns its result once that
    /// transaction committed: `Ok` from `f` is kept (released savepoint) and returned after
    /// the `COMMIT`; `Err` from `f` rolls back `f`'s writes only and is returned as is.
    /// Errors of the batch (`BEGIN`, savepoint, `COMMIT`, no connection) come back as
    /// `E::from(diesel error)` with the original kind and message, so `db::is_unavailable`
    /// classifies them as before (503); no answer within `wait` is an unavailable error too
    /// (docs/security.md R2; the job may still run). A job that panics is rolled back and
    /// its caller gets a non-database error (500).
    pub fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DieselError> + Send + 'static,
    {
        let (answer, answered) = mpsc::sync_channel::<Result<T, E>>(1);
        let job: Job = Box::new(move |conn| {
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = answer.send(Err(E::from(replicate(e))));
                    return (false, Box::new(|_| ()));
                }
            };
            match catch_unwind(AssertUnwindSafe(|| f(conn))) {
                Ok(Ok(value)) => (
                    true,
                    Box::new(move |committed: Result<(), &DieselError>| {
                        let _ = answer
                            .send(committed.map(|()| value).map_err(|e| E::from(replicate(e))));
                    }),
                ),
                Ok(Err(e)) => (
                    false,
                    Box::new(move |_| {
                        let _ = answer.send(Err(e));
                    }),
                ),
                Err(_) => (
                    false,
                    Box::new(move |_| {
                        let _ = answer.send(Err(E::from(DieselError::QueryBuilderError(
                            "a group-commit job panicked".into(),
                        ))));
                    }),
                ),
            }
        });
        // Counted as a waiting SQLite writer, so the janitor lets it through (R12).
        let _writer = SqliteWriter::enter();
        if self.jobs.send(job).is_err() {
            return Err(E::from(unavailable("the group-commit writer has stopped")));
        }
        // Counted once queued: a count of n means n jobs are in the queue or running.
        let _waiting = Waiting::enter(&self.stats);
        match answered.recv_timeout(self.wait) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(E::from(unavailable(&format!(
                "the group-commit writer did not answer within {} ms",
                self.wait.as_millis()
            )))),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(E::from(unavailable("the group-commit writer has stopped")))
            }
        }
    }
}

/// Counts one caller in [`Stats::waiting`] while it lives.
struct Waiting<'a>(&'a Stats);

impl<'a> Waiting<'a> {
    fn enter(stats: &'a Stats) -> Self {
        stats.waiting.fetch_add(1, Ordering::SeqCst);
        Self(stats)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `f` as one write transaction: through `group` when there is one (SQLite serving),
/// else with [`super::write_tx`] on `conn` (PostgreSQL, the CLI).
pub fn write<T, E, F>(group: Option<&GroupCommit>, conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DieselError> + Send + 'static,
{
    match group {
        Some(g) if matches!(conn, DbConnection::Sqlite(_)) => g.run(f),
        _ => super::write_tx(conn, f),
    }
}

/// An error `db::is_unavailable` reads as an outage (503).
fn unavailable(message: &str) -> DieselError {
    DieselError::DatabaseError(
        DatabaseErrorKind::ClosedConnection,
        Box::new(message.to_string()),
    )
}

/// A copy of a batch's error for each of its callers (diesel errors are not `Clone`): the
/// same kind and message, so `db::is_unavailable` decides the same way.
fn replicate(e: &DieselError) -> DieselError {
    match e {
        DieselError::DatabaseError(kind, info) => {
            DieselError::DatabaseError(*kind, Box::new(info.message().to_string()))
        }
        DieselError::BrokenTransactionManager => DieselError::BrokenTransactionManager,
        DieselError::NotFound => DieselError::NotFound,
        other => DieselError::QueryBuilderError(other.to_string().into()),
    }
}

/// The writer thread: one batch at a time until every handle is gone.
fn writer(pool: &DbPool, queue: &mpsc::Receiver<Job>, stats: &Stats, on_batch: &dyn Fn(usize)) {
    while let Ok(first) = queue.recv() {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.jobs.fetch_add(size as u64, Ordering::Relaxed);
        stats.largest.fetch_max(size as u64, Ordering::Relaxed);
        on_batch(size);
        match pool.get() {
            Ok(mut conn) => run_batch(&mut conn, batch),
            Err(e) => {
                let e = unavailable(&e.to_string());
                for job in batch {
                    let (_, reply) = job(Err(&e));
                    reply(Err(&e));
                }
            }
        }
    }
}

/// One transaction: `BEGIN IMMEDIATE`, a savepoint per job, `COMMIT`, then the answers.
fn run_batch(conn: &mut DbConnection, batch: Vec<Job>) {
    type Tm = <DbConnection as Connection>::TransactionManager;
    // The batch takes its turn in this process's queue of SQLite writers like any
    // `write_tx` (`db::sqlite_gate`, docs/security.md R12).
    let turn = super::sqlite_gate(conn);
    let begun = match (&turn, &mut *conn) {
        (Err(e), _) => Err(replicate(e)),
        (Ok(_), DbConnection::Sqlite(c)) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        (Ok(_), DbConnection::Postgres(_)) => Tm::begin_transaction(conn),
    };
    let _turn = turn;
    if let Err(e) = begun {
        for job in batch {
            let (_, reply) = job(Err(&e));
            reply(Err(&e));
        }
        return;
    }
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    let mut failed: Option<DieselError> = None;
    let mut jobs = batch.into_iter();
    for job in jobs.by_ref() {
        if let Err(e) = Tm::begin_transaction(conn) {
            let (_, reply) = job(Err(&e));
            replies.push(reply);
            failed = Some(e);
            break;
        }
        let (keep, reply) = job(Ok(conn));
        replies.push(reply);
        // RELEASE keeps the job's writes; ROLLBACK TO undoes them. Either failing means the
        // transaction itself is gone (SQLite rolls back the whole transaction on some I/O
        // errors): nothing of the batch may be acknowledged.
        let ended = if keep {
            Tm::commit_transaction(conn)
        } else {
            Tm::rollback_transaction(conn)
        };
        if let Err(e) = ended {
            failed = Some(e);
            break;
        }
    }
    let outcome = match failed {
        None => Tm::commit_transaction(conn),
        Some(e) => {
            // A failed rollback leaves the connection marked broken; the pool replaces it.
            let _ = Tm::rollback_transaction(conn);
            Err(e)
        }
    };
    match &outcome {
        Ok(()) => replies.into_iter().for_each(|reply| reply(Ok(()))),
        Err(e) => {
            replies.into_iter().for_each(|reply| reply(Err(e)));
            for job in jobs {
                let (_, reply) = job(Err(e));
                reply(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{DatabaseUrl, build_pool};
    use diesel::RunQueryDsl;
    use diesel::connection::SimpleConnection;

    #[derive(Debug, PartialEq)]
    enum JobError {
        Refused(&'static str),
        Db(String),
    }

    impl From<DieselError> for JobError {
        fn from(e: DieselError) -> Self {
            Self::Db(e.to_string())
        }
    }

    fn setup() -> (tempfile::TempDir, DbPool, GroupCommit) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = DatabaseUrl::Sqlite(dir.path().join("t.db").to_string_lossy().into_owned());
        let pool = build_pool(&url, 2, Duration::from_secs(5)).expect("pool");
        pool.get()
            .expect("conn")
            .batch_execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .expect("table");
        let writer = build_pool(&url, 1, Duration::from_secs(5)).expect("writer pool");
        let group =
            GroupCommit::start(writer, Duration::from_secs(10), Box::new(|_| ())).expect("start");
        (dir, pool, group)
    }

    fn insert(conn: &mut DbConnection, x: i64) -> Result<usize, DieselError> {
        diesel::sql_query(format!("INSERT INTO t (x) VALUES ({x})")).execute(conn)
    }

    fn rows(pool: &DbPool) -> Vec<i64> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            x: i64,
        }
        diesel::sql_query("SELECT x FROM t ORDER BY x")
            .load::<Row>(&mut pool.get().expect("conn"))
            .expect("rows")
            .into_iter()
            .map(|r| r.x)
            .collect()
    }

    /// Holds the writer in a first job until `queued` callers wait behind it, so they all
    /// land in the next batch; then runs `jobs` (one thread each) and returns their answers.
    fn in_one_batch<F>(group: &Arc<GroupCommit>, jobs: Vec<F>) -> Vec<Result<i64, JobError>>
    where
        F: FnOnce(&mut DbConnection) -> Result<i64, JobError> + Send + 'static,
    {
        let (release, gate) = mpsc::channel::<()>();
        // Read before the first job exists: the writer may count its batch before this
        // thread runs again, and a count read after that would wait for a batch that never
        // comes (the writer is blocked in the gate).
        let before = group.stats().batches.load(Ordering::SeqCst);
        let g = group.clone();
        let first = std::thread::spawn(move || {
            g.run(move |_| -> Result<i64, JobError> {
                gate.recv().map_err(|_| JobError::Refused("gate"))?;
                Ok(0)
            })
        });
        // The writer has taken the gate's batch (alone) and is blocked in it.
        while group.stats().batches.load(Ordering::SeqCst) == before {
            std::thread::yield_now();
        }
        let n = jobs.len() as u64;
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let g = group.clone();
                std::thread::spawn(move || g.run(job))
            })
            .collect();
        while group.stats().waiting.load(Ordering::SeqCst) < n + 1 {
            std::thread::yield_now();
        }
        release.send(()).expect("release");
        assert_eq!(first.join().expect("first"), Ok(0));
        handles
            .into_iter()
            .map(|h| h.join().expect("job"))
            .collect()
    }

    type BoxedJob = Box<dyn FnOnce(&mut DbConnection) -> Result<i64, JobError> + Send>;

    #[test]
    fn concurrent_jobs_commit_together_and_a_failing_job_undoes_only_itself() {
        let (_dir, pool, group) = setup();
        let group = Arc::new(group);
        let jobs: Vec<BoxedJob> = vec![
            Box::new(|c| Ok(insert(c, 1).map(|_| 1)?)),
            // Writes, then refuses: its row must not exist.
            Box::new(|c| {
                insert(c, 2)?;
                Err(JobError::Refused("no"))
            }),
            Box::new(|c| Ok(insert(c, 3).map(|_| 3)?)),
            // Two jobs insert the same key: whichever the batch runs second sees the first's
            // row and fails, rolling back itself only. (The queue's order is the threads'
            // arrival order, which the test does not control.)
            Box::new(|c| Ok(insert(c, 1).map(|_| 4)?)),
            Box::new(|c| Ok(insert(c, 5).map(|_| 5)?)),
        ];
        let answers = in_one_batch(&group, jobs);
        assert_eq!(answers.get(1), Some(&Err(JobError::Refused("no"))));
        assert_eq!(answers.get(2), Some(&Ok(3)));
        assert_eq!(answers.get(4), Some(&Ok(5)));
        let duplicate = |a: Option<&Result<i64, JobError>>| matches!(a, Some(Err(JobError::Db(m))) if m.contains("UNIQUE"));
        let (first, fourth) = (answers.first(), answers.get(3));
        assert!(
            (first == Some(&Ok(1)) && duplicate(fourth))
                || (fourth == Some(&Ok(4)) && duplicate(first)),
            "exactly one of the two inserts of 1 succeeds: {answers:?}"
        );
        assert_eq!(rows(&pool), vec![1, 3, 5]);
        // Two transactions: the gate's, then all five together.
        assert_eq!(group.stats().batches.load(Ordering::SeqCst), 2);
        assert_eq!(group.stats().largest.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn nothing_is_acknowledged_when_the_batch_transaction_fails() {
        let (_dir, pool, group) = setup();
        let group = Arc::new(group);
        let jobs: Vec<BoxedJob> = vec![
            Box::new(|c| Ok(insert(c, 1).map(|_| 1)?)),
            // Ends the whole transaction under the writer's feet (as SQLite does on some
            // I/O errors): its savepoint is gone, so the batch fails.
            Box::new(|c| {
                c.batch_execute("ROLLBACK")?;
                Ok(2)
            }),
            Box::new(|c| Ok(insert(c, 3).map(|_| 3)?)),
        ];
        let answers = in_one_batch(&group, jobs);
        assert!(
            answers.iter().all(|a| matches!(a, Err(JobError::Db(_)))),
            "{answers:?}"
        );
        assert_eq!(rows(&pool), Vec::<i64>::new());
        // The writer goes on with the next batch.
        assert_eq!(
            group.run(|c| Ok::<_, JobError>(insert(c, 7).map(|_| 7)?)),
            Ok(7)
        );
        assert_eq!(rows(&pool), vec![7]);
    }

    #[test]
    fn a_panicking_job_is_rolled_back_and_the_writer_survives() {
        let (_dir, pool, group) = setup();
        let answer = group.run(|c| -> Result<i64, JobError> {
            insert(c, 1)?;
            panic!("boom")
        });
        assert!(matches!(answer, Err(JobError::Db(m)) if m.contains("panicked")));
        assert_eq!(
            group.run(|c| Ok::<_, JobError>(insert(c, 2).map(|_| 2)?)),
            Ok(2)
        );
        assert_eq!(rows(&pool), vec![2]);
    }

    #[test]
    fn db_errors_keep_their_kind_for_the_503_decision() {
        let e = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database or disk is full".to_string()),
        );
        assert!(crate::db::is_unavailable(&replicate(&e)));
        assert!(crate::db::is_unavailable(&unavailable("gone")));
        assert!(!crate::db::is_unavailable(&replicate(
            &DieselError::NotFound
        )));
    }
}
