//! RFC 8707 `resource` at the grants `resources.rs` does not drive (docs/spec.md §8,
//! docs/security.md F4, J1): the device flow — the device authorization request names
//! the resources, the person sees them on the device consent page, the device-code token
//! is for them, a poll may narrow them but not widen them — and `client_credentials`
//! with an unknown or malformed resource.

use serde_json::{Value, json};
use tessera::clients::{GrantType, NewClient};
use tessera::scope::ScopeSet;

use crate::helpers::oauth::{WebClient, json as json_of};
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::resources::{MCP, TOOLS, aud, resource_server_with};

crate::on_both_backends!(
    j1_f4_a_device_code_token_is_for_the_resources_the_person_approved,
    f4_client_credentials_with_an_unknown_or_malformed_resource_is_invalid_target,
);

const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `POST /oauth/device_authorization` for the public `client` with `resources`.
async fn start(app: &TestApp, client: &WebClient, resources: &[&str]) -> (u16, Value) {
    let mut form = vec![
        ("client_id", client.id.as_str()),
        ("scope", "inference:read offline_access"),
    ];
    form.extend(resources.iter().map(|r| ("resource", *r)));
    let body = serde_urlencoded::to_string(&form).expect("form");
    json_of(
        app.post_form("/oauth/device_authorization", None, &body)
            .await,
    )
    .await
}

/// One poll of the token endpoint with `resources`.
async fn poll(
    app: &TestApp,
    client: &WebClient,
    device_code: &str,
    resources: &[&str],
) -> (u16, Value) {
    let mut params = vec![("grant_type", DEVICE), ("device_code", device_code)];
    params.extend(resources.iter().map(|r| ("resource", *r)));
    json_of(app.token(client, &params).await).await
}

/// `client_credentials` for `client` with `resources`.
async fn client_credentials(app: &TestApp, client: &WebClient, resources: &[&str]) -> (u16, Value) {
    let mut params = vec![("grant_type", "client_credentials")];
    params.extend(resources.iter().map(|r| ("resource", *r)));
    json_of(app.token(client, &params).await).await
}

/// The resources listed on a consent page (`<ul id="resources">`), in order.
pub(crate) fn listed_resources(html: &str) -> Vec<String> {
    let Some(start) = html.find("<ul id=\"resources\">") else {
        return Vec::new();
    };
    let list = &html[start..start + html[start..].find("</ul>").expect("end of list")];
    list.split("<li><code>")
        .skip(1)
        .map(|item| item[..item.find("</code>").expect("code")].to_string())
        .collect()
}

/// A fresh person signs in, opens `verification_uri_complete`, confirms the code, and
/// approves on the device consent page; returns that consent page.
async fn approve(app: &TestApp, d: &Value) -> String {
    let email = format!(
        "{}@example.com",
        tessera::crypto::random_base62(10).to_lowercase()
    );
    let b = app.user(&email).await;
    let complete = d["verification_uri_complete"].as_str().expect("complete");
    let (page, _) = crate::device::consent_page(app, &b, complete).await;
    crate::device::approve_on(&app.address, &b, &page).await;
    page
}

