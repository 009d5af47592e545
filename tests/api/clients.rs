//! Client registration and lifecycle: `/api/v1/clients`, RFC 7591/7592 `/oauth/register`,
//! `/developer/clients`, `/account/apps`, `/settings/audit` (docs/security.md A7, H1, H5, I8, I9).

use reqwest::Method;
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::orgs::{Plan, Role};

use crate::helpers::api::{Answer, KeySpec, answer};
use crate::helpers::oauth::REDIRECT;
use crate::helpers::{Backend, TestApp, hidden, spawn_app};

crate::on_both_backends!(
    a7_registration_refuses_unsafe_redirect_uris,
    rfc7591_7592_register_read_update_delete,
    i8_clients_of_another_organization_are_not_there,
    i9_a_rotated_secret_works_only_for_the_overlap,
    i9_deleting_a_client_kills_its_tokens_and_codes,
    account_apps_lists_and_revokes_an_authorization,
    audit_page_is_for_admins_and_records_client_events,
    developer_pages_register_edit_rotate_and_delete,
    rfc7591_a_client_name_is_optional_and_an_unnamed_client_shows_its_id,
    d3_rfc7591_every_registration_error_is_oauth_json,
    d10_a_registration_never_grants_more_than_its_credential_could,
);

async fn register(app: &TestApp, bearer: Option<&str>, body: Value) -> Answer {
    let mut r = reqwest::Client::new()
        .post(format!("{}/oauth/register", app.address))
        .json(&body);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    answer(r.send().await.expect("register")).await
}

async fn managed(
    app: &TestApp,
    method: Method,
    id: &str,
    token: &str,
    body: Option<Value>,
) -> Answer {
    let mut r = reqwest::Client::new()
        .request(method, format!("{}/oauth/register/{id}", app.address))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    answer(r.send().await.expect("request")).await
}

async fn cc_token(app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    app.post_form(
        "/oauth/token",
        Some((id, secret)),
        "grant_type=client_credentials&scope=inference%3Aread",
    )
    .await
}

async fn a7_registration_refuses_unsafe_redirect_uris(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    for bad in [
        "http://x.example/cb",
        "https://a.example/cb#x",
        "JavaScript:alert(1)",
        "javascript:alert(1)",
        " data:text/html,hi",
        "DATA:text/html,hi",
        "vbscript:msgbox(1)",
        "VBScript:msgbox(1)",
        "https://*.a.example/cb",
        "https://u@a.example/cb",
        "/relative",
    ] {
        let a = register(
            &app,
            Some(&admin.key),
            json!({"client_name": "x", "redirect_uris": [bad]}),
        )
        .await;
        assert_eq!(a.status, 400, "A7: {bad}");
        assert_eq!(a.body["error"], "invalid_redirect_uri", "{bad}");
        // The same rules on /api/v1/clients.
        let a = app
            .api(
                Method::POST,
                "/api/v1/clients",
                &admin.key,
                Some(json!({"name": "x", "redirect_uris": [bad]})),
            )
            .await;
        assert_eq!(a.status, 400, "{bad}");
    }
    for good in [
        "https://app.example/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:8080/cb",
    ] {
        let a = register(
            &app,
            Some(&admin.key),
            json!({"client_name": "ok", "redirect_uris": [good]}),
        )
        .await;
        assert_eq!(a.status, 201, "{good}: {}", a.body);
    }
}

