//! CORS (docs/spec.md §3): metadata, JWKS, token, revocation and registration answer any
//! origin without credentials; the authorization endpoint, introspection, `/api/v1` and the
//! pages never do (docs/security.md A8).

use reqwest::Method;
use serde_json::json;
use tessera::orgs::Plan;

use crate::helpers::api::{KeySpec, answer};
use crate::helpers::oauth::{REDIRECT, pkce};
use crate::helpers::{Backend, TestApp, spawn_app};

crate::on_both_backends!(a8_cors_answers_public_client_endpoints_and_nothing_else);

const ORIGIN: &str = "https://spa.example";

async fn preflight(app: &TestApp, path: &str, method: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, format!("{}{path}", app.address))
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight")
}

fn assert_no_cors(r: &reqwest::Response, what: &str) {
    for (name, _) in r.headers() {
        assert!(
            !name.as_str().starts_with("access-control-"),
            "{what}: {name} must not be sent"
        );
    }
}

fn assert_open(r: &reqwest::Response, what: &str) {
    assert_eq!(r.headers()["access-control-allow-origin"], "*", "{what}");
    assert!(
        r.headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "{what}: never with credentials"
    );
}

async fn a8_cors_answers_public_client_endpoints_and_nothing_else(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (machine, secret) = app.machine_client("inference:read");
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());

    // Preflights: 204 with the resource's methods and the headers a client sends.
    for (path, method, methods) in [
        ("/.well-known/oauth-authorization-server", "GET", "GET"),
        ("/.well-known/jwks.json", "GET", "GET"),
        ("/oauth/token", "POST", "POST"),
        ("/oauth/revoke", "POST", "POST"),
        ("/oauth/register", "POST", "POST"),
        ("/oauth/register/cli_any", "PUT", "GET, PUT, DELETE"),
        ("/.well-known/openid-configuration", "GET", "GET"),
        ("/oauth/userinfo", "GET", "GET, POST"),
    ] {
        let r = preflight(&app, path, method).await;
        assert_eq!(r.status(), 204, "{path}");
        assert_open(&r, path);
        assert_eq!(
            r.headers()["access-control-allow-methods"],
            methods,
            "{path}"
        );
        let allowed = r.headers()["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .to_ascii_lowercase();
        assert!(
            allowed.contains("authorization") && allowed.contains("content-type"),
            "{path}: {allowed}"
        );
        assert_eq!(r.headers()["access-control-max-age"], "86400", "{path}");
        assert!(r.bytes().await.expect("body").is_empty(), "{path}");
    }

    // Actual requests from another origin: answered, readable by the page.
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwks.json",
    ] {
        let r = app
            .http
            .get(format!("{}{path}", app.address))
            .header("Origin", ORIGIN)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "{path}");
        assert_open(&r, path);
    }
    let token = app
        .http
        .post(format!("{}/oauth/token", app.address))
        .header("Origin", ORIGIN)
        .basic_auth(&machine, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(token.status(), 200);
    assert_open(&token, "token");
    let at = answer(token).await.body["access_token"]
        .as_str()
        .expect("at")
        .to_string();
    // An error is readable too, challenge included.
    let refused = app
        .http
        .post(format!("{}/oauth/token", app.address))
        .header("Origin", ORIGIN)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", machine.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(refused.status(), 401);
    assert_open(&refused, "token error");
    assert!(
        refused.headers()["access-control-expose-headers"]
            .to_str()
            .expect("ascii")
            .contains("WWW-Authenticate")
    );
    let revoke = app
        .http
        .post(format!("{}/oauth/revoke", app.address))
        .header("Origin", ORIGIN)
        .basic_auth(&machine, Some(&secret))
        .form(&[("token", at.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), 200);
    assert_open(&revoke, "revoke");
    let reg = app
        .http
        .post(format!("{}/oauth/register", app.address))
        .header("Origin", ORIGIN)
        .bearer_auth(&admin.key)
        .json(&json!({
            "client_name": "SPA",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "scope": "inference:read"
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(reg.status(), 201);
    assert_open(&reg, "register");
    let body = answer(reg).await.body;
    let read = app
        .http
        .get(format!(
            "{}/oauth/register/{}",
            app.address,
            body["client_id"].as_str().expect("id")
        ))
        .header("Origin", ORIGIN)
        .bearer_auth(body["registration_access_token"].as_str().expect("t"))
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
    assert_open(&read, "RFC 7592 read");
    // Same-origin and non-browser callers send no Origin and get no CORS headers.
    let plain = app.get("/.well-known/jwks.json").await;
    assert_no_cors(&plain, "no Origin");

    // Never: the authorization endpoint, introspection, /api/v1, the pages.
    let (_, challenge) = pkce();
    let q = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", machine.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .expect("query");
    let authorize = format!("/oauth/authorize?{q}");
    let b = app.user("ada@example.com").await;
    for path in [
        authorize.as_str(),
        "/oauth/introspect",
        "/api/v1/api-keys",
        "/api/v1/keys/verify",
        "/api/v1/openapi.json",
        "/",
        "/login",
        "/signup",
        "/settings/api-keys",
        "/developer/clients",
        "/account/apps",
    ] {
        for method in ["GET", "POST"] {
            let r = preflight(&app, path, method).await;
            assert_no_cors(&r, &format!("OPTIONS {path} ({method})"));
        }
        let r = b
            .get(format!("{}{path}", app.address))
            .header("Origin", ORIGIN)
            .send()
            .await
            .expect("get");
        assert_no_cors(&r, &format!("GET {path}"));
    }
    let r = app
        .http
        .post(format!("{}/oauth/introspect", app.address))
        .header("Origin", ORIGIN)
        .basic_auth(&machine, Some(&secret))
        .form(&[("token", at.as_str())])
        .send()
        .await
        .expect("introspect");
    assert_no_cors(&r, "POST /oauth/introspect");
    let r = app
        .http
        .get(format!("{}/api/v1/api-keys", app.address))
        .header("Origin", ORIGIN)
        .bearer_auth(&admin.key)
        .send()
        .await
        .expect("api");
    assert_eq!(r.status(), 200);
    assert_no_cors(&r, "GET /api/v1/api-keys with a key");
}
