//! Storage: one diesel `MultiConnection` over SQLite and PostgreSQL, its r2d2 pool, the
//! per-connection SQLite settings, the embedded migrations and the transaction helper.
//! Feature stores (`*/store.rs`) write each query once against [`DbConnection`].

pub mod group_commit;
pub mod schema;

use std::time::Duration;

use diesel::connection::{
    AnsiTransactionManager, Connection, SimpleConnection, TransactionManager,
};
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

#[macro_use]
pub mod text_column;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend; the variant is chosen from the URL scheme.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = Pool<DbManager>;
pub type PooledConn = PooledConnection<DbManager>;

/// Opens connections of the backend the URL's scheme names. (diesel's derived
/// `MultiConnection::establish` tries each backend in turn; we choose, never guess.)
#[derive(Debug, Clone)]
pub struct DbManager {
    url: DatabaseUrl,
}

impl DbManager {
    /// Connections to `url`; PostgreSQL URLs get client-side timeouts
    /// ([`with_client_timeouts`]) so a hung host cannot hold a connection forever.
    fn new(url: &DatabaseUrl, timeout: Duration) -> Self {
        let url = match url {
            DatabaseUrl::Postgres(u) => DatabaseUrl::Postgres(with_client_timeouts(u, timeout)),
            other => other.clone(),
        };
        Self { url }
    }
}

/// Adds libpq's client-side timeouts to a PostgreSQL URL, each unless the URL sets it
/// already: `connect_timeout` (whole seconds, at least 2, libpq's minimum), TCP keepalives
/// (probe after 10 s idle, every 5 s, give up after 3), and `tcp_user_timeout` (unacknowledged
/// data fails the connection after `timeout`, PostgreSQL ≥ 12 libpq). A frozen server whose
/// kernel still acknowledges packets is caught by the per-operation deadline instead
/// (`http::with_db`, docs/security.md R2).
pub fn with_client_timeouts(url: &str, timeout: Duration) -> String {
    let connect = timeout.as_millis().div_ceil(1000).max(2);
    let user_timeout = timeout.as_millis().max(1000);
    let given: Vec<&str> = url
        .split_once('?')
        .map(|(_, q)| q.split('&').filter_map(|kv| kv.split('=').next()).collect())
        .unwrap_or_default();
    let mut out = url.to_string();
    for (key, value) in [
        ("connect_timeout", connect.to_string()),
        ("keepalives", "1".to_string()),
        ("keepalives_idle", "10".to_string()),
        ("keepalives_interval", "5".to_string()),
        ("keepalives_count", "3".to_string()),
        ("tcp_user_timeout", user_timeout.to_string()),
    ] {
        if given.contains(&key) {
            continue;
        }
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(key);
        out.push('=');
        out.push_str(&value);
    }
    out
}

impl ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        let conn = match &self.url {
            DatabaseUrl::Sqlite(path) => {
                SqliteConnection::establish(path).map(DbConnection::Sqlite)
            }
            DatabaseUrl::Postgres(url) => PgConnection::establish(url).map(DbConnection::Postgres),
        };
        conn.map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A filesystem path (the `sqlite://` prefix removed).
    Sqlite(String),
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite://PATH`, `sqlite:PATH` or a bare path → SQLite; `postgres://` or
    /// `postgresql://` → PostgreSQL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("the database URL is empty".into());
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err("the SQLite path is empty".into());
        }
        if path.contains("://") {
            return Err(format!(
                "unsupported database URL scheme in {url:?}: use sqlite://PATH or postgres://..."
            ));
        }
        Ok(Self::Sqlite(path.to_string()))
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }
}

