//! R3 on PostgreSQL: a full disk under the database's tables. A size-capped tmpfs is
//! mounted (root: `mount -t tmpfs -o size=…`) and made a tablespace of a durable private
//! cluster; the test database's `default_tablespace` is that tablespace, so every table and
//! index tessera creates lives on it (the catalogs and the WAL stay on the cluster's own
//! disk, as on a server whose data volume filled up). [`Volume::fill`] fills it with filler
//! rows until PostgreSQL cannot extend a file (`53100 disk_full`); [`Volume::free`] grows
//! the mount (`mount -o remount,size=…`), as an operator adding space would. Without the
//! right to mount, the test says SKIPPED (a failure under `TESSERA_REQUIRE_ALL=1`).

use std::process::Command;

use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::helpers::{TestDb, postgres};

/// The size of the capped mount: room for tessera's schema and the test's rows.
const CAPPED: &str = "size=16m";
/// The size once space is freed.
const FREED: &str = "size=64m";
const TABLESPACE: &str = "r3_full";

/// The mount, its tablespace and the database on it. Dropping it drops the database and the
/// tablespace and unmounts (lazily if PostgreSQL still holds a file there).
pub struct Volume {
    cluster: postgres::Cluster,
    point: tempfile::TempDir,
    url: String,
    name: String,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A test database whose tables live on a 16 MiB tmpfs; `None` (announced) when
/// PostgreSQL or the mount is unavailable here.
pub fn database() -> Option<(TestDb, Volume)> {
    let cluster = postgres::private_cluster()?;
    let point = tempfile::Builder::new()
        .prefix("tessera-r3-")
        .tempdir()
        .expect("mount point");
    let at = point.path().display().to_string();
    if let Err(why) = run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("{CAPPED},mode=0700"),
            "tessera-r3",
            &at,
        ],
    ) {
        postgres::unavailable("a size-capped tmpfs mount (needs root)", &why);
        return None;
    }
    let mut volume = Volume {
        cluster,
        point,
        url: String::new(),
        name: String::new(),
    };
    // As root the cluster runs as `postgres`, which must own the tablespace directory.
    if run("id", &["-u", "postgres"]).is_ok() {
        let _ = run("chown", &["postgres:postgres", &at]);
    }
    volume
        .cluster
        .execute(&format!("CREATE TABLESPACE {TABLESPACE} LOCATION '{at}'"))
        .expect("tablespace on the mount");
    volume.url = volume.cluster.new_database();
    volume.name = volume
        .url
        .rsplit('/')
        .next()
        .and_then(|n| n.split('?').next())
        .expect("database name")
        .to_string();
    volume
        .cluster
        .execute(&format!(
            "ALTER DATABASE {} SET default_tablespace = {TABLESPACE}",
            volume.name
        ))
        .expect("default tablespace");
    let dir = tempfile::tempdir().expect("temp dir");
    Some((
        TestDb {
            url: volume.url.clone(),
            dir,
        },
        volume,
    ))
}

/// PostgreSQL's answer when a file on a full disk cannot grow.
fn is_disk_full(e: &diesel::result::Error) -> bool {
    let m = e.to_string();
    m.contains("could not extend file") || m.contains("No space left on device")
}

impl Volume {
    /// Inserts filler rows (uncompressed, 960 bytes each) in ever smaller batches until
    /// not even one more fits: from then on, any table or index that needs a new page gets
    /// `disk_full`. Returns the filler rows written.
    pub fn fill(&self) -> u64 {
        let mut conn = PgConnection::establish(&self.url).expect("connect to the full database");
        diesel::sql_query("CREATE TABLE r3_filler (b text)")
            .execute(&mut conn)
            .expect("filler table");
        let mut rows = 0;
        let mut batch = 1000;
        for _ in 0..10_000 {
            let insert = format!(
                "INSERT INTO r3_filler SELECT repeat(md5(random()::text), 30) FROM generate_series(1, {batch})"
            );
            match diesel::sql_query(insert).execute(&mut conn) {
                Ok(n) => rows += n as u64,
                Err(e) if is_disk_full(&e) && batch > 1 => batch = (batch / 10).max(1),
                Err(e) if is_disk_full(&e) => return rows,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        panic!("the capped mount never filled ({rows} filler rows)");
    }

    /// Grows the mount: space freed, without touching PostgreSQL or tessera.
    pub fn free(&self) {
        let at = self.point.path().display().to_string();
        run("mount", &["-o", &format!("remount,{FREED}"), &at]).expect("grow the mount");
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = self.cluster.execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
            let _ = self
                .cluster
                .execute(&format!("DROP TABLESPACE IF EXISTS {TABLESPACE}"));
        }
        let at = self.point.path().display().to_string();
        if run("umount", &[&at]).is_err() {
            let _ = run("umount", &["-l", &at]);
        }
    }
}
