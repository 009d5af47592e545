//! Headless Chromium: the pages as a person uses them (docs/security.md H2, H5; docs/spec.md §6).

use fantoccini::Locator;
use tessera::clients::{GrantType, NewClient};

use crate::helpers::oauth::{json, pkce, query_param};
use crate::helpers::{Backend, browser, spawn_app};

/// signup → authorize → consent → redirect with code, state and iss; the code then buys
/// tokens. The client's HTML-looking name renders as inert text (H5).
#[actix_web::test]
async fn br_signup_login_consent_and_redirect_in_chromium() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(br) = browser::start().await else {
        return;
    };
    let evil_name = "<img src=x onerror=alert(1)>";
    let callback = format!("http://127.0.0.1:{}/callback", app.port);
    let (client_id, _) = app.register(NewClient {
        name: evil_name.into(),
        public: true,
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
        grant_types: Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
        ..Default::default()
    });
    let (verifier, challenge) = pkce();
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", callback.as_str()),
        ("scope", "inference:read"),
        ("state", "browser-state"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .expect("query");
    let authorize = format!("/oauth/authorize?{query}");
    let c = &br.client;

    // Not signed in: the authorize URL sends us to the login page, which links to signup.
    c.goto(&format!("{}{authorize}", app.address))
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
        "ada@example.com",
        crate::helpers::oauth::PASSWORD,
        "signup",
    )
    .await;

    // Back at the authorization request: the consent page.
    let name = match c
        .wait()
        .at_most(std::time::Duration::from_secs(10))
        .for_element(Locator::Id("client-name"))
        .await
    {
        Ok(e) => e.text().await.expect("text"),
        Err(e) => panic!(
            "no consent page at {:?}: {e}\n{}",
            c.current_url().await,
            c.source().await.unwrap_or_default()
        ),
    };
    assert_eq!(name, evil_name, "H5: the name is text, not markup");
    assert!(
        c.find_all(Locator::Css("main img"))
            .await
            .expect("query")
            .is_empty(),
        "no injected element"
    );
    let scopes = c
        .find(Locator::Id("scopes"))
        .await
        .expect("scopes")
        .text()
        .await
        .expect("text");
    assert!(scopes.contains("Read inference capabilities"), "{scopes}");
    c.find(Locator::Id("approve"))
        .await
        .expect("approve")
        .click()
        .await
        .expect("click");
    for _ in 0..100 {
        if c.current_url().await.expect("url").path() == "/callback" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let landed = c.current_url().await.expect("url");
    assert_eq!(landed.path(), "/callback");
    let landed = landed.to_string();
    assert_eq!(
        query_param(&landed, "state").as_deref(),
        Some("browser-state")
    );
    assert_eq!(
        query_param(&landed, "iss").as_deref(),
        Some(app.state.issuer.as_str())
    );
    let code = query_param(&landed, "code").expect("code");
    let body = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", callback.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id.as_str()),
    ])
    .expect("form");
    let (status, tokens) = json(app.post_form("/oauth/token", None, &body).await).await;
    assert_eq!(status, 200, "{tokens}");

    // Sign out through the page.
    c.goto(&format!("{}/logout", app.address))
        .await
        .expect("goto");
    c.find(Locator::Id("logout"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    c.wait()
        .for_element(Locator::Id("login"))
        .await
        .expect("back on the login page");
    br.client.clone().close().await.expect("close");
}

/// H2: the consent page refuses to render inside a frame (CSP frame-ancestors 'none' and
/// X-Frame-Options: DENY), while an ordinary frame on the same page renders.
#[actix_web::test]
async fn h2_the_consent_page_refuses_to_render_inside_a_frame() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(br) = browser::start().await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    drop(b);
    let (_, challenge) = pkce();
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", crate::helpers::oauth::REDIRECT),
        ("scope", "inference:read"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .expect("query");
    let c = &br.client;
    // Sign in in this browser so the framed page would be the consent page.
    c.goto(&format!("{}/login", app.address))
        .await
        .expect("goto");
    browser::submit_credentials(
        c,
        "ada@example.com",
        crate::helpers::oauth::PASSWORD,
        "login",
    )
    .await;
    c.wait()
        .for_element(Locator::Id("signed-in-as"))
        .await
        .expect("signed in");
    c.goto(&format!("{}/oauth/authorize?{query}", app.address))
        .await
        .expect("goto");
    if let Err(e) = c
        .wait()
        .at_most(std::time::Duration::from_secs(10))
        .for_element(Locator::Id("approve"))
        .await
    {
        panic!(
            "top-level it renders: {e}\n{}",
            c.source().await.unwrap_or_default()
        );
    }

    let attacker = format!(
        "data:text/html,<iframe id=victim src='{}/oauth/authorize?{}'></iframe><iframe id=control srcdoc='<p id=ok>framed</p>'></iframe>",
        app.address,
        query.replace('&', "%26")
    );
    c.goto(&attacker).await.expect("goto attacker page");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    c.enter_frame(1).await.expect("control frame");
    assert_eq!(
        c.find(Locator::Id("ok"))
            .await
            .expect("control renders")
            .text()
            .await
            .expect("text"),
        "framed"
    );
    c.enter_parent_frame().await.expect("parent");
    c.enter_frame(0).await.expect("victim frame");
    assert!(
        c.find(Locator::Id("approve")).await.is_err(),
        "the consent page must not render in a frame"
    );
    br.client.clone().close().await.expect("close");
}

/// The API-key page in Chromium (docs/spec.md §6, docs/security.md I1): create a key, see it once
/// (copy button), reload and see only its last six, revoke it after confirming.
#[actix_web::test]
async fn br_api_key_page_create_see_once_reload_revoke() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(br) = browser::start().await else {
        return;
    };
    let c = &br.client;
    browser::signup(c, &app.address, "keys@example.com").await;
    c.wait()
        .for_element(Locator::Id("nav-api-keys"))
        .await
        .expect("home page")
        .click()
        .await
        .expect("to keys");
    c.wait()
        .for_element(Locator::Id("key-name"))
        .await
        .expect("create form")
        .send_keys("browser key")
        .await
        .expect("type");
    c.find(Locator::Css("input[name=scope][value='inference:read']"))
        .await
        .expect("checkbox")
        .click()
        .await
        .expect("tick");
    c.find(Locator::Id("create"))
        .await
        .expect("create")
        .click()
        .await
        .expect("submit");
    let field = c
        .wait()
        .for_element(Locator::Id("new-key-value"))
        .await
        .expect("the new key is shown");
    let key = field.prop("value").await.expect("value").expect("a key");
    assert!(tessera::api_keys::format::check(&key, "tsr"), "{key}");
    c.find(Locator::Id("copy"))
        .await
        .expect("copy button")
        .click()
        .await
        .expect("copy");
    let mut copied_hidden = Some(String::new());
    for _ in 0..50 {
        copied_hidden = c
            .find(Locator::Id("copied"))
            .await
            .expect("copied note")
            .attr("hidden")
            .await
            .expect("attr");
        if copied_hidden.is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        copied_hidden.is_none(),
        "the copy script ran (same-origin, CSP-allowed)"
    );

    // Reload: the key is gone from the page, its last six remain.
    c.goto(&format!("{}/settings/api-keys", app.address))
        .await
        .expect("reload");
    // The key table is there before the page is read (an empty source was seen once under
    // the full suite's load).
    c.wait()
        .for_element(Locator::Id("keys"))
        .await
        .expect("the key list after the reload");
    let source = c.source().await.expect("html");
    assert!(!source.contains(&key), "shown once only");
    assert!(
        source.contains(&key[key.len() - 6..]),
        "the key's last six are listed after the reload: {source}"
    );

    // Revoke, confirming.
    c.find(Locator::Css("a.revoke"))
        .await
        .expect("revoke link")
        .click()
        .await
        .expect("click");
    c.wait()
        .for_element(Locator::Id("confirm"))
        .await
        .expect("confirmation page")
        .click()
        .await
        .expect("confirm");
    c.wait()
        .for_element(Locator::Id("no-keys"))
        .await
        .expect("the list is empty again");
    let rs = app.resource_server();
    let v = app.verify(&rs, serde_json::json!({"key": key})).await;
    assert_eq!(v.body["code"], "REVOKED");
}

