//! The Device Authorization Grant (RFC 8628; docs/spec.md §9): the device authorization
//! endpoint, the `/device` pages driven as a browser would, the polling answers, single
//! use under parallel polls, throttled user-code guessing, expiry and the janitor.

use serde_json::Value;
use tessera::clients::{GrantType, NewClient};
use tessera::clock::Clock;
use tessera::scope::ScopeSet;

use crate::helpers::oauth::{WebClient, json};
use crate::helpers::{Backend, TestApp, hidden, spawn_app};

crate::on_both_backends!(
    device_flow_issues_tokens_after_approval_with_slow_down_and_an_id_token,
    c8_device_codes_issue_tokens_once_under_parallel_polls,
    device_denial_expiry_and_the_janitor,
    k5_wrong_user_codes_are_throttled_per_session_and_ip,
    device_authorization_refuses_bad_clients_and_parameters,
    the_device_grant_is_registrable_by_rfc_7591_and_the_api,
    i9_a_device_shows_on_account_apps_and_withdrawing_it_revokes_its_tokens,
);

const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public CLI client registered for the device-code and refresh grants.
fn cli_client(app: &TestApp, scope: &str) -> WebClient {
    let (id, secret) = app.register(NewClient {
        name: "Example CLI".into(),
        public: true,
        grant_types: Some(vec![GrantType::DeviceCode, GrantType::RefreshToken]),
        scope: Some(ScopeSet::parse(scope).expect("scope")),
        ..Default::default()
    });
    WebClient { id, secret }
}

async fn start(app: &TestApp, client: &WebClient, scope: &str) -> (u16, Value) {
    json(
        app.post_form(
            "/oauth/device_authorization",
            None,
            &format!("client_id={}&scope={}", client.id, scope.replace(' ', "+")),
        )
        .await,
    )
    .await
}

async fn poll(app: &TestApp, client: &WebClient, device_code: &str) -> (u16, Value) {
    json(
        app.token(
            client,
            &[("grant_type", DEVICE), ("device_code", device_code)],
        )
        .await,
    )
    .await
}

/// Signs a fresh person in, opens `verification_uri_complete`, and answers the consent
/// page with `decision`. Returns the final page.
pub(crate) async fn decide(app: &TestApp, complete: &str, decision: &str) -> (u16, String) {
    let email = format!(
        "{}@example.com",
        tessera::crypto::random_base62(10).to_lowercase()
    );
    decide_as(app, &app.user(&email).await, complete, decision).await
}

