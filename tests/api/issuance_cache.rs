//! Issuance without the database (docs/spec.md §12, docs/architecture.md §5): a client that
//! authenticated with its secret gets its next `client_credentials` tokens from the
//! credential cache, and every change to the client voids that at once on the instance
//! that makes it and within the cache bound on the others (docs/security.md I9, R5).

use reqwest::Method;
use serde_json::json;
use tessera::clock::Clock;
use tessera::orgs::Plan;

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, TestApp, spawn_app};

crate::on_both_backends!(
    i9_r5_a_cached_client_is_refused_at_once_after_rotation_update_and_deletion,
    i9_r5_another_instance_refuses_a_rotated_secret_within_the_cache_bound,
);

async fn cc_token(app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    app.post_form(
        "/oauth/token",
        Some((id, secret)),
        "grant_type=client_credentials&scope=inference%3Aread",
    )
    .await
}

/// Whether this instance would issue to (id, secret) from its cache right now.
fn cached(app: &TestApp, id: &str, secret: &str) -> bool {
    let rt = &app.state.api_keys;
    rt.clients
        .client(id, secret, &rt.health, app.clock.now())
        .is_some()
}

/// An org admin key and a client_credentials client made through `/api/v1`.
async fn client(app: &TestApp) -> (String, String, String) {
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let made = app
        .api(
            Method::POST,
            "/api/v1/clients",
            &admin.key,
            Some(json!({"name": "batch", "grant_types": ["client_credentials"], "scopes": ["inference:read"]})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let id = made.body["client_id"].as_str().expect("id").to_string();
    let secret = made.body["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    (admin.key, id, secret)
}

/// Issues until the instance serves the client from its cache (the first change poll
/// must have succeeded for a cached answer to be used).
async fn warm(app: &TestApp, id: &str, secret: &str) {
    let started = std::time::Instant::now();
    loop {
        assert_eq!(cc_token(app, id, secret).await.status(), 200);
        if cached(app, id, secret) {
            assert_eq!(
                cc_token(app, id, secret).await.status(),
                200,
                "from the cache"
            );
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "never cached"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn i9_r5_a_cached_client_is_refused_at_once_after_rotation_update_and_deletion(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (admin, id, old) = client(&app).await;
    warm(&app, &id, &old).await;
    assert!(
        !cached(&app, &id, "not-the-secret"),
        "only the secret that authenticated is remembered"
    );
    assert_eq!(cc_token(&app, &id, "not-the-secret").await.status(), 401);

    // Rotation without overlap: the cached old secret stops with the next request.
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/secret"),
            &admin,
            Some(json!({"expire_old_in_seconds": 0})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let new = r.body["client_secret"].as_str().expect("new").to_string();
    assert!(!cached(&app, &id, &old));
    assert_eq!(cc_token(&app, &id, &old).await.status(), 401, "old secret");
    warm(&app, &id, &new).await;

    // An update that takes the grant away applies to the next request too.
    let r = app
        .api(
            Method::PUT,
            &format!("/api/v1/clients/{id}"),
            &admin,
            Some(json!({"name": "batch", "grant_types": ["authorization_code"], "scopes": ["inference:read"], "redirect_uris": ["https://app.example/cb"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refused = cc_token(&app, &id, &new).await;
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    let r = app
        .api(
            Method::PUT,
            &format!("/api/v1/clients/{id}"),
            &admin,
            Some(json!({"name": "batch", "grant_types": ["client_credentials"], "scopes": ["inference:read"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    warm(&app, &id, &new).await;

    // Deletion: refused at once.
    let r = app
        .api(
            Method::DELETE,
            &format!("/api/v1/clients/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(!cached(&app, &id, &new));
    assert_eq!(cc_token(&app, &id, &new).await.status(), 401, "deleted");
}

async fn i9_r5_another_instance_refuses_a_rotated_secret_within_the_cache_bound(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let second = app.second_instance().await;
    let (admin, id, old) = client(&app).await;
    warm(&app, &id, &old).await;
    warm(&second, &id, &old).await;
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/secret"),
            &admin,
            Some(json!({"expire_old_in_seconds": 0})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let rotated = std::time::Instant::now();
    assert_eq!(
        cc_token(&app, &id, &old).await.status(),
        401,
        "at once here"
    );
    loop {
        let status = cc_token(&second, &id, &old).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            rotated.elapsed() < std::time::Duration::from_millis(1000),
            "the other instance must follow within the cache bound"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!cached(&second, &id, &old));
}
