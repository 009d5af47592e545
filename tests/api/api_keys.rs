//! API keys over HTTP (docs/spec.md §5; docs/security.md I1–I8): create, list, revoke, roll, verify,
//! bearer use of `/api/v1`, per-key rate limits, organization members.

use reqwest::Method;
use serde_json::{Value, json};
use tessera::api_keys::KeyType;
use tessera::api_keys::store::Expiry;
use tessera::clock::Clock;
use tessera::orgs::{Plan, Role};

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, TestApp, spawn_app};

crate::on_both_backends!(
    i1_i2_a_key_is_shown_once_and_stored_only_as_a_hash,
    i3_i4_bearer_failures_follow_rfc_6750,
    i5_r5_only_admins_revoke_and_revocation_reaches_every_instance,
    i6_the_limit_is_exact_at_the_boundary_and_resets,
    i6_two_instances_share_one_budget_through_the_database,
    i7_credentials_in_the_url_are_refused,
    verify_answers_every_verdict,
    roll_keeps_the_old_key_only_for_the_overlap,
    creation_rules_publishable_scopes_expiry_and_what_a_member_may_grant,
    members_are_managed_by_admins_and_one_admin_always_remains,
    a_user_access_token_with_admin_manages_keys,
    last_used_is_written_in_batches_and_introspection_does_not_count,
    r4_a_database_outage_turns_cached_answers_into_503,
    k2_j6_verify_slows_secret_guessing_and_bounds_bodies,
);

async fn create(app: &TestApp, bearer: &str, body: Value) -> crate::helpers::api::Answer {
    app.api(Method::POST, "/api/v1/api-keys", bearer, Some(body))
        .await
}

async fn i1_i2_a_key_is_shown_once_and_stored_only_as_a_hash(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let made = create(
        &app,
        &admin.key,
        json!({"name": "ci deploy", "scopes": ["inference:read", "inference:write"], "type": "secret", "expires_in_days": 30}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.header("cache-control"), Some("no-store"), "I1");
    let key = made.body["key"].as_str().expect("key").to_string();
    // The audit log names the key that made it (not `cli`, though that key was made with
    // the CLI).
    {
        let mut conn = app.state.pool.get().expect("conn");
        let log = tessera::audit::list_for_org(&mut conn, &org, 50).expect("audit");
        let entry = log
            .iter()
            .find(|e| e.action == "api_key.created" && made.body["id"] == e.target_id.as_str())
            .expect("api_key.created");
        assert_eq!(entry.actor, format!("key:{}", admin.id));
    }
    assert!(key.starts_with("tsr_sk_") && key.len() == 7 + 32 + 6);
    assert!(tessera::api_keys::format::check(&key, "tsr"));
    assert_eq!(made.body["last_six"], key[key.len() - 6..]);
    assert_eq!(
        made.body["scopes"],
        json!(["inference:read", "inference:write"])
    );
    assert_eq!(made.body["rate_limit_per_minute"], 100, "free plan default");
    assert!(made.body["expires_at"].is_string());
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(
            made.header(h).is_some(),
            "{h} on a key-authenticated answer"
        );
    }

    let list = app
        .api(Method::GET, "/api/v1/api-keys", &admin.key, None)
        .await;
    assert_eq!(list.status, 200);
    let text = list.body.to_string();
    assert!(!text.contains(&key), "I1: the list never shows the key");
    let row = list.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|k| k["id"] == made.body["id"])
        .expect("listed")
        .clone();
    assert_eq!(row["name"], "ci deploy");
    assert_eq!(row["last_six"], made.body["last_six"]);
    assert_eq!(row["type"], "secret");
    assert!(row.get("key").is_none());
    assert!(row["last_used_at"].is_null());
    assert_eq!(
        row["rate_limit_per_minute"], 100,
        "the effective limit (plan)"
    );

    // I2: the database holds a SHA-256, never the key.
    use diesel::prelude::*;
    use tessera::db::schema::api_keys;
    let mut conn = app.state.pool.get().expect("conn");
    let rows: Vec<(String, String)> = api_keys::table
        .select((api_keys::key_hash, api_keys::last_six))
        .load(&mut conn)
        .expect("rows");
    for (hash, _) in &rows {
        assert!(!hash.contains(&key[7..]), "I2: no plaintext at rest");
    }
    assert!(
        rows.iter()
            .any(|(h, _)| *h == tessera::crypto::sha256_hex(&key))
    );
}

