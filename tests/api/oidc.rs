//! OpenID Connect (docs/spec.md §9): discovery, the ID-token keys and their rotation, ID
//! tokens from the code flow and refreshes, userinfo. ID tokens are checked with
//! `jsonwebtoken` against the served JWKS, independently of tessera's own verifier.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;
use tessera::cli::KeysCommand;
use tessera::clock::Clock;

use crate::helpers::oauth::{REDIRECT, WebClient, json, pkce, query_param};
use crate::helpers::{Backend, TestApp, hidden, spawn_app};

crate::on_both_backends!(
    discovery_is_the_rfc_8414_document_with_the_openid_fields,
    l1_l3_id_tokens_carry_the_core_claims_and_refreshes_keep_auth_time,
    f6_id_token_keys_rotate_on_the_access_keys_staging,
    i4_i7_userinfo_answers_claims_by_scope_and_rfc_6750_errors,
    profile_releases_the_display_name_set_at_signup_and_on_the_home_page,
);

/// Verifies an ID token against the served JWKS: RS256, `typ: JWT`, `iss`, `aud` = the
/// client id (OpenID Connect Core §3.1.3.7). Returns the claims.
pub async fn verify_id_token(app: &TestApp, token: &str, client_id: &str) -> Value {
    let header = decode_header(token).expect("header");
    assert_eq!(header.alg, Algorithm::RS256, "RS256 by default");
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.expect("kid");
    let set: JwkSet =
        serde_json::from_value(app.get_json("/.well-known/jwks.json").await).expect("jwks");
    let jwk = set.find(&kid).expect("the ID-token key is published");
    let key = DecodingKey::from_jwk(jwk).expect("key");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[client_id]);
    v.set_issuer(&[app.state.issuer.as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    decode::<Value>(token, &key, &v)
        .expect("the ID token verifies")
        .claims
}

/// Authorize (with `nonce`) → consent → code → tokens, for a fresh user.
async fn openid_tokens(app: &TestApp, client: &WebClient, scope: &str, nonce: &str) -> Value {
    let email = format!(
        "{}@example.com",
        tessera::crypto::random_base62(10).to_lowercase()
    );
    let b = app.user(&email).await;
    let (verifier, challenge) = pkce();
    let location = app
        .consent(
            &b,
            &[
                ("response_type", "code"),
                ("client_id", &client.id),
                ("redirect_uri", REDIRECT),
                ("scope", scope),
                ("state", "s1"),
                ("nonce", nonce),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    let code = query_param(&location, "code").expect("code");
    let (status, body) = json(app.exchange(client, &code, &verifier).await).await;
    assert_eq!(status, 200, "{body}");
    let mut body = body;
    body["email"] = Value::String(email);
    body
}

async fn discovery_is_the_rfc_8414_document_with_the_openid_fields(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let r = app.get("/.well-known/openid-configuration").await;
    assert_eq!(r.status(), 200);
    let oidc: Value = r.json().await.expect("json");
    let oauth = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(oidc, oauth, "one source for both documents");
    // OpenID Connect Discovery 1.0 §3: the REQUIRED members.
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(oidc.get(field).is_some(), "{field} missing");
    }
    assert_eq!(oidc["issuer"], app.address.as_str());
    assert_eq!(
        oidc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(oidc["id_token_signing_alg_values_supported"][0], "RS256");
    assert_eq!(
        oidc["userinfo_endpoint"],
        format!("{}/oauth/userinfo", app.address)
    );
    let scopes = oidc["scopes_supported"].as_array().expect("scopes");
    for s in ["openid", "profile", "email", "offline_access"] {
        assert!(
            scopes.contains(&Value::from(s)),
            "{s} not in scopes_supported"
        );
    }
    let claims = oidc["claims_supported"].as_array().expect("claims");
    for c in [
        "sub",
        "email",
        "email_verified",
        "name",
        "nonce",
        "auth_time",
    ] {
        assert!(claims.contains(&Value::from(c)), "{c}");
    }
    // Cross-origin, like the RFC 8414 document.
    let r = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.address))
        .header("Origin", "https://spa.example")
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}

async fn l1_l3_id_tokens_carry_the_core_claims_and_refreshes_keep_auth_time(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid email profile inference:read");
    let signed_in_at = app.clock.now();
    let tokens = openid_tokens(&app, &client, "openid email inference:read", "n-0S6_WzA2Mj").await;
    let id_token = tokens["id_token"].as_str().expect("id_token with openid");
    let c = verify_id_token(&app, id_token, &client.id).await;
    let access = decode_header(tokens["access_token"].as_str().expect("at")).expect("h");
    assert_eq!(access.typ.as_deref(), Some("at+jwt"));
    assert_eq!(c["iss"], app.state.issuer.as_str());
    assert_eq!(c["aud"], client.id.as_str());
    assert_eq!(c["azp"], client.id.as_str());
    assert!(c["sub"].as_str().expect("sub").starts_with("usr_"), "{c}");
    assert_eq!(c["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(
        c["auth_time"], signed_in_at,
        "auth_time is when the person signed in"
    );
    assert!(c["exp"].as_i64() > c["iat"].as_i64());
    assert_eq!(
        c["at_hash"],
        tessera::oidc::id_token::at_hash(
            tokens["access_token"].as_str().expect("at"),
            tessera::cli::SigningAlg::RS256
        )
    );
    assert_eq!(c["email"], tokens["email"]);
    assert_eq!(c["email_verified"], false);
    assert!(c.get("name").is_none(), "profile was not granted");

    // A refresh: a new ID token with the original auth_time and no nonce (Core §12.2).
    app.clock.advance(120);
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let (status, refreshed) = json(app.refresh(&client, rt).await).await;
    assert_eq!(status, 200, "{refreshed}");
    let r = verify_id_token(
        &app,
        refreshed["id_token"].as_str().expect("id_token"),
        &client.id,
    )
    .await;
    assert_eq!(r["sub"], c["sub"]);
    assert_eq!(r["auth_time"], signed_in_at);
    assert_eq!(r["iat"], signed_in_at + 120);
    assert!(r.get("nonce").is_none());

    // Without openid: no ID token.
    let plain = app.user_tokens(&client, "inference:read").await;
    assert!(plain.get("id_token").is_none(), "{plain}");

    // An ID token is not an access token: the API and introspection refuse it.
    let rs = app.resource_server();
    let verdict = app.introspect(&rs, id_token).await;
    assert_eq!(verdict["active"], false);
}

async fn f6_id_token_keys_rotate_on_the_access_keys_staging(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid inference:read");
    let kid = |t: &Value| {
        decode_header(t["id_token"].as_str().expect("id_token"))
            .expect("h")
            .kid
            .expect("kid")
    };
    let before = openid_tokens(&app, &client, "openid", "a").await;
    let old_kid = kid(&before);
    let out = tessera::commands::keys(&app.state.settings, KeysCommand::Rotate, app.clock.now())
        .expect("rotate");
    let new_rs256 = out["id_token_keys"]
        .as_array()
        .expect("id keys")
        .iter()
        .find(|k| k["alg"] == "RS256")
        .and_then(|k| k["kid"].as_str())
        .expect("a new RS256 key")
        .to_string();
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(published.contains(&new_rs256.as_str()), "published at once");
    assert!(published.contains(&old_kid.as_str()));
    let during = openid_tokens(&app, &client, "openid", "b").await;
    assert_eq!(kid(&during), old_kid, "signing waits for the delay");
    app.clock
        .advance(app.state.settings.key_rotation_delay_seconds);
    app.get("/.well-known/jwks.json").await; // reloads the key set
    let after = openid_tokens(&app, &client, "openid", "c").await;
    assert_eq!(
        kid(&after),
        new_rs256,
        "the new ID-token key signs after the delay"
    );
    verify_id_token(&app, after["id_token"].as_str().expect("id"), &client.id).await;
}

async fn userinfo(
    app: &TestApp,
    method: reqwest::Method,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, format!("{}/oauth/userinfo", app.address))
        .header("Origin", "https://spa.example");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("userinfo")
}

async fn i4_i7_userinfo_answers_claims_by_scope_and_rfc_6750_errors(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid email profile inference:read");
    let tokens = openid_tokens(&app, &client, "openid email inference:read", "n").await;
    let at = tokens["access_token"].as_str().expect("at");
    let id = verify_id_token(&app, tokens["id_token"].as_str().expect("id"), &client.id).await;
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let r = userinfo(&app, method.clone(), Some(at)).await;
        assert_eq!(r.status(), 200, "{method}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["sub"], id["sub"], "the same subject as the ID token");
        assert_eq!(body["email"], tokens["email"]);
        assert_eq!(body["email_verified"], false);
        assert!(body.get("name").is_none());
    }

    // openid without email: sub only.
    let only = openid_tokens(&app, &client, "openid", "m").await;
    let body: Value = userinfo(&app, reqwest::Method::GET, only["access_token"].as_str())
        .await
        .json()
        .await
        .expect("json");
    assert!(body["sub"].is_string());
    assert!(body.get("email").is_none(), "{body}");

    // I4: no credentials → a bare challenge; a bad token → invalid_token.
    let r = userinfo(&app, reqwest::Method::GET, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"tessera\"");
    let r = userinfo(&app, reqwest::Method::GET, Some("a.b.c")).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("error=\"invalid_token\"")
    );
    // Expired.
    app.clock
        .advance(app.state.settings.access_token_ttl_seconds + 120);
    let r = userinfo(&app, reqwest::Method::GET, Some(at)).await;
    assert_eq!(r.status(), 401);
    // A token without openid → 403 insufficient_scope.
    let plain = app.user_tokens(&client, "inference:read").await;
    let r = userinfo(&app, reqwest::Method::GET, plain["access_token"].as_str()).await;
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("error=\"insufficient_scope\"")
    );
    // I7: a token in the URL is refused, never used.
    let r = app
        .get(&format!(
            "/oauth/userinfo?access_token={}",
            plain["access_token"].as_str().expect("at")
        ))
        .await;
    assert_eq!(r.status(), 400);
    // CORS preflight.
    let r = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/oauth/userinfo", app.address),
        )
        .header("Origin", "https://spa.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .expect("preflight");
    assert_eq!(r.status(), 204);
}

