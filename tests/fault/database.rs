//! R2: PostgreSQL stopped (`pg_ctl stop -m immediate`) and frozen (SIGSTOP of every
//! process: a hung host or a partition, where connections neither refuse nor answer).
//! During the outage every auth decision is a clean 503 within the database deadline
//! (`--db-timeout-ms`, 2 s by default) — never a 500, never "active" or "valid" for
//! something the database would have to confirm, never a hung request — and the server
//! recovers without a restart. Under the R1 load and with the R1 journal check:
//! `outage_load.rs`.

use std::time::{Duration, Instant};

use serde_json::json;
use tessera::api_keys::KeyType;

use crate::helpers::api::KeySpec;
use crate::helpers::{TestApp, TestDb, postgres, spawn_app_with};
use crate::load::OUTAGE_ANSWER_BOUND;

/// A server on a database of `cluster`, with a resource server, a machine client, and an
/// organization for API keys.
struct Subject {
    app: TestApp,
    target: Target,
    org: String,
}

/// Where the probes go: a server, a resource server's and a machine client's credentials.
pub struct Target {
    pub address: String,
    pub rs: (String, String),
    pub machine: (String, String),
}

async fn subject(cluster: &postgres::Cluster) -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDb {
        url: cluster.new_database(),
        dir,
    };
    let settings = db.settings();
    assert_eq!(settings.db_timeout_ms, 2000, "the documented default");
    let app = spawn_app_with(db, settings).await;
    let target = Target {
        address: app.address.clone(),
        rs: app.resource_server(),
        machine: app.machine_client("inference:read"),
    };
    let org = app.org(tessera::orgs::Plan::Free);
    Subject { app, target, org }
}

/// One of each request that needs the database, `key` an API key with `admin` scope;
/// returns (what, status, elapsed).
pub async fn probes(t: &Target, key: &str) -> Vec<(&'static str, u16, Duration)> {
    let timed = |what: &'static str, fut: reqwest::RequestBuilder| async move {
        let start = Instant::now();
        let status = fut
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        (what, status, start.elapsed())
    };
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", t.address);
    let (a, b, c, d, e) = tokio::join!(
        timed("readyz", http.get(url("/readyz"))),
        timed(
            "verify",
            http.post(url("/api/v1/keys/verify"))
                .basic_auth(&t.rs.0, Some(&t.rs.1))
                .json(&json!({"key": key})),
        ),
        timed(
            "introspect",
            http.post(url("/oauth/introspect"))
                .basic_auth(&t.rs.0, Some(&t.rs.1))
                .form(&[("token", key)]),
        ),
        timed(
            "token",
            http.post(url("/oauth/token"))
                .basic_auth(&t.machine.0, Some(&t.machine.1))
                .form(&[("grant_type", "client_credentials")]),
        ),
        timed("api", http.get(url("/api/v1/api-keys")).bearer_auth(key)),
    );
    vec![a, b, c, d, e]
}

fn new_key(s: &Subject) -> String {
    s.app
        .api_key(
            &s.org,
            KeySpec {
                scopes: "admin inference:read",
                key_type: KeyType::Secret,
                ..Default::default()
            },
        )
        .key
}

/// Waits until every probe is answered 200 again (the server recovered by itself).
pub async fn recovers(t: &Target, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let results = probes(t, key).await;
        if results.iter().all(|(_, status, _)| *status == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery within 30 s: {results:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Cached answers (client, key, token liveness) may be reused for `--cache-ttl-ms` (1 s);
/// past it, every decision needs the database.
pub async fn past_cache_ttl() {
    tokio::time::sleep(Duration::from_millis(1200)).await;
}

pub fn assert_clean_outage(results: &[(&'static str, u16, Duration)]) {
    for (what, status, elapsed) in results {
        assert_eq!(*status, 503, "{what} during the outage: {results:?}");
        assert!(
            *elapsed < OUTAGE_ANSWER_BOUND,
            "{what} took {elapsed:?} during the outage: {results:?}"
        );
    }
}

#[actix_web::test]
async fn r2_frozen_postgres_is_answered_503_within_the_deadline_and_recovers() {
    let Some(cluster) = postgres::private_cluster() else {
        return;
    };
    let s = subject(&cluster).await;
    let key = new_key(&s);
    recovers(&s.target, &key).await;

    // A key never seen by this instance: nothing about it is cached.
    let unseen = new_key(&s);
    cluster.freeze();
    past_cache_ttl().await;
    let during = probes(&s.target, &unseen).await;
    // A second round finds every pooled connection stuck inside the frozen server.
    let again = probes(&s.target, &unseen).await;
    cluster.thaw();
    assert_clean_outage(&during);
    assert_clean_outage(&again);
    recovers(&s.target, &unseen).await;
}

#[actix_web::test]
async fn r2_stopped_postgres_is_answered_503_and_recovers_without_restart() {
    let Some(cluster) = postgres::private_cluster() else {
        return;
    };
    let s = subject(&cluster).await;
    let key = new_key(&s);
    recovers(&s.target, &key).await;

    let unseen = new_key(&s);
    cluster.stop_immediate();
    past_cache_ttl().await;
    let during = probes(&s.target, &unseen).await;
    cluster.restart();
    assert_clean_outage(&during);
    recovers(&s.target, &unseen).await;
}