async fn rfc7591_7592_register_read_update_delete(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        meta["registration_endpoint"],
        format!("{}/oauth/register", app.address)
    );
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let reader = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    let body = json!({
        "client_name": "Registered App",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "inference:read inference:write",
        "client_uri": "https://app.example",
        "software_statement_of_some_kind": "ignored (RFC 7591 §2)"
    });
    assert_eq!(register(&app, None, body.clone()).await.status, 401);
    assert_eq!(
        register(&app, Some(&reader.key), body.clone()).await.status,
        403
    );
    let a = register(&app, Some(&admin.key), body).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let id = a.body["client_id"].as_str().expect("id").to_string();
    let secret = a.body["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let rat = a.body["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_string();
    assert_eq!(
        a.body["registration_client_uri"],
        format!("{}/oauth/register/{id}", app.address)
    );
    assert_eq!(a.body["client_secret_expires_at"], 0);
    assert_eq!(a.body["client_name"], "Registered App");
    assert_eq!(a.body["redirect_uris"], json!([REDIRECT]));
    assert_eq!(a.body["scope"], "inference:read inference:write");
    assert!(a.body.get("software_statement_of_some_kind").is_none());
    // The secret works at the token endpoint (no client_credentials grant: unauthorized).
    assert_eq!(cc_token(&app, &id, &secret).await.status(), 400);

    // Read.
    let r = managed(&app, Method::GET, &id, &rat, None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("client_secret").is_none());
    assert_eq!(
        managed(&app, Method::GET, &id, "wrong", None).await.status,
        401
    );
    // Update: client_id required, the auth method may not flip to none.
    let update = json!({
        "client_id": id, "client_name": "Renamed", "redirect_uris": [REDIRECT, "https://app.example/cb2"],
        "grant_types": ["authorization_code"], "scope": "inference:read"
    });
    let r = managed(&app, Method::PUT, &id, &rat, Some(update.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["client_name"], "Renamed");
    assert_eq!(r.body["grant_types"], json!(["authorization_code"]));
    let mut no_id = update.clone();
    no_id.as_object_mut().expect("obj").remove("client_id");
    let r = managed(&app, Method::PUT, &id, &rat, Some(no_id)).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_client_metadata"))
    );
    let mut flip = update.clone();
    flip["token_endpoint_auth_method"] = json!("none");
    assert_eq!(
        managed(&app, Method::PUT, &id, &rat, Some(flip))
            .await
            .status,
        400
    );
    let mut bad = update.clone();
    bad["redirect_uris"] = json!(["javascript:alert(1)"]);
    let r = managed(&app, Method::PUT, &id, &rat, Some(bad)).await;
    assert_eq!(r.body["error"], "invalid_redirect_uri");
    let r = managed(&app, Method::GET, &id, &rat, None).await;
    assert_eq!(r.body["client_name"], "Renamed");

    // Error cases of registration itself.
    for (body, code) in [
        (
            json!({"client_name": "x", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "x", "redirect_uris": [REDIRECT], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "x", "redirect_uris": [REDIRECT], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "x", "redirect_uris": [REDIRECT], "scope": "nope"}),
            "invalid_client_metadata",
        ),
        (json!({"client_name": "x"}), "invalid_client_metadata"),
    ] {
        let a = register(&app, Some(&admin.key), body.clone()).await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    // A public client gets no secret.
    let a = register(
        &app,
        Some(&admin.key),
        json!({"client_name": "SPA", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(a.status, 201);
    assert!(a.body.get("client_secret").is_none());
    assert_eq!(a.body["token_endpoint_auth_method"], "none");

    // Delete: 204, then the token and the client are gone (I8: no 2xx after delete).
    assert_eq!(
        managed(&app, Method::DELETE, &id, &rat, None).await.status,
        204
    );
    assert_eq!(
        managed(&app, Method::GET, &id, &rat, None).await.status,
        401
    );
    let a = app
        .api(
            Method::GET,
            &format!("/api/v1/clients/{id}"),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(a.status, 404);
}

async fn i8_clients_of_another_organization_are_not_there(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org_a = app.org(Plan::Free);
    let org_b = app.org(Plan::Free);
    let a_admin = app.api_key(&org_a, KeySpec::default());
    let b_admin = app.api_key(&org_b, KeySpec::default());
    let member_user = app.member(&org_a, "member@a.test", Role::Member);
    let a_member = app.api_key(
        &org_a,
        KeySpec {
            created_by: Some(&member_user),
            ..Default::default()
        },
    );
    let made = app
        .api(
            Method::POST,
            "/api/v1/clients",
            &a_member.key,
            Some(json!({"name": "A's app", "redirect_uris": [REDIRECT], "scopes": ["inference:read"]})),
        )
        .await;
    assert_eq!(made.status, 201, "members create clients: {}", made.body);
    assert!(made.body["client_secret"].is_string());
    let id = made.body["client_id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/clients/{id}");
    let list = app
        .api(Method::GET, "/api/v1/clients", &a_member.key, None)
        .await;
    assert_eq!(list.body["data"][0]["client_id"], id);
    let secret = made.body["client_secret"].as_str().expect("secret");
    assert!(
        !list.body.to_string().contains(secret),
        "the secret is shown once"
    );
    // B sees nothing of it.
    assert_eq!(
        app.api(Method::GET, &path, &b_admin.key, None).await.status,
        404
    );
    let put = json!({"name": "pwned", "redirect_uris": [REDIRECT]});
    assert_eq!(
        app.api(Method::PUT, &path, &b_admin.key, Some(put.clone()))
            .await
            .status,
        404
    );
    assert_eq!(
        app.api(Method::DELETE, &path, &b_admin.key, None)
            .await
            .status,
        404
    );
    assert_eq!(
        app.api(
            Method::POST,
            &format!("{path}/secret"),
            &b_admin.key,
            Some(json!({}))
        )
        .await
        .status,
        404
    );
    let b_list = app
        .api(Method::GET, "/api/v1/clients", &b_admin.key, None)
        .await;
    assert_eq!(b_list.body["data"], json!([]));
    // A member updates, but only an admin deletes.
    let a = app
        .api(
            Method::PUT,
            &path,
            &a_member.key,
            Some(json!({"name": "A's app v2", "redirect_uris": [REDIRECT]})),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["client_name"], "A's app v2");
    assert_eq!(
        app.api(Method::DELETE, &path, &a_member.key, None)
            .await
            .status,
        403
    );
    assert_eq!(
        app.api(Method::DELETE, &path, &a_admin.key, None)
            .await
            .status,
        204
    );
    assert_eq!(
        app.api(Method::GET, &path, &a_admin.key, None).await.status,
        404
    );
    assert_eq!(
        app.api(Method::DELETE, &path, &a_admin.key, None)
            .await
            .status,
        404
    );
}

async fn i9_a_rotated_secret_works_only_for_the_overlap(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
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
    let old = made.body["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_eq!(cc_token(&app, &id, &old).await.status(), 200);

    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/secret"),
            &admin.key,
            Some(json!({"expire_old_in_seconds": 3600})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let new = r.body["client_secret"].as_str().expect("new").to_string();
    assert_eq!(
        r.body["old_secret_expires_at"],
        tessera::clock::rfc3339(app.clock.now() + 3600)
    );
    assert_eq!(cc_token(&app, &id, &old).await.status(), 200, "overlap");
    assert_eq!(cc_token(&app, &id, &new).await.status(), 200);
    app.clock.advance(3600);
    assert_eq!(
        cc_token(&app, &id, &old).await.status(),
        401,
        "I9: overlap over"
    );
    assert_eq!(cc_token(&app, &id, &new).await.status(), 200);

    // No overlap: the old secret stops at once, also for a resource server's cached
    // credentials.
    let rs = app.resource_server();
    let probe = app.api_key(&org, KeySpec::default());
    assert_eq!(app.verify(&rs, json!({"key": probe.key})).await.status, 200);
    let mut conn = app.state.pool.get().expect("conn");
    diesel::RunQueryDsl::execute(
        diesel::update(tessera::db::schema::clients::table)
            .filter(diesel::ExpressionMethods::eq(
                tessera::db::schema::clients::id,
                &rs.0,
            ))
            .set(diesel::ExpressionMethods::eq(
                tessera::db::schema::clients::org_id,
                Some(org.clone()),
            )),
        &mut conn,
    )
    .expect("adopt the resource server into the org");
    drop(conn);
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{}/secret", rs.0),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(r.status, 201);
    let a = app.verify(&rs, json!({"key": probe.key})).await;
    assert_eq!(a.status, 401, "I9: the old secret is refused now");
    let rs_new = (
        rs.0.clone(),
        r.body["client_secret"].as_str().expect("s").to_string(),
    );
    assert_eq!(
        app.verify(&rs_new, json!({"key": probe.key})).await.status,
        200
    );
    let a = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/secret"),
            &admin.key,
            Some(json!({"expire_old_in_seconds": -5})),
        )
        .await;
    assert_eq!(a.status, 400);
}

async fn i9_deleting_a_client_kills_its_tokens_and_codes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    // A web app with a user's tokens and a fresh code, and a machine client's token.
    let made = app
        .api(
            Method::POST,
            "/api/v1/clients",
            &admin.key,
            Some(json!({"name": "web", "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token", "client_credentials"], "scopes": ["inference:read"]})),
        )
        .await;
    let id = made.body["client_id"].as_str().expect("id").to_string();
    let secret = made.body["client_secret"].as_str().expect("s").to_string();
    let web = crate::helpers::oauth::WebClient {
        id: id.clone(),
        secret: Some(secret.clone()),
    };
    let tokens = app.user_tokens(&web, "inference:read").await;
    let at = tokens["access_token"].as_str().expect("at").to_string();
    let rt = tokens["refresh_token"].as_str().expect("rt").to_string();
    let cc: Value = cc_token(&app, &id, &secret)
        .await
        .json()
        .await
        .expect("json");
    let cc_at = cc["access_token"].as_str().expect("cc").to_string();
    let b = app.user("code@example.com").await;
    let (code, verifier) = app.code(&b, &web, "inference:read").await;
    for t in [&at, &rt, &cc_at] {
        assert_eq!(app.introspect(&rs, t).await["active"], true);
    }
    assert_eq!(
        app.api(
            Method::DELETE,
            &format!("/api/v1/clients/{id}"),
            &admin.key,
            None
        )
        .await
        .status,
        204
    );
    for t in [&at, &rt, &cc_at] {
        assert_eq!(
            app.introspect(&rs, t).await,
            json!({"active": false}),
            "I9: inactive at once"
        );
    }
    let r = app.exchange(&web, &code, &verifier).await;
    assert_eq!(r.status(), 401, "the client is gone: its code is worthless");
}

async fn account_apps_lists_and_revokes_an_authorization(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let client = app.web_client("inference:read");
    let b = app.user("apps@example.com").await;
    let (code, verifier) = app.code(&b, &client, "inference:read").await;
    let (_, challenge) = crate::helpers::oauth::pkce();
    let tokens: Value = app
        .exchange(&client, &code, &verifier)
        .await
        .json()
        .await
        .expect("json");
    let page = b
        .get(format!("{}/account/apps", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Example App"));
    assert!(page.contains("inference:read"));
    let csrf = hidden(&page, "csrf_token");
    // A forged token does nothing.
    let r = b
        .post(format!("{}/account/apps/{}/revoke", app.address, client.id))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403, "H1");
    for t in ["access_token", "refresh_token"] {
        assert_eq!(
            app.introspect(&rs, tokens[t].as_str().expect("t")).await["active"],
            true
        );
    }
    let r = b
        .post(format!("{}/account/apps/{}/revoke", app.address, client.id))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    for t in ["access_token", "refresh_token"] {
        assert_eq!(
            app.introspect(&rs, tokens[t].as_str().expect("t")).await,
            json!({"active": false}),
            "revoking the app kills {t}"
        );
    }
    let page = b
        .get(format!("{}/account/apps", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(page.contains("not authorized any app"));
    // Consent is asked again.
    let r = app
        .authorize_get(
            &b,
            &[
                ("response_type", "code"),
                ("client_id", &client.id),
                ("redirect_uri", REDIRECT),
                ("scope", "inference:read"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "the consent page again");
}

async fn audit_page_is_for_admins_and_records_client_events(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.user("boss@example.com").await;
    let html = admin
        .get(format!("{}/developer/clients", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let csrf = hidden(&html, "csrf_token");
    let r = admin
        .post(format!("{}/developer/clients", app.address))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("type", "confidential"),
            ("name", "<img src=x onerror=alert(1)>"),
            ("redirect_uris", REDIRECT),
            ("grant_type", "authorization_code"),
            ("scope", "inference:read"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    let r = admin
        .get(format!("{}/settings/audit", app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(html.contains("client.created"));
    assert!(html.contains("member.added"));
    assert!(!html.contains("<img src=x"), "H5: escaped in the log too");
    // A member of that organization gets 403.
    let mut conn = app.state.pool.get().expect("conn");
    let boss = tessera::users::store::find_by_email(&mut conn, "boss@example.com")
        .expect("q")
        .expect("u");
    let org = tessera::orgs::store::orgs_of(&mut conn, &boss.id).expect("orgs")[0].clone();
    drop(conn);
    let worker = app.user("worker@example.com").await;
    let mut conn = app.state.pool.get().expect("conn");
    let w = tessera::users::store::find_by_email(&mut conn, "worker@example.com")
        .expect("q")
        .expect("u");
    // Only in the boss's organization (their own is left).
    diesel::RunQueryDsl::execute(
        diesel::delete(tessera::db::schema::memberships::table).filter(
            diesel::ExpressionMethods::eq(tessera::db::schema::memberships::user_id, &w.id),
        ),
        &mut conn,
    )
    .expect("leave own org");
    tessera::orgs::store::add_member(&mut conn, &org, &w.id, Role::Member, app.clock.now())
        .expect("member");
    drop(conn);
    let r = worker
        .get(format!("{}/settings/audit", app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 403);
}

async fn developer_pages_register_edit_rotate_and_delete(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("dev@example.com").await;
    let get = |path: String| {
        let b = b.clone();
        async move {
            let r = b.get(path).send().await.expect("get");
            (r.status().as_u16(), r.text().await.expect("html"))
        }
    };
    // H2/H3 on every portal page.
    for path in [
        "/developer/clients",
        "/account/apps",
        "/settings/audit",
        "/settings/api-keys",
    ] {
        let r = b
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .expect("csp")
                .contains("frame-ancestors 'none'"),
            "H2 {path}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "H2 {path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "H3 {path}");
        assert_eq!(h["cache-control"], "no-store", "H3 {path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "H3 {path}");
    }
    let (_, html) = get(format!("{}/developer/clients", app.address)).await;
    assert!(html.contains("No clients yet"));
    assert!(!html.contains("src=\"http"), "H3: no third-party assets");
    let csrf = hidden(&html, "csrf_token");
    let evil = "<img src=x onerror=alert(1)>";
    // Bad redirect URI: a clear message, the form kept.
    let r = b
        .post(format!("{}/developer/clients", app.address))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("type", "confidential"),
            ("name", evil),
            ("redirect_uris", "JavaScript:alert(1)"),
            ("grant_type", "authorization_code"),
            ("scope", "inference:read"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let html = r.text().await.expect("html");
    assert!(html.contains("redirect URI"));
    assert!(!html.contains(evil), "H5");
    let r = b
        .post(format!("{}/developer/clients", app.address))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("type", "confidential"),
            ("name", evil),
            ("redirect_uris", REDIRECT),
            ("grant_type", "authorization_code"),
            ("grant_type", "refresh_token"),
            ("scope", "inference:read"),
        ])
        .send()
        .await
        .expect("post");
    // Post/redirect/get (docs/spec.md §6): the secret is on the page the 303 leads to.
    let (location, status, cache, html) = app.follow(&b, r).await;
    assert_eq!(status, 200);
    assert_eq!(cache, "no-store");
    assert!(!html.contains(evil), "H5: the list escapes the name");
    let secret = {
        let at = html.find("tsr_cs_").expect("the secret is shown once");
        html[at..at + 7 + 43].to_string()
    };
    let id = {
        let at = html.find(r#"id="new-client-id">"#).expect("id") + r#"id="new-client-id">"#.len();
        html[at..at + 26].to_string()
    };
    assert!(id.starts_with("cli_"), "{id}");
    // A reload of that page shows no secret and registers no second client.
    let (_, again) = get(format!("{}{location}", app.address)).await;
    assert!(!again.contains("tsr_cs_") && again.contains(r#"id="already-shown""#));
    assert_eq!(
        again.matches("data-client-id=").count(),
        1,
        "exactly one client"
    );
    // The list afterwards never shows the secret.
    let (_, html) = get(format!("{}/developer/clients", app.address)).await;
    assert!(!html.contains(&secret));
    // Edit page: escaped name, save a new name.
    let (status, html) = get(format!("{}/developer/clients/{id}", app.address)).await;
    assert_eq!(status, 200);
    assert!(!html.contains(evil), "H5: the edit page escapes the name");
    let at = html.find(r#"id="edit-client""#).expect("form");
    let csrf_edit = hidden(&html[at..], "csrf_token");
    let r = b
        .post(format!("{}/developer/clients/{id}", app.address))
        .form(&[
            ("csrf_token", csrf_edit.as_str()),
            ("name", "Renamed app"),
            ("redirect_uris", REDIRECT),
            ("grant_type", "authorization_code"),
            ("scope", "inference:read"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("html").contains("Saved."));
    // Rotate with no overlap: the new secret is shown once.
    let (_, html) = get(format!("{}/developer/clients/{id}", app.address)).await;
    let at = html.find(r#"id="rotate-secret""#).expect("form");
    let csrf_rotate = hidden(&html[at..], "csrf_token");
    let r = b
        .post(format!("{}/developer/clients/{id}/secret", app.address))
        .form(&[("csrf_token", csrf_rotate.as_str()), ("overlap", "0")])
        .send()
        .await
        .expect("post");
    let (location, status, cache, html) = app.follow(&b, r).await;
    assert_eq!((status, cache.as_str()), (200, "no-store"));
    let rotated = {
        let at = html.find("tsr_cs_").expect("the new secret is shown once");
        html[at..at + 7 + 43].to_string()
    };
    assert_ne!(rotated, secret);
    let (_, again) = get(format!("{}{location}", app.address)).await;
    assert!(
        !again.contains("tsr_cs_"),
        "a reload rotates nothing and shows no secret"
    );
    assert!(again.contains("already shown"));
    // Delete, confirming.
    let (status, html) = get(format!("{}/developer/clients/{id}/delete", app.address)).await;
    assert_eq!(status, 200);
    let csrf_delete = hidden(&html, "csrf_token");
    let r = b
        .post(format!("{}/developer/clients/{id}/delete", app.address))
        .form(&[("csrf_token", csrf_delete.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    let (status, _) = get(format!("{}/developer/clients/{id}", app.address)).await;
    assert_eq!(status, 404);
    // Another organization's client is 404 on every page (I8).
    let other = app.org(Plan::Free);
    let (foreign, _) = app.register(tessera::clients::NewClient {
        name: "foreign".into(),
        redirect_uris: vec![REDIRECT.into()],
        org_id: Some(other),
        ..Default::default()
    });
    for path in [
        format!("/developer/clients/{foreign}"),
        format!("/developer/clients/{foreign}/delete"),
    ] {
        let (status, _) = get(format!("{}{path}", app.address)).await;
        assert_eq!(status, 404, "{path}");
    }
}

/// Every `/api/v1` and `/oauth/register` route of `http::routes` is in the OpenAPI
/// document, and the document names no route that does not exist.
#[actix_web::test]
async fn openapi_document_covers_every_api_route() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let r = reqwest::get(format!("{}/api/v1/openapi.json", app.address))
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "public, no credential");
    let doc: Value = r.json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: std::collections::BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let routes_src = include_str!("../../src/http/mod.rs");
    let registered: std::collections::BTreeSet<String> = routes_src
        .split('"')
        .filter(|s| s.starts_with("/api/v1/") || s.starts_with("/oauth/register"))
        .map(str::to_string)
        .collect();
    assert!(registered.len() >= 12, "{registered:?}");
    for path in &registered {
        assert!(
            documented.contains(path),
            "{path} is routed but not documented"
        );
    }
    for path in &documented {
        assert!(
            registered.contains(path),
            "{path} is documented but not routed"
        );
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("#/components/schemas/").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(
            doc["components"]["schemas"].get(&name).is_some(),
            "missing schema {name}"
        );
    }
}

/// RFC 6749 §5.2 as RFC 7591 §3.2.2 uses it: `{"error": "<code>", "error_description"}`,
/// the description printable ASCII without `"` and `\` (docs/security.md D3). The MCP
/// TypeScript SDK and other OAuth libraries parse exactly this.
fn oauth_error(a: &Answer) -> (u16, String, String) {
    let error = a.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not an OAuth error: {}", a.body))
        .to_string();
    let description = a.body["error_description"]
        .as_str()
        .unwrap_or_else(|| panic!("no error_description: {}", a.body))
        .to_string();
    assert!(
        tessera::error::is_description_text(&description),
        "D3: {description:?}"
    );
    assert_eq!(a.header("cache-control"), Some("no-store"), "{}", a.body);
    (a.status, error, description)
}

async fn raw_register(
    app: &TestApp,
    path: &str,
    method: Method,
    bearer: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut r = reqwest::Client::new()
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(bearer)
        .body(body);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    answer(r.send().await.expect("request")).await
}

async fn rfc7591_a_client_name_is_optional_and_an_unnamed_client_shows_its_id(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("owner@example.com").await;
    let org = {
        let mut conn = app.state.pool.get().expect("conn");
        let user = tessera::users::store::find_by_email(&mut conn, "owner@example.com")
            .expect("query")
            .expect("user");
        tessera::orgs::store::orgs_of(&mut conn, &user.id).expect("orgs")[0].clone()
    };
    let admin = app.api_key(&org, KeySpec::default());
    let a = register(
        &app,
        Some(&admin.key),
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body["client_id"].as_str().expect("id").to_string();
    assert!(a.body.get("client_name").is_none(), "{}", a.body);
    // Without a scope: every catalogue scope but admin (docs/spec.md §1).
    assert_eq!(
        a.body["scope"],
        "analytics:read email inference:read inference:write offline_access openid profile"
    );
    let rat = a.body["registration_access_token"].as_str().expect("rat");
    let r = managed(&app, Method::GET, &id, rat, None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("client_name").is_none(), "{}", r.body);
    let listed = app
        .api(
            Method::GET,
            &format!("/api/v1/clients/{id}"),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(listed.body["client_name"], "");

    // The consent page names the app by its client_id.
    let (_, challenge) = crate::helpers::oauth::pkce();
    let r = app
        .authorize_get(
            &b,
            &[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", REDIRECT),
                ("scope", "inference:read"),
                ("state", "s"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(
        html.contains(&format!(
            r#"<span id="client-name">{id}</span> wants to access"#
        )),
        "{html}"
    );
    assert!(html.contains(&format!("<title>Authorize {id} ")), "{html}");
    // The developer pages list it and head its page with its id.
    let list = b
        .get(format!("{}/developer/clients", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(
        list.contains(&format!(
            r#"<a href="/developer/clients/{id}"><strong>{id}</strong></a>"#
        )),
        "{list}"
    );
    let one = b
        .get(format!("{}/developer/clients/{id}", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(
        one.contains(&format!(r#"<h1 id="client-heading">{id}</h1>"#)),
        "{one}"
    );
    // /api/v1 takes a client without a name too (one rule for every transport).
    let a = app
        .api(
            Method::POST,
            "/api/v1/clients",
            &admin.key,
            Some(json!({"redirect_uris": [REDIRECT]})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["client_name"], "");
}

async fn d3_rfc7591_every_registration_error_is_oauth_json(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let reader = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    let ok = json!({"client_name": "x", "redirect_uris": [REDIRECT]});

    // The credential: 401 with a Bearer challenge, 403 without admin.
    let a = register(&app, None, ok.clone()).await;
    assert_eq!(oauth_error(&a).0, 401);
    assert_eq!(oauth_error(&a).1, "invalid_token");
    assert!(
        a.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer "))
    );
    let a = register(&app, Some("tsr_sk_not_a_key"), ok.clone()).await;
    assert_eq!(
        (oauth_error(&a).0, oauth_error(&a).1.as_str()),
        (401, "invalid_token")
    );
    assert!(
        a.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer "))
    );
    let a = register(&app, Some(&reader.key), ok.clone()).await;
    assert_eq!(
        (oauth_error(&a).0, oauth_error(&a).1.as_str()),
        (403, "insufficient_scope")
    );

    // Bodies that are not client metadata.
    let json_ct = Some("application/json");
    for (content_type, body, what) in [
        (json_ct, b"{".to_vec(), "not valid JSON"),
        (json_ct, b"".to_vec(), "not valid JSON"),
        (json_ct, b"[]".to_vec(), "must be a JSON object"),
        (
            json_ct,
            b"[\"x\"]".to_vec(),
            "a field of the wrong type or value: [0]",
        ),
        (
            json_ct,
            br#"{"client_name": 5, "redirect_uris": []}"#.to_vec(),
            "a field of the wrong type or value: client_name",
        ),
        (
            Some("text/plain"),
            serde_json::to_vec(&ok).expect("json"),
            "must be JSON",
        ),
        (None, serde_json::to_vec(&ok).expect("json"), "must be JSON"),
        (
            Some("application/x-www-form-urlencoded"),
            b"client_name=x".to_vec(),
            "must be JSON",
        ),
    ] {
        let a = raw_register(
            &app,
            "/oauth/register",
            Method::POST,
            &admin.key,
            content_type,
            body,
        )
        .await;
        let (status, error, description) = oauth_error(&a);
        assert_eq!(
            (status, error.as_str()),
            (400, "invalid_client_metadata"),
            "{content_type:?}: {description}"
        );
        assert!(description.contains(what), "{description}");
    }

    // Metadata refusals name the field or value and, for scopes and grants, the valid ones.
    for (body, error, description) in [
        (
            json!({"redirect_uris": ["https://a.example/cb#x"]}),
            "invalid_redirect_uri",
            "redirect URI 'https://a.example/cb#x': must not contain a fragment (RFC 6749 section 3.1.2)",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "scope": "nope inference:read"}),
            "invalid_client_metadata",
            "Scope not in the catalogue: nope. Valid scopes: admin analytics:read email inference:read inference:write offline_access openid profile.",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "scope": "a  b"}),
            "invalid_client_metadata",
            "scope must be scope names separated by single spaces (RFC 6749 section 3.3).",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
            "Unsupported grant type: implicit. Valid grant types: authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code.",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "tls_client_auth"}),
            "invalid_client_metadata",
            "token_endpoint_auth_method tls_client_auth is not supported. Valid methods: client_secret_basic, client_secret_post, none, private_key_jwt.",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "response_types": ["token"]}),
            "invalid_client_metadata",
            "response_types: only code is supported.",
        ),
        (
            json!({"client_name": "x"}),
            "invalid_client_metadata",
            "redirect_uris: authorization_code needs at least one redirect URI.",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "client_uri": "http://app.example"}),
            "invalid_client_metadata",
            "client_uri must be an https URL of at most 2000 characters.",
        ),
        (
            json!({"client_name": "é\"\\§", "redirect_uris": ["https://a.example/\"§"]}),
            "invalid_redirect_uri",
            "redirect URI 'https://a.example/'section ': must be printable ASCII without spaces or backslashes",
        ),
    ] {
        let a = register(&app, Some(&admin.key), body.clone()).await;
        assert_eq!(
            oauth_error(&a),
            (400, error.to_string(), description.to_string()),
            "{body}"
        );
    }

    // Over the body limit: 413, same shape.
    let big = json!({"client_name": "x".repeat(70 * 1024), "redirect_uris": [REDIRECT]});
    let a = register(&app, Some(&admin.key), big).await;
    assert_eq!(
        oauth_error(&a),
        (
            413,
            "invalid_request".into(),
            "The body is larger than 64 KiB.".into()
        )
    );

    // RFC 7592 with the registration access token.
    let a = register(&app, Some(&admin.key), ok.clone()).await;
    assert_eq!(a.status, 201);
    let id = a.body["client_id"].as_str().expect("id").to_string();
    let rat = a.body["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_string();
    let path = format!("/oauth/register/{id}");
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let a = managed(&app, method.clone(), &id, "wrong", Some(ok.clone())).await;
        assert_eq!(
            (oauth_error(&a).0, oauth_error(&a).1.as_str()),
            (401, "invalid_token"),
            "{method}"
        );
        assert!(
            a.header("www-authenticate")
                .is_some_and(|c| c.starts_with("Bearer "))
        );
    }
    for (content_type, body) in [
        (json_ct, b"{".to_vec()),
        (Some("text/plain"), serde_json::to_vec(&ok).expect("json")),
    ] {
        let a = raw_register(&app, &path, Method::PUT, &rat, content_type, body).await;
        assert_eq!(
            (oauth_error(&a).0, oauth_error(&a).1.as_str()),
            (400, "invalid_client_metadata")
        );
    }
    let a = managed(
        &app,
        Method::PUT,
        &id,
        &rat,
        Some(json!({"redirect_uris": [REDIRECT]})),
    )
    .await;
    assert_eq!(
        oauth_error(&a),
        (
            400,
            "invalid_client_metadata".into(),
            "client_id must be present and match the client.".into()
        )
    );
}

async fn d10_a_registration_never_grants_more_than_its_credential_could(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let boss = app.member(&org, "boss@example.com", Role::Admin);
    let dev = app.member(&org, "dev@example.com", Role::Member);
    let as_admin = app.api_key(
        &org,
        KeySpec {
            scopes: "admin",
            created_by: Some(&boss),
            ..Default::default()
        },
    );
    let as_member = app.api_key(
        &org,
        KeySpec {
            scopes: "admin",
            created_by: Some(&dev),
            ..Default::default()
        },
    );
    let default =
        "analytics:read email inference:read inference:write offline_access openid profile";
    let base = json!({"client_name": "App", "redirect_uris": [REDIRECT]});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().expect("obj") {
            b[k] = v.clone();
        }
        b
    };

    // Registration: no scope is the default, without admin, for either credential.
    let mut clients = Vec::new();
    for key in [&as_member.key, &as_admin.key] {
        let a = register(&app, Some(key), base.clone()).await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!(a.body["scope"], default);
        clients.push((
            a.body["client_id"].as_str().expect("id").to_string(),
            a.body["registration_access_token"]
                .as_str()
                .expect("rat")
                .to_string(),
        ));
    }
    // A member's credential cannot register admin; an admin's can, explicitly.
    let a = register(
        &app,
        Some(&as_member.key),
        with(json!({"scope": "admin inference:read"})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["error"], "invalid_client_metadata");
    assert_eq!(
        a.body["error_description"],
        format!(
            "scope: the credential that registered this client cannot grant admin. Valid scopes: {default}."
        )
    );
    let a = register(&app, Some(&as_admin.key), with(json!({"scope": "admin"}))).await;
    assert_eq!((a.status, a.body["scope"].as_str()), (201, Some("admin")));
    let (admin_made, admin_rat) = (
        a.body["client_id"].as_str().expect("id").to_string(),
        a.body["registration_access_token"]
            .as_str()
            .expect("rat")
            .to_string(),
    );

    // RFC 7592 update omitting scope: the default, never the whole catalogue. The member
    // stays capped even after being promoted: the ceiling is the registering credential's.
    assert_eq!(
        app.api(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/members/{dev}"),
            &as_admin.key,
            Some(json!({"role": "admin"})),
        )
        .await
        .status,
        200
    );
    let (member_made, member_rat) = &clients[0];
    let update =
        |id: &str| json!({"client_id": id, "client_name": "App", "redirect_uris": [REDIRECT]});
    let r = managed(
        &app,
        Method::PUT,
        member_made,
        member_rat,
        Some(update(member_made)),
    )
    .await;
    assert_eq!((r.status, r.body["scope"].as_str()), (200, Some(default)));
    let mut ask_admin = update(member_made);
    ask_admin["scope"] = json!("admin inference:read");
    let r = managed(&app, Method::PUT, member_made, member_rat, Some(ask_admin)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"], "invalid_client_metadata");
    let r = managed(&app, Method::GET, member_made, member_rat, None).await;
    assert_eq!(r.body["scope"], default);

    // An admin-registered client: omitting scope narrows it to the default; admin only
    // when asked for.
    let r = managed(
        &app,
        Method::PUT,
        &admin_made,
        &admin_rat,
        Some(update(&admin_made)),
    )
    .await;
    assert_eq!((r.status, r.body["scope"].as_str()), (200, Some(default)));
    let mut ask_admin = update(&admin_made);
    ask_admin["scope"] = json!("admin");
    let r = managed(&app, Method::PUT, &admin_made, &admin_rat, Some(ask_admin)).await;
    assert_eq!((r.status, r.body["scope"].as_str()), (200, Some("admin")));

    // /api/v1 and its default: the same rule for a member (now demoted again).
    assert_eq!(
        app.api(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/members/{dev}"),
            &as_admin.key,
            Some(json!({"role": "member"})),
        )
        .await
        .status,
        200
    );
    let a = app
        .api(
            Method::POST,
            "/api/v1/clients",
            &as_member.key,
            Some(json!({"name": "x", "redirect_uris": [REDIRECT], "scopes": ["admin"]})),
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["message"].as_str()),
        (
            403,
            Some("Only organization admins may give a client the admin scope.")
        )
    );
    let a = app
        .api(
            Method::POST,
            "/api/v1/clients",
            &as_member.key,
            Some(json!({"name": "x", "redirect_uris": [REDIRECT]})),
        )
        .await;
    assert_eq!((a.status, a.body["scope"].as_str()), (201, Some(default)));
    let id = a.body["client_id"].as_str().expect("id").to_string();
    let a = app
        .api(
            Method::PUT,
            &format!("/api/v1/clients/{id}"),
            &as_member.key,
            Some(json!({"name": "x", "redirect_uris": [REDIRECT], "scopes": "admin"})),
        )
        .await;
    assert_eq!(a.status, 403);
    let a = app
        .api(
            Method::PUT,
            &format!("/api/v1/clients/{id}"),
            &as_admin.key,
            Some(json!({"name": "x", "redirect_uris": [REDIRECT], "scopes": "admin"})),
        )
        .await;
    assert_eq!((a.status, a.body["scope"].as_str()), (200, Some("admin")));
}
