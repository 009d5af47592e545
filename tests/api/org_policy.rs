//! Organization settings and policies (docs/spec.md §10): `GET/PATCH /api/v1/orgs/{id}`,
//! the lifetime cap and `members_can_create_keys` on key creation, `/settings/organization`.

use reqwest::Method;
use serde_json::json;
use tessera::orgs::{Plan, Role};

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, spawn_app};

crate::on_both_backends!(
    i8_orgs_are_read_by_members_changed_by_admins_and_invisible_to_others,
    key_creation_obeys_the_lifetime_cap_and_members_can_create_keys,
    the_organization_page_shows_and_saves_the_policies,
);

async fn i8_orgs_are_read_by_members_changed_by_admins_and_invisible_to_others(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let other = app.org(Plan::Pro);
    let admin = app.api_key(&org, KeySpec::default());
    let user = app.member(&org, "m@example.com", Role::Member);
    let member = app.api_key(
        &org,
        KeySpec {
            created_by: Some(&user),
            ..Default::default()
        },
    );
    let theirs = app.api_key(&other, KeySpec::default());
    let path = format!("/api/v1/orgs/{org}");

    let r = app.api(Method::GET, &path, &member.key, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"id": org, "name": "Acme", "plan": "free", "rate_limit_per_minute": null,
               "max_key_lifetime_days": null, "members_can_create_keys": true,
               "revoke_leaked_keys": true})
    );
    let r = app.api(Method::GET, &path, &theirs.key, None).await;
    assert_eq!(r.status, 404, "I8: another organization is unknown");
    let r = app
        .api(
            Method::PATCH,
            &path,
            &theirs.key,
            Some(json!({"name": "Mine now"})),
        )
        .await;
    assert_eq!(r.status, 404, "I8");
    let r = app
        .api(
            Method::PATCH,
            &path,
            &member.key,
            Some(json!({"name": "Members rule"})),
        )
        .await;
    assert_eq!(r.status, 403, "only admins change the organization");

    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin.key,
            Some(json!({"name": "Acme Labs", "max_key_lifetime_days": 30,
                        "members_can_create_keys": false, "revoke_leaked_keys": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Acme Labs");
    assert_eq!(r.body["max_key_lifetime_days"], 30);
    assert_eq!(r.body["members_can_create_keys"], false);
    assert_eq!(r.body["revoke_leaked_keys"], false);
    // Absent fields stay; null removes the cap.
    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin.key,
            Some(json!({"max_key_lifetime_days": null})),
        )
        .await;
    assert_eq!(r.body["max_key_lifetime_days"], json!(null));
    assert_eq!(r.body["members_can_create_keys"], false);
    assert_eq!(r.body["name"], "Acme Labs");

    for (body, field) in [
        (json!({"max_key_lifetime_days": 0}), "max_key_lifetime_days"),
        (
            json!({"max_key_lifetime_days": 366}),
            "max_key_lifetime_days",
        ),
        (json!({"name": ""}), "name"),
        (json!({"plan": "pro"}), "plan"),
    ] {
        let r = app
            .api(Method::PATCH, &path, &admin.key, Some(body.clone()))
            .await;
        assert_eq!(r.status, 400, "{body}");
        let m = r.body["error"]["message"].as_str().expect("message");
        assert!(m.contains(field), "{body}: {m}");
    }
    let audit = app
        .api(Method::GET, "/api/v1/api-keys", &admin.key, None)
        .await;
    assert_eq!(audit.status, 200);
    let mut conn = app.state.pool.get().expect("conn");
    let events = tessera::audit::list_for_org(&mut conn, &org, 50).expect("audit");
    assert!(
        events
            .iter()
            .any(|e| e.action == "org.updated" && e.details.contains("Acme Labs")),
        "the change is audited"
    );
}

async fn key_creation_obeys_the_lifetime_cap_and_members_can_create_keys(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (org, admin) = app.org_with_admin(Plan::Free);
    let user = app.member(&org, "m@example.com", Role::Member);
    let member = app.api_key(
        &org,
        KeySpec {
            created_by: Some(&user),
            ..Default::default()
        },
    );
    let path = format!("/api/v1/orgs/{org}");
    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin.key,
            Some(json!({"max_key_lifetime_days": 30})),
        )
        .await;
    assert_eq!(r.status, 200);
    let create = |bearer: String, extra: serde_json::Value| {
        let app = &app;
        async move {
            let mut body = json!({"name": "k", "scopes": ["inference:read"]});
            if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            app.api(Method::POST, "/api/v1/api-keys", &bearer, Some(body))
                .await
        }
    };
    for extra in [
        json!({}),
        json!({"expires_in_days": 31}),
        json!({"expires_at": "2999-01-01T00:00:00Z"}),
    ] {
        let r = create(admin.key.clone(), extra.clone()).await;
        assert_eq!(r.status, 400, "{extra}: {}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .expect("m")
                .contains("expires")
        );
    }
    assert_eq!(
        create(admin.key.clone(), json!({"expires_in_days": 30}))
            .await
            .status,
        201
    );
    assert_eq!(
        create(member.key.clone(), json!({"expires_in_days": 7}))
            .await
            .status,
        201
    );

    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin.key,
            Some(json!({"members_can_create_keys": false})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = create(member.key.clone(), json!({"expires_in_days": 7})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("key-requests")
    );
    assert_eq!(
        create(admin.key.clone(), json!({"expires_in_days": 7}))
            .await
            .status,
        201
    );
}

async fn the_organization_page_shows_and_saves_the_policies(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.user("ada@example.com").await;
    let (_, html) = app.page(&browser, "/settings/organization").await;
    assert!(html.contains("id=\"org-settings\""), "{html}");
    let page = "/settings/organization";
    let r = app
        .submit(
            &browser,
            page,
            page,
            &[
                ("name", "Ada's lab"),
                ("max_key_lifetime_days", "60"),
                ("revoke_leaked_keys", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(html.contains("Saved."), "{html}");
    assert!(html.contains("value=\"60\""));
    let org = {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::orgs::store::list_all(&mut conn).expect("orgs")[0].clone()
    };
    assert_eq!(org.name, "Ada's lab");
    let mut conn = app.state.pool.get().expect("conn");
    let p = tessera::orgs::policy::load(&mut conn, &org.id).expect("policy");
    assert_eq!(p.max_key_lifetime_days, Some(60));
    assert!(!p.members_can_create_keys, "an unticked box is false");
    assert!(p.revoke_leaked_keys);
    // A bad number names the field.
    let r = app
        .submit(
            &browser,
            page,
            page,
            &[("name", "x"), ("max_key_lifetime_days", "lots")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("max_key_lifetime_days")
    );
}
