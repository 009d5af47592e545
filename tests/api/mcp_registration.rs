//! MCP-ready registration (docs/spec.md §8): resource servers register their RFC 8707
//! resources over RFC 7591/7592, and remembered consent counts resources as well as
//! scopes (docs/security.md G2, A11).

use reqwest::Method;
use serde_json::{Value, json};
use tessera::orgs::Plan;

use crate::helpers::api::{Answer, KeySpec, answer};
use crate::helpers::oauth::{REDIRECT, pkce};
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::resources::{MCP, TOOLS, aud, auth_params, code_for, exchange};

crate::on_both_backends!(
    g2_rfc7591_a_resource_server_registers_its_resources,
    remembered_consent_without_a_resource_asks_again_for_it,
);

pub async fn register(app: &TestApp, bearer: Option<&str>, body: Value) -> Answer {
    let mut r = reqwest::Client::new()
        .post(format!("{}/oauth/register", app.address))
        .json(&body);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    answer(r.send().await.expect("register")).await
}

async fn g2_rfc7591_a_resource_server_registers_its_resources(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    // Validated like /api/v1/clients: malformed URIs, resources of a client that is not a
    // resource server, a public resource server.
    for (body, field) in [
        (
            json!({"resource_server": true, "resources": ["https://mcp.example/x#frag"]}),
            "resource",
        ),
        (
            json!({"resource_server": true, "resources": ["not a uri"]}),
            "resource",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "resources": [MCP]}),
            "resource",
        ),
        (
            json!({"resource_server": true, "token_endpoint_auth_method": "none", "resources": [MCP]}),
            "resource server",
        ),
    ] {
        let a = register(&app, Some(&admin.key), body.clone()).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(a.body["error"], "invalid_client_metadata", "{body}");
        let d = a.body["error_description"].as_str().expect("description");
        assert!(d.to_lowercase().contains(field), "{body}: {d}");
    }
    let a = register(
        &app,
        Some(&admin.key),
        json!({"client_name": "MCP server", "resource_server": true, "resources": [MCP]}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["resource_server"], true);
    assert_eq!(a.body["resources"], json!([MCP]));
    assert_eq!(a.body["grant_types"], json!([]));
    let rs = (
        a.body["client_id"].as_str().expect("id").to_string(),
        a.body["client_secret"]
            .as_str()
            .expect("secret")
            .to_string(),
    );
    let rat = a.body["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_string();
    // A resource belongs to one resource server.
    let a = register(
        &app,
        Some(&admin.key),
        json!({"resource_server": true, "resources": [MCP]}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["error"], "invalid_client_metadata");

    // A token for MCP: the registered resource server sees it; one for TOOLS (added by an
    // RFC 7592 update) too, and nothing else.
    let client = app.web_client("inference:read");
    let b = app.user("rs-reg@example.com").await;
    let (code, verifier) = code_for(&app, &b, &client, "inference:read", &[MCP]).await;
    let (status, tokens) = exchange(&app, &client, &code, &verifier, &[]).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(aud(&tokens), json!(MCP));
    let at = tokens["access_token"].as_str().expect("at").to_string();
    assert_eq!(app.introspect(&rs, &at).await["active"], true, "G2");

    let update = |body: Value| {
        let app = &app;
        let rat = rat.clone();
        let id = rs.0.clone();
        async move {
            answer(
                reqwest::Client::new()
                    .request(Method::PUT, format!("{}/oauth/register/{id}", app.address))
                    .bearer_auth(rat)
                    .json(&body)
                    .send()
                    .await
                    .expect("update"),
            )
            .await
        }
    };
    let a = update(json!({"client_id": rs.0, "resource_server": false})).await;
    assert_eq!(a.status, 400, "the kind cannot change: {}", a.body);
    let a = update(json!({"client_id": rs.0, "resources": [TOOLS]})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["resources"], json!([TOOLS]));
    assert_eq!(a.body["resource_server"], true);
    // Omitted: unchanged.
    let a = update(json!({"client_id": rs.0, "client_name": "renamed"})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["resources"], json!([TOOLS]));
    // MCP is no longer this server's: the token for it is not shown to it (G2).
    assert_eq!(
        app.introspect(&rs, &at).await,
        json!({"active": false}),
        "G2"
    );
}

/// GET /oauth/authorize for `client` with `resources`: the status (302: a code at once, 200:
/// the consent page).
async fn authorize_status(
    app: &TestApp,
    b: &reqwest::Client,
    client: &crate::helpers::oauth::WebClient,
    resources: &[&str],
) -> u16 {
    let (_, challenge) = pkce();
    let mut params = auth_params(client, "inference:read", &challenge);
    for r in resources {
        params.push(("resource".into(), r.to_string()));
    }
    let q = serde_urlencoded::to_string(&params).expect("query");
    b.get(format!("{}/oauth/authorize?{q}", app.address))
        .send()
        .await
        .expect("authorize")
        .status()
        .as_u16()
}

async fn remembered_consent_without_a_resource_asks_again_for_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    crate::resources::resource_server_with(&app, &[MCP, TOOLS]);
    let client = app.web_client("inference:read");
    let b = app.user("consent-res@example.com").await;
    // Consent for the scope with no resource.
    code_for(&app, &b, &client, "inference:read", &[]).await;
    assert_eq!(authorize_status(&app, &b, &client, &[]).await, 302);
    // The same scope for MCP: the consent page again, not a code.
    assert_eq!(authorize_status(&app, &b, &client, &[MCP]).await, 200);
    let (code, verifier) = code_for(&app, &b, &client, "inference:read", &[MCP]).await;
    let (status, tokens) = exchange(&app, &client, &code, &verifier, &[]).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(aud(&tokens), json!(MCP));
    // Now remembered for MCP; TOOLS (alone or beside MCP) still asks.
    assert_eq!(authorize_status(&app, &b, &client, &[MCP]).await, 302);
    assert_eq!(authorize_status(&app, &b, &client, &[TOOLS]).await, 200);
    assert_eq!(
        authorize_status(&app, &b, &client, &[MCP, TOOLS]).await,
        200
    );
    // Another user's consent counts for nobody else.
    let other = app.user("consent-res2@example.com").await;
    assert_eq!(authorize_status(&app, &other, &client, &[MCP]).await, 200);
}