/// As the person signed in on `b`: opens `verification_uri_complete` (the code filled in)
/// and confirms the code. Returns the device consent page and the code.
pub(crate) async fn consent_page(
    app: &TestApp,
    b: &reqwest::Client,
    complete: &str,
) -> (String, String) {
    let path = complete.strip_prefix(&app.state.issuer).expect("our URL");
    let r = b
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    let code = hidden_input(&html, "user-code");
    let consent = b
        .post(format!("{}/device", app.address))
        .form(&[
            ("csrf_token", hidden(&html, "csrf_token")),
            ("user_code", code.clone()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(consent.status(), 200);
    let html = consent.text().await.expect("html");
    assert!(
        html.contains("A device wants to access your account"),
        "{html}"
    );
    (html, code)
}

/// Approves the device consent page `html` as the person signed in on `b`: 200 and
/// "Device connected".
pub(crate) async fn approve_on(address: &str, b: &reqwest::Client, html: &str) {
    let done = b
        .post(format!("{address}/device"))
        .form(&[
            ("csrf_token", hidden(html, "csrf_token")),
            ("user_code", hidden(html, "user_code")),
            ("decision", "approve".into()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(done.status(), 200);
    assert!(
        done.text()
            .await
            .expect("html")
            .contains("Device connected")
    );
}

/// [`decide`] as the person signed in on `b`.
async fn decide_as(
    app: &TestApp,
    b: &reqwest::Client,
    complete: &str,
    decision: &str,
) -> (u16, String) {
    let (html, code) = consent_page(app, b, complete).await;
    assert!(html.contains("Example CLI"));
    assert!(html.contains(&code), "the consent page shows the code");
    // J1: a doubled decision is refused, never resolved to one of its values; the code
    // stays undecided.
    let doubled = b
        .post(format!("{}/device", app.address))
        .form(&[
            ("csrf_token", hidden(&html, "csrf_token")),
            ("user_code", hidden(&html, "user_code")),
            ("decision", "approve".into()),
            ("decision", "deny".into()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(doubled.status(), 400);
    assert!(
        doubled
            .text()
            .await
            .expect("html")
            .contains("Each field may appear once")
    );
    let done = b
        .post(format!("{}/device", app.address))
        .form(&[
            ("csrf_token", hidden(&html, "csrf_token")),
            ("user_code", hidden(&html, "user_code")),
            ("decision", decision.into()),
        ])
        .send()
        .await
        .expect("post");
    let status = done.status().as_u16();
    (status, done.text().await.expect("html"))
}

/// The `value` of the input with `id`.
fn hidden_input(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).expect("input");
    let rest = &html[start..];
    let v = rest.find("value=\"").expect("value") + 7;
    rest[v..v + rest[v..].find('"').expect("quote")].to_string()
}

async fn device_flow_issues_tokens_after_approval_with_slow_down_and_an_id_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = cli_client(&app, "openid email inference:read offline_access");
    let (status, d) = start(&app, &client, "openid email inference:read").await;
    assert_eq!(status, 200, "{d}");
    let user_code = d["user_code"].as_str().expect("user_code");
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .bytes()
            .filter(|b| *b != b'-')
            .all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b))
    );
    assert_eq!(
        d["verification_uri"],
        format!("{}/device", app.state.issuer)
    );
    assert_eq!(
        d["verification_uri_complete"],
        format!("{}/device?user_code={user_code}", app.state.issuer)
    );
    assert_eq!(d["expires_in"], 600);
    assert_eq!(d["interval"], 5);
    let device_code = d["device_code"].as_str().expect("device_code");
    // Stored hashed: the plaintext is nowhere in the table.
    {
        use diesel::prelude::*;
        let mut conn = app.state.pool.get().expect("conn");
        let hashes: Vec<(String, String)> = tessera::db::schema::device_codes::table
            .select((
                tessera::db::schema::device_codes::device_code_hash,
                tessera::db::schema::device_codes::user_code_hash,
            ))
            .load(&mut conn)
            .expect("rows");
        assert_eq!(hashes.len(), 1);
        assert_eq!(hashes[0].0, tessera::crypto::sha256_hex(device_code));
        assert!(!hashes[0].1.contains(&user_code[..4]));
    }

    // Pending; then too fast: slow_down, and the interval grows by 5 s for every poll.
    let (s, e) = poll(&app, &client, device_code).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    app.clock.advance(3);
    let (s, e) = poll(&app, &client, device_code).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("slow_down")), "{e}");
    app.clock.advance(5);
    let (s, e) = poll(&app, &client, device_code).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("slow_down")),
        "8 s after the last accepted poll, the interval being 10 s (now 15)"
    );
    app.clock.advance(15);
    let (s, e) = poll(&app, &client, device_code).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("authorization_pending"))
    );

    // The person approves, entering the code in lower case without the dash.
    let email = "device-owner@example.com";
    let b = app.user(email).await;
    let page = b
        .get(format!("{}/device", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let typed = user_code.replace('-', "").to_lowercase();
    let consent = b
        .post(format!("{}/device", app.address))
        .form(&[
            ("csrf_token", hidden(&page, "csrf_token")),
            ("user_code", typed),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(consent.status(), 200);
    let html = consent.text().await.expect("html");
    assert!(html.contains(user_code), "shown as XXXX-XXXX");
    approve_on(app.address.as_str(), &b, &html).await;

    app.clock.advance(20);
    let (s, t) = poll(&app, &client, device_code).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["scope"], "email inference:read openid");
    assert!(t["refresh_token"].is_string(), "the client may refresh");
    let claims =
        crate::oidc::verify_id_token(&app, t["id_token"].as_str().expect("id_token"), &client.id)
            .await;
    assert_eq!(claims["email"], email);
    assert!(claims.get("nonce").is_none());
    assert!(claims["auth_time"].is_i64());
    // The access token works at userinfo; the refresh token refreshes.
    let info = app
        .http
        .get(format!("{}/oauth/userinfo", app.address))
        .bearer_auth(t["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(info.status(), 200);
    let (s, r) = json(
        app.refresh(&client, t["refresh_token"].as_str().expect("rt"))
            .await,
    )
    .await;
    assert_eq!(s, 200, "{r}");

    // Used: invalid_grant from now on.
    app.clock.advance(60);
    let (s, e) = poll(&app, &client, device_code).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));

    // Discovery lists the endpoint and the grant.
    let m = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        m["device_authorization_endpoint"],
        format!("{}/oauth/device_authorization", app.state.issuer)
    );
    assert!(
        m["grant_types_supported"]
            .as_array()
            .expect("list")
            .contains(&Value::from(DEVICE))
    );
}

async fn c8_device_codes_issue_tokens_once_under_parallel_polls(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = cli_client(&app, "inference:read");
    let (_, d) = start(&app, &client, "inference:read").await;
    let device_code = d["device_code"].as_str().expect("device_code").to_string();
    let (s, page) = decide(
        &app,
        d["verification_uri_complete"].as_str().expect("uri"),
        "approve",
    )
    .await;
    assert_eq!(s, 200, "{page}");
    app.clock.advance(10);
    let polls = (0..20).map(|_| poll(&app, &client, &device_code));
    let answers = futures_util::future::join_all(polls).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "exactly one poll gets tokens: {answers:?}");
    for (s, e) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*s, 400);
        let code = e["error"].as_str().expect("error");
        assert!(code == "slow_down" || code == "invalid_grant", "{e}");
    }
}

