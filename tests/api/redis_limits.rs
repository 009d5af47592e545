//! docs/spec.md §12: `--rate-limit-store redis://HOST:PORT` keeps every window in Redis, so
//! a key's limit, a cost and an organization budget hold exactly across instances; Redis
//! unreachable is answered 503 (fail closed) and tessera recovers by itself when Redis is
//! back (docs/security.md I6). Each test starts its own `redis-server`.

use serde_json::json;
use tessera::orgs::Plan;

use crate::helpers::api::{Answer, KeySpec};
use crate::helpers::redis::RedisServer;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app_with};

crate::on_both_backends!(
    i6_with_redis_two_instances_admit_exactly_the_limit_of_a_concurrent_burst,
    i6_with_redis_costs_across_two_instances_spend_exactly_what_fits,
    i6_with_redis_an_organization_budget_holds_exactly_across_two_instances,
    i6_with_redis_down_decisions_fail_closed_with_503_and_recover_when_it_is_back,
    i6_without_redis_the_overshoot_is_at_most_what_the_other_admitted_in_the_last_second,
);

/// Redis, and two instances on one database counting in it. `None`: skipped.
async fn two_instances(backend: Backend) -> Option<(RedisServer, TestApp, TestApp)> {
    let redis = RedisServer::new()?;
    let db = TestDb::create(backend)?;
    let mut settings = db.settings();
    settings.rate_limit_store = Some(redis.url());
    settings.workers = 2;
    let first = spawn_app_with(db, settings).await;
    let second = first.second_instance().await;
    Some((redis, first, second))
}

fn key(app: &TestApp, org: &str, limit: i64) -> String {
    app.api_key(
        org,
        KeySpec {
            limit: Some(limit),
            ..Default::default()
        },
    )
    .key
}

/// `n` verify calls of `cost` at once, alternating between the instances, keys taken in
/// turn from `keys`.
async fn burst(
    apps: [&TestApp; 2],
    rs: &(String, String),
    keys: &[String],
    n: usize,
    cost: i64,
) -> Vec<Answer> {
    let calls = (0..n).map(|i| {
        let app = apps[i % 2];
        let k = keys[i % keys.len()].clone();
        async move { app.verify(rs, json!({"key": k, "cost": cost})).await }
    });
    futures_util::future::join_all(calls).await
}

fn count(answers: &[Answer], code: &str) -> usize {
    answers.iter().filter(|a| a.body["code"] == code).count()
}

async fn i6_with_redis_two_instances_admit_exactly_the_limit_of_a_concurrent_burst(
    backend: Backend,
) {
    let Some((_redis, a, b)) = two_instances(backend).await else {
        return;
    };
    let rs = a.resource_server();
    let org = a.org(Plan::Free);
    let limit = 20;
    let k = key(&a, &org, limit);
    for rep in 0..3 {
        a.at_minute_start(1);
        let answers = burst([&a, &b], &rs, std::slice::from_ref(&k), 60, 1).await;
        assert_eq!(count(&answers, "VALID"), 20, "repetition {rep}: exactly L");
        assert_eq!(count(&answers, "RATE_LIMITED"), 40, "repetition {rep}");
        // Both instances see the spent window at once (no flush in between), with the
        // same headers as the local limiter.
        for app in [&a, &b] {
            let r = app.verify(&rs, json!({"key": k})).await;
            assert_eq!(r.body["code"], "RATE_LIMITED");
            assert_eq!(r.header_i64("x-ratelimit-limit"), limit);
            assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
            assert_eq!(r.header("ratelimit-policy"), Some("\"key\";q=20;w=60"));
            assert_eq!(r.header("ratelimit"), Some("\"key\";r=0;t=59"));
            assert_eq!(r.body["ratelimit"]["remaining"], 0);
        }
    }
    // Another key is unaffected; the next window starts fresh.
    let other = key(&a, &org, limit);
    assert_eq!(
        b.verify(&rs, json!({"key": other})).await.body["code"],
        "VALID"
    );
    a.at_minute_start(0);
    let r = b.verify(&rs, json!({"key": k})).await;
    assert_eq!(r.body["code"], "VALID");
    assert_eq!(r.header_i64("x-ratelimit-remaining"), limit - 1);
}

async fn i6_with_redis_costs_across_two_instances_spend_exactly_what_fits(backend: Backend) {
    let Some((_redis, a, b)) = two_instances(backend).await else {
        return;
    };
    let rs = a.resource_server();
    let org = a.org(Plan::Free);
    let k = key(&a, &org, 30);
    a.at_minute_start(1);
    // 30 requests of cost 4: exactly 7 fit in 30 (28), 2 units are left.
    let answers = burst([&a, &b], &rs, std::slice::from_ref(&k), 30, 4).await;
    assert_eq!(count(&answers, "VALID"), 7);
    assert_eq!(count(&answers, "RATE_LIMITED"), 23);
    // A refused request spent nothing: the last 2 units still fit, then nothing does.
    let r = b.verify(&rs, json!({"key": k, "cost": 3})).await;
    assert_eq!(r.body["code"], "RATE_LIMITED");
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 2);
    assert_eq!(
        a.verify(&rs, json!({"key": k, "cost": 2})).await.body["code"],
        "VALID"
    );
    assert_eq!(
        b.verify(&rs, json!({"key": k, "cost": 1})).await.body["code"],
        "RATE_LIMITED"
    );
}