async fn i3_i4_bearer_failures_follow_rfc_6750(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let reader = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    let expired = app.api_key(
        &org,
        KeySpec {
            expiry: Expiry::InDays(1),
            ..Default::default()
        },
    );

    // I4: no credential: a bare challenge.
    let r = reqwest::get(format!("{}/api/v1/api-keys", app.address))
        .await
        .expect("get");
    let a = crate::helpers::api::answer(r).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(
            format!(
                r#"Bearer realm="tessera", resource_metadata="{}/.well-known/oauth-protected-resource/api/v1""#,
                app.state.issuer
            )
            .as_str()
        )
    );
    assert_eq!(a.body["error"]["type"], "authentication_error");

    // I4: random and bad-checksum credentials.
    let mut typo = reader.key.clone();
    typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
    for bad in ["tsr_sk_nonsense", typo.as_str(), "x.y.z"] {
        let a = app.api(Method::GET, "/api/v1/api-keys", bad, None).await;
        assert_eq!(a.status, 401, "{bad}");
        assert!(
            a.header("www-authenticate")
                .expect("challenge")
                .contains(r#"error="invalid_token""#)
        );
    }

    // I4: expired.
    app.clock.advance(86_400);
    let a = app
        .api(Method::GET, "/api/v1/api-keys", &expired.key, None)
        .await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("expired")
    );
    assert!(
        a.header("x-ratelimit-limit").is_none(),
        "an expired key has no budget (docs/spec.md §5)"
    );

    // I3: a key without `admin` is refused, naming the scope.
    let a = app
        .api(Method::GET, "/api/v1/api-keys", &reader.key, None)
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.header("www-authenticate"),
        Some(r#"Bearer realm="tessera", error="insufficient_scope", scope="admin""#)
    );
    assert_eq!(a.body["error"]["type"], "permission_error");
}

