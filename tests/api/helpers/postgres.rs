//! A throwaway PostgreSQL cluster for the whole test binary: `initdb` + `pg_ctl` from the
//! system on a temp dir and a free port, one database per test. PostgreSQL refuses to run
//! as root, so as root the cluster runs as the `postgres` user. A watchdog stops the
//! cluster and removes its files when this test process exits.
//!
//! Missing PostgreSQL: the tests say so loudly and skip, or fail when
//! `TESSERA_REQUIRE_ALL=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use diesel::{Connection, PgConnection, RunQueryDsl};

/// A running cluster. The shared one serves every test of the binary; fault tests take a
/// [`private_cluster`] of their own to stop or freeze.
#[derive(Clone)]
pub struct Cluster {
    port: u16,
    data: String,
    pg_ctl: PathBuf,
    as_postgres: bool,
    durable: bool,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

fn require_all() -> bool {
    std::env::var("TESSERA_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Announces a skipped backend, or fails the test when everything is required.
pub fn unavailable(what: &str, why: &str) {
    if require_all() {
        panic!("{what} is required (TESSERA_REQUIRE_ALL=1) but unavailable: {why}");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED: {what} unavailable: {why}\n!!!!!!!! (set TESSERA_REQUIRE_ALL=1 to make this a failure)\n"
    );
}

fn find_tool(name: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a program, as `postgres` when we are root.
fn run(program: &Path, args: &[&str], as_postgres: bool) -> Result<(), String> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {:?} failed: {}{}",
            program.display(),
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `postgres` options: the port, the socket dir, and for the shared cluster speed over
/// durability (test data). A durable cluster keeps every commit across a crash, as fault
/// tests that kill it require.
fn server_options(port: u16, dir: &str, durable: bool) -> String {
    let speed = if durable {
        ""
    } else {
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    };
    format!("-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c max_connections=400{speed}")
}

fn start() -> Result<Cluster, String> {
    start_cluster(false)
}

fn start_cluster(durable: bool) -> Result<Cluster, String> {
    let initdb = find_tool("initdb").ok_or("initdb not found (apt-get install postgresql)")?;
    let pg_ctl = find_tool("pg_ctl").ok_or("pg_ctl not found (apt-get install postgresql)")?;
    let as_postgres = is_root();
    let dir = tempfile::Builder::new()
        .prefix("tessera-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let data = dir.join("data");
    if as_postgres {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("chown of the cluster dir to postgres failed".into());
        }
    }
    let data_s = data.display().to_string();
    let dir_s = dir.display().to_string();
    run(
        &initdb,
        &[
            "-D",
            &data_s,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ],
        as_postgres,
    )?;
    let port = free_port();
    let opts = server_options(port, &dir_s, durable);
    let log = format!("{dir_s}/postgres.log");
    run(
        &pg_ctl,
        &[
            "-D", &data_s, "-o", &opts, "-l", &log, "-w", "-t", "60", "start",
        ],
        as_postgres,
    )?;

    // The watchdog outlives us just long enough to stop the cluster and delete its files.
    let me = std::process::id();
    let stop = if as_postgres {
        format!(
            "runuser -u postgres -- {} -D {data_s} stop -m immediate",
            pg_ctl.display()
        )
    } else {
        format!("{} -D {data_s} stop -m immediate", pg_ctl.display())
    };
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir_s}"
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("watchdog: {e}"))?;
    Ok(Cluster {
        port,
        data: data_s,
        pg_ctl,
        as_postgres,
        durable,
    })
}

/// A durable cluster of this test's own (fault tests stop and freeze it); `None`
/// (announced) when PostgreSQL is unavailable. Its watchdog removes it when the test
/// process exits.
pub fn private_cluster() -> Option<Cluster> {
    match start_cluster(true) {
        Ok(c) => Some(c),
        Err(why) => {
            unavailable("PostgreSQL", &why);
            None
        }
    }
}

impl Cluster {
    fn admin_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?gssencmode=disable",
            self.port
        )
    }

    /// A new, empty database in this cluster.
    pub fn new_database(&self) -> String {
        let admin = self.admin_url();
        let name = format!("t_{}", tessera::crypto::random_base62(16).to_lowercase());
        let mut conn = PgConnection::establish(&admin).expect("connect to the test cluster");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create database");
        admin.replace("/postgres?", &format!("/{name}?"))
    }

