//! R1: kill -9 under mixed load. The real binary serves five workers (code flow through the
//! pages, refresh rotation, revocation, `client_credentials`, API key creation and
//! revocation, client secret rotation) that journal every acknowledged write (fsync'd);
//! SIGKILL at a random moment; `PRAGMA integrity_check` on the SQLite file; restart on the
//! same database and keys; then every journaled fact is checked (`journal::Checker`).
//! Repeated: 2 kills per backend in `cargo test`, 20 with `TESSERA_FAULT_FULL=1`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::Backend;
use crate::journal::{Checked, Checker, Fact, Journal, Probe};
use crate::load::Load;
use crate::process::{Site, World};

pub fn full() -> bool {
    std::env::var("TESSERA_FAULT_FULL").is_ok_and(|v| v == "1")
}

/// A random duration in `[lo, hi)` (the standard library's randomly keyed hasher).
pub fn random_between(lo: Duration, hi: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    let span = (hi - lo).as_millis().max(1) as u64;
    lo + Duration::from_millis(h.finish() % span)
}

crate::on_both_backends!(r1_kill_9_under_mixed_load_loses_no_acknowledged_write);

/// Sets up a site, the world and a journal holding the rotating client's first secret.
pub fn prepare(backend: Backend) -> Option<(Site, World, Arc<Journal>)> {
    // reqwest's rustls needs the process's crypto provider; these tests only talk to the
    // binary, so nothing else installs it when one runs alone.
    tessera::install_crypto_provider();
    let site = Site::new(backend)?;
    let world = World::create(&site);
    let journal = Arc::new(Journal::create(site.dir.path()));
    journal.record(&Fact::Secret {
        client: world.rotating.0.clone(),
        secret: world.rotating.1.clone(),
    });
    Some((site, world, journal))
}

/// Restarts on the same files and checks the journal; panics with the violations.
pub async fn restart_and_check(
    site: &mut Site,
    world: &World,
    journal: &Journal,
    checker: &mut Checker,
    what: &str,
) -> Checked {
    let integrity = site.integrity();
    assert_eq!(integrity, "ok", "{what}: PRAGMA integrity_check");
    let server = site.serve(&[]);
    let probe = Probe::new(&server.address, world);
    let (bad, checked) = checker.check(&probe, journal).await;
    assert!(
        bad.is_empty(),
        "{what}: {} violations after the restart:\n{}\n--- server log:\n{}",
        bad.len(),
        bad.join("\n"),
        server.log_text()
    );
    checked
}

async fn r1_kill_9_under_mixed_load_loses_no_acknowledged_write(backend: Backend) {
    let Some((mut site, world, journal)) = prepare(backend) else {
        return;
    };
    let kills = if full() { 20 } else { 2 };
    let started = Instant::now();
    let mut checker = Checker::default();
    let mut total = Checked::default();
    for run in 1..=kills {
        let mut server = site.serve(&[]);
        let load = Arc::new(Load::new(&server.address, &world, &journal, run));
        let workers = tokio::spawn(Arc::clone(&load).run());
        let after = random_between(Duration::from_millis(1000), Duration::from_millis(3000));
        tokio::time::sleep(after).await;
        server.kill9();
        let wrong = workers.await.expect("load");
        assert!(
            wrong.is_empty(),
            "kill {run}: wrong answers under load: {wrong:?}\n--- server log:\n{}",
            server.log_text()
        );
        let checked = restart_and_check(
            &mut site,
            &world,
            &journal,
            &mut checker,
            &format!("kill {run}"),
        )
        .await;
        total.add(checked);
    }
    let facts = journal.read().len();
    eprintln!(
        "R1 {backend:?}: {kills} kills in {:?}; {facts} journal lines; checked {total:?}; 0 violations",
        started.elapsed()
    );
    assert!(total.keys > 0 && total.reuses > 0 && total.codes_replayed > 0 && total.secrets > 0);
}
