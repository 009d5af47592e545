//! docs/spec.md §10: `cost` at verify, the organization budget shared by its keys, and the
//! IETF `RateLimit-Policy` / `RateLimit` fields beside `X-RateLimit-*` (docs/security.md I6).

use reqwest::Method;
use serde_json::json;
use tessera::api_keys::store::Expiry;
use tessera::orgs::{Plan, Role};

use crate::helpers::api::{Answer, KeySpec};
use tessera::clock::Clock as _;

use crate::helpers::{Backend, TestApp, spawn_app};

crate::on_both_backends!(
    i6_a_cost_spends_that_many_units_and_a_request_over_budget_spends_nothing,
    i6_an_organization_budget_is_shared_by_its_keys_and_the_tighter_limit_wins,
    i6_r10_parallel_costs_against_an_organization_budget_admit_exactly_what_fits,
    i6_two_instances_share_an_organization_budget_through_the_database,
    budget_headers_only_for_live_keys,
    tessera_org_update_sets_and_removes_the_budget,
);

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

async fn verify_cost(app: &TestApp, rs: &(String, String), key: &str, cost: i64) -> Answer {
    app.verify(rs, json!({"key": key, "cost": cost})).await
}

/// Sets the organization's budget with `PATCH /api/v1/orgs/{id}` as the admin key `admin`.
async fn set_budget(app: &TestApp, org: &str, admin: &str, budget: serde_json::Value) -> Answer {
    app.api(
        Method::PATCH,
        &format!("/api/v1/orgs/{org}"),
        admin,
        Some(json!({"rate_limit_per_minute": budget})),
    )
    .await
}

async fn i6_a_cost_spends_that_many_units_and_a_request_over_budget_spends_nothing(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let k = key(&app, &org, 10);
    app.at_minute_start(5);
    let a = verify_cost(&app, &rs, &k, 4).await;
    assert_eq!(a.body["code"], "VALID");
    assert_eq!(a.body["ratelimit"]["remaining"], 6);
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 6);
    assert_eq!(a.header("ratelimit-policy"), Some(r#""key";q=10;w=60"#));
    assert_eq!(a.header("ratelimit"), Some(r#""key";r=6;t=55"#));
    // 7 does not fit in 6: refused, nothing spent.
    let a = verify_cost(&app, &rs, &k, 7).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (200, Some("RATE_LIMITED"))
    );
    assert_eq!(a.body["valid"], false);
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 6);
    // Exactly what is left fits.
    let a = verify_cost(&app, &rs, &k, 6).await;
    assert_eq!(a.body["code"], "VALID");
    assert_eq!(a.header("ratelimit"), Some(r#""key";r=0;t=55"#));
    let a = app.verify(&rs, json!({"key": k})).await;
    assert_eq!(a.body["code"], "RATE_LIMITED", "the default cost is 1");

    // A cost above the key's whole limit never fits, and spends nothing.
    app.clock.advance(60);
    assert_eq!(
        verify_cost(&app, &rs, &k, 11).await.body["code"],
        "RATE_LIMITED"
    );
    let a = app.verify(&rs, json!({"key": k, "cost": 1})).await;
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 9);

    // Out of range or not an integer: 400 naming `cost`, nothing spent.
    for bad in [json!(0), json!(1001), json!(-3), json!("2"), json!(1.5)] {
        let a = app.verify(&rs, json!({"key": k, "cost": bad})).await;
        assert_eq!(a.status, 400, "cost {bad}");
        assert_eq!(a.body["error"]["type"], "invalid_request_error");
        let msg = a.body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("cost"), "{msg}");
    }
    let a = verify_cost(&app, &rs, &k, 1000).await;
    assert_eq!(a.body["code"], "RATE_LIMITED", "1000 is a valid cost");
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 9);
}

