//! R2 under load: the real binary serves the R1 mixed load (`load.rs`, in its
//! [`Load::through_outages`] mode) on a durable private PostgreSQL cluster, which is frozen
//! (SIGSTOP of every process: a hung host or a partition) and then stopped
//! (`pg_ctl stop -m immediate`: a crash), and resumed and restarted, while the load goes on.
//! During each outage:
//! - every answer is 503 or a success, never another 5xx, and comes within
//!   [`OUTAGE_ANSWER_BOUND`] (the 2 s `--db-timeout-ms` deadline plus slack);
//! - a watcher keeps asking about keys and tokens the journal says are revoked: never
//!   `VALID`, never `active`;
//! - once cached answers are stale, the probes of `database.rs` on a key the server never
//!   saw (readiness, key verification, introspection, `client_credentials`, a bearer call)
//!   answer 503;
//!
//! then the server recovers without a restart (the probes answer 200, every kind of write
//! succeeds again), and finally the R1 journal check runs against the same process: no
//! acknowledged write lost, no revocation forgotten. A write answered 503 is undecided (it
//! may have committed before the outage cut its answer off), exactly as one cut off by a
//! kill, and the journal's `Attempt` lines say so.
//!
//! 1 cycle (frozen 4 s, stopped 3 s) in `cargo test`; 5 cycles (frozen 20 s, stopped 10 s)
//! with `TESSERA_FAULT_FULL=1`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::crash::{full, prepare, random_between};
use crate::database::{Target, assert_clean_outage, past_cache_ttl, probes, recovers};
use crate::helpers::Backend;
use crate::helpers::postgres::Cluster;
use crate::journal::{Checker, Fact, Journal, Probe, loopback_clients};
use crate::load::{Load, OUTAGE_ANSWER_BOUND};
use crate::process::World;

/// A new API key with `admin` scope that this server has never been asked about.
async fn unseen_key(address: &str, world: &World) -> String {
    let r = reqwest::Client::new()
        .post(format!("{address}/api/v1/api-keys"))
        .bearer_auth(&world.admin_key)
        .json(&json!({"name": "unseen", "scopes": ["admin", "inference:read"], "type": "secret"}))
        .send()
        .await
        .expect("key creation");
    assert_eq!(r.status().as_u16(), 201, "key creation");
    let body: Value = r.json().await.expect("json");
    body["key"].as_str().expect("key").to_string()
}

/// Runs `op` (a `pg_ctl` call or a signal to the cluster's processes) on a blocking thread
/// and says how long it took. `pg_ctl start -w` waits seconds for crash recovery, and this
/// test's single-threaded runtime must keep running (and timing) the load's requests
/// meanwhile: run inline, the wait was counted into every answer in flight, which then
/// seemed to take 6.5 s.
async fn on_cluster(cluster: &Cluster, op: fn(&Cluster)) -> Duration {
    let cluster = cluster.clone();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || op(&cluster))
        .await
        .expect("cluster operation");
    started.elapsed()
}

/// What the watcher saw: its violations and how many questions it asked.
struct Watched {
    bad: Vec<String>,
    asked: usize,
}