async fn i5_r5_only_admins_revoke_and_revocation_reaches_every_instance(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let other_org = app.org(Plan::Free);
    let admin_user = app.member(&org, "admin@acme.test", Role::Admin);
    let member_user = app.member(&org, "member@acme.test", Role::Member);
    let admin = app.api_key(
        &org,
        KeySpec {
            created_by: Some(&admin_user),
            ..Default::default()
        },
    );
    let member = app.api_key(
        &org,
        KeySpec {
            created_by: Some(&member_user),
            ..Default::default()
        },
    );
    let outsider = app.api_key(&other_org, KeySpec::default());
    let victim = app.api_key(&org, KeySpec::default());
    let path = format!("/api/v1/api-keys/{}", victim.id);

    // Members list and create, but may not revoke.
    assert_eq!(
        app.api(Method::GET, "/api/v1/api-keys", &member.key, None)
            .await
            .status,
        200
    );
    let a = app.api(Method::DELETE, &path, &member.key, None).await;
    assert_eq!(a.status, 403, "I5: a member cannot revoke");
    // Another organization's admin sees nothing there (I8).
    let a = app.api(Method::DELETE, &path, &outsider.key, None).await;
    assert_eq!(a.status, 404, "I5/I8: other organization");
    let a = app
        .api(
            Method::POST,
            &format!("{path}/roll"),
            &outsider.key,
            Some(json!({})),
        )
        .await;
    assert_eq!(a.status, 404);

    let second = app.second_instance().await;
    assert_eq!(
        second
            .api(Method::GET, "/api/v1/api-keys", &victim.key, None)
            .await
            .status,
        200
    );
    let a = app.api(Method::DELETE, &path, &admin.key, None).await;
    assert_eq!(a.status, 204);
    let revoked_at = std::time::Instant::now();
    // The instance that revoked refuses the key from the next request on.
    let a = app
        .api(Method::GET, "/api/v1/api-keys", &victim.key, None)
        .await;
    assert_eq!(a.status, 401, "I5: revoked at once here");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("revoked")
    );
    // The other instance had the key cached; it learns of the revocation from the audit
    // log poll (100 ms), and never later than --cache-ttl-ms (1000 ms; docs/spec.md §7).
    loop {
        let a = second
            .api(Method::GET, "/api/v1/api-keys", &victim.key, None)
            .await;
        if a.status == 401 {
            break;
        }
        assert_eq!(a.status, 200);
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_millis(1000),
            "I5: the second instance must refuse within the cache bound"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Deleted means gone: a second delete is 404, and the list no longer shows it (I8).
    assert_eq!(
        app.api(Method::DELETE, &path, &admin.key, None)
            .await
            .status,
        404
    );
    let list = app
        .api(Method::GET, "/api/v1/api-keys", &admin.key, None)
        .await;
    assert!(!list.body.to_string().contains(&victim.id));
    // The audit log has who, what and the last six, never the key.
    let mut conn = app.state.pool.get().expect("conn");
    let log = tessera::audit::list_for_org(&mut conn, &org, 50).expect("audit");
    let revoked = log
        .iter()
        .find(|e| e.action == "api_key.revoked")
        .expect("audit entry");
    assert_eq!(revoked.actor, format!("key:{}", admin.id));
    assert_eq!(revoked.target_id, victim.id);
    assert!(revoked.details.contains(&victim.last_six));
    assert!(!log.iter().any(|e| e.details.contains(&victim.key)));
}

async fn i6_the_limit_is_exact_at_the_boundary_and_resets(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let limited = app.api_key(
        &org,
        KeySpec {
            limit: Some(3),
            ..Default::default()
        },
    );
    let other = app.api_key(
        &org,
        KeySpec {
            limit: Some(3),
            ..Default::default()
        },
    );
    app.at_minute_start(5);
    let reset = app.clock.now() - 5 + 60;
    for remaining in [2, 1, 0] {
        let a = app.verify(&rs, json!({"key": limited.key})).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body["code"], "VALID");
        assert_eq!(a.body["ratelimit"]["remaining"], remaining);
        assert_eq!(a.header_i64("x-ratelimit-limit"), 3);
        assert_eq!(a.header_i64("x-ratelimit-remaining"), remaining);
        assert_eq!(a.header_i64("x-ratelimit-reset"), reset);
    }
    let a = app.verify(&rs, json!({"key": limited.key})).await;
    assert_eq!(a.status, 200, "verify always answers 200");
    assert_eq!(a.body["valid"], false);
    assert_eq!(a.body["code"], "RATE_LIMITED");
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 0);

    // Bearer use of the same key: 429 with Retry-After and the SPEC body.
    let a = app
        .api(Method::GET, "/api/v1/api-keys", &limited.key, None)
        .await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header_i64("retry-after"), 55);
    assert_eq!(a.body["error"]["type"], "rate_limit_error");
    assert_eq!(a.body["error"]["retry_after"], 55);
    assert_eq!(
        a.body["error"]["message"],
        "Rate limit exceeded. Please retry after 55 seconds."
    );
    assert_eq!(a.header_i64("x-ratelimit-reset"), reset);

    // Other keys are unaffected.
    let a = app.verify(&rs, json!({"key": other.key})).await;
    assert_eq!(a.body["code"], "VALID");

    // The next window starts fresh.
    app.clock.advance(55);
    let a = app.verify(&rs, json!({"key": limited.key})).await;
    assert_eq!(a.body["code"], "VALID");
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 2);
    assert_eq!(a.header_i64("x-ratelimit-reset"), reset + 60);

    // 2L concurrent requests in one window: exactly L pass.
    app.clock.advance(60);
    let burst = app.api_key(
        &org,
        KeySpec {
            limit: Some(10),
            ..Default::default()
        },
    );
    let calls = (0..20).map(|_| app.verify(&rs, json!({"key": burst.key})));
    let answers = futures_util::future::join_all(calls).await;
    let valid = answers.iter().filter(|a| a.body["code"] == "VALID").count();
    let limited_n = answers
        .iter()
        .filter(|a| a.body["code"] == "RATE_LIMITED")
        .count();
    assert_eq!((valid, limited_n), (10, 10), "I6: exactly L of 2L");
}