/// Applied to every connection the pool hands out (these settings are per connection in
/// SQLite, so setting them once at start-up would miss every other pooled connection).
/// The database deadline bounds each statement on the server too: SQLite's `busy_timeout`
/// (waiting for the write lock) and PostgreSQL's `statement_timeout` and
/// `lock_timeout`, so work the client gave up on does not keep holding locks.
#[derive(Debug)]
struct ConnectionSetup {
    timeout_ms: u128,
}

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        let ms = self.timeout_ms;
        let sql = match conn {
            DbConnection::Sqlite(_) => format!(
                "PRAGMA busy_timeout = {ms}; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;"
            ),
            DbConnection::Postgres(_) => {
                format!("SET statement_timeout = {ms}; SET lock_timeout = {ms};")
            }
        };
        conn.batch_execute(&sql)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("cannot create the SQLite file {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "no database at {0}: check --database-url (TESSERA_DATABASE_URL); `tessera migrate` or `tessera serve` creates a new one"
    )]
    Missing(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("running migrations failed: {0}")]
    Migrate(String),
}

/// Creates the SQLite file and any missing directories above it, owner-only (docs/spec.md
/// §1: directories 0700, the file 0600; SQLite gives its `-wal` and `-shm` files the mode of
/// the database file). An existing file or directory keeps its mode.
fn create_sqlite_file(path: &str) -> Result<(), DbSetupError> {
    let io = |source| DbSetupError::Create {
        path: path.to_string(),
        source,
    };
    let file = std::path::Path::new(path);
    if let Some(dir) = file.parent()
        && !dir.as_os_str().is_empty()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(file) {
        // An empty file is an empty SQLite database.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// A first connection: creates the SQLite file (see [`create_sqlite_file`]) and switches
/// it to WAL (the mode persists in the file). Fails fast with the real reason (bad URL,
/// refused, auth).
fn open_first(url: &DatabaseUrl) -> Result<DbConnection, DbSetupError> {
    if let DatabaseUrl::Sqlite(path) = url
        && !is_memory(path)
    {
        create_sqlite_file(path)?;
    }
    let mut conn = DbManager::new(url, FIRST_CONNECT_TIMEOUT)
        .connect()
        .map_err(|e| DbSetupError::Connect(e.to_string()))?;
    if url.is_sqlite() {
        // Another process may be creating the same file: wait for its locks, as every
        // later statement does (ConnectionSetup), instead of failing with SQLITE_BUSY.
        conn.batch_execute("PRAGMA busy_timeout = 5000;")
            .map_err(|e| DbSetupError::Connect(e.to_string()))?;
        switch_to_wal(&mut conn)?;
    }
    Ok(conn)
}

/// `PRAGMA journal_mode = WAL`, retried while another process holds the file: switching
/// needs an exclusive lock, and SQLite answers SQLITE_BUSY at once, without its busy
/// handler, when waiting could deadlock (another process migrating in `BEGIN IMMEDIATE`).
#[expect(
    clippy::disallowed_methods,
    reason = "start-up only, before any request is served: a short real-time wait for another process"
)]
fn switch_to_wal(conn: &mut DbConnection) -> Result<(), DbSetupError> {
    let deadline = std::time::Instant::now() + FIRST_CONNECT_TIMEOUT;
    loop {
        match conn.batch_execute("PRAGMA journal_mode = WAL;") {
            Ok(()) => return Ok(()),
            Err(e) if e.to_string().contains("locked") && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(DbSetupError::Connect(e.to_string())),
        }
    }
}

/// SQLite's in-memory database names (no file to create or find).
fn is_memory(path: &str) -> bool {
    path == ":memory:" || path.starts_with("file::memory:")
}

