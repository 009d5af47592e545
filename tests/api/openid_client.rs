//! panva's openid-client (an OpenID-certified relying party, node) against the real
//! server (docs/spec.md §9): discovery, the code flow with PKCE, `nonce` and `state`,
//! ID-token validation (signature against the JWKS, `iss`, `aud`, `exp`, `nonce`, `azp`,
//! `at_hash`) and userinfo. The script is `tests/openid-client/rp.mjs`, its packages come
//! from the committed lockfile (`npm ci` there; `.ci/run` does it). This test drives the
//! login and consent pages as the browser would. Without node or the installed packages
//! it prints SKIPPED (a failure with `TESSERA_REQUIRE_ALL=1`).

use std::path::PathBuf;

use crate::helpers::node::{NodeScript, package_ready, script_dir};
use crate::helpers::oauth::{REDIRECT, query_param};
use crate::helpers::postgres::unavailable;
use crate::helpers::{Backend, hidden, spawn_app};

crate::on_both_backends!(
    openid_client_completes_discovery_the_code_flow_and_userinfo,
    openid_client_completes_the_device_flow,
);

fn rp_dir() -> PathBuf {
    script_dir("openid-client")
}

/// The node binary and the installed packages, or why not.
fn node_ready() -> Result<(), String> {
    package_ready(&rp_dir(), "openid-client")
}

async fn openid_client_completes_discovery_the_code_flow_and_userinfo(backend: Backend) {
    if let Err(why) = node_ready() {
        unavailable("openid-client (node)", &why);
        return;
    }
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid email profile inference:read");
    let secret = client.secret.clone().expect("confidential");
    let b = app.user("rp@example.com").await;

    let mut script = NodeScript::spawn(
        "openid-client",
        &rp_dir(),
        &[
            "rp.mjs",
            app.address.as_str(),
            &client.id,
            &secret,
            REDIRECT,
            "openid email inference:read",
        ],
        &[],
    );
    let first = script.line().await;
    let auth_url = first["authorization_url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(
        auth_url.starts_with(&format!("{}/oauth/authorize?", app.address)),
        "{auth_url}"
    );
    assert!(auth_url.contains("nonce="), "{auth_url}");

    // The pages: consent, approve, the redirect back.
    let r = b.get(&auth_url).send().await.expect("authorize");
    assert_eq!(r.status(), 200, "the consent page");
    let html = r.text().await.expect("html");
    let callback = app.approve(&b, &html).await;
    assert!(query_param(&callback, "code").is_some(), "{callback}");

    let done = script.finish(Some(&callback)).await;
    let claims = &done["claims"];
    assert!(
        claims["sub"].as_str().expect("sub").starts_with("usr_"),
        "{done}"
    );
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["iss"], app.address.as_str());
    assert_eq!(claims["email"], "rp@example.com");
    assert_eq!(done["userinfo"]["sub"], claims["sub"]);
    assert_eq!(done["userinfo"]["email"], "rp@example.com");
}

/// RFC 8628 with openid-client's `initiateDeviceAuthorization` and
/// `pollDeviceAuthorizationGrant` (`tests/openid-client/device.mjs`): discovery finds the
/// device authorization endpoint, the person approves at `/device`, and the client's
/// polling (real seconds: the test clock follows them) ends with tokens and a valid ID token.
async fn openid_client_completes_the_device_flow(backend: Backend) {
    if let Err(why) = node_ready() {
        unavailable("openid-client (node)", &why);
        return;
    }
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (client_id, _) = app.register(tessera::clients::NewClient {
        name: "Device CLI".into(),
        public: true,
        grant_types: Some(vec![
            tessera::clients::GrantType::DeviceCode,
            tessera::clients::GrantType::RefreshToken,
        ]),
        scope: Some(tessera::scope::ScopeSet::parse("openid email inference:read").expect("scope")),
        ..Default::default()
    });
    let mut script = NodeScript::spawn(
        "openid-client",
        &rp_dir(),
        &[
            "device.mjs",
            app.address.as_str(),
            &client_id,
            "openid email inference:read",
        ],
        &[],
    );
    let first = script.line().await;
    let complete = first["verification_uri_complete"].as_str().expect("uri");
    // The server's (manual) clock follows real time while the client waits its intervals.
    let clock = app.clock.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            clock.advance(1);
        }
    });
    let b = app.user("device-rp@example.com").await;
    let page = b.get(complete).send().await.expect("get");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let code = first["user_code"].as_str().expect("user_code");
    assert!(
        html.contains(code),
        "prefilled from verification_uri_complete"
    );
    let consent = b
        .post(format!("{}/device", app.address))
        .form(&[
            ("csrf_token", hidden(&html, "csrf_token")),
            ("user_code", code.into()),
        ])
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("html");
    let done = b
        .post(format!("{}/device", app.address))
        .form(&[
            ("csrf_token", hidden(&consent, "csrf_token")),
            ("user_code", hidden(&consent, "user_code")),
            ("decision", "approve".into()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(done.status(), 200);
    let done = script.finish(None).await;
    ticker.abort();
    assert_eq!(done["claims"]["aud"], client_id.as_str());
    assert_eq!(done["claims"]["email"], "device-rp@example.com");
    assert_eq!(done["scope"], "email inference:read openid");
    assert_eq!(done["refresh_token"], true);
}