    /// Runs `sql` on the cluster's maintenance database as the superuser.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        let mut conn = PgConnection::establish(&self.admin_url()).map_err(|e| e.to_string())?;
        diesel::sql_query(sql)
            .execute(&mut conn)
            .map(|_| ())
            .map_err(|e| format!("{sql}: {e}"))
    }

    /// The postmaster's pid and its children's (every backend process of the cluster).
    fn pids(&self) -> (String, Vec<String>) {
        let pidfile = std::fs::read_to_string(format!("{}/postmaster.pid", self.data))
            .expect("postmaster.pid");
        let master = pidfile.lines().next().expect("pid line").trim().to_string();
        let children = Command::new("pgrep")
            .args(["-P", &master])
            .output()
            .expect("pgrep");
        let children = String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        (master, children)
    }

    /// Sends `sig` to `pids`. `kill` fails when one of them has exited since it was listed
    /// (a backend whose connection closed), which only the postmaster must not have done;
    /// the others are signalled all the same.
    fn signal(&self, sig: &str, pids: &[String]) -> bool {
        if pids.is_empty() {
            return true;
        }
        Command::new("kill")
            .arg(format!("-{sig}"))
            .args(pids)
            .stderr(Stdio::null())
            .status()
            .expect("kill")
            .success()
    }

    /// SIGSTOP to every process of the cluster: a hung host, not a refused connection.
    /// The postmaster is stopped first, so that it cannot fork a backend between the
    /// listing of its children and their signal (one that did so once served a query
    /// through a "frozen" cluster); then its children, listed again until none is new.
    pub fn freeze(&self) {
        let (master, _) = self.pids();
        assert!(
            self.signal("STOP", std::slice::from_ref(&master)),
            "kill -STOP of the postmaster failed"
        );
        let mut stopped: Vec<String> = Vec::new();
        loop {
            let (_, children) = self.pids();
            let new: Vec<String> = children
                .into_iter()
                .filter(|pid| !stopped.contains(pid))
                .collect();
            if new.is_empty() {
                return;
            }
            let _ = self.signal("STOP", &new);
            stopped.extend(new);
        }
    }

    /// SIGCONT: the frozen cluster carries on where it stopped.
    pub fn thaw(&self) {
        let (master, pids) = self.pids();
        assert!(
            self.signal("CONT", std::slice::from_ref(&master)),
            "kill -CONT of the postmaster failed"
        );
        let _ = self.signal("CONT", &pids);
    }

    /// `pg_ctl stop -m immediate`: every connection drops at once (a crash).
    pub fn stop_immediate(&self) {
        let data = self.data.clone();
        run(
            &self.pg_ctl,
            &["-D", &data, "stop", "-m", "immediate"],
            self.as_postgres,
        )
        .expect("pg_ctl stop");
    }

    /// Starts the cluster again on the same port and data.
    pub fn restart(&self) {
        let dir = std::path::Path::new(&self.data)
            .parent()
            .expect("cluster dir")
            .display()
            .to_string();
        let opts = server_options(self.port, &dir, self.durable);
        let log = format!("{dir}/postgres.log");
        let data = self.data.clone();
        run(
            &self.pg_ctl,
            &[
                "-D", &data, "-o", &opts, "-l", &log, "-w", "-t", "60", "start",
            ],
            self.as_postgres,
        )
        .expect("pg_ctl start");
    }
}

/// The URL of the cluster's maintenance database.
pub fn admin_url() -> Option<String> {
    match CLUSTER.get_or_init(start) {
        // gssencmode=disable: libpq would otherwise probe Kerberos on every connect, and
        // aborts if the process exits while a pool thread is inside that probe.
        Ok(c) => Some(c.admin_url()),
        Err(why) => {
            unavailable("PostgreSQL", why);
            None
        }
    }
}

/// A new, empty database; `None` (announced) when PostgreSQL is unavailable.
pub fn new_database() -> Option<String> {
    let admin = admin_url()?;
    let name = format!("t_{}", tessera::crypto::random_base62(16).to_lowercase());
    let mut conn = PgConnection::establish(&admin).expect("connect to the test cluster");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .expect("create database");
    Some(admin.replace("/postgres?", &format!("/{name}?")))
}

/// Drops a test database, disconnecting its sessions (simulates the database going away).
pub fn drop_database(url: &str) {
    let admin = admin_url().expect("cluster");
    let name = url
        .rsplit('/')
        .next()
        .and_then(|n| n.split('?').next())
        .expect("db name");
    let mut conn = PgConnection::establish(&admin).expect("connect");
    diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut conn)
        .expect("drop database");
}
