//! Usage analytics (docs/spec.md §10): counts per key, hour and verdict `code`, written in
//! batches, read through `GET /api/v1/usage`, pruned after `--usage-retention-days`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tessera::clock::{Clock, rfc3339};
use tessera::orgs::Plan;

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, TestApp, spawn_app};

crate::on_both_backends!(
    usage_counts_bearer_use_and_verification_per_key_and_code_within_5_seconds,
    usage_buckets_are_utc_hours_or_days_and_bad_parameters_name_the_field,
    i8_usage_needs_analytics_read_or_admin_and_never_shows_another_org,
    usage_older_than_the_retention_is_pruned_by_the_janitor,
);

fn period(app: &TestApp) -> String {
    let now = app.clock.now();
    format!(
        "start={}&end={}",
        rfc3339(now - 3 * 3600),
        rfc3339(now + 3 * 3600)
    )
}

/// The count of `key_id` under `code` in a usage answer (summed over buckets).
fn count(data: &Value, key_id: &str, code: &str) -> i64 {
    data["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|p| p["key_id"] == key_id && p["code"] == code)
        .map(|p| p["count"].as_i64().expect("count"))
        .sum()
}

async fn usage_counts_bearer_use_and_verification_per_key_and_code_within_5_seconds(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let (org, admin) = app.org_with_admin(Plan::Free);
    let analytics = app.api_key(
        &org,
        KeySpec {
            scopes: "analytics:read",
            ..Default::default()
        },
    );
    let key = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            limit: Some(3),
            ..Default::default()
        },
    );
    app.at_minute_start(1);
    for _ in 0..3 {
        let v = app.verify(&rs, json!({"key": key.key})).await;
        assert_eq!(v.body["code"], "VALID");
    }
    let v = app.verify(&rs, json!({"key": key.key})).await;
    assert_eq!(v.body["code"], "RATE_LIMITED");
    let v = app
        .verify(&rs, json!({"key": key.key, "scopes": ["inference:write"]}))
        .await;
    assert_eq!(v.body["code"], "INSUFFICIENT_SCOPE");
    // Introspection counts nothing; an unknown key has no row to count under.
    app.introspect(&rs, &key.key).await;
    let unknown = tessera::api_keys::format::generate("tsr", tessera::api_keys::KeyType::Secret);
    let v = app.verify(&rs, json!({"key": unknown.expose()})).await;
    assert_eq!(v.body["code"], "NOT_FOUND");
    // Two bearer uses of the admin key.
    for _ in 0..2 {
        let r = app
            .api(Method::GET, "/api/v1/api-keys", &admin.key, None)
            .await;
        assert_eq!(r.status, 200);
    }
    // A revoked key still counts, under REVOKED.
    let r = app
        .api(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", key.id),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let v = app.verify(&rs, json!({"key": key.key})).await;
    assert_eq!(v.body["code"], "REVOKED");

    // No flush by hand: the server's own batches make it visible within 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let r = app.usage(&analytics.key, &period(&app)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if count(&r.body, &key.id, "REVOKED") == 1 || Instant::now() > deadline {
            break r.body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(count(&body, &key.id, "VALID"), 3, "{body}");
    assert_eq!(count(&body, &key.id, "RATE_LIMITED"), 1, "{body}");
    assert_eq!(count(&body, &key.id, "INSUFFICIENT_SCOPE"), 1, "{body}");
    assert_eq!(count(&body, &key.id, "REVOKED"), 1, "{body}");
    // The list, the revoke (admin bearer: 3 uses, all valid).
    assert_eq!(count(&body, &admin.id, "VALID"), 3, "{body}");
    assert!(
        count(&body, &analytics.id, "VALID") >= 1,
        "the usage call itself counts"
    );
    let hour = app.clock.now() - app.clock.now().rem_euclid(3600);
    for p in body["data"].as_array().expect("data") {
        assert_eq!(p["start"], rfc3339(hour), "one UTC hour: {p}");
        assert_ne!(p["code"], "NOT_FOUND");
    }
}

