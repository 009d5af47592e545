//! The OpenID Connect parameters of the authorization request (docs/spec.md §9):
//! `prompt`, `max_age`, `login_hint`, `id_token_hint`.

use tessera::clock::Clock;

use crate::helpers::oauth::{PASSWORD, REDIRECT, WebClient, json, pkce, query_param};
use crate::helpers::{Backend, TestApp, hidden, spawn_app};
use crate::oidc::verify_id_token;

crate::on_both_backends!(
    l4_prompt_none_answers_login_required_and_consent_required_by_redirect,
    l5_prompt_login_and_max_age_sign_in_again_and_auth_time_follows,
    login_hint_prefills_the_email_and_prompt_consent_asks_again,
    id_token_hint_of_someone_else_signs_in_again_and_a_forged_one_is_refused,
    offline_access_is_accepted_from_a_client_not_registered_for_it,
);

/// docs/spec.md §2 (OIDC Core §11): `offline_access` is accepted from any client, registered
/// for it or not, at authorize and at the token endpoint; other unregistered scopes are not.
async fn offline_access_is_accepted_from_a_client_not_registered_for_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("offline@example.com").await;
    let (code, verifier) = app.code(&b, &client, "inference:read offline_access").await;
    let (status, tokens) = json(app.exchange(&client, &code, &verifier).await).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "inference:read offline_access");
    assert!(tokens["refresh_token"].is_string());
    let (machine, secret) = app.machine_client("inference:read");
    let r = app
        .post_form(
            "/oauth/token",
            Some((&machine, &secret)),
            "grant_type=client_credentials&scope=inference:read+offline_access",
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_form(
            "/oauth/token",
            Some((&machine, &secret)),
            "grant_type=client_credentials&scope=inference:read+inference:write",
        )
        .await;
    assert_eq!(
        r.status(),
        400,
        "other unregistered scopes stay invalid_scope"
    );
}

/// The authorization request's parameters with a fresh PKCE challenge, plus `extra`.
fn params<'a>(
    client: &'a WebClient,
    challenge: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
        ("state", "st"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    p.extend_from_slice(extra);
    p
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().expect("ascii").to_string()
}

/// An error redirect to the client: `error`, `state` and `iss`.
fn assert_refused(app: &TestApp, r: &reqwest::Response, error: &str) {
    assert_eq!(r.status(), 302, "a redirect to the client");
    let to = location(r);
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(query_param(&to, "error").as_deref(), Some(error), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some("st"));
    assert_eq!(
        query_param(&to, "iss").as_deref(),
        Some(app.state.issuer.as_str())
    );
    assert!(query_param(&to, "code").is_none());
}

async fn l4_prompt_none_answers_login_required_and_consent_required_by_redirect(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid email");
    let (_, challenge) = pkce();
    let anonymous = app.browser();
    let r = app
        .authorize_get(
            &anonymous,
            &params(&client, &challenge, &[("prompt", "none")]),
        )
        .await;
    assert_refused(&app, &r, "login_required");

    let b = app.user("none@example.com").await;
    let (_, c2) = pkce();
    let r = app
        .authorize_get(&b, &params(&client, &c2, &[("prompt", "none")]))
        .await;
    assert_refused(&app, &r, "consent_required");

    // Once consent is given, prompt=none returns a code without a page.
    let (_, c3) = pkce();
    app.consent(&b, &params(&client, &c3, &[])).await;
    let (verifier, c4) = pkce();
    let r = app
        .authorize_get(
            &b,
            &params(&client, &c4, &[("prompt", "none"), ("nonce", "nn")]),
        )
        .await;
    assert_eq!(r.status(), 302);
    let code = query_param(&location(&r), "code").expect("a code");
    let (status, tokens) = json(app.exchange(&client, &code, &verifier).await).await;
    assert_eq!(status, 200);
    let c = verify_id_token(&app, tokens["id_token"].as_str().expect("id"), &client.id).await;
    assert_eq!(c["nonce"], "nn");

    // A prompt value we do not know, or none with another: invalid_request.
    for bad in ["none login", "sometimes"] {
        let (_, c) = pkce();
        let r = app
            .authorize_get(&b, &params(&client, &c, &[("prompt", bad)]))
            .await;
        assert_refused(&app, &r, "invalid_request");
    }
    let (_, c) = pkce();
    let r = app
        .authorize_get(&b, &params(&client, &c, &[("max_age", "-5")]))
        .await;
    assert_refused(&app, &r, "invalid_request");
}

/// Follows a sign-in redirect: the login form (shown although a session exists), posted,
/// and the way back to the authorization endpoint. Returns the final `Location`.
async fn sign_in_again(
    app: &TestApp,
    b: &reqwest::Client,
    r: reqwest::Response,
    email: &str,
) -> String {
    assert_eq!(r.status(), 303, "to the sign-in page");
    let to = location(&r);
    assert!(to.starts_with("/login?"), "{to}");
    assert!(to.contains("reauth=1"), "{to}");
    let page = b
        .get(format!("{}{to}", app.address))
        .send()
        .await
        .expect("login page");
    assert_eq!(
        page.status(),
        200,
        "the form, not a redirect, although signed in"
    );
    let html = page.text().await.expect("html");
    let return_to = query_param(&format!("http://x{to}"), "return_to").expect("return_to");
    assert!(
        !return_to.contains("prompt=") && !return_to.contains("max_age="),
        "{return_to}"
    );
    let r = b
        .post(format!("{}/login", app.address))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", &hidden(&html, "csrf_token")),
            ("return_to", &return_to),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let back = location(&r);
    let r = b
        .get(format!("{}{back}", app.address))
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        r.status(),
        302,
        "consent is remembered: straight back with a code"
    );
    location(&r)
}