/// Until `stop`, four times a second, asks about a key and a token the journal says are
/// revoked, each time a random one, from the resource servers in turn (each from its own
/// loopback address: the throttle of inactive introspections is per caller). The answer
/// must be 503 or "not valid" / "not active", within the bound.
async fn watch(
    address: String,
    world: World,
    journal: Arc<Journal>,
    stop: Arc<AtomicBool>,
) -> Watched {
    let http = loopback_clients(world.rs.len());
    let mut bad = Vec::new();
    let mut asked = 0;
    let pick = |n: usize| {
        random_between(Duration::ZERO, Duration::from_millis(n as u64)).as_millis() as usize
    };
    while !stop.load(Ordering::SeqCst) {
        let revoked = journal.revoked();
        let mut questions = Vec::new();
        if !revoked.keys.is_empty() {
            let key = revoked.keys[pick(revoked.keys.len())].clone();
            questions.push(("verify", key));
        }
        if !revoked.tokens.is_empty() {
            let token = revoked.tokens[pick(revoked.tokens.len())].clone();
            questions.push(("introspect", token));
        }
        for (what, credential) in questions {
            let i = asked % world.rs.len();
            asked += 1;
            let (rs_id, rs_secret) = &world.rs[i];
            let req = if what == "verify" {
                http[i]
                    .post(format!("{address}/api/v1/keys/verify"))
                    .json(&json!({ "key": credential }))
            } else {
                http[i]
                    .post(format!("{address}/oauth/introspect"))
                    .form(&[("token", credential.as_str())])
            };
            let start = Instant::now();
            let answer = req
                .basic_auth(rs_id, Some(rs_secret))
                .timeout(Duration::from_secs(15))
                .send()
                .await;
            let (status, body) = match answer {
                Ok(r) => {
                    let status = r.status().as_u16();
                    (status, r.json::<Value>().await.unwrap_or(Value::Null))
                }
                Err(e) => (0, json!(e.to_string())),
            };
            let took = start.elapsed();
            let refused = match what {
                "verify" => body["code"].is_string() && body["code"] != "VALID",
                _ => body["active"] == false,
            };
            if !(status == 503 || (status == 200 && refused)) || took > OUTAGE_ANSWER_BOUND {
                bad.push(format!(
                    "{what} of something revoked: {status} {body} after {took:?}"
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Watched { bad, asked }
}

/// The acknowledged writes of each kind among `facts`: exchanges, refreshes, keys, secret
/// rotations, `client_credentials` tokens.
fn progress(facts: &[Fact]) -> [usize; 5] {
    let mut n = [0; 5];
    for f in facts {
        match f {
            Fact::Exchanged { .. } => n[0] += 1,
            Fact::Refreshed { .. } => n[1] += 1,
            Fact::KeyCreated { .. } => n[2] += 1,
            Fact::Secret { .. } => n[3] += 1,
            Fact::CcToken { .. } => n[4] += 1,
            _ => {}
        }
    }
    n
}

#[actix_web::test]
async fn r2_r1_postgres_frozen_and_stopped_under_mixed_load_answers_503_recovers_and_loses_nothing()
{
    let Some((mut site, world, journal)) = prepare(Backend::Postgres) else {
        return;
    };
    let (cycles, frozen_for, stopped_for) = if full() {
        (5, Duration::from_secs(20), Duration::from_secs(10))
    } else {
        (1, Duration::from_secs(4), Duration::from_secs(3))
    };
    let started = Instant::now();
    let server = site.serve(&[]);
    let cluster = site
        .cluster()
        .expect("a PostgreSQL site has a cluster of its own");
    let target = Target {
        address: server.address.clone(),
        rs: world.rs[0].clone(),
        machine: world.machine.clone(),
    };
    let load = Arc::new(Load::through_outages(&server.address, &world, &journal, 1));
    let workers = tokio::spawn(Arc::clone(&load).run());
    let watching = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch(
        server.address.clone(),
        world.clone(),
        Arc::clone(&journal),
        Arc::clone(&watching),
    ));

    let mut ops = Vec::new();
    let mut outage_probes = Vec::new();
    let mut recovered = Vec::new();
    for cycle in 1..=cycles {
        tokio::time::sleep(random_between(
            Duration::from_millis(1000),
            Duration::from_millis(2000),
        ))
        .await;

        // Frozen: connections neither refuse nor answer.
        let unseen = unseen_key(&server.address, &world).await;
        let outage = Instant::now();
        ops.push(on_cluster(cluster, Cluster::freeze).await);
        past_cache_ttl().await;
        let first = probes(&target, &unseen).await;
        tokio::time::sleep(frozen_for.saturating_sub(outage.elapsed())).await;
        let last = probes(&target, &unseen).await;
        ops.push(on_cluster(cluster, Cluster::thaw).await);
        outage_probes.push((cycle, "frozen", first, last));
        recovers(&target, &unseen).await;

        // Stopped: every connection drops, new ones are refused.
        let unseen = unseen_key(&server.address, &world).await;
        let outage = Instant::now();
        ops.push(on_cluster(cluster, Cluster::stop_immediate).await);
        past_cache_ttl().await;
        let first = probes(&target, &unseen).await;
        tokio::time::sleep(stopped_for.saturating_sub(outage.elapsed())).await;
        let last = probes(&target, &unseen).await;
        ops.push(on_cluster(cluster, Cluster::restart).await);
        outage_probes.push((cycle, "stopped", first, last));
        recovers(&target, &unseen).await;

        // Every kind of write succeeds again, on the same process.
        let mark = journal.read().len();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut since = [0; 5];
        while since.contains(&0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            since = progress(&journal.read()[mark..]);
        }
        recovered.push((cycle, since));
    }
    load.stop.store(true, Ordering::SeqCst);
    watching.store(true, Ordering::SeqCst);
    let wrong = workers.await.expect("load");
    let watched = watcher.await.expect("watcher");

    for (cycle, what, first, last) in &outage_probes {
        eprintln!("R2 cycle {cycle}, {what}: first probes {first:?}, last {last:?}");
        assert_clean_outage(first);
        assert_clean_outage(last);
    }
    assert!(
        wrong.is_empty(),
        "wrong answers under load through the outages: {wrong:#?}\n--- server log:\n{}",
        server.log_text()
    );
    assert!(
        watched.bad.is_empty(),
        "something revoked was not refused during the outages: {:#?}",
        watched.bad
    );
    for (cycle, since) in &recovered {
        assert!(
            !since.contains(&0),
            "cycle {cycle}: not every kind of write succeeded within 20 s of the recovery \
             (exchanges, refreshes, keys, secrets, client_credentials): {since:?}"
        );
    }

    // R1's check on the process that lived through the outages.
    let probe = Probe::new(&server.address, &world);
    let (bad, checked) = Checker::default().check(&probe, &journal).await;
    assert!(
        bad.is_empty(),
        "{} violations after the outages:\n{}\n--- server log:\n{}",
        bad.len(),
        bad.join("\n"),
        server.log_text()
    );
    eprintln!(
        "R2 PostgreSQL: {cycles} cycles (frozen {frozen_for:?}, stopped {stopped_for:?}) in {:?}; \
         {} answers under load, {} of them 503, slowest {} ms; {} watcher questions; \
         {} journal lines; checked {checked:?}; 0 violations; cluster operations took {ops:?}",
        started.elapsed(),
        load.answers.load(Ordering::Relaxed),
        load.unavailable.load(Ordering::Relaxed),
        load.slowest_ms.load(Ordering::Relaxed),
        watched.asked,
        journal.read().len(),
    );
}