/// How long start-up and the CLI wait for a first connection (a server that is still
/// starting beside us gets this long).
const FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the pool after checking one connection works. `timeout` (`--db-timeout-ms`)
/// bounds a checkout, a new connection and each statement, so an outage surfaces as 503
/// quickly; the pool fills in the background rather than making start-up wait on
/// `max_size` connections.
pub fn build_pool(
    url: &DatabaseUrl,
    max_size: u32,
    timeout: Duration,
) -> Result<DbPool, DbSetupError> {
    drop(open_first(url)?);
    Ok(Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(timeout)
        // docs/architecture.md §6: no `SELECT 1` on every SQLite checkout (a file
        // connection has no server to lose; a failing query is a 503 either way). On
        // PostgreSQL the check stays: it is how a connection the server dropped (restart,
        // failover) is found and replaced, which diesel does not expose otherwise.
        .test_on_check_out(matches!(url, DatabaseUrl::Postgres(_)))
        .connection_customizer(Box::new(ConnectionSetup {
            timeout_ms: timeout.as_millis(),
        }))
        .build_unchecked(DbManager::new(url, timeout)))
}

/// The CLI waits longer than a request would: an operator's command should outwait a
/// busy server's write lock rather than fail.
const CLI_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection without a pool, with the same per-connection settings, for short-lived
/// processes (the admin CLI). A pool would keep background threads opening connections,
/// and libpq aborts if the process exits while one of them is inside it.
pub fn connect_direct(url: &DatabaseUrl) -> Result<DbConnection, DbSetupError> {
    let mut conn = open_first(url)?;
    ConnectionSetup {
        timeout_ms: CLI_STATEMENT_TIMEOUT.as_millis(),
    }
    .on_acquire(&mut conn)
    .map_err(|e| DbSetupError::Connect(e.to_string()))?;
    Ok(conn)
}

/// The PostgreSQL advisory lock key that serializes migrations (any constant shared by
/// every instance; these are the bytes of "tessera!").
const MIGRATION_LOCK_KEY: i64 = 0x7465_7373_6572_6121;

/// [`connect_direct`] to a database that already exists: a SQLite file that is not there
/// is refused, naming the path, instead of being created (docs/spec.md §1: the admin
/// commands never make a second, empty database out of a mistyped `--database-url`).
pub fn connect_existing(url: &DatabaseUrl) -> Result<DbConnection, DbSetupError> {
    if let DatabaseUrl::Sqlite(path) = url
        && !is_memory(path)
        && !std::path::Path::new(path).is_file()
    {
        return Err(DbSetupError::Missing(path.clone()));
    }
    connect_direct(url)
}

/// Runs pending migrations; idempotent. Returns how many were applied.
///
/// Instances starting together on one empty database all succeed (docs/spec.md §7): the
/// migrations are serialized, so a second migrator waits, then finds them applied. On
/// PostgreSQL a session advisory lock is held around them (a migration's `CREATE TABLE`
/// racing another's fails on `pg_type`'s unique index otherwise); on SQLite they run in one
/// `BEGIN IMMEDIATE` transaction, so the second process waits on `busy_timeout` for the
/// write lock and only then reads which migrations are applied.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, DbSetupError> {
    let failed = |e: &dyn std::fmt::Display| DbSetupError::Migrate(e.to_string());
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
                .map_err(|e| failed(&e))?;
            let applied = c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.len())
                .map_err(|e| failed(&e));
            match applied {
                Ok(n) => {
                    AnsiTransactionManager::commit_transaction(c).map_err(|e| failed(&e))?;
                    Ok(n)
                }
                Err(e) => {
                    let _ = AnsiTransactionManager::rollback_transaction(c);
                    Err(e)
                }
            }
        }
        DbConnection::Postgres(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .map_err(|e| failed(&e))?;
            let applied = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len())
                .map_err(|e| failed(&e));
            // Released before reporting either way: the connection may go back to a pool.
            let unlocked =
                c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
            let n = applied?;
            unlocked.map_err(|e| failed(&e))?;
            Ok(n)
        }
    }
}

