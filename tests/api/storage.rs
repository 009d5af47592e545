//! Storage: migrations are idempotent on both backends, SQLite settings hold on every
//! pooled connection, and a failed write leaves nothing behind.

use diesel::QueryableByName;
use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Text};

use tessera::db::{DatabaseUrl, DbConnection, build_pool, run_migrations, write_tx};

use crate::helpers::{Backend, TestDb, spawn_app_with};

crate::on_both_backends!(
    migrations_are_idempotent_and_a_restart_on_the_same_database_works,
    a_failed_write_transaction_leaves_nothing_behind,
);

async fn migrations_are_idempotent_and_a_restart_on_the_same_database_works(backend: Backend) {
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let url = DatabaseUrl::parse(&db.url).expect("url");
    let pool = build_pool(&url, 2, std::time::Duration::from_secs(2)).expect("pool");
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .expect("dir")
        .count();
    assert_eq!(
        run_migrations(&mut pool.get().expect("conn")).expect("first run"),
        migrations
    );
    assert_eq!(
        run_migrations(&mut pool.get().expect("conn")).expect("second run"),
        0
    );
    drop(pool);
    // The server migrates on start too, twice in a row on the same database.
    let settings = db.settings();
    let app = spawn_app_with(db, settings).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let db = app.stop().await;
    let settings = db.settings();
    let app = spawn_app_with(db, settings).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn a_failed_write_transaction_leaves_nothing_behind(backend: Backend) {
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let pool = build_pool(
        &DatabaseUrl::parse(&db.url).expect("url"),
        2,
        std::time::Duration::from_secs(2),
    )
    .expect("pool");
    let mut conn = pool.get().expect("conn");
    run_migrations(&mut conn).expect("migrate");
    let result: Result<(), diesel::result::Error> = write_tx(&mut conn, |c: &mut DbConnection| {
        tessera::orgs::store::insert(c, "Doomed", tessera::orgs::Plan::Free, 1).expect("insert");
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert!(result.is_err());
    let count: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM organizations")
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(count.n, 0);
    // The connection is usable afterwards.
    write_tx(&mut conn, |c: &mut DbConnection| {
        tessera::orgs::store::insert(c, "Kept", tessera::orgs::Plan::Free, 1).map(|_| ())
    })
    .expect("commit");
    let count: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM organizations")
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(count.n, 1);
}

#[derive(QueryableByName)]
struct Pragma {
    #[diesel(sql_type = Text)]
    v: String,
}

fn pragma(conn: &mut DbConnection, name: &str) -> String {
    let column = if name == "busy_timeout" {
        "timeout"
    } else {
        name
    };
    diesel::sql_query(format!(
        "SELECT CAST({column} AS TEXT) AS v FROM pragma_{name}"
    ))
    .get_result::<Pragma>(conn)
    .expect("pragma")
    .v
}

/// docs/security.md §2: WAL, synchronous=FULL, foreign_keys=ON and busy_timeout on every
/// pooled connection, not only the first.
#[actix_web::test]
async fn sqlite_settings_hold_on_every_pooled_connection() {
    let db = TestDb::create(Backend::Sqlite).expect("sqlite");
    let pool = build_pool(
        &DatabaseUrl::parse(&db.url).expect("url"),
        4,
        std::time::Duration::from_secs(2),
    )
    .expect("pool");
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.get().expect("conn"));
    }
    for conn in held.iter_mut() {
        assert_eq!(pragma(conn, "journal_mode"), "wal");
        assert_eq!(pragma(conn, "synchronous"), "2", "FULL");
        assert_eq!(pragma(conn, "foreign_keys"), "1");
        assert_eq!(
            pragma(conn, "busy_timeout"),
            "2000",
            "the database deadline (--db-timeout-ms)"
        );
    }
}