async fn i6_with_redis_an_organization_budget_holds_exactly_across_two_instances(backend: Backend) {
    let Some((_redis, a, b)) = two_instances(backend).await else {
        return;
    };
    let rs = a.resource_server();
    let org = a.org(Plan::Free);
    let admin = key(&a, &org, 1000);
    let set = a
        .api(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{org}"),
            &admin,
            Some(json!({"rate_limit_per_minute": 12})),
        )
        .await;
    assert_eq!(set.status, 200);
    let keys: Vec<String> = (0..3).map(|_| key(&a, &org, 1000)).collect();
    a.at_minute_start(1);
    let answers = burst([&a, &b], &rs, &keys, 40, 1).await;
    assert_eq!(
        count(&answers, "VALID"),
        12,
        "the organization's 12, not 3 × 1000"
    );
    assert_eq!(count(&answers, "RATE_LIMITED"), 28);
    // The tighter budget (the organization's) is what the headers report.
    let r = b.verify(&rs, json!({"key": keys[0]})).await;
    assert_eq!(r.body["code"], "RATE_LIMITED");
    assert_eq!(r.header_i64("x-ratelimit-limit"), 12);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    let policy = r.header("ratelimit-policy").unwrap_or_default().to_string();
    assert_eq!(policy, "\"key\";q=1000;w=60, \"org\";q=12;w=60");
}

async fn i6_with_redis_down_decisions_fail_closed_with_503_and_recover_when_it_is_back(
    backend: Backend,
) {
    let Some((mut redis, a, b)) = two_instances(backend).await else {
        return;
    };
    let rs = a.resource_server();
    let org = a.org(Plan::Free);
    let k = key(&a, &org, 100);
    a.at_minute_start(1);
    for app in [&a, &b] {
        assert_eq!(
            app.verify(&rs, json!({"key": k})).await.body["code"],
            "VALID"
        );
    }
    redis.stop();
    for app in [&a, &b] {
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let r = app.verify(&rs, json!({"key": k})).await;
            assert_eq!(
                r.status, 503,
                "never a decision without the store: {:?}",
                r.body
            );
            assert_eq!(r.header("retry-after"), Some("1"));
            assert_eq!(r.body["error"]["type"], "api_error");
            assert!(
                t.elapsed() < std::time::Duration::from_secs(1),
                "fails fast"
            );
        }
        // Introspection needs the budget too: 503 as well, never `active`.
        let r = app.introspect_as(&rs, &k).await;
        assert_eq!(r.status().as_u16(), 503);
    }
    redis.start();
    // Without restarting tessera: each instance reconnects within a few hundred ms.
    for app in [&a, &b] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let r = app.verify(&rs, json!({"key": k})).await;
            if r.status == 200 {
                assert_eq!(r.body["code"], "VALID");
                break;
            }
            assert_eq!(r.status, 503);
            assert!(std::time::Instant::now() < deadline, "did not recover");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // The restarted Redis kept nothing (no persistence): the window counts afresh and is
    // shared again.
    let r = a.verify(&rs, json!({"key": k, "cost": 97})).await;
    assert_eq!(r.body["code"], "VALID");
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 1);
}

/// Without Redis (docs/spec.md §12, README "Rate limits"): each instance counts in process
/// and shares its counts through the database every `startup::FLUSH_INTERVAL`, so a key's
/// overshoot across instances is at most what the other instance admitted in the second
/// before the last admitted request. Two instances send steadily for 4 s against a limit
/// of 40 (real time; the manual clock stays inside one window).
async fn i6_without_redis_the_overshoot_is_at_most_what_the_other_admitted_in_the_last_second(
    backend: Backend,
) {
    use std::time::{Duration, Instant};
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let settings = db.settings();
    let a = spawn_app_with(db, settings).await;
    let b = a.second_instance().await;
    let rs = a.resource_server();
    let org = a.org(Plan::Free);
    let limit = 40;
    let k = key(&a, &org, limit);
    a.at_minute_start(1);
    let t0 = Instant::now();
    let (ra, rb) = tokio::join!(steady(0, &a, &rs, &k, t0), steady(1, &b, &rs, &k, t0));
    let all: Vec<_> = ra.into_iter().chain(rb).collect();
    let admitted: Vec<_> = all.iter().filter(|r| r.3).collect();
    assert!(admitted.len() as i64 >= limit, "the limit was reached");
    let last = admitted
        .iter()
        .max_by_key(|r| r.2)
        .copied()
        .expect("admissions");
    // The other instance's admissions that may have happened in the second before it.
    let recent = admitted
        .iter()
        .filter(|r| r.0 != last.0 && r.2 + Duration::from_secs(1) > last.1)
        .count() as i64;
    let overshoot = admitted.len() as i64 - limit;
    assert!(
        overshoot <= recent,
        "overshoot {overshoot} > {recent} admitted by the other instance in the last second"
    );
}

/// One verify every 40 ms for 4 s from `t0`: (instance, sent, received, admitted).
async fn steady(
    i: usize,
    app: &TestApp,
    rs: &(String, String),
    k: &str,
    t0: std::time::Instant,
) -> Vec<(usize, std::time::Instant, std::time::Instant, bool)> {
    use std::time::{Duration, Instant};
    let mut out = Vec::new();
    while t0.elapsed() < Duration::from_secs(4) {
        let sent = Instant::now();
        let r = app.verify(rs, json!({"key": k})).await;
        out.push((i, sent, Instant::now(), r.body["code"] == "VALID"));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    out
}
