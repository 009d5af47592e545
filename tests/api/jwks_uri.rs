//! `private_key_jwt` with a `jwks_uri` (RFC 7591 §2, RFC 7523 §2.2; docs/spec.md §8,
//! docs/security.md D13, K6): the key set is fetched from a test-served URL on loopback
//! (allowed only with `--client-metadata-allow-loopback`), cached, fetched again once when
//! an assertion names a rotated `kid` (at most once a minute), and the SSRF guard refuses
//! private addresses at registration and, for a row that names one anyway, at
//! authentication without any request reaching the address. A client ID metadata document
//! may use `private_key_jwt` with its `jwks_uri`.

use serde_json::{Value, json};
use tessera::clients::{GrantType, NewClient};
use tessera::orgs::Plan;
use tessera::scope::ScopeSet;

use crate::client_metadata::{DocServer, Reply, app_with, authorize_params, ok_json};
use crate::helpers::oauth::{REDIRECT, json as json_of, pkce, query_param};
use crate::helpers::{Backend, TestApp};
use crate::mcp_registration::register;
use crate::private_key_jwt::{ClientKey, claims};

crate::on_both_backends!(
    d13_k6_a_jwks_uri_client_authenticates_and_follows_a_key_rotation,
    d13_k6_jwks_uri_registration_refuses_non_public_hosts_and_the_guard_refuses_at_auth,
    a13_d13_a_metadata_document_client_authenticates_with_its_jwks_uri,
);

const TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Serves `keys` as the JWK set at `path`.
fn serve_keys(docs: &DocServer, path: &str, keys: &[&ClientKey]) -> String {
    let set = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    docs.set(path, Reply::Raw(ok_json(&set.to_string())));
    docs.url(path)
}