async fn i7_credentials_in_the_url_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let key = app.api_key(&org, KeySpec::default());
    for q in ["api_key", "access_token"] {
        let r = reqwest::get(format!("{}/api/v1/api-keys?{q}={}", app.address, key.key))
            .await
            .expect("get");
        let a = crate::helpers::api::answer(r).await;
        assert_eq!(a.status, 400, "I7: ?{q}= is never accepted");
        assert_eq!(a.body["error"]["type"], "invalid_request_error");
        // Even alongside a good header.
        let a = app
            .api(
                Method::GET,
                &format!("/api/v1/api-keys?{q}=x"),
                &key.key,
                None,
            )
            .await;
        assert_eq!(a.status, 400);
    }
}

async fn verify_answers_every_verdict(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Pro);
    let good = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read inference:write",
            expiry: Expiry::InDays(7),
            ..Default::default()
        },
    );
    let a = app
        .verify(&rs, json!({"key": good.key, "scopes": ["inference:write"]}))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.body["valid"], true);
    assert_eq!(a.body["code"], "VALID");
    assert_eq!(a.body["key_id"], good.id);
    assert_eq!(a.body["org_id"], org);
    assert_eq!(
        a.body["scopes"],
        json!(["inference:read", "inference:write"])
    );
    assert_eq!(a.body["expires_at"], good.expires_at.clone().expect("exp"));
    assert_eq!(a.body["ratelimit"]["limit"], 1000, "pro plan");

    let a = app
        .verify(&rs, json!({"key": good.key, "scopes": "analytics:read"}))
        .await;
    assert_eq!(a.body["code"], "INSUFFICIENT_SCOPE");
    assert_eq!(a.body["valid"], false);

    let unknown = tessera::api_keys::format::generate("tsr", KeyType::Secret);
    for k in [unknown.expose(), "tsr_sk_short", "", "garbage"] {
        let a = app.verify(&rs, json!({"key": k})).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body["code"], "NOT_FOUND");
        assert!(a.header("x-ratelimit-limit").is_none());
    }

    let doomed = app.api_key(&org, KeySpec::default());
    let admin = app.api_key(&org, KeySpec::default());
    app.api(
        Method::DELETE,
        &format!("/api/v1/api-keys/{}", doomed.id),
        &admin.key,
        None,
    )
    .await;
    let a = app.verify(&rs, json!({"key": doomed.key})).await;
    assert_eq!(a.body["code"], "REVOKED");
    assert!(
        a.header("x-ratelimit-limit").is_none(),
        "a revoked key has no budget (docs/spec.md §5)"
    );
    assert_eq!(a.body["ratelimit"], serde_json::Value::Null);
    app.clock.advance(7 * 86_400);
    let a = app.verify(&rs, json!({"key": good.key})).await;
    assert_eq!(a.body["code"], "EXPIRED");

    // Malformed requests are 400 invalid_request_error.
    for body in [
        "{",
        r#"{"nokey": 1}"#,
        r#"{"key": 5}"#,
        r#"{"key": "k", "extra": 1}"#,
    ] {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/keys/verify", app.address))
            .basic_auth(&rs.0, Some(&rs.1))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        let a = crate::helpers::api::answer(r).await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(a.body["error"]["type"], "invalid_request_error");
    }
    // Only resource servers, with HTTP Basic.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/keys/verify", app.address))
        .json(&json!({"key": good.key}))
        .send()
        .await
        .expect("post");
    let a = crate::helpers::api::answer(r).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(r#"Basic realm="tessera", charset="UTF-8""#)
    );
    let a = app
        .verify(&(rs.0.clone(), "wrong".into()), json!({"key": good.key}))
        .await;
    assert_eq!(a.status, 401);
    let not_rs = app.machine_client("inference:read");
    let a = app.verify(&not_rs, json!({"key": good.key})).await;
    assert_eq!(a.status, 403);
}