/// docs/spec.md §6: an approved device is an authorized app like any other: listed on
/// `/account/apps`, and withdrawing it there revokes its access and refresh tokens.
async fn i9_a_device_shows_on_account_apps_and_withdrawing_it_revokes_its_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let client = cli_client(&app, "inference:read");
    let (_, d) = start(&app, &client, "inference:read").await;
    let b = app.user("device-apps@example.com").await;
    let complete = d["verification_uri_complete"].as_str().expect("uri");
    let (s, _) = decide_as(&app, &b, complete, "approve").await;
    assert_eq!(s, 200);
    let (s, tokens) = poll(&app, &client, d["device_code"].as_str().expect("dc")).await;
    assert_eq!(s, 200, "{tokens}");
    let page = b
        .get(format!("{}/account/apps", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Example CLI"), "{page}");
    let r = b
        .post(format!("{}/account/apps/{}/revoke", app.address, client.id))
        .form(&[("csrf_token", hidden(&page, "csrf_token"))])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    for t in ["access_token", "refresh_token"] {
        assert_eq!(
            app.introspect(&rs, tokens[t].as_str().expect("t")).await["active"],
            false,
            "withdrawing the device kills its {t}"
        );
    }
}

async fn device_denial_expiry_and_the_janitor(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = cli_client(&app, "inference:read");
    // Denied.
    let (_, d) = start(&app, &client, "inference:read").await;
    let (s, page) = decide(
        &app,
        d["verification_uri_complete"].as_str().expect("uri"),
        "deny",
    )
    .await;
    assert_eq!(s, 200);
    assert!(page.contains("Request denied"));
    let (s, e) = poll(&app, &client, d["device_code"].as_str().expect("dc")).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("access_denied")));

    // Another client cannot poll someone else's device code.
    let other = cli_client(&app, "inference:read");
    let (s, e) = poll(&app, &other, d["device_code"].as_str().expect("dc")).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));

    // Expired: expired_token, and the page no longer knows the code.
    let (_, d) = start(&app, &client, "inference:read").await;
    app.clock.advance(601);
    let (s, e) = poll(&app, &client, d["device_code"].as_str().expect("dc")).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("expired_token")));

    // The janitor deletes it once the skew margin has passed.
    let retention = tessera::janitor::Retention::from_settings(&app.state.settings);
    let mut conn = app.state.pool.get().expect("conn");
    let now = app.clock.now();
    tessera::janitor::sweep(&mut conn, &retention, now).expect("sweep");
    drop(conn);
    let (s, e) = poll(&app, &client, d["device_code"].as_str().expect("dc")).await;
    assert_eq!(
        e["error"].as_str(),
        Some("expired_token"),
        "kept within the margin ({s})"
    );
    let mut conn = app.state.pool.get().expect("conn");
    tessera::janitor::sweep(&mut conn, &retention, now + 601).expect("sweep");
    drop(conn);
    let (s, e) = poll(&app, &client, d["device_code"].as_str().expect("dc")).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
}