async fn l5_prompt_login_and_max_age_sign_in_again_and_auth_time_follows(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid email");
    let b = app.user("again@example.com").await;
    let (_, c0) = pkce();
    app.consent(&b, &params(&client, &c0, &[])).await;

    // A session 100 s old is too old for max_age=10.
    app.clock.advance(100);
    let (verifier, challenge) = pkce();
    let r = app
        .authorize_get(&b, &params(&client, &challenge, &[("max_age", "10")]))
        .await;
    let signed_in_at = app.clock.now();
    let to = sign_in_again(&app, &b, r, "again@example.com").await;
    let code = query_param(&to, "code").expect("code");
    let (_, tokens) = json(app.exchange(&client, &code, &verifier).await).await;
    let c = verify_id_token(&app, tokens["id_token"].as_str().expect("id"), &client.id).await;
    assert_eq!(c["auth_time"], signed_in_at, "auth_time is the new sign-in");

    // Young enough: no sign-in.
    let (_, c1) = pkce();
    let r = app
        .authorize_get(&b, &params(&client, &c1, &[("max_age", "3600")]))
        .await;
    assert_eq!(r.status(), 302);
    assert!(query_param(&location(&r), "code").is_some());

    // prompt=login (and select_account) always signs in again; with none, login_required.
    for prompt in ["login", "select_account"] {
        let (_, c) = pkce();
        let r = app
            .authorize_get(&b, &params(&client, &c, &[("prompt", prompt)]))
            .await;
        let to = sign_in_again(&app, &b, r, "again@example.com").await;
        assert!(query_param(&to, "code").is_some(), "{to}");
    }
    app.clock.advance(100);
    let (_, c) = pkce();
    let r = app
        .authorize_get(
            &b,
            &params(&client, &c, &[("max_age", "10"), ("prompt", "none")]),
        )
        .await;
    assert_refused(&app, &r, "login_required");
}

async fn login_hint_prefills_the_email_and_prompt_consent_asks_again(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid email");
    let anonymous = app.browser();
    let (_, c) = pkce();
    let r = app
        .authorize_get(
            &anonymous,
            &params(&client, &c, &[("login_hint", "hint\"@example.com")]),
        )
        .await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(!to.contains("reauth"), "{to}");
    let page = anonymous
        .get(format!("{}{to}", app.address))
        .send()
        .await
        .expect("login")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("value=\"hint&#34;@example.com\"")
            || page.contains("value=\"hint&quot;@example.com\""),
        "prefilled and escaped: {page}"
    );

    let b = app.user("consent@example.com").await;
    let (_, c1) = pkce();
    app.consent(&b, &params(&client, &c1, &[])).await;
    let (_, c2) = pkce();
    let r = app
        .authorize_get(&b, &params(&client, &c2, &[("prompt", "consent")]))
        .await;
    assert_eq!(
        r.status(),
        200,
        "the consent page although consent is remembered"
    );
    let html = r.text().await.expect("html");
    assert!(!hidden(&html, "request").is_empty());
}

async fn id_token_hint_of_someone_else_signs_in_again_and_a_forged_one_is_refused(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid email");
    let alice = app.user("alice@example.com").await;
    let (verifier, c) = pkce();
    let to = app.consent(&alice, &params(&client, &c, &[])).await;
    let code = query_param(&to, "code").expect("code");
    let (_, tokens) = json(app.exchange(&client, &code, &verifier).await).await;
    let alice_id_token = tokens["id_token"].as_str().expect("id").to_string();

    // Alice's own hint: no sign-in, even after the ID token expired.
    app.clock.advance(3 * 3600);
    let (_, c1) = pkce();
    let r = app
        .authorize_get(
            &alice,
            &params(
                &client,
                &c1,
                &[("id_token_hint", &alice_id_token), ("prompt", "none")],
            ),
        )
        .await;
    assert_eq!(r.status(), 302);
    assert!(
        query_param(&location(&r), "code").is_some(),
        "{}",
        location(&r)
    );

    // Bob's browser with Alice's hint: sign in (as Alice) first; with none, login_required.
    let bob = app.user("bob@example.com").await;
    let (_, c2) = pkce();
    let r = app
        .authorize_get(
            &bob,
            &params(
                &client,
                &c2,
                &[("id_token_hint", &alice_id_token), ("prompt", "none")],
            ),
        )
        .await;
    assert_refused(&app, &r, "login_required");
    let (_, c3) = pkce();
    let r = app
        .authorize_get(
            &bob,
            &params(&client, &c3, &[("id_token_hint", &alice_id_token)]),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("reauth=1"));

    // A hint that is not ours: invalid_request. An access token is not an ID token either.
    let sig_at = alice_id_token.rfind('.').expect("dot") + 10;
    let flipped = if &alice_id_token[sig_at..=sig_at] == "A" {
        "B"
    } else {
        "A"
    };
    let forged = format!(
        "{}{flipped}{}",
        &alice_id_token[..sig_at],
        &alice_id_token[sig_at + 1..]
    );
    for hint in [
        forged.as_str(),
        tokens["access_token"].as_str().expect("at"),
        "garbage",
    ] {
        let (_, c) = pkce();
        let r = app
            .authorize_get(&alice, &params(&client, &c, &[("id_token_hint", hint)]))
            .await;
        assert_refused(&app, &r, "invalid_request");
    }
}