async fn roll_keeps_the_old_key_only_for_the_overlap(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let old = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            limit: Some(50),
            expiry: Expiry::InDays(30),
            ..Default::default()
        },
    );
    app.clock.advance(86_400);
    let a = app
        .api(
            Method::POST,
            &format!("/api/v1/api-keys/{}/roll", old.id),
            &admin.key,
            Some(json!({"expire_old_in_seconds": 3600})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let new_key = a.body["key"].as_str().expect("key").to_string();
    assert_ne!(new_key, old.key);
    assert_eq!(a.body["name"], old.name);
    assert_eq!(a.body["scopes"], json!(["inference:read"]));
    assert_eq!(a.body["rate_limit_per_minute"], 50);
    // Same lifetime (30 days) from now.
    let exp = tessera::clock::parse_rfc3339(a.body["expires_at"].as_str().expect("exp"))
        .expect("rfc3339");
    assert_eq!(exp, app.clock.now() + 30 * 86_400);

    for k in [&old.key, &new_key] {
        assert_eq!(
            app.verify(&rs, json!({"key": k})).await.body["code"],
            "VALID"
        );
    }
    app.clock.advance(3600);
    assert_eq!(
        app.verify(&rs, json!({"key": old.key})).await.body["code"],
        "EXPIRED",
        "the overlap is over"
    );
    assert_eq!(
        app.verify(&rs, json!({"key": new_key})).await.body["code"],
        "VALID"
    );

    // Default overlap 0: the old key stops at once.
    let a = app
        .api(
            Method::POST,
            &format!(
                "/api/v1/api-keys/{}/roll",
                a.body["id"].as_str().expect("id")
            ),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(a.status, 201);
    assert_eq!(
        app.verify(&rs, json!({"key": new_key})).await.body["code"],
        "EXPIRED"
    );
    let a = app
        .api(
            Method::POST,
            &format!("/api/v1/api-keys/{}/roll", old.id),
            &admin.key,
            Some(json!({"expire_old_in_seconds": -1})),
        )
        .await;
    assert_eq!(a.status, 400);
}

async fn creation_rules_publishable_scopes_expiry_and_what_a_member_may_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let cases = [
        (
            json!({"name": "p", "scopes": ["inference:write"], "type": "publishable"}),
            400,
        ),
        (
            json!({"name": "p", "scopes": ["inference:read"], "type": "publishable"}),
            201,
        ),
        (
            json!({"name": "d", "scopes": ["inference:read"], "expires_in_days": 0}),
            400,
        ),
        (
            json!({"name": "d", "scopes": ["inference:read"], "expires_in_days": 366}),
            400,
        ),
        (
            json!({"name": "d", "scopes": ["inference:read"], "expires_in_days": 90}),
            201,
        ),
        (
            json!({"name": "d", "scopes": ["inference:read"], "expires_at": "2001-01-01T00:00:00Z"}),
            400,
        ),
        (
            json!({"name": "d", "scopes": ["inference:read"], "expires_at": "2999-01-01T00:00:00Z"}),
            201,
        ),
        (
            json!({"name": "d", "scopes": ["inference:read"], "expires_at": "tomorrow"}),
            400,
        ),
        (
            json!({"name": "d", "scopes": ["inference:read"], "expires_in_days": 7, "expires_at": "2999-01-01T00:00:00Z"}),
            400,
        ),
        (json!({"name": "", "scopes": ["inference:read"]}), 400),
        (json!({"name": "s", "scopes": ["nope:read"]}), 400),
        (json!({"name": "s", "scopes": []}), 400),
        (
            json!({"name": "s", "scopes": ["inference:read"], "rate_limit_per_minute": 0}),
            400,
        ),
        (
            json!({"name": "s", "scopes": "inference:read analytics:read", "rate_limit_per_minute": 5}),
            201,
        ),
        (
            json!({"name": "s", "scopes": ["inference:read"], "bogus": true}),
            400,
        ),
    ];
    for (body, status) in cases {
        let a = create(&app, &admin.key, body.clone()).await;
        assert_eq!(a.status, status, "{body} → {}", a.body);
        if status == 400 {
            assert_eq!(a.body["error"]["type"], "invalid_request_error");
        }
    }
    // docs/spec.md §5: admins grant any catalogue scope; a member any catalogue scope but
    // `admin`, over the API exactly as on the page.
    let member = app.member(&org, "m@acme.test", Role::Member);
    let member_key = app.api_key(
        &org,
        KeySpec {
            scopes: "admin inference:read",
            created_by: Some(&member),
            ..Default::default()
        },
    );
    let a = create(
        &app,
        &member_key.key,
        json!({"name": "m", "scopes": ["admin", "inference:read"]}),
    )
    .await;
    assert_eq!(a.status, 403, "only admins grant admin: {}", a.body);
    assert_eq!(a.body["error"]["type"], "permission_error");
    let a = create(
        &app,
        &member_key.key,
        json!({"name": "m", "scopes": ["inference:write"]}),
    )
    .await;
    assert_eq!(
        a.status, 201,
        "a member grants a scope they do not hold: {}",
        a.body
    );
    let a = create(
        &app,
        &member_key.key,
        json!({"name": "m", "scopes": ["inference:read"]}),
    )
    .await;
    assert_eq!(a.status, 201, "members create keys");
}

async fn members_are_managed_by_admins_and_one_admin_always_remains(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let other_org = app.org(Plan::Free);
    let boss = app.member(&org, "boss@acme.test", Role::Admin);
    let worker = app.member(&org, "worker@acme.test", Role::Member);
    let outsider_user = app.member(&other_org, "new@acme.test", Role::Admin);
    let admin = app.api_key(
        &org,
        KeySpec {
            created_by: Some(&boss),
            ..Default::default()
        },
    );
    let member = app.api_key(
        &org,
        KeySpec {
            created_by: Some(&worker),
            ..Default::default()
        },
    );
    let members = format!("/api/v1/orgs/{org}/members");
    let a = app.api(Method::GET, &members, &member.key, None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"].as_array().expect("data").len(), 2);
    let boss_row = a.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|m| m["email"] == "boss@acme.test")
        .expect("boss listed")
        .clone();
    assert_eq!(boss_row["role"], "admin");
    assert_eq!(boss_row["user_id"], boss);

    let add = json!({"email": "New@Acme.test", "role": "member"});
    let a = app
        .api(Method::POST, &members, &member.key, Some(add.clone()))
        .await;
    assert_eq!(a.status, 403, "members cannot add members");
    let a = app
        .api(Method::POST, &members, &admin.key, Some(add.clone()))
        .await;
    // An invitation, not a membership (docs/spec.md §5): the person must accept.
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["email"], "new@acme.test");
    let mut conn = app.state.pool.get().expect("conn");
    assert_eq!(
        tessera::orgs::store::role_of(&mut conn, &org, &outsider_user).expect("role"),
        None
    );
    drop(conn);
    // Inviting again replaces the pending invitation; an unknown email gets the same answer.
    let a = app.api(Method::POST, &members, &admin.key, Some(add)).await;
    assert_eq!(a.status, 201);
    let a = app
        .api(
            Method::POST,
            &members,
            &admin.key,
            Some(json!({"email": "nobody@acme.test"})),
        )
        .await;
    assert_eq!(a.status, 201);
    // Another organization's member list is not there (I8).
    let a = app
        .api(
            Method::GET,
            &format!("/api/v1/orgs/{other_org}/members"),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(a.status, 404);

    let worker_path = format!("{members}/{worker}");
    let a = app
        .api(
            Method::PATCH,
            &worker_path,
            &admin.key,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(a.status, 200);
    // Now two admins: the boss may step down, but the last admin may not.
    let boss_path = format!("{members}/{boss}");
    let a = app
        .api(
            Method::PATCH,
            &boss_path,
            &admin.key,
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(a.status, 200);
    // The boss's key now acts as a member.
    let a = app
        .api(Method::DELETE, &worker_path, &admin.key, None)
        .await;
    assert_eq!(a.status, 403);
    let a = app
        .api(Method::DELETE, &worker_path, &member.key, None)
        .await;
    assert_eq!(a.status, 409, "the last admin stays");
    let a = app.api(Method::DELETE, &boss_path, &member.key, None).await;
    assert_eq!(a.status, 204);
    // A removed user's key no longer acts in the organization.
    let a = app
        .api(Method::GET, "/api/v1/api-keys", &admin.key, None)
        .await;
    assert_eq!(a.status, 403);
    let mut conn = app.state.pool.get().expect("conn");
    let log = tessera::audit::list_for_org(&mut conn, &org, 50).expect("audit");
    for action in [
        "invitation.created",
        "member.role_changed",
        "member.removed",
    ] {
        assert!(log.iter().any(|e| e.action == action), "{action} audited");
    }
}

async fn a_user_access_token_with_admin_manages_keys(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("admin inference:read");
    let tokens = app.user_tokens(&client, "admin inference:read").await;
    let at = tokens["access_token"].as_str().expect("at");
    let a = create(
        &app,
        at,
        json!({"name": "from a token", "scopes": ["inference:read"]}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(
        a.header("x-ratelimit-limit").is_none(),
        "no key, no key budget"
    );
    let list = app.api(Method::GET, "/api/v1/api-keys", at, None).await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.body["data"][0]["created_by"]
            .as_str()
            .map(|s| s.starts_with("usr_")),
        Some(true)
    );
    // A token without `admin` is refused with the scope named.
    let narrow = app.user_tokens(&client, "inference:read").await;
    let a = app
        .api(
            Method::GET,
            "/api/v1/api-keys",
            narrow["access_token"].as_str().expect("at"),
            None,
        )
        .await;
    assert_eq!(a.status, 403);
    assert!(
        a.header("www-authenticate")
            .expect("ch")
            .contains(r#"scope="admin""#)
    );
}

async fn last_used_is_written_in_batches_and_introspection_does_not_count(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let key = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            limit: Some(5),
            ..Default::default()
        },
    );
    app.at_minute_start(1);
    for _ in 0..3 {
        let i = app.introspect(&rs, &key.key).await;
        assert_eq!(i["active"], true);
        assert_eq!(
            i["ratelimit"]["remaining"], 5,
            "introspection spends nothing"
        );
    }
    assert_eq!(
        app.verify(&rs, json!({"key": key.key})).await.body["code"],
        "VALID"
    );
    assert_eq!(
        app.introspect(&rs, &key.key).await["ratelimit"]["remaining"],
        4
    );

    tessera::startup::flush_key_usage(&app.state).await;
    let list = app
        .api(Method::GET, "/api/v1/api-keys", &admin.key, None)
        .await;
    let row = list.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|k| k["id"] == key.id)
        .expect("row")
        .clone();
    assert_eq!(
        row["last_used_at"],
        tessera::clock::rfc3339(app.clock.now()),
        "written by the flush"
    );
}

/// Two instances count into one table (`rate_limit_windows`) on each sync (about once a
/// second); after a sync each sees what the other admitted. The tolerance between syncs is
/// what each instance admits on its own (README: rate limits).
async fn i6_two_instances_share_one_budget_through_the_database(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let key = app.api_key(
        &org,
        KeySpec {
            limit: Some(10),
            ..Default::default()
        },
    );
    let second = app.second_instance().await;
    app.at_minute_start(0);
    for _ in 0..7 {
        assert_eq!(
            app.verify(&rs, json!({"key": key.key})).await.body["code"],
            "VALID"
        );
    }
    tessera::startup::flush_key_usage(&app.state).await;
    // The second instance has admitted nothing yet: one request, then a sync.
    let a = second.verify(&rs, json!({"key": key.key})).await;
    assert_eq!(a.body["code"], "VALID");
    tessera::startup::flush_key_usage(&second.state).await;
    assert_eq!(
        second
            .verify(&rs, json!({"key": key.key}))
            .await
            .header_i64("x-ratelimit-remaining"),
        1,
        "7 from the first instance + 2 here"
    );
    assert_eq!(
        second.verify(&rs, json!({"key": key.key})).await.body["code"],
        "VALID"
    );
    assert_eq!(
        second.verify(&rs, json!({"key": key.key})).await.body["code"],
        "RATE_LIMITED",
        "10 in all across both"
    );
    tessera::startup::flush_key_usage(&second.state).await;
    tessera::startup::flush_key_usage(&app.state).await;
    let a = app.verify(&rs, json!({"key": key.key})).await;
    assert_eq!(
        a.body["code"], "RATE_LIMITED",
        "the first instance sees the total too"
    );
}

/// docs/spec.md §7: with the database gone, verify answers 503, never VALID, even for a key in
/// the cache: the cache is only used while the change poll keeps succeeding.
async fn r4_a_database_outage_turns_cached_answers_into_503(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let key = app.api_key(&org, KeySpec::default());
    for _ in 0..3 {
        assert_eq!(
            app.verify(&rs, json!({"key": key.key})).await.body["code"],
            "VALID"
        );
    }
    crate::token::break_database(&app);
    let broken_at = std::time::Instant::now();
    loop {
        let a = app.verify(&rs, json!({"key": key.key})).await;
        if a.status == 503 {
            assert_eq!(a.body["error"]["type"], "api_error");
            break;
        }
        assert_eq!(a.body["code"], "VALID");
        assert!(
            broken_at.elapsed() < std::time::Duration::from_millis(1000),
            "cached answers stop within the health window"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // And it stays that way.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.verify(&rs, json!({"key": key.key})).await.status, 503);
}

/// K2 at the verify endpoint: a resource-server id guessing secrets is throttled (429 +
/// Retry-After), even once it finds the right one; J6: `/api/v1` bodies are bounded.
async fn k2_j6_verify_slows_secret_guessing_and_bounds_bodies(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let key = app.api_key(&org, KeySpec::default());
    let wrong = (rs.0.clone(), "tsr_cs_wrong".to_string());
    for _ in 0..20 {
        assert_eq!(
            app.verify(&wrong, json!({"key": key.key})).await.status,
            401
        );
    }
    let a = app.verify(&rs, json!({"key": key.key})).await;
    assert_eq!(a.status, 429, "K2: throttled after 20 failures");
    assert!(a.header("retry-after").is_some());
    assert_eq!(a.body["error"]["type"], "rate_limit_error");
    app.clock.advance(60);
    assert_eq!(
        app.verify(&rs, json!({"key": key.key})).await.body["code"],
        "VALID"
    );

    // J6: a body over 64 KiB is refused before it is parsed.
    let big = json!({"name": "x".repeat(100 * 1024), "scopes": ["inference:read"]});
    let a = app
        .api(Method::POST, "/api/v1/api-keys", &key.key, Some(big))
        .await;
    assert_eq!(a.status, 413, "J6");
    assert_eq!(
        a.body["error"]["type"], "invalid_request_error",
        "JSON, like every /api/v1 error"
    );
}