async fn profile_releases_the_display_name_set_at_signup_and_on_the_home_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid profile email");
    let b = app.browser();
    let page = b
        .get(format!("{}/signup", app.address))
        .send()
        .await
        .expect("signup page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("name=\"name\""),
        "the signup form asks for a display name"
    );
    let r = b
        .post(format!("{}/signup", app.address))
        .form(&[
            ("email", "ada@example.com"),
            ("name", "  Ada Lovelace "),
            ("password", crate::helpers::oauth::PASSWORD),
            ("csrf_token", &hidden(&page, "csrf_token")),
            ("return_to", "/"),
        ])
        .send()
        .await
        .expect("signup");
    assert_eq!(r.status(), 303);
    let (verifier, challenge) = pkce();
    let location = app
        .consent(
            &b,
            &[
                ("response_type", "code"),
                ("client_id", &client.id),
                ("redirect_uri", REDIRECT),
                ("scope", "openid profile"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    let code = query_param(&location, "code").expect("code");
    let (status, tokens) = json(app.exchange(&client, &code, &verifier).await).await;
    assert_eq!(status, 200, "{tokens}");
    let c = verify_id_token(&app, tokens["id_token"].as_str().expect("id"), &client.id).await;
    assert_eq!(c["name"], "Ada Lovelace");
    assert!(c.get("email").is_none(), "email was not granted");

    // Changed on the account page: userinfo answers the new name.
    let home = b
        .get(format!("{}/account", app.address))
        .send()
        .await
        .expect("home")
        .text()
        .await
        .expect("html");
    assert!(home.contains("value=\"Ada Lovelace\""), "{home}");
    let form_token = {
        let at = home
            .find("action=\"/account/name\"")
            .expect("the name form");
        hidden(&home[at..], "csrf_token")
    };
    let r = b
        .post(format!("{}/account/name", app.address))
        .form(&[
            ("csrf_token", form_token.as_str()),
            ("name", "Countess of Lovelace"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    let body: Value = userinfo(&app, reqwest::Method::GET, tokens["access_token"].as_str())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["name"], "Countess of Lovelace");
    // Bad input names the field; a post without the token changes nothing (H1).
    let r = b
        .post(format!("{}/account/name", app.address))
        .form(&[
            ("csrf_token", form_token.as_str()),
            ("name", &"x".repeat(101)),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("html").contains("display name"));
    let r = b
        .post(format!("{}/account/name", app.address))
        .form(&[("name", "Mallory")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
}