/// docs/spec.md §8 (`resource` at every grant; the consent page lists the resources) and
/// §9: the device authorization request names one resource, or two (J1: `resource`
/// repeats); the device consent page lists exactly them; the device-code token's `aud` is
/// that resource (a string) or both (an array), and its refresh keeps them. A poll may ask
/// for a subset; one asking for a resource outside the grant is `invalid_target` and the
/// device code stays usable. Without `resource`: the default audience, and no list.
async fn j1_f4_a_device_code_token_is_for_the_resources_the_person_approved(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    resource_server_with(&app, &[MCP, TOOLS]);
    let (id, secret) = app.register(NewClient {
        name: "Example CLI".into(),
        public: true,
        grant_types: Some(vec![GrantType::DeviceCode, GrantType::RefreshToken]),
        scope: Some(ScopeSet::parse("inference:read offline_access").expect("scope")),
        ..Default::default()
    });
    let client = WebClient { id, secret };

    // One resource.
    let (status, d) = start(&app, &client, &[MCP]).await;
    assert_eq!(status, 200, "{d}");
    let page = approve(&app, &d).await;
    assert_eq!(listed_resources(&page), [MCP], "{page}");
    let device_code = d["device_code"].as_str().expect("device_code");
    let (status, tokens) = poll(&app, &client, device_code, &[]).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(aud(&tokens), json!(MCP));
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let (status, refreshed) = json_of(app.refresh(&client, rt).await).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(aud(&refreshed), json!(MCP), "the grant keeps its resource");

    // Two resources; a poll for a resource outside them is refused without using the
    // code up; a poll for one of them narrows the token to it.
    let (status, d) = start(&app, &client, &[MCP, TOOLS]).await;
    assert_eq!(status, 200, "{d}");
    let page = approve(&app, &d).await;
    assert_eq!(listed_resources(&page), [MCP, TOOLS], "{page}");
    let device_code = d["device_code"].as_str().expect("device_code");
    let api = format!("{}/api/v1", app.state.issuer);
    let (status, e) = poll(&app, &client, device_code, &[MCP, api.as_str()]).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_target")),
        "{e}"
    );
    app.clock.advance(6);
    let (status, tokens) = poll(&app, &client, device_code, &[TOOLS]).await;
    assert_eq!(status, 200, "the refusal left the code usable: {tokens}");
    assert_eq!(aud(&tokens), json!(TOOLS));
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let (status, refreshed) = json_of(app.refresh(&client, rt).await).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(
        aud(&refreshed),
        json!([MCP, TOOLS]),
        "the grant's resources"
    );

    // Both, in another order and one repeated: the same set (sorted, once each), on the
    // page and in the token.
    let (status, d) = start(&app, &client, &[TOOLS, MCP, TOOLS]).await;
    assert_eq!(status, 200, "{d}");
    let page = approve(&app, &d).await;
    assert_eq!(listed_resources(&page), [MCP, TOOLS], "{page}");
    let device_code = d["device_code"].as_str().expect("device_code");
    let (status, tokens) = poll(&app, &client, device_code, &[]).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(aud(&tokens), json!([MCP, TOOLS]));

    // No resource: the default audience; the page lists none.
    let (status, d) = start(&app, &client, &[]).await;
    assert_eq!(status, 200, "{d}");
    let page = approve(&app, &d).await;
    assert!(listed_resources(&page).is_empty(), "{page}");
    assert!(!page.contains(MCP) && !page.contains(TOOLS), "{page}");
    let device_code = d["device_code"].as_str().expect("device_code");
    let (status, tokens) = poll(&app, &client, device_code, &[]).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(aud(&tokens), json!(app.state.issuer));
}

/// docs/spec.md §8: at `client_credentials` an unknown or malformed `resource` is 400
/// `invalid_target` (also beside a known one); a known one — registered, or tessera's own
/// `<issuer>/api/v1` — sets `aud`, and the client is unaffected by the refusals.
async fn f4_client_credentials_with_an_unknown_or_malformed_resource_is_invalid_target(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    resource_server_with(&app, &[MCP]);
    let (id, secret) = app.machine_client("inference:read");
    let machine = WebClient {
        id,
        secret: Some(secret),
    };
    for (what, resources) in [
        ("unknown", vec!["https://unknown.example.com/mcp"]),
        (
            "unknown beside a known one",
            vec![MCP, "https://unknown.example.com/"],
        ),
        (
            "a known one with a trailing slash",
            vec!["https://mcp.example.com/mcp/"],
        ),
        ("relative", vec!["/mcp"]),
        ("with a fragment", vec!["https://mcp.example.com/mcp#tools"]),
        ("not a URI", vec!["not a uri"]),
    ] {
        let (status, body) = client_credentials(&app, &machine, &resources).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_target", "{what}: {body}");
        assert!(body.get("access_token").is_none(), "{what}: {body}");
    }
    // A malformed one is named for what is wrong with it.
    let long = format!("https://mcp.example.com/{}", "a".repeat(2000));
    for (resource, description) in [
        (
            long.as_str(),
            "resource must be 1 to 2000 characters, without spaces or control characters.",
        ),
        ("/mcp", "resource must be an absolute URI."),
        (
            "https://mcp.example.com/mcp#tools",
            "resource must not have a fragment.",
        ),
    ] {
        let (status, body) = client_credentials(&app, &machine, &[resource]).await;
        assert_eq!(
            (status, body["error_description"].as_str()),
            (400, Some(description)),
            "{body}"
        );
    }
    let (status, body) = client_credentials(&app, &machine, &[MCP]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(aud(&body), json!(MCP));
    let api = format!("{}/api/v1", app.state.issuer);
    let (status, body) = client_credentials(&app, &machine, &[api.as_str()]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(aud(&body), json!(api));
    let (status, body) = client_credentials(&app, &machine, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(aud(&body), json!(app.state.issuer));
}
