//! The real binary as an operator runs it: the organization, user, clients and admin key
//! made with the CLI subcommands, then `tessera serve` on a free port with its own
//! database and keys directory, stopped by signals (SIGKILL, SIGTERM) and started again on
//! the same files.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Backend, postgres};

/// The issuer every run of the server uses: tokens stay valid across restarts on other ports.
pub const ISSUER: &str = "http://tessera.fault.test";
pub const REDIRECT: &str = "https://app.example/cb";
pub const PASSWORD: &str = "correct horse battery staple";

/// The binary under test: cargo's, or `TESSERA_FAULT_BIN` (a copy that a parallel build
/// sharing the target directory cannot overwrite during a long run).
fn binary() -> String {
    std::env::var("TESSERA_FAULT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tessera").into())
}

/// A database and keys directory that outlive each server process.
pub struct Site {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub url: String,
    /// The durable PostgreSQL cluster of this site (stopped by its watchdog at exit).
    cluster: Option<postgres::Cluster>,
    runs: u32,
}

impl Site {
    /// `None` (announced) when the backend is unavailable here. PostgreSQL runs in a
    /// durable cluster of its own: the shared test cluster trades durability for speed.
    pub fn new(backend: Backend) -> Option<Self> {
        Self::create(backend, true)
    }

    /// Like [`Site::new`], but a PostgreSQL site is a database in the shared test cluster:
    /// for tests that never stop, freeze or crash the database.
    pub fn shared(backend: Backend) -> Option<Self> {
        Self::create(backend, false)
    }

    fn create(backend: Backend, private: bool) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, cluster) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("tessera.db").display()),
                None,
            ),
            Backend::Postgres if private => {
                let cluster = postgres::private_cluster()?;
                (cluster.new_database(), Some(cluster))
            }
            Backend::Postgres => (postgres::new_database()?, None),
        };
        let site = Self {
            backend,
            dir,
            url,
            cluster,
            runs: 0,
        };
        site.cli(&["migrate"], None);
        Some(site)
    }

    /// The private PostgreSQL cluster of a [`Site::new`] PostgreSQL site (R2 stops and
    /// freezes it).
    pub fn cluster(&self) -> Option<&postgres::Cluster> {
        self.cluster.as_ref()
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        (self.backend == Backend::Sqlite).then(|| self.dir.path().join("tessera.db"))
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(binary());
        cmd.arg("--database-url")
            .arg(&self.url)
            .arg("--keys-dir")
            .arg(self.keys_dir())
            .arg("--issuer")
            .arg(ISSUER);
        cmd.env_remove("RUST_LOG");
        cmd
    }

    /// Runs an admin subcommand; its JSON output.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Value {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tessera");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("output");
        assert!(
            out.status.success(),
            "tessera {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("not JSON: {stdout}"))
    }

    /// Starts `tessera serve` on a free port; returns once it listens. Its log goes to a
    /// file in the site's directory (printed when a check fails).
    pub fn serve(&mut self, extra: &[&str]) -> Server {
        self.runs += 1;
        let log_path = self.dir.path().join(format!("serve-{}.log", self.runs));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut child = self
            .command()
            .args([
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--refresh-grace-seconds",
                "0",
            ])
            .args(extra)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_else(|| {
            panic!(
                "serve did not start: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )
        });
        let address = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("the banner names the URL")
            .to_string();
        // Keep draining the banner so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let port = address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        Server {
            child,
            address,
            port,
            log: log_path,
        }
    }

    /// SQLite's `PRAGMA integrity_check` and `foreign_key_check` on the file: "ok", or the
    /// problems found. PostgreSQL: "ok" (nothing to check at this level).
    pub fn integrity(&self) -> String {
        self.sqlite_path()
            .map_or_else(|| "ok".into(), |p| sqlite_integrity(&p))
    }
}