/// The developer's path in Chromium (issue: portal): register a client through the page,
/// copy its secret, run the authorization-code flow with it, revoke the app from
/// `/account/apps`, and see its token go inactive.
#[actix_web::test]
async fn br_register_a_client_authorize_it_and_revoke_it_from_account_apps() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(br) = browser::start().await else {
        return;
    };
    let c = &br.client;
    browser::signup(c, &app.address, "dev@example.com").await;
    c.wait()
        .for_element(Locator::Id("nav-clients"))
        .await
        .expect("home")
        .click()
        .await
        .expect("to clients");
    let callback = format!("http://127.0.0.1:{}/callback", app.port);
    c.wait()
        .for_element(Locator::Id("client-name-input"))
        .await
        .expect("form")
        .send_keys("Browser App")
        .await
        .expect("type");
    c.find(Locator::Id("redirect-uris"))
        .await
        .expect("uris")
        .send_keys("http://127.0.0.1/callback")
        .await
        .expect("type");
    c.find(Locator::Css("#client-scopes input[value='inference:read']"))
        .await
        .expect("scope")
        .click()
        .await
        .expect("tick");
    c.find(Locator::Id("register"))
        .await
        .expect("register")
        .click()
        .await
        .expect("submit");
    let secret = c
        .wait()
        .for_element(Locator::Id("new-client-secret"))
        .await
        .expect("the secret is shown once")
        .prop("value")
        .await
        .expect("value")
        .expect("secret");
    c.find(Locator::Id("copy"))
        .await
        .expect("copy")
        .click()
        .await
        .expect("click");
    let client_id = c
        .find(Locator::Id("new-client-id"))
        .await
        .expect("id")
        .text()
        .await
        .expect("text");

    let (verifier, challenge) = pkce();
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", callback.as_str()),
        ("scope", "inference:read"),
        ("state", "s1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .expect("query");
    c.goto(&format!("{}/oauth/authorize?{query}", app.address))
        .await
        .expect("authorize");
    c.wait()
        .for_element(Locator::Id("approve"))
        .await
        .expect("consent page")
        .click()
        .await
        .expect("approve");
    for _ in 0..100 {
        if c.current_url().await.expect("url").path() == "/callback" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let landed = c.current_url().await.expect("url").to_string();
    let code = query_param(&landed, "code").expect("code");
    let body = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", callback.as_str()),
        ("code_verifier", verifier.as_str()),
    ])
    .expect("form");
    let (status, tokens) = json(
        app.post_form("/oauth/token", Some((&client_id, &secret)), &body)
            .await,
    )
    .await;
    assert_eq!(status, 200, "the copied secret works: {tokens}");
    let rs = app.resource_server();
    let at = tokens["access_token"].as_str().expect("at");
    assert_eq!(app.introspect(&rs, at).await["active"], true);

    c.goto(&format!("{}/account/apps", app.address))
        .await
        .expect("apps");
    // Revoking is a two-step action: open the confirmation, then confirm.
    c.wait()
        .for_element(Locator::Css("tr[data-client-id] details.confirm summary"))
        .await
        .expect("the app is listed")
        .click()
        .await
        .expect("open the confirmation");
    c.find(Locator::Css("button.revoke-app"))
        .await
        .expect("the confirm button")
        .click()
        .await
        .expect("revoke");
    c.wait()
        .for_element(Locator::Id("no-apps"))
        .await
        .expect("no apps left");
    assert_eq!(
        app.introspect(&rs, at).await,
        serde_json::json!({"active": false})
    );
}