async fn k5_wrong_user_codes_are_throttled_per_session_and_ip(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = cli_client(&app, "inference:read");
    let (_, d) = start(&app, &client, "inference:read").await;
    let right = d["user_code"].as_str().expect("user_code").to_string();
    let b = app.user("guesser@example.com").await;
    let page = b
        .get(format!("{}/device", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let csrf = hidden(&page, "csrf_token");
    let post = |code: String| {
        let b = b.clone();
        let csrf = csrf.clone();
        let address = app.address.clone();
        async move {
            b.post(format!("{address}/device"))
                .form(&[("csrf_token", csrf), ("user_code", code)])
                .send()
                .await
                .expect("post")
        }
    };
    // A form without its CSRF token changes nothing.
    let r = b
        .post(format!("{}/device", app.address))
        .form(&[("user_code", right.clone())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    for guess in [
        "BBBB-BBBB",
        "CCCC-CCCC",
        "not a code",
        "DDDDDDDD",
        "FFFF-FFFF",
    ] {
        let r = post(guess.into()).await;
        assert_eq!(r.status(), 400, "{guess}");
        assert!(
            r.text()
                .await
                .expect("html")
                .contains("This code is not valid")
        );
    }
    // Sixth attempt in the minute: 429 even with the right code.
    let r = post(right.clone()).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Next minute: the right code works.
    app.clock.advance(61);
    let r = post(right.clone()).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("A device wants to access your account")
    );
    // Without a session, /device sends the browser to sign in and back with the code.
    let r = app
        .browser()
        .get(format!("{}/device?user_code={right}", app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().expect("ascii");
    assert!(
        location.starts_with("/login?return_to=%2Fdevice%3Fuser_code%3D"),
        "{location}"
    );
}

async fn device_authorization_refuses_bad_clients_and_parameters(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = cli_client(&app, "inference:read");
    // A client not registered for the grant.
    let web = app.web_client("inference:read");
    let (s, e) = json(
        app.post_form(
            "/oauth/device_authorization",
            Some((&web.id, web.secret.as_deref().expect("secret"))),
            "scope=inference:read",
        )
        .await,
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("unauthorized_client")));
    // And at the token endpoint.
    let (s, e) = poll(&app, &web, "anything").await;
    assert_eq!((s, e["error"].as_str()), (400, Some("unauthorized_client")));
    // Unknown client.
    let (s, e) = json(
        app.post_form("/oauth/device_authorization", None, "client_id=cli_nope")
            .await,
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_client")));
    // A scope beyond the registration; a malformed one; an unknown resource.
    let (s, e) = start(&app, &client, "admin").await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_scope")));
    let (s, e) = json(
        app.post_form(
            "/oauth/device_authorization",
            None,
            &format!("client_id={}&scope=a++b", client.id),
        )
        .await,
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_scope")));
    let (s, e) = json(
        app.post_form(
            "/oauth/device_authorization",
            None,
            &format!(
                "client_id={}&resource=https%3A%2F%2Fnowhere.example%2F",
                client.id
            ),
        )
        .await,
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_target")));
    // Not a form; the device code missing at the token endpoint.
    let r = app
        .http
        .post(format!("{}/oauth/device_authorization", app.address))
        .json(&serde_json::json!({"client_id": client.id}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let (s, e) = json(app.token(&client, &[("grant_type", DEVICE)]).await).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_request")));
    // A device code that was never issued.
    let (s, e) = poll(&app, &client, "unknown-device-code").await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
}

async fn the_device_grant_is_registrable_by_rfc_7591_and_the_api(backend: Backend) {
    use reqwest::Method;
    use serde_json::json;
    use tessera::orgs::Plan;

    use crate::helpers::api::{KeySpec, answer};
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    // RFC 7591: a public client for the device grant needs no redirect URI.
    let r = answer(
        reqwest::Client::new()
            .post(format!("{}/oauth/register", app.address))
            .bearer_auth(&admin.key)
            .json(&json!({
                "client_name": "Registered CLI",
                "token_endpoint_auth_method": "none",
                "grant_types": [DEVICE, "refresh_token"],
                "scope": "inference:read",
            }))
            .send()
            .await
            .expect("register"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let grants = r.body["grant_types"].as_array().expect("grant_types");
    assert!(grants.contains(&json!(DEVICE)) && grants.contains(&json!("refresh_token")));
    let client = WebClient {
        id: r.body["client_id"].as_str().expect("id").to_string(),
        secret: None,
    };
    let (s, d) = start(&app, &client, "inference:read").await;
    assert_eq!(s, 200, "{d}");
    // /api/v1/clients: a confidential client for the grant.
    let r = app
        .api(
            Method::POST,
            "/api/v1/clients",
            &admin.key,
            Some(json!({"name": "API CLI", "grant_types": [DEVICE]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["client_id"].as_str().expect("id");
    let secret = r.body["client_secret"].as_str().expect("secret");
    let (s, d) = json(
        app.post_form(
            "/oauth/device_authorization",
            Some((id, secret)),
            "scope=inference:read",
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{d}");
    // A wrong secret is invalid_client.
    let (s, e) = json(
        app.post_form(
            "/oauth/device_authorization",
            Some((id, "tsr_cs_wrong")),
            "scope=inference:read",
        )
        .await,
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_client")));
}

/// The `/device` pages in headless Chromium: `verification_uri_complete` sends a visitor to
/// sign in (signup link), back to the entry form with the code filled in, Continue, the
/// consent page naming the client, Allow; the device's next poll gets its tokens.
#[actix_web::test]
async fn br_device_pages_in_chromium() {
    use fantoccini::Locator;

    use crate::helpers::browser;
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(br) = browser::start().await else {
        return;
    };
    let client = cli_client(&app, "inference:read");
    let (_, d) = start(&app, &client, "inference:read").await;
    let user_code = d["user_code"].as_str().expect("user_code");
    let c = &br.client;
    c.goto(d["verification_uri_complete"].as_str().expect("uri"))
        .await
        .expect("goto");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .path()
            .starts_with("/login")
    );
    c.find(Locator::LinkText("Create one"))
        .await
        .expect("signup link")
        .click()
        .await
        .expect("click");
    browser::submit_credentials(
        c,
        "chromium-device@example.com",
        crate::helpers::oauth::PASSWORD,
        "signup",
    )
    .await;
    let field = c
        .wait()
        .for_element(Locator::Id("user-code"))
        .await
        .expect("back on /device");
    assert_eq!(
        field.prop("value").await.expect("value").as_deref(),
        Some(user_code),
        "prefilled"
    );
    c.find(Locator::Id("continue"))
        .await
        .expect("continue")
        .click()
        .await
        .expect("click");
    let name = c
        .wait()
        .for_element(Locator::Id("client-name"))
        .await
        .expect("consent page")
        .text()
        .await
        .expect("text");
    assert_eq!(name, "Example CLI");
    c.find(Locator::Id("approve"))
        .await
        .expect("approve")
        .click()
        .await
        .expect("click");
    let outcome = c
        .wait()
        .for_element(Locator::Id("device-outcome"))
        .await
        .expect("done page")
        .text()
        .await
        .expect("text");
    assert_eq!(outcome, "Device connected");
    let (s, t) = poll(&app, &client, d["device_code"].as_str().expect("dc")).await;
    assert_eq!(s, 200, "{t}");
    br.client.clone().close().await.expect("close");
}