async fn usage_buckets_are_utc_hours_or_days_and_bad_parameters_name_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let (org, admin) = app.org_with_admin(Plan::Free);
    let key = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    // 2026-03-04 10:30 UTC, then 13:10 the same day, then the next day.
    let t0 = tessera::clock::parse_rfc3339("2026-03-04T10:30:00Z").expect("t0");
    for (at, n) in [(t0, 2), (t0 + 2 * 3600 + 40 * 60, 3), (t0 + 86_400, 1)] {
        app.clock.set(at);
        for _ in 0..n {
            assert_eq!(
                app.verify(&rs, json!({"key": key.key})).await.body["code"],
                "VALID"
            );
        }
    }
    tessera::startup::flush_key_usage(&app.state).await;
    let get = |q: String| {
        let app = &app;
        let bearer = admin.key.clone();
        async move { app.usage(&bearer, &q).await }
    };
    let q = format!("key_id={}", key.id);
    let hours = get(format!(
        "start=2026-03-04T10:59:59Z&end=2026-03-06T00:00:00Z&{q}"
    ))
    .await;
    assert_eq!(hours.status, 200, "{}", hours.body);
    let points: Vec<(String, i64)> = hours.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| {
            (
                p["start"].as_str().expect("start").to_string(),
                p["count"].as_i64().expect("n"),
            )
        })
        .collect();
    assert_eq!(
        points,
        vec![
            ("2026-03-04T10:00:00Z".to_string(), 2),
            ("2026-03-04T13:00:00Z".to_string(), 3),
            ("2026-03-05T10:00:00Z".to_string(), 1),
        ],
        "the hour holding start is the first bucket"
    );
    let days = get(format!(
        "start=2026-03-04T00:00:00Z&end=2026-03-06T00:00:00Z&granularity=day&{q}"
    ))
    .await;
    assert_eq!(days.status, 200);
    assert_eq!(
        days.body,
        json!({"data": [
            {"key_id": key.id, "start": "2026-03-04T00:00:00Z", "code": "VALID", "count": 5},
            {"key_id": key.id, "start": "2026-03-05T00:00:00Z", "code": "VALID", "count": 1},
        ]})
    );
    let until_noon = get(format!(
        "start=2026-03-04T00:00:00Z&end=2026-03-04T12:00:00Z&granularity=day&{q}"
    ))
    .await;
    assert_eq!(until_noon.body["data"][0]["count"], 2, "end is exclusive");

    for (query, field) in [
        ("end=2026-03-06T00:00:00Z".to_string(), "start"),
        ("start=2026-03-04T00:00:00Z".to_string(), "end"),
        (
            "start=yesterday&end=2026-03-06T00:00:00Z".to_string(),
            "start",
        ),
        (
            "start=2026-03-04T00:00:00Z&end=2026-03-06".to_string(),
            "end",
        ),
        (
            "start=2026-03-06T00:00:00Z&end=2026-03-04T00:00:00Z".to_string(),
            "end",
        ),
        (
            "start=2020-03-04T00:00:00Z&end=2026-03-04T00:00:00Z".to_string(),
            "end",
        ),
        (
            "start=2026-03-04T00:00:00Z&end=2026-03-06T00:00:00Z&granularity=week".to_string(),
            "granularity",
        ),
        (
            "start=2026-03-04T00:00:00Z&end=2026-03-06T00:00:00Z&colour=red".to_string(),
            "colour",
        ),
        (
            "start=2026-03-04T00:00:00Z&start=2026-03-04T00:00:00Z&end=2026-03-06T00:00:00Z"
                .to_string(),
            "start",
        ),
    ] {
        let r = get(query.clone()).await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
        let message = r.body["error"]["message"].as_str().expect("message");
        assert!(message.contains(field), "{query}: {message}");
    }
}

async fn i8_usage_needs_analytics_read_or_admin_and_never_shows_another_org(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let other = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let plain = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    let theirs = app.api_key(&other, KeySpec::default());
    assert_eq!(
        app.verify(&rs, json!({"key": theirs.key})).await.body["code"],
        "VALID"
    );
    tessera::startup::flush_key_usage(&app.state).await;
    let q = period(&app);

    let r = app.usage(&plain.key, &q).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let challenge = r.header("www-authenticate").expect("challenge");
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("analytics:read"),
        "{challenge}"
    );
    let r = app.usage("tsr_sk_nonsense", &q).await;
    assert_eq!(r.status, 401);

    let mine = app.usage(&admin.key, &q).await;
    assert_eq!(mine.status, 200);
    assert_eq!(
        count(&mine.body, &theirs.id, "VALID"),
        0,
        "I8: not another org's"
    );
    let r = app
        .usage(&admin.key, &format!("{q}&key_id={}", theirs.id))
        .await;
    assert_eq!(r.status, 404, "I8: another org's key is unknown here");
    let r = app
        .usage(&theirs.key, &format!("{q}&key_id={}", theirs.id))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(count(&r.body, &theirs.id, "VALID"), 1);
}

async fn usage_older_than_the_retention_is_pruned_by_the_janitor(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let (_, admin) = app.org_with_admin(Plan::Free);
    let t0 = app.clock.now();
    app.verify(&rs, json!({"key": admin.key})).await;
    app.clock.set(t0 + 10 * 86_400);
    app.verify(&rs, json!({"key": admin.key})).await;
    tessera::startup::flush_key_usage(&app.state).await;
    assert_eq!(app.state.settings.usage_retention_days, 90, "the default");

    // 90 days after the first hour ended, the first hour goes and the later one stays.
    let retention = tessera::janitor::Retention::from_settings(&app.state.settings);
    let mut conn = app.state.pool.get().expect("conn");
    let at = t0 - t0.rem_euclid(3600) + 3600 + 90 * 86_400 + 1;
    let swept = tessera::janitor::sweep(&mut conn, &retention, at).expect("sweep");
    assert_eq!(swept.get("key_usage"), 1);
    drop(conn);
    let r = app
        .api(
            Method::GET,
            &format!(
                "/api/v1/usage?start={}&end={}&granularity=day",
                rfc3339(t0 - 86_400),
                rfc3339(t0 + 20 * 86_400)
            ),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let starts: Vec<&str> = r.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| p["start"].as_str().expect("start"))
        .collect();
    let day = |t: i64| rfc3339(t - t.rem_euclid(86_400));
    assert!(!starts.contains(&day(t0).as_str()), "{starts:?}");
    assert!(
        starts.contains(&day(t0 + 10 * 86_400).as_str()),
        "{starts:?}"
    );
}