/// `POST path` authenticating with `assertion` (and `extra` parameters).
async fn post_signed(
    app: &TestApp,
    path: &str,
    assertion: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![
        ("client_assertion_type", TYPE),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    let body = serde_urlencoded::to_string(&form).expect("form");
    json_of(app.post_form(path, None, &body).await).await
}

async fn token(app: &TestApp, assertion: &str) -> (u16, Value) {
    post_signed(
        app,
        "/oauth/token",
        assertion,
        &[("grant_type", "client_credentials")],
    )
    .await
}

async fn d13_k6_a_jwks_uri_client_authenticates_and_follows_a_key_rotation(backend: Backend) {
    let Some(app) = app_with(backend, true, false).await else {
        return;
    };
    let (_, admin) = app.org_with_admin(Plan::Free);
    let docs = DocServer::start();
    let a = ClientKey::new("ES256");
    let uri = serve_keys(&docs, "/jwks.json", &[&a]);
    let reg = register(
        &app,
        Some(&admin.key),
        json!({
            "client_name": "Job with published keys",
            "grant_types": ["client_credentials"],
            "scope": "inference:read",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": uri,
        }),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    assert_eq!(reg.body["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(reg.body["jwks_uri"], uri.as_str());
    assert!(reg.body.get("client_secret").is_none(), "{}", reg.body);
    assert!(reg.body.get("jwks").is_none(), "{}", reg.body);
    assert_eq!(docs.hits(), 0, "nothing is fetched before it is needed");
    let id = reg.body["client_id"].as_str().expect("id").to_string();
    let rat = reg.body["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_string();

    let (status, body) = token(&app, &a.sign(&claims(&app, &id))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = token(&app, &a.sign(&claims(&app, &id))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(docs.hits(), 1, "one fetch, then the cache");
    // Revocation authenticates the same way.
    let access = body["access_token"].as_str().expect("at").to_string();
    let form = serde_urlencoded::to_string([
        ("client_assertion_type", TYPE),
        ("client_assertion", &a.sign(&claims(&app, &id))),
        ("token", &access),
    ])
    .expect("form");
    let r = app.post_form("/oauth/revoke", None, &form).await;
    assert_eq!(r.status(), 200, "revocation");

    // Rotation: the uri now publishes only key b. An assertion with b's kid makes
    // tessera fetch the set again, once.
    let b = ClientKey::new("EdDSA");
    serve_keys(&docs, "/jwks.json", &[&b]);
    let (status, body) = token(&app, &b.sign(&claims(&app, &id))).await;
    assert_eq!(status, 200, "the rotated key: {body}");
    assert_eq!(docs.hits(), 2, "fetched again for the unknown kid");
    // The retired key is refused; unknown kids do not make tessera fetch again within
    // the minute (no request reaches the client's server).
    let (status, body) = token(&app, &a.sign(&claims(&app, &id))).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
    assert_eq!(
        body["error_description"], "Client authentication failed.",
        "the one body of D4"
    );
    let stranger = ClientKey::new("ES256");
    for _ in 0..3 {
        let (status, _) = token(&app, &stranger.sign(&claims(&app, &id))).await;
        assert_eq!(status, 401);
    }
    assert_eq!(docs.hits(), 2, "at most one early refetch a minute");
    let (status, body) = token(&app, &b.sign(&claims(&app, &id))).await;
    assert_eq!(status, 200, "{body}");

    // RFC 7592: an update may trade the jwks_uri for inline keys (still private_key_jwt);
    // a client with a secret cannot take a jwks_uri.
    let put = |id: &str, rat: &str, body: Value| {
        reqwest::Client::new()
            .put(format!("{}/oauth/register/{id}", app.address))
            .bearer_auth(rat)
            .json(&body)
            .send()
    };
    let r = put(
        &id,
        &rat,
        json!({"client_id": id, "grant_types": ["client_credentials"], "scope": "inference:read",
               "token_endpoint_auth_method": "private_key_jwt", "jwks": a.jwks()}),
    )
    .await
    .expect("update");
    let (status, body) = json_of(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jwks"], a.jwks());
    assert!(body.get("jwks_uri").is_none(), "{body}");
    let (status, body) = token(&app, &a.sign(&claims(&app, &id))).await;
    assert_eq!(status, 200, "inline keys now: {body}");
    assert_eq!(docs.hits(), 2, "no fetch for inline keys");
    let secret_client = register(
        &app,
        Some(&admin.key),
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await;
    assert_eq!(secret_client.status, 201, "{}", secret_client.body);
    let sid = secret_client.body["client_id"].as_str().expect("id");
    let srat = secret_client.body["registration_access_token"]
        .as_str()
        .expect("rat");
    let r = put(
        sid,
        srat,
        json!({"client_id": sid, "grant_types": ["client_credentials"],
               "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri}),
    )
    .await
    .expect("update");
    let (status, body) = json_of(r).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_client_metadata")),
        "{body}"
    );

    // A set that turns bad (a private key in it) is refused once it is fetched.
    let c = ClientKey::new("ES256");
    let mut private = c.jwk();
    private["d"] = json!("AAAA");
    let (_, admin2) = app.org_with_admin(Plan::Free);
    docs.set(
        "/bad.json",
        Reply::Raw(ok_json(&json!({"keys": [private]}).to_string())),
    );
    let reg = register(
        &app,
        Some(&admin2.key),
        json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": docs.url("/bad.json"),
        }),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let bad = reg.body["client_id"].as_str().expect("id").to_string();
    let (status, _) = token(&app, &c.sign(&claims(&app, &bad))).await;
    assert_eq!(status, 401, "a JWK set with a private member is never used");

    // /api/v1/clients takes jwks_uri too; jwks and jwks_uri exclude each other.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/clients", app.address))
        .bearer_auth(&admin.key)
        .json(&json!({"name": "Job", "grant_types": ["client_credentials"], "jwks_uri": uri}))
        .send()
        .await
        .expect("create");
    let (status, body) = json_of(r).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(body["jwks_uri"], uri.as_str());
    let reg = register(
        &app,
        Some(&admin.key),
        json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": a.jwks(),
            "jwks_uri": uri,
        }),
    )
    .await;
    assert_eq!(reg.status, 400, "{}", reg.body);
    assert_eq!(reg.body["error"], "invalid_client_metadata");
    assert!(
        reg.body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("jwks_uri")),
        "{}",
        reg.body
    );
}

async fn d13_k6_jwks_uri_registration_refuses_non_public_hosts_and_the_guard_refuses_at_auth(
    backend: Backend,
) {
    // Without the development flag.
    let Some(app) = app_with(backend, false, false).await else {
        return;
    };
    let (_, admin) = app.org_with_admin(Plan::Free);
    let docs = DocServer::start();
    let key = ClientKey::new("ES256");
    let served = serve_keys(&docs, "/jwks.json", &[&key]);
    let https_loopback = served.replace("http://", "https://");
    for uri in [
        served.as_str(),
        https_loopback.as_str(),
        "https://localhost/jwks.json",
        "https://[::1]/jwks.json",
        "https://[::ffff:127.0.0.1]/jwks.json",
        "https://[64:ff9b::7f00:1]/jwks.json",
        "https://10.0.0.7/jwks.json",
        "https://192.168.1.1/jwks.json",
        "https://169.254.169.254/latest/meta-data",
        "https://[fd00::1]/jwks.json",
        "https://[fe80::1]/jwks.json",
        "https://0.0.0.0/jwks.json",
        "http://keys.example/jwks.json",
        "https://user@keys.example/jwks.json",
    ] {
        let reg = register(
            &app,
            Some(&admin.key),
            json!({
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks_uri": uri,
            }),
        )
        .await;
        assert_eq!(reg.status, 400, "{uri}: {}", reg.body);
        assert_eq!(reg.body["error"], "invalid_client_metadata", "{uri}");
        assert!(
            reg.body["error_description"]
                .as_str()
                .is_some_and(|d| d.starts_with("jwks_uri:")),
            "{uri}: {}",
            reg.body
        );
    }
    // A row naming a loopback address anyway (written directly, as a name resolving to
    // one would look): authentication fails and no request reaches the address.
    let (id, secret) = app.register(NewClient {
        name: "Row with a loopback jwks_uri".into(),
        grant_types: Some(vec![GrantType::ClientCredentials]),
        scope: Some(ScopeSet::parse("inference:read").expect("scope")),
        jwks_uri: Some(https_loopback.clone()),
        ..Default::default()
    });
    assert!(secret.is_none());
    let (status, body) = token(&app, &key.sign(&claims(&app, &id))).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
    let (id, _) = app.register(NewClient {
        name: "Row with an http jwks_uri".into(),
        grant_types: Some(vec![GrantType::ClientCredentials]),
        jwks_uri: Some(served.clone()),
        ..Default::default()
    });
    let (status, _) = token(&app, &key.sign(&claims(&app, &id))).await;
    assert_eq!(status, 401);
    assert_eq!(docs.hits(), 0, "K6: nothing was fetched from loopback");
    drop(app);

    // With the flag: loopback only; private and link-local addresses stay refused.
    let Some(app) = app_with(backend, true, false).await else {
        return;
    };
    let (_, admin) = app.org_with_admin(Plan::Free);
    for uri in [
        "https://10.0.0.7/jwks.json",
        "http://169.254.169.254/latest/meta-data",
        "http://keys.example/jwks.json",
    ] {
        let reg = register(
            &app,
            Some(&admin.key),
            json!({
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks_uri": uri,
            }),
        )
        .await;
        assert_eq!(reg.status, 400, "{uri}: {}", reg.body);
    }
    // A redirect at the uri is not followed.
    docs.set(
        "/moved",
        Reply::Raw(format!(
            "HTTP/1.1 302 Found\r\nLocation: {served}\r\nContent-Length: 0\r\n\r\n"
        )),
    );
    let reg = register(
        &app,
        Some(&admin.key),
        json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": docs.url("/moved"),
        }),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let id = reg.body["client_id"].as_str().expect("id").to_string();
    let before = docs.hits();
    let (status, _) = token(&app, &key.sign(&claims(&app, &id))).await;
    assert_eq!(status, 401, "a redirect is never followed");
    assert_eq!(
        docs.hits(),
        before + 1,
        "only the redirecting URL was asked"
    );
}

async fn a13_d13_a_metadata_document_client_authenticates_with_its_jwks_uri(backend: Backend) {
    let Some(app) = app_with(backend, true, false).await else {
        return;
    };
    crate::resources::resource_server_with(&app, &[crate::resources::MCP]);
    let docs = DocServer::start();
    let key = ClientKey::new("RS256");
    let jwks_uri = serve_keys(&docs, "/keys.json", &[&key]);
    let client_id = docs.document(
        "/client.json",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwks_uri}),
    );
    let b = app.user("cimd-pkjwt@example.com").await;
    let (verifier, challenge) = pkce();
    let params = authorize_params(&client_id, &challenge);
    let r = app.authorize_get(&b, &params).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    let location = app.approve(&b, &html).await;
    let code = query_param(&location, "code").expect("code");
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id.as_str()),
    ];
    // Without an assertion the client is not public: refused, and the code stays usable.
    let body = serde_urlencoded::to_string(exchange).expect("form");
    let (status, e) = json_of(app.post_form("/oauth/token", None, &body).await).await;
    assert_eq!(
        (status, &e["error"]),
        (401, &json!("invalid_client")),
        "{e}"
    );
    let (status, tokens) = post_signed(
        &app,
        "/oauth/token",
        &key.sign(&claims(&app, &client_id)),
        &exchange,
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let c = crate::resources::claims(tokens["access_token"].as_str().expect("at"));
    assert_eq!(c["client_id"], client_id.as_str());
    // A document asking for private_key_jwt without a jwks_uri, or with inline jwks, is
    // refused on the error page.
    for (path, extra, needle) in [
        (
            "/no-uri.json",
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            "needs a jwks_uri",
        ),
        (
            "/inline.json",
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": key.jwks()}),
            "publishes its keys at jwks_uri",
        ),
        (
            "/private-uri.json",
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://10.0.0.1/k"}),
            "jwks_uri:",
        ),
    ] {
        let id = docs.document(path, extra);
        let (_, challenge) = pkce();
        let r = app
            .authorize_get(&b, &authorize_params(&id, &challenge))
            .await;
        assert_eq!(r.status(), 400, "{path}");
        let html = r.text().await.expect("html");
        assert!(html.contains(needle), "{path}: {needle:?} not in {html}");
    }
}
