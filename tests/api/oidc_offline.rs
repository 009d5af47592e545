//! `offline_access` (docs/spec.md §2, §9; OpenID Connect Core §11), ID tokens without a
//! `nonce`, and an ID token presented where an access token is expected.

use reqwest::Method;
use tessera::clients::{GrantType, NewClient};
use tessera::orgs::Plan;
use tessera::scope::ScopeSet;

use crate::helpers::api::KeySpec;
use crate::helpers::oauth::{REDIRECT, WebClient, json, pkce, query_param};
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::oidc::verify_id_token;

crate::on_both_backends!(
    l8_offline_access_is_always_consented_and_refresh_tokens_follow_the_registration,
    l1_l7_without_nonce_no_nonce_and_an_id_token_is_never_an_access_token,
);

fn request<'a>(
    client: &'a WebClient,
    scope: &'a str,
    challenge: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// Consent, code and exchange for the signed-in `b`; the token response.
async fn tokens(
    app: &TestApp,
    b: &reqwest::Client,
    client: &WebClient,
    scope: &str,
) -> serde_json::Value {
    let (verifier, challenge) = pkce();
    let location = app.consent(b, &request(client, scope, &challenge)).await;
    let code = query_param(&location, "code").expect("code");
    let (status, body) = json(app.exchange(client, &code, &verifier).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn l8_offline_access_is_always_consented_and_refresh_tokens_follow_the_registration(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // A client registered for refresh_token gets one with or without offline_access
    // (OpenID Connect Core §11: refresh tokens are not exclusive to offline access).
    let web = app.web_client("openid email offline_access");
    let b = app.user("offline-consent@example.com").await;
    let t = tokens(&app, &b, &web, "openid email").await;
    assert!(t["refresh_token"].is_string(), "{t}");
    // Consent to offline access is always obtained: a consent remembered without it does
    // not cover it, so prompt=none is consent_required and the page asks again.
    let (_, challenge) = pkce();
    let mut params = request(&web, "openid email offline_access", &challenge);
    params.push(("prompt", "none"));
    let r = app.authorize_get(&b, &params).await;
    assert_eq!(r.status(), 302);
    let to = r.headers()["location"].to_str().expect("ascii").to_string();
    assert_eq!(
        query_param(&to, "error").as_deref(),
        Some("consent_required"),
        "{to}"
    );
    let r = app
        .authorize_get(
            &b,
            &request(&web, "openid email offline_access", &challenge),
        )
        .await;
    assert_eq!(r.status(), 200, "the consent page");
    let html = r.text().await.expect("html");
    assert!(
        html.contains("Stay connected when you are not using the app"),
        "the consent page names offline access: {html}"
    );
    let t = tokens(&app, &b, &web, "openid email offline_access").await;
    assert_eq!(t["scope"], "email offline_access openid");
    assert!(t["refresh_token"].is_string());
    // A client not registered for refresh_token never gets one, offline_access or not.
    let (id, secret) = app.register(NewClient {
        name: "Code only".into(),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: Some(vec![GrantType::AuthorizationCode]),
        scope: Some(ScopeSet::parse("openid").expect("scope")),
        ..Default::default()
    });
    let code_only = WebClient { id, secret };
    let t = tokens(&app, &b, &code_only, "openid offline_access").await;
    assert!(t.get("refresh_token").is_none(), "{t}");
    assert!(t["id_token"].is_string());
}

async fn l1_l7_without_nonce_no_nonce_and_an_id_token_is_never_an_access_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid email");
    let b = app.user("no-nonce@example.com").await;
    let t = tokens(&app, &b, &client, "openid email").await;
    let id_token = t["id_token"].as_str().expect("id_token");
    let c = verify_id_token(&app, id_token, &client.id).await;
    assert!(
        c.get("nonce").is_none(),
        "no nonce sent, none in the ID token: {c}"
    );
    // The ID token where an access token goes: userinfo, /api/v1, introspection.
    let r = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", app.address))
        .bearer_auth(id_token)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("invalid_token")
    );
    let org = app.org(Plan::Free);
    let _admin = app.api_key(&org, KeySpec::default());
    let a = app
        .api(Method::GET, "/api/v1/clients", id_token, None)
        .await;
    assert_eq!(a.status, 401, "{}", a.body);
    let rs = app.resource_server();
    assert_eq!(app.introspect(&rs, id_token).await["active"], false);
    // The access token itself works at userinfo.
    let r = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", app.address))
        .bearer_auth(t["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status(), 200);
}
