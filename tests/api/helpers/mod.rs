//! The harness: `spawn_app(Backend)` boots the real `Application` on port 0 with a temp
//! SQLite file or a fresh PostgreSQL database, fresh keys and a manual clock.

#![allow(dead_code)]

pub mod api;
pub mod browser;
pub mod node;
pub mod oauth;
pub mod pages;
pub mod postgres;
pub mod redis;
pub mod test_ca;

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::web;
use tessera::app::AppState;
pub use tessera::clock::Clock as _;
use tessera::clock::{Clock, ManualClock, SystemClock};
use tessera::config::Settings;
use tessera::startup::Application;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test: a file in a temp dir, or a new database in the shared cluster.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// `None` when the backend is not available here (the skip was already announced).
    pub fn create(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("tessera.db").display()),
            Backend::Postgres => postgres::new_database()?,
        };
        Some(Self { url, dir })
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub fn settings(&self) -> Settings {
        let mut s = Settings::for_paths(&self.url, &self.keys_dir()).expect("settings");
        s.bind = "127.0.0.1:0".into();
        s.workers = 1;
        s.db_pool_size = 4;
        s.shutdown_timeout_seconds = 1;
        s
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub state: web::Data<AppState>,
    pub clock: Arc<ManualClock>,
    db: Option<TestDb>,
    pub http: reqwest::Client,
    handle: ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command now; the server winds down on its own threads.
        drop(self.handle.stop(false));
    }
}

pub fn now() -> i64 {
    SystemClock.now()
}

/// Boots a server on a fresh database. `None` when the backend is unavailable here.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let db = TestDb::create(backend)?;
    let settings = db.settings();
    Some(spawn_app_with(db, settings).await)
}

/// Boots a server on an existing database with the given settings.
pub async fn spawn_app_with(db: TestDb, settings: Settings) -> TestApp {
    tessera::install_crypto_provider();
    if std::env::var_os("RUST_LOG").is_some() {
        static LOG: std::sync::OnceLock<tessera::telemetry::LogGuard> = std::sync::OnceLock::new();
        LOG.get_or_init(|| tessera::telemetry::init(tessera::cli::LogFormat::Text));
    }
    let clock = ManualClock::new(now());
    let app = Application::build(settings, clock.clone()).expect("application builds");
    let port = app.port();
    let state = app.state();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        state,
        clock,
        db: Some(db),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        handle,
    }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    /// Stops the server and hands back its database, to boot another on the same files.
    pub async fn stop(mut self) -> TestDb {
        self.handle.stop(true).await;
        self.db.take().expect("database present until stop")
    }

    /// Registers a client directly in the database; returns its id and secret.
    pub fn register(&self, new: tessera::clients::NewClient) -> (String, Option<String>) {
        let valid = new
            .validate(&self.state.settings.scopes)
            .expect("valid client");
        let mut conn = self.state.pool.get().expect("conn");
        let (row, secret) =
            tessera::clients::store::insert(&mut conn, &valid, "tsr", self.clock.now())
                .expect("insert");
        (row.id, secret)
    }

    /// A confidential client allowed `client_credentials` with the given scope.
    pub fn machine_client(&self, scope: &str) -> (String, String) {
        let (id, secret) = self.register(tessera::clients::NewClient {
            name: "Batch job".into(),
            grant_types: Some(vec![tessera::clients::GrantType::ClientCredentials]),
            scope: Some(tessera::scope::ScopeSet::parse(scope).expect("scope")),
            ..Default::default()
        });
        (id, secret.expect("confidential"))
    }

    /// POSTs a form body to `path` with optional Basic credentials.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        body: &str,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}{path}", self.address))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.expect("request")
    }

    /// A browser-like client: its own cookie jar, no automatic redirects.
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    pub fn db(&self) -> &TestDb {
        self.db.as_ref().expect("database present until stop")
    }
}

/// Declares `NAME_sqlite` and `NAME_postgres` tests that run `NAME(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The value of the hidden input `name` in an HTML page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end]
        .replace("&#43;", "+")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
}

/// Signs up through the pages with `browser`; returns the response to the form post.
pub async fn signup(
    app: &TestApp,
    browser: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = browser
        .get(format!("{}/signup", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let token = hidden(&page, "csrf_token");
    browser
        .post(format!("{}/signup", app.address))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", &token),
            ("return_to", "/"),
        ])
        .send()
        .await
        .expect("post")
}

/// Logs in through the pages with `browser`, returning to `return_to`.
pub async fn login(
    app: &TestApp,
    browser: &reqwest::Client,
    email: &str,
    password: &str,
    return_to: &str,
) -> reqwest::Response {
    let page = browser
        .get(format!("{}/login", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let token = hidden(&page, "csrf_token");
    browser
        .post(format!("{}/login", app.address))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", &token),
            ("return_to", return_to),
        ])
        .send()
        .await
        .expect("post")
}

/// A connection of the test's own to a SQLite file the running server uses (to break it
/// under the server): waits up to 10 s for the server's write lock, which its background
/// flush takes every half second.
pub fn sqlite_side_connection(path: &str) -> diesel::SqliteConnection {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(path).expect("open the SQLite file");
    diesel::sql_query("PRAGMA busy_timeout = 10000")
        .execute(&mut conn)
        .expect("busy_timeout");
    conn
}