/// `PRAGMA integrity_check` ("ok" or its findings), plus the rows `foreign_key_check`
/// reports, of a SQLite file (which may be in use: this is a read transaction).
pub fn sqlite_integrity(path: &std::path::Path) -> String {
    use diesel::sql_types::{BigInt, Text};
    use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        integrity_check: String,
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn =
        SqliteConnection::establish(&path.display().to_string()).expect("open the SQLite file");
    let lines: Vec<Line> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut conn)
        .expect("integrity_check");
    let mut out = lines
        .into_iter()
        .map(|l| l.integrity_check)
        .collect::<Vec<_>>()
        .join("\n");
    let orphans = diesel::sql_query("SELECT COUNT(*) AS n FROM pragma_foreign_key_check")
        .get_result::<Count>(&mut conn)
        .expect("foreign_key_check")
        .n;
    if orphans > 0 {
        out.push_str(&format!("\n{orphans} rows fail foreign_key_check"));
    }
    out
}

/// A running `tessera serve`.
pub struct Server {
    child: Child,
    pub address: String,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig}");
    }

    /// SIGKILL, then reaps the process.
    pub fn kill9(&mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory (`VmRSS` in `/proc/<pid>/status`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .expect("VmRSS of the server process")
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// The exit status, if the process ends within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub const RESOURCE_SERVERS: usize = 10;

/// What the CLI made: an organization (plan pro) with a user, the clients the load needs
/// and an admin API key for `/api/v1`.
#[derive(Clone)]
pub struct World {
    pub email: String,
    pub admin_key: String,
    /// `--resource-server` clients: introspection and key verification. The checks spread
    /// over several, each from its own loopback address, to stay under the throttle of
    /// inactive introspections (docs/security.md G4: 300 per caller and 3000 per address
    /// a minute).
    pub rs: Vec<(String, String)>,
    /// `client_credentials`.
    pub machine: (String, String),
    /// Code flow with refresh, confidential.
    pub web: (String, String),
    /// A `client_credentials` client whose secret the load rotates; its first secret.
    pub rotating: (String, String),
}

fn field(v: &Value, name: &str) -> String {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {v}"))
        .to_string()
}

impl World {
    pub fn create(site: &Site) -> Self {
        let org = field(
            &site.cli(&["org", "create", "--name", "Acme", "--plan", "pro"], None),
            "org_id",
        );
        let email = "ada@example.com".to_string();
        site.cli(
            &[
                "user",
                "create",
                "--email",
                &email,
                "--password-stdin",
                "--org",
                &org,
                "--role",
                "admin",
            ],
            Some(&format!("{PASSWORD}\n")),
        );
        let client = |args: &[&str]| {
            let mut all = vec!["client", "create", "--org", &org];
            all.extend_from_slice(args);
            let v = site.cli(&all, None);
            (field(&v, "client_id"), field(&v, "client_secret"))
        };
        let rs = (0..RESOURCE_SERVERS)
            .map(|_| client(&["--name", "Inference API", "--resource-server"]))
            .collect();
        let machine = client(&[
            "--name",
            "Batch",
            "--grant-types",
            "client_credentials",
            "--scope",
            "inference:read",
        ]);
        let rotating = client(&[
            "--name",
            "Rotating",
            "--grant-types",
            "client_credentials",
            "--scope",
            "inference:read",
        ]);
        let web = client(&[
            "--name",
            "Web",
            "--redirect-uri",
            REDIRECT,
            "--grant-types",
            "authorization_code,refresh_token",
            "--scope",
            "inference:read",
        ]);
        let admin_key = field(
            &site.cli(
                &[
                    "api-key",
                    "create",
                    "--org",
                    &org,
                    "--name",
                    "load",
                    "--scope",
                    "admin inference:read",
                    "--rate-limit-per-minute",
                    "1000000",
                ],
                None,
            ),
            "key",
        );
        Self {
            email,
            admin_key,
            rs,
            machine,
            web,
            rotating,
        }
    }
}
