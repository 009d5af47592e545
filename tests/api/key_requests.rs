//! Key requests (docs/spec.md §10): request → approve/deny → claim exactly once.

use reqwest::Method;
use serde_json::json;
use tessera::clock::Clock;
use tessera::orgs::{Plan, Role};

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, spawn_app};

crate::on_both_backends!(i8_a_request_is_approved_then_claimed_once_by_its_requester_only,);

async fn i8_a_request_is_approved_then_claimed_once_by_its_requester_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let other = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let u1 = app.member(&org, "m1@example.com", Role::Member);
    let u2 = app.member(&org, "m2@example.com", Role::Member);
    let m1 = app.api_key(
        &org,
        KeySpec {
            created_by: Some(&u1),
            ..Default::default()
        },
    );
    let m2 = app.api_key(
        &org,
        KeySpec {
            created_by: Some(&u2),
            ..Default::default()
        },
    );
    let theirs = app.api_key(&other, KeySpec::default());
    let r = app
        .api(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}"),
            &admin.key,
            Some(json!({"members_can_create_keys": false})),
        )
        .await;
    assert_eq!(r.status, 200);

    let body = json!({"name": "ci", "scopes": ["inference:read"], "reason": "deploys", "expires_in_days": 30});
    let r = app
        .api(
            Method::POST,
            "/api/v1/key-requests",
            &m1.key,
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    let id = r.body["id"].as_str().expect("id").to_string();
    let bad = app
        .api(
            Method::POST,
            "/api/v1/key-requests",
            &m1.key,
            Some(json!({"name": "x", "scopes": ["inference:read"], "reason": ""})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("reason")
    );

    let claim = format!("/api/v1/key-requests/{id}/claim");
    assert_eq!(
        app.api(Method::POST, &claim, &m1.key, None).await.status,
        409,
        "not approved yet"
    );
    assert_eq!(
        app.api(
            Method::POST,
            &format!("/api/v1/key-requests/{id}/approve"),
            &m1.key,
            None
        )
        .await
        .status,
        403,
        "members do not approve"
    );
    assert_eq!(
        app.api(
            Method::POST,
            &format!("/api/v1/key-requests/{id}/approve"),
            &theirs.key,
            None
        )
        .await
        .status,
        404,
        "I8"
    );
    let approved_at = app.clock.now();
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/key-requests/{id}/approve"),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "approved");
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/key-requests/{id}/deny"),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(r.status, 409, "decided once");

    app.clock.advance(86_400);
    assert_eq!(
        app.api(Method::POST, &claim, &m2.key, None).await.status,
        404,
        "only the requester"
    );
    assert_eq!(
        app.api(Method::POST, &claim, &admin.key, None).await.status,
        403,
        "a CLI-made key acts for no user: it claims nothing"
    );
    let r = app.api(Method::POST, &claim, &m1.key, None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.body["key"].as_str().expect("key").to_string();
    assert_eq!(
        r.body["expires_at"],
        tessera::clock::rfc3339(approved_at + 30 * 86_400),
        "expiry counts from the approval"
    );
    assert_eq!(
        app.api(Method::POST, &claim, &m1.key, None).await.status,
        410,
        "exactly once"
    );
    assert_eq!(
        app.verify(&rs, json!({"key": key})).await.body["code"],
        "VALID"
    );

    // A denied request is never claimed; the admins' list shows both, a member's only theirs.
    let r = app
        .api(Method::POST, "/api/v1/key-requests", &m2.key, Some(body))
        .await;
    let id2 = r.body["id"].as_str().expect("id").to_string();
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/key-requests/{id2}/deny"),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(r.body["status"], "denied");
    assert_eq!(
        app.api(
            Method::POST,
            &format!("/api/v1/key-requests/{id2}/claim"),
            &m2.key,
            None
        )
        .await
        .status,
        409
    );
    let all = app
        .api(Method::GET, "/api/v1/key-requests", &admin.key, None)
        .await;
    assert_eq!(all.body["data"].as_array().expect("data").len(), 2);
    let own = app
        .api(Method::GET, "/api/v1/key-requests", &m2.key, None)
        .await;
    assert_eq!(own.body["data"].as_array().expect("data").len(), 1);
    let mut conn = app.state.pool.get().expect("conn");
    let actions: Vec<String> = tessera::audit::list_for_org(&mut conn, &org, 100)
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "key_request.created",
        "key_request.approved",
        "key_request.denied",
        "key_request.claimed",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
}