mod writers;
pub(crate) use writers::SqliteWriter;
pub use writers::{SqliteGate, sqlite_gate, sqlite_writers};

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock is
/// taken up front and a concurrent writer waits on `busy_timeout` instead of failing with an
/// un-retryable SQLITE_BUSY on lock upgrade, after this process's earlier writers
/// ([`sqlite_gate`]). Commits before returning `Ok`.
pub fn write_tx<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let _writer = matches!(conn, DbConnection::Sqlite(_)).then(SqliteWriter::enter);
    let _turn = sqlite_gate(conn)?;
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        DbConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            // The original error is the one worth reporting; a failed rollback leaves the
            // connection marked broken and r2d2 discards it.
            let _ = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// Readiness: the database answers a query on a core table.
pub fn ping(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    use crate::db::schema::signing_keys;
    use diesel::prelude::*;
    signing_keys::table
        .select(signing_keys::kid)
        .first::<String>(conn)
        .optional()
        .map(|_| ())
}

/// True when a diesel error means "the database is not there" rather than "the query was
/// wrong": callers answer 503 for these. A full disk or database is one: the write was
/// rolled back and may succeed once space is freed (docs/security.md R3) — SQLite's
/// SQLITE_FULL ("database or disk is full") or an I/O error, PostgreSQL's `53100
/// disk_full` ("could not extend file …: No space left on device", or "… wrote only N of
/// 8192 bytes"; diesel keeps no SQLSTATE, so the English messages are matched).
pub fn is_unavailable(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let m = info.message();
            m.contains("database is locked")
                || m.contains("disk")
                || m.contains("could not extend file")
                || m.contains("No space left on device")
                || m.contains("no such table")
                || m.contains("readonly")
                || m.contains("terminating connection")
                || m.contains("server closed the connection")
                || m.contains("does not exist")
        }
        Error::BrokenTransactionManager => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/security.md R3: SQLITE_FULL is an outage (503), not an internal error.
    #[test]
    fn r3_a_full_sqlite_database_is_unavailable() {
        use diesel::RunQueryDsl;
        let mut conn = SqliteConnection::establish(":memory:").expect("sqlite");
        conn.batch_execute("CREATE TABLE t (x BLOB); PRAGMA max_page_count = 1;")
            .expect("setup");
        let e = diesel::sql_query("INSERT INTO t VALUES (zeroblob(100000))")
            .execute(&mut conn)
            .expect_err("the database is full");
        assert!(e.to_string().contains("full"), "{e}");
        assert!(is_unavailable(&e), "{e}");
    }

    /// docs/security.md R3: PostgreSQL's disk_full errors (a table or index that cannot grow)
    /// are an outage (503), not an internal error.
    #[test]
    fn r3_a_full_postgresql_disk_is_unavailable() {
        use diesel::result::{DatabaseErrorKind, Error};
        for message in [
            "could not extend file \"base/16384/16385\": No space left on device",
            "could not extend file \"pg_tblspc/16390/PG_15_202209061/16391/16400\": wrote only 4096 of 8192 bytes at block 12",
        ] {
            let e = Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_string()));
            assert!(is_unavailable(&e), "{message}");
        }
        let wrong = Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("syntax error at or near \"SELEC\"".to_string()),
        );
        assert!(!is_unavailable(&wrong));
    }

    fn migration_names(dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn migration_trees_have_identical_directory_names() {
        let root = env!("CARGO_MANIFEST_DIR");
        let sqlite = migration_names(&format!("{root}/migrations/sqlite"));
        let postgres = migration_names(&format!("{root}/migrations/postgres"));
        assert!(!sqlite.is_empty());
        assert_eq!(
            sqlite, postgres,
            "migrations/sqlite and migrations/postgres drifted"
        );
        for name in &sqlite {
            for file in ["up.sql", "down.sql"] {
                for tree in ["sqlite", "postgres"] {
                    let p = format!("{root}/migrations/{tree}/{name}/{file}");
                    assert!(std::path::Path::new(&p).exists(), "{p} is missing");
                }
            }
        }
    }

    #[test]
    fn database_urls_pick_the_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/t.db"),
            Ok(DatabaseUrl::Sqlite("data/t.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("/tmp/x.db"),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@localhost/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("").is_err());
    }
}
