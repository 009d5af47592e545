//! Findings of a fresh user's trial of the API-key platform (docs/spec.md §5, §10), each
//! pinned: publishable keys never read the organization's usage; a refusal for scope names
//! every scope that would do; a key refused for its scopes was still used (`last_used_at`).

use diesel::prelude::*;
use reqwest::Method;
use serde_json::json;
use tessera::orgs::Plan;

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, spawn_app};

crate::on_both_backends!(
    publishable_keys_never_carry_or_use_analytics_read,
    a_scope_refusal_names_analytics_read_or_admin,
    a_key_refused_for_its_scopes_counts_as_used,
);

async fn publishable_keys_never_carry_or_use_analytics_read(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_org, admin) = app.org_with_admin(Plan::Free);
    let a = app
        .api(
            Method::POST,
            "/api/v1/api-keys",
            &admin.key,
            Some(json!({"name": "web", "type": "publishable", "scopes": ["analytics:read"]})),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let m = a.body["error"]["message"].as_str().expect("message");
    assert!(m.contains("scopes") && m.contains("analytics:read"), "{m}");
    let a = app
        .api(
            Method::POST,
            "/api/v1/api-keys",
            &admin.key,
            Some(json!({"name": "web", "type": "publishable", "scopes": ["inference:read"]})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    // A row from before the rule (written directly) still cannot read the usage.
    let id = a.body["id"].as_str().expect("id").to_string();
    let pk = a.body["key"].as_str().expect("key").to_string();
    {
        use tessera::db::schema::api_keys;
        let mut conn = app.state.pool.get().expect("conn");
        diesel::update(api_keys::table.find(&id))
            .set(api_keys::scope.eq("analytics:read inference:read"))
            .execute(&mut conn)
            .expect("update");
    }
    let a = app.usage(&pk, "granularity=day").await;
    assert_eq!(a.status, 403, "{}", a.body);
}

async fn a_scope_refusal_names_analytics_read_or_admin(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let key = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    let a = app.usage(&key.key, "granularity=day").await;
    assert_eq!(a.status, 403, "{}", a.body);
    let m = a.body["error"]["message"].as_str().expect("message");
    assert!(m.contains("analytics:read or admin"), "{m}");
}

async fn a_key_refused_for_its_scopes_counts_as_used(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let reader = app.api_key(
        &app.org(Plan::Free),
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    let rs = app.resource_server();
    let v = app
        .verify(
            &rs,
            json!({"key": reader.key, "scopes": ["inference:write"]}),
        )
        .await;
    assert_eq!(v.body["code"], "INSUFFICIENT_SCOPE", "{}", v.body);
    tessera::startup::flush_key_usage(&app.state).await;
    let mut conn = app.state.pool.get().expect("conn");
    let row = tessera::api_keys::store::find_live(&mut conn, &reader.id)
        .expect("q")
        .expect("key");
    assert_eq!(
        row.last_used_at,
        Some(tessera::clock::Clock::now(&*app.clock))
    );
}