async fn i6_an_organization_budget_is_shared_by_its_keys_and_the_tighter_limit_wins(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let admin = key(&app, &org, 1000);
    // Members may not set it; another organization's admin does not see it; bad values 400.
    let member_id = app.member(&org, "m@example.com", Role::Member);
    let member_key = app
        .api_key(
            &org,
            KeySpec {
                created_by: Some(&member_id),
                ..Default::default()
            },
        )
        .key;
    assert_eq!(
        set_budget(&app, &org, &member_key, json!(5)).await.status,
        403
    );
    let other_org = app.org(Plan::Free);
    let other_admin = key(&app, &other_org, 1000);
    assert_eq!(
        set_budget(&app, &org, &other_admin, json!(5)).await.status,
        404
    );
    for bad in [
        json!(0),
        json!(-1),
        json!(1_000_001),
        json!("5"),
        json!(2.5),
    ] {
        let a = set_budget(&app, &org, &admin, bad.clone()).await;
        assert_eq!(a.status, 400, "{bad}");
        let msg = a.body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("rate_limit_per_minute"), "{msg}");
    }
    let a = set_budget(&app, &org, &admin, json!(5)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["rate_limit_per_minute"], 5);
    assert_eq!(a.body["id"], org.as_str());

    let k1 = key(&app, &org, 100);
    let k2 = key(&app, &org, 100);
    let small = key(&app, &org, 2);
    app.at_minute_start(10);
    let a = verify_cost(&app, &rs, &k1, 3).await;
    assert_eq!(a.body["code"], "VALID");
    // The organization is the tighter budget: it is the one X-RateLimit reports.
    assert_eq!(
        (
            a.header_i64("x-ratelimit-limit"),
            a.header_i64("x-ratelimit-remaining")
        ),
        (5, 2)
    );
    assert_eq!(a.body["ratelimit"]["limit"], 5);
    assert_eq!(
        a.header("ratelimit-policy"),
        Some(r#""key";q=100;w=60, "org";q=5;w=60"#)
    );
    assert_eq!(
        a.header("ratelimit"),
        Some(r#""key";r=97;t=50, "org";r=2;t=50"#)
    );
    // Another key of the organization has only what is left of its budget.
    let a = verify_cost(&app, &rs, &k2, 3).await;
    assert_eq!(a.body["code"], "RATE_LIMITED");
    assert_eq!(
        a.header("ratelimit"),
        Some(r#""key";r=100;t=50, "org";r=2;t=50"#)
    );
    // A key whose own limit is tighter than what is left reports its own.
    let a = verify_cost(&app, &rs, &small, 1).await;
    assert_eq!(
        (
            a.header_i64("x-ratelimit-limit"),
            a.header_i64("x-ratelimit-remaining")
        ),
        (2, 1)
    );
    // The tighter of the two refuses: `small` has 1 left of its own; the org has 1 too.
    assert_eq!(
        verify_cost(&app, &rs, &small, 2).await.body["code"],
        "RATE_LIMITED"
    );
    assert_eq!(verify_cost(&app, &rs, &k2, 1).await.body["code"], "VALID");
    // Bearer use counts against the same budget: 429 with Retry-After and both fields.
    let a = app.api(Method::GET, "/api/v1/api-keys", &k1, None).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header_i64("retry-after"), 50);
    assert_eq!(
        a.header("ratelimit"),
        Some(r#""key";r=97;t=50, "org";r=0;t=50"#)
    );
    // Other organizations are unaffected.
    assert_eq!(
        verify_cost(&app, &rs, &other_admin, 3).await.body["code"],
        "VALID"
    );
    // The next window starts fresh.
    app.clock.advance(50);
    assert_eq!(verify_cost(&app, &rs, &k2, 5).await.body["code"], "VALID");

    // `null` removes the budget (fresh keys: no cached record of the old budget).
    let a = set_budget(&app, &org, &admin, json!(null)).await;
    assert_eq!(
        (a.status, &a.body["rate_limit_per_minute"]),
        (200, &json!(null))
    );
    let k3 = key(&app, &org, 100);
    let a = verify_cost(&app, &rs, &k3, 50).await;
    assert_eq!(a.body["code"], "VALID");
    assert_eq!(a.header("ratelimit-policy"), Some(r#""key";q=100;w=60"#));
    // A rename alone keeps the budget as it is.
    let a = app
        .api(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}"),
            &admin,
            Some(json!({"name": "Acme Labs"})),
        )
        .await;
    assert_eq!((a.status, &a.body["name"]), (200, &json!("Acme Labs")));
    let a = app
        .api(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}"),
            &admin,
            Some(json!({"plan_b": 1})),
        )
        .await;
    assert_eq!(a.status, 400, "unknown fields are refused");
}

/// R10 for cost and organization budgets: parallel requests of different keys and costs
/// against one organization budget admit exactly what fits, every repetition.
async fn i6_r10_parallel_costs_against_an_organization_budget_admit_exactly_what_fits(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let admin = key(&app, &org, 1000);
    assert_eq!(set_budget(&app, &org, &admin, json!(30)).await.status, 200);
    let keys: Vec<String> = (0..3).map(|_| key(&app, &org, 1000)).collect();
    for rep in 0..5 {
        app.at_minute_start(1);
        // 30 requests of cost 3 over three keys: exactly 10 fit in 30.
        let calls = (0..30).map(|i| {
            let k = keys[i % 3].clone();
            let rs = rs.clone();
            let app = &app;
            async move { verify_cost(app, &rs, &k, 3).await }
        });
        let answers = futures_util::future::join_all(calls).await;
        let valid = answers.iter().filter(|a| a.body["code"] == "VALID").count();
        let limited = answers
            .iter()
            .filter(|a| a.body["code"] == "RATE_LIMITED")
            .count();
        assert_eq!((valid, limited), (10, 20), "repetition {rep}");
        let a = verify_cost(&app, &rs, &keys[0], 1).await;
        assert_eq!(a.body["code"], "RATE_LIMITED", "repetition {rep}: 30 spent");
        assert_eq!(a.header_i64("x-ratelimit-remaining"), 0);
    }
}

async fn i6_two_instances_share_an_organization_budget_through_the_database(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let admin = key(&app, &org, 1000);
    assert_eq!(set_budget(&app, &org, &admin, json!(10)).await.status, 200);
    let (k1, k2) = (key(&app, &org, 100), key(&app, &org, 100));
    let second = app.second_instance().await;
    app.at_minute_start(0);
    assert_eq!(verify_cost(&app, &rs, &k1, 7).await.body["code"], "VALID");
    tessera::startup::flush_key_usage(&app.state).await;
    // The second instance's first request, then a sync: it learns of the 7.
    assert_eq!(
        verify_cost(&second, &rs, &k2, 1).await.body["code"],
        "VALID"
    );
    tessera::startup::flush_key_usage(&second.state).await;
    let a = verify_cost(&second, &rs, &k2, 3).await;
    assert_eq!(a.body["code"], "RATE_LIMITED", "7 + 1 spent, 2 left");
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 2);
    assert_eq!(
        verify_cost(&second, &rs, &k2, 2).await.body["code"],
        "VALID"
    );
    tessera::startup::flush_key_usage(&second.state).await;
    tessera::startup::flush_key_usage(&app.state).await;
    let a = verify_cost(&app, &rs, &k1, 1).await;
    assert_eq!(
        a.body["code"], "RATE_LIMITED",
        "the first instance sees the total"
    );
}

/// docs/spec.md §5, §10: budget headers (X-RateLimit-* and the IETF fields) only about a
/// live key; none for `NOT_FOUND`, `REVOKED`, `EXPIRED`.
async fn budget_headers_only_for_live_keys(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let admin = key(&app, &org, 1000);
    assert_eq!(set_budget(&app, &org, &admin, json!(50)).await.status, 200);
    let expiring = app.api_key(
        &org,
        KeySpec {
            expiry: Expiry::At(app.clock.now() + 5),
            ..Default::default()
        },
    );
    let revoked = app.api_key(&org, KeySpec::default());
    let a = app
        .api(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", revoked.id),
            &admin,
            None,
        )
        .await;
    assert_eq!(a.status, 204);
    let scoped = key(&app, &org, 100);
    app.clock.advance(10);
    let missing = "tsr_sk_00000000000000000000000000000000000000";
    for (k, code) in [
        (missing, "NOT_FOUND"),
        (revoked.key.as_str(), "REVOKED"),
        (expiring.key.as_str(), "EXPIRED"),
    ] {
        let a = app.verify(&rs, json!({"key": k, "cost": 2})).await;
        assert_eq!(a.body["code"], code);
        for h in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "ratelimit-policy",
            "ratelimit",
        ] {
            assert!(a.header(h).is_none(), "{code}: {h}");
        }
        assert!(a.body["ratelimit"].is_null());
    }
    // A live key out of scope gets them (and spends nothing).
    let a = app
        .verify(
            &rs,
            json!({"key": scoped, "scopes": ["clients:write"], "cost": 5}),
        )
        .await;
    assert_eq!(a.body["code"], "INSUFFICIENT_SCOPE");
    assert!(a.header("ratelimit-policy").is_some() && a.header("ratelimit").is_some());
    assert!(
        a.header("ratelimit")
            .is_some_and(|r| r.starts_with(r#""key";r=100;"#)),
        "nothing spent"
    );
}

async fn tessera_org_update_sets_and_removes_the_budget(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("--database-url")
            .arg(&app.db().url)
            .arg("--keys-dir")
            .arg(app.db().keys_dir())
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run tessera")
    };
    let out = run(&["org", "update", &org, "--rate-limit-per-minute", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["rate_limit_per_minute"], 4);
    let k = key(&app, &org, 100);
    app.at_minute_start(0);
    let a = verify_cost(&app, &rs, &k, 4).await;
    assert_eq!(a.body["code"], "VALID");
    assert_eq!(
        a.header("ratelimit-policy"),
        Some(r#""key";q=100;w=60, "org";q=4;w=60"#)
    );
    assert_eq!(
        verify_cost(&app, &rs, &k, 1).await.body["code"],
        "RATE_LIMITED"
    );

    let out = run(&["org", "update", &org, "--rate-limit-per-minute", "zero"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rate-limit-per-minute"));
    let out = run(&["org", "update", &org, "--rate-limit-per-minute", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rate_limit_per_minute"));
    let out = run(&["org", "update", &org, "--rate-limit-per-minute", "none"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(printed["rate_limit_per_minute"].is_null());
    let listed = run(&["org", "list"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert!(listed["data"][0]["rate_limit_per_minute"].is_null());
}
