//! `/settings/api-keys` and `/settings/members` through the pages, as a browser without
//! JavaScript would use them (docs/spec.md §6; docs/security.md I1, I5, I8, H1, H5).

use serde_json::json;

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, TestApp, hidden, spawn_app};

crate::on_both_backends!(
    i1_the_page_shows_a_new_key_once_then_only_its_last_six,
    h1_settings_forms_need_their_csrf_token,
    i5_members_see_keys_but_only_admins_revoke_after_confirming,
    members_page_adds_and_promotes_and_the_org_picker_switches,
    h5_a_key_name_renders_as_text,
);

fn key_in(html: &str) -> Option<String> {
    let start = html.find("tsr_sk_")?;
    let k: String = html[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (k.len() == 45).then_some(k)
}

async fn create_key(
    app: &TestApp,
    b: &reqwest::Client,
    name: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let (_, html) = app.page(b, "/settings/api-keys").await;
    let csrf = hidden(&html, "csrf_token");
    let mut form = vec![
        ("csrf_token", csrf.as_str()),
        ("name", name),
        ("type", "secret"),
        ("expiration", "30"),
    ];
    form.extend_from_slice(extra);
    app.post_page(b, "/settings/api-keys", &form).await
}

async fn i1_the_page_shows_a_new_key_once_then_only_its_last_six(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Not signed in: to the login page, and back here afterwards.
    let anon = app.browser();
    let r = anon
        .get(format!("{}/settings/api-keys", app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/login?return_to=%2Fsettings%2Fapi-keys"
    );

    let b = app.user("ada@example.com").await;
    let (status, html) = app.page(&b, "/settings/api-keys").await;
    assert_eq!(status, 200);
    assert!(html.contains("No keys yet"));
    let r = create_key(
        &app,
        &b,
        "deploy bot",
        &[("scope", "inference:read"), ("scope", "inference:write")],
    )
    .await;
    // Post/redirect/get (docs/spec.md §6): the key is on the page the 303 leads to.
    let (location, status, cache, html) = app.follow(&b, r).await;
    assert_eq!(status, 200);
    assert_eq!(cache, "no-store", "I1");
    let key = key_in(&html).expect("the new key is on the page");
    assert!(html.contains("will not be shown again"));
    assert!(html.contains(r#"id="copy""#));
    // Reloading that page shows it no more, and makes no second key.
    let (status, again) = app.page(&b, &location).await;
    assert_eq!(status, 200);
    assert!(key_in(&again).is_none(), "I1: a reload never shows a key");
    assert!(again.contains(r#"id="already-shown""#));
    // Another session (same account) cannot take someone else's slot either.
    let other = app.browser();
    let r = crate::helpers::login(
        &app,
        &other,
        "ada@example.com",
        crate::helpers::oauth::PASSWORD,
        "/",
    )
    .await;
    assert_eq!(r.status(), 303);
    let (_, theirs) = app.page(&other, &location).await;
    assert!(key_in(&theirs).is_none());
    let org = app.org_of("ada@example.com");
    let keys = {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::api_keys::store::list(&mut conn, &org).expect("keys")
    };
    assert_eq!(keys.len(), 1, "exactly one key exists");

    // It works, with the scopes ticked.
    let rs = app.resource_server();
    let v = app.verify(&rs, json!({"key": key})).await;
    assert_eq!(v.body["code"], "VALID");
    assert_eq!(
        v.body["scopes"],
        json!(["inference:read", "inference:write"])
    );
    assert_eq!(v.body["org_id"], app.org_of("ada@example.com"));

    // Reload: only the last six.
    let (_, html) = app.page(&b, "/settings/api-keys").await;
    assert!(!html.contains(&key), "I1: shown once");
    assert!(html.contains(&key[key.len() - 6..]));
    assert!(html.contains("deploy bot"));

    // Bad input comes back with a message and the form filled in.
    let r = create_key(&app, &b, "no scopes", &[]).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.expect("html");
    assert!(html.contains("at least one scope"));
    assert!(html.contains(r#"value="no scopes""#));
    let (_, html) = app.page(&b, "/settings/api-keys").await;
    let csrf = hidden(&html, "csrf_token");
    let r = app
        .post_page(
            &b,
            "/settings/api-keys",
            &[
                ("csrf_token", &csrf),
                ("name", "web"),
                ("type", "publishable"),
                ("expiration", "never"),
                ("scope", "inference:write"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400, "publishable keys are read-only");
    let r = app
        .post_page(
            &b,
            "/settings/api-keys",
            &[
                ("csrf_token", &csrf),
                ("name", "custom"),
                ("expiration", "custom"),
                ("expires_on", "2001-01-01"),
                ("scope", "inference:read"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400, "a custom date must be in the future");
    let r = app
        .post_page(
            &b,
            "/settings/api-keys",
            &[
                ("csrf_token", &csrf),
                ("name", "custom"),
                ("expiration", "custom"),
                ("expires_on", "2999-01-01"),
                ("scope", "inference:read"),
            ],
        )
        .await;
    let (_, status, _, html) = app.follow(&b, r).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(
            r#"title="2999-01-01 00:00 UTC"><span class="nowrap">2999-01-01</span></td>"#
        ),
        "{html}"
    );
}

async fn h1_settings_forms_need_their_csrf_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("ada@example.com").await;
    for token in ["", "forged"] {
        let r = app
            .post_page(
                &b,
                "/settings/api-keys",
                &[
                    ("csrf_token", token),
                    ("name", "x"),
                    ("scope", "inference:read"),
                ],
            )
            .await;
        assert_eq!(r.status(), 403, "H1");
    }
    // A token for another form does not work here.
    let (_, html) = app.page(&b, "/settings/members").await;
    let members_token = hidden(&html, "csrf_token");
    let r = app
        .post_page(
            &b,
            "/settings/api-keys",
            &[
                ("csrf_token", &members_token),
                ("name", "x"),
                ("scope", "inference:read"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    // A cross-site post is refused even with a good token.
    let (_, html) = app.page(&b, "/settings/api-keys").await;
    let token = hidden(&html, "csrf_token");
    let r = b
        .post(format!("{}/settings/api-keys", app.address))
        .header("Origin", "https://evil.example")
        .form(&[
            ("csrf_token", token.as_str()),
            ("name", "x"),
            ("scope", "inference:read"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
}

async fn i5_members_see_keys_but_only_admins_revoke_after_confirming(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.user("admin@example.com").await;
    let org = app.org_of("admin@example.com");
    let member = app.user("member@example.com").await;
    let member_id = {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::users::store::find_by_email(&mut conn, "member@example.com")
            .expect("q")
            .expect("user")
            .id
    };
    {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::orgs::store::add_member(
            &mut conn,
            &org,
            &member_id,
            tessera::orgs::Role::Member,
            app.clock.now(),
        )
        .expect("member");
    }
    use tessera::clock::Clock;
    let key = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    // The member's session is still in their own organization: switch to the shared one.
    let (_, html) = app.page(&member, "/settings/api-keys").await;
    assert!(
        html.contains(r#"id="org-picker""#),
        "two organizations: a picker"
    );
    let csrf_org = {
        let at = html.find(r#"id="org-picker""#).expect("picker");
        hidden(&html[at..], "csrf_token")
    };
    let r = app
        .post_page(
            &member,
            "/settings/org",
            &[
                ("csrf_token", &csrf_org),
                ("org_id", &org),
                ("return_to", "/settings/api-keys"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (_, html) = app.page(&member, "/settings/api-keys").await;
    assert!(html.contains(&key.last_six), "members list the keys");
    assert!(!html.contains("/revoke"), "no revoke for members");
    assert!(
        !html.contains(r#"value="admin""#),
        "members cannot grant admin"
    );
    // A forged form that asks for admin anyway meets the same rule as the API
    // (docs/spec.md §5): 403, no key made; any other catalogue scope is allowed.
    let csrf_create = {
        let at = html.find(r#"id="create-key""#).expect("create form");
        hidden(&html[at..], "csrf_token")
    };
    let r = app
        .post_page(
            &member,
            "/settings/api-keys",
            &[
                ("csrf_token", &csrf_create),
                ("name", "forged"),
                ("type", "secret"),
                ("expiration", "30"),
                ("scope", "admin"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403, "only admins grant admin, on the page too");
    let r = app
        .post_page(
            &member,
            "/settings/api-keys",
            &[
                ("csrf_token", &csrf_create),
                ("name", "writer"),
                ("type", "secret"),
                ("expiration", "30"),
                ("scope", "inference:write"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "a member grants any other catalogue scope");
    let (_, html) = app.page(&member, "/settings/api-keys").await;
    assert!(!html.contains("forged"), "the refused key was not made");
    assert!(html.contains("writer"));
    let (status, _) = app
        .page(&member, &format!("/settings/api-keys/{}/revoke", key.id))
        .await;
    assert_eq!(status, 403);

    // The admin confirms, then the key is dead.
    let (_, html) = app.page(&admin, "/settings/api-keys").await;
    assert!(html.contains(&format!("/settings/api-keys/{}/revoke", key.id)));
    let (status, confirm) = app
        .page(&admin, &format!("/settings/api-keys/{}/revoke", key.id))
        .await;
    assert_eq!(status, 200);
    assert!(confirm.contains("cannot be undone"));
    let csrf = hidden(&confirm, "csrf_token");
    // The member cannot use the admin's confirmation either.
    let r = app
        .post_page(
            &member,
            &format!("/settings/api-keys/{}/revoke", key.id),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = app
        .post_page(
            &admin,
            &format!("/settings/api-keys/{}/revoke", key.id),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let rs = app.resource_server();
    assert_eq!(
        app.verify(&rs, json!({"key": key.key})).await.body["code"],
        "REVOKED"
    );
    let (_, html) = app.page(&admin, "/settings/api-keys").await;
    assert!(!html.contains(&key.last_six));
    // Another organization's key id is a 404 (I8).
    let other = app.org(tessera::orgs::Plan::Free);
    let foreign = app.api_key(&other, KeySpec::default());
    let (status, _) = app
        .page(&admin, &format!("/settings/api-keys/{}/revoke", foreign.id))
        .await;
    assert_eq!(status, 404);
}

async fn members_page_adds_and_promotes_and_the_org_picker_switches(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.user("admin@example.com").await;
    let _bob = app.user("bob@example.com").await;
    let (_, html) = app.page(&admin, "/settings/members").await;
    let at = html.find(r#"id="invite-member""#).expect("invite form");
    let csrf = hidden(&html[at..], "csrf_token");
    let r = app
        .post_page(
            &admin,
            "/settings/members",
            &[
                ("csrf_token", &csrf),
                ("email", "bob@example.com"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(r.status(), 201);
    let html = r.text().await.expect("html");
    assert!(html.contains("Invited bob@example.com."));
    let r = app
        .post_page(
            &admin,
            "/settings/members",
            &[("csrf_token", &csrf), ("email", "not an address")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("email is not a valid address")
    );
    // The last admin cannot demote themselves.
    let (_, html) = app.page(&admin, "/settings/members").await;
    let admin_id = {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::users::store::find_by_email(&mut conn, "admin@example.com")
            .expect("q")
            .expect("u")
            .id
    };
    let row = html
        .find(&format!(r#"data-user-id="{admin_id}""#))
        .expect("row");
    let csrf_role = hidden(&html[row..], "csrf_token");
    let r = app
        .post_page(
            &admin,
            &format!("/settings/members/{admin_id}/role"),
            &[("csrf_token", &csrf_role), ("role", "member")],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.expect("html").contains("at least one admin"));
}

async fn h5_a_key_name_renders_as_text(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("ada@example.com").await;
    let evil = "<img src=x onerror=alert(1)>";
    let r = create_key(&app, &b, evil, &[("scope", "inference:read")]).await;
    assert_eq!(r.status(), 303);
    let (_, html) = app.page(&b, "/settings/api-keys").await;
    assert!(!html.contains(evil), "H5: never raw");
    assert!(html.contains("&#60;img src=x onerror=alert(1)&#62;") || html.contains("&lt;img"));
}
