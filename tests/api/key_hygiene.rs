//! Key hygiene (docs/spec.md §10): `age_days` in lists, the `unused_for_days` filter, the
//! rotation mark after 90 days on the keys page.

use reqwest::Method;
use serde_json::json;
use tessera::clock::Clock;
use tessera::orgs::Plan;

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, signup, spawn_app};

crate::on_both_backends!(
    lists_carry_age_days_and_filter_keys_unused_for_n_days,
    the_keys_page_marks_keys_older_than_90_days_for_rotation,
);

async fn lists_carry_age_days_and_filter_keys_unused_for_n_days(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let used = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    let idle = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    let t0 = app.clock.now();
    app.clock.set(t0 + 40 * 86_400);
    assert_eq!(
        app.verify(&rs, json!({"key": used.key})).await.body["code"],
        "VALID"
    );
    app.clock.set(t0 + 45 * 86_400 + 60);
    tessera::startup::flush_key_usage(&app.state).await;
    let young = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );

    let list = app
        .api(Method::GET, "/api/v1/api-keys", &admin.key, None)
        .await;
    assert_eq!(list.status, 200);
    let age = |id: &str| {
        list.body["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|k| k["id"] == id)
            .map(|k| k["age_days"].clone())
    };
    assert_eq!(age(&idle.id), Some(json!(45)));
    assert_eq!(age(&young.id), Some(json!(0)));

    let ids = |body: &serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = body["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|k| k["id"].as_str().expect("id").to_string())
            .collect();
        v.sort();
        v
    };
    // The admin key is used by these very calls (last_used_at is written in batches);
    tessera::startup::flush_key_usage(&app.state).await;
    // `used` was used 5 days ago; `young` is new.
    let r = app
        .api(
            Method::GET,
            "/api/v1/api-keys?unused_for_days=30",
            &admin.key,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.body), vec![idle.id.clone()]);
    let r = app
        .api(
            Method::GET,
            "/api/v1/api-keys?unused_for_days=5",
            &admin.key,
            None,
        )
        .await;
    let mut both = vec![idle.id.clone(), used.id.clone()];
    both.sort();
    assert_eq!(ids(&r.body), both);
    for bad in [
        "unused_for_days=0",
        "unused_for_days=abc",
        "unused_for_days=1&unused_for_days=2",
        "older=1",
    ] {
        let r = app
            .api(
                Method::GET,
                &format!("/api/v1/api-keys?{bad}"),
                &admin.key,
                None,
            )
            .await;
        assert_eq!(r.status, 400, "{bad}");
        let m = r.body["error"]["message"].as_str().expect("message");
        assert!(
            m.contains(bad.split('=').next().expect("name")),
            "{bad}: {m}"
        );
    }
}

async fn the_keys_page_marks_keys_older_than_90_days_for_rotation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();
    let r = signup(&app, &browser, "ada@example.com", "correct horse battery").await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let org = {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::orgs::store::list_all(&mut conn).expect("orgs")[0]
            .id
            .clone()
    };
    // Made 91 days ago (the session, made now, stays valid).
    let t0 = app.clock.now();
    app.clock.set(t0 - 91 * 86_400);
    let old = app.api_key(&org, KeySpec::default());
    app.clock.set(t0);
    let fresh = app.api_key(&org, KeySpec::default());
    let html = browser
        .get(format!("{}/settings/api-keys", app.address))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let row = |id: &str| {
        let start = html.find(&format!("data-key-id=\"{id}\"")).expect("row");
        let end = html[start..].find("</tr>").expect("end") + start;
        html[start..end].to_string()
    };
    assert!(row(&old.id).contains("Rotate"), "{}", row(&old.id));
    assert!(row(&old.id).contains("91 d"));
    assert!(!row(&fresh.id).contains("Rotate"), "{}", row(&fresh.id));
}
