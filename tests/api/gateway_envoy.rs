//! docs/spec.md §11: `X-Auth-Org-Id` of access tokens, and Envoy's form of the check (the
//! original path appended to `/gateway/check`). The rest of the gateway's tests, and its
//! route table, are in `tests/api/gateway.rs`.

use reqwest::Method;
use serde_json::Value;
use tessera::orgs::Plan;

use crate::gateway::{AUDIENCE, check, gateway_app};
use crate::helpers::api::{KeySpec, answer};
use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(
    gateway_access_tokens_carry_the_organization_of_their_client,
    gateway_envoy_appends_the_original_path_to_the_check,
);

/// A `client_credentials` token of a new client of `org` (or of no organization).
async fn org_client_token(app: &TestApp, org: Option<&str>, scope: &str) -> (String, String) {
    let (id, secret) = app.register(tessera::clients::NewClient {
        name: "Batch job".into(),
        grant_types: Some(vec![tessera::clients::GrantType::ClientCredentials]),
        scope: Some(tessera::scope::ScopeSet::parse(scope).expect("scope")),
        org_id: org.map(str::to_string),
        ..Default::default()
    });
    let secret = secret.expect("confidential");
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            &format!("grant_type=client_credentials&scope={scope}"),
        )
        .await;
    let body: Value = r.json().await.expect("token");
    let token = body["access_token"].as_str().expect("access token");
    (id, token.to_string())
}

/// docs/spec.md §11: `X-Auth-Org-Id` of an access token is its client's organization for a
/// `client_credentials` token, and absent for a user's token (a user may belong to several
/// organizations; the client's is the app developer's, not the caller's).
async fn gateway_access_tokens_carry_the_organization_of_their_client(backend: Backend) {
    let Some(app) = gateway_app(backend, Some(AUDIENCE)).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let (id, token) = org_client_token(&app, Some(&org), "inference:read").await;
    let spoof = [("X-Auth-Org-Id", "org_other")];
    for _ in 0..2 {
        // The second answer comes from the caches (token liveness, client organization).
        let a = check(&app, "GET", "/v1/models", Some(&token), &spoof).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(a.header("x-auth-org-id"), Some(org.as_str()));
        assert_eq!(a.header("x-auth-client-id"), Some(id.as_str()));
        assert_eq!(a.header("x-auth-subject"), Some(id.as_str()));
    }
    // A client of no organization (dynamic registration): no organization header.
    let (_, token) = org_client_token(&app, None, "inference:read").await;
    let a = check(&app, "GET", "/v1/models", Some(&token), &spoof).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert!(a.header("x-auth-org-id").is_none(), "{:?}", a.headers);
    // A user's token, from a client that has an organization: none either.
    let (web_id, web_secret) = app.register(tessera::clients::NewClient {
        name: "Example App".into(),
        redirect_uris: vec![crate::helpers::oauth::REDIRECT.into()],
        grant_types: Some(vec![
            tessera::clients::GrantType::AuthorizationCode,
            tessera::clients::GrantType::RefreshToken,
        ]),
        scope: Some(tessera::scope::ScopeSet::parse("inference:read").expect("scope")),
        org_id: Some(org.clone()),
        ..Default::default()
    });
    let web = crate::helpers::oauth::WebClient {
        id: web_id.clone(),
        secret: web_secret,
    };
    let tokens = app.user_tokens(&web, "inference:read").await;
    let user_token = tokens["access_token"].as_str().expect("access token");
    let a = check(&app, "GET", "/v1/models", Some(user_token), &spoof).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert!(a.header("x-auth-org-id").is_none(), "{:?}", a.headers);
    assert_eq!(a.header("x-auth-client-id"), Some(web_id.as_str()));
    assert!(
        a.header("x-auth-subject")
            .is_some_and(|s| s.starts_with("usr_")),
        "{:?}",
        a.headers
    );
}

/// Envoy `ext_authz` (HTTP) sends the original method to `/gateway/check` followed by the
/// original path and query; the one route of the table serves both forms.
async fn gateway_envoy_appends_the_original_path_to_the_check(backend: Backend) {
    let Some(app) = gateway_app(backend, None).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let key = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    let envoy = |method: Method, path: &str| {
        reqwest::Client::new()
            .request(method, format!("{}/gateway/check{path}", app.address))
            .bearer_auth(&key.key)
    };
    let a = answer(
        envoy(Method::GET, "/v1/models?limit=2")
            .send()
            .await
            .expect("check"),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.header("x-auth-key-id"), Some(key.id.as_str()));
    // The original method decides the route: POST needs inference:write.
    let a = answer(
        envoy(Method::POST, "/v1/chat/completions")
            .send()
            .await
            .expect("check"),
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(
        a.header("www-authenticate")
            .unwrap_or_default()
            .contains("insufficient_scope")
    );
    // Outside every route: 403 before the credential.
    let a = answer(envoy(Method::GET, "/admin").send().await.expect("check")).await;
    assert_eq!(a.status, 403);
    // `/gateway/check` itself without an original URI names what is missing.
    let a = answer(envoy(Method::GET, "").send().await.expect("check")).await;
    assert_eq!(a.status, 403);
    // A path that only begins like the check's is not the check.
    let r = envoy(Method::GET, "x/v1/models")
        .send()
        .await
        .expect("check");
    assert_eq!(r.status(), 404);
    // One entry in the route table.
    let table = tessera::http::route_table();
    assert_eq!(
        table
            .iter()
            .filter(|(p, _)| p.starts_with("/gateway/"))
            .map(|(p, _)| *p)
            .collect::<Vec<_>>(),
        vec!["/gateway/check"]
    );
}
