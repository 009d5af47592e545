//! The example inference API (examples/resource_server.rs) run against a real tessera:
//! what a resource server sees for good, revoked, under-scoped and rate-limited
//! credentials (docs/security.md G-group from the resource server's side, I3, I4, I6).

use serde_json::json;

use crate::helpers::api::{KeySpec, answer};
use crate::helpers::{Backend, TestApp, spawn_app};
use tessera::clock::Clock;
use tessera::orgs::Plan;

#[allow(dead_code)]
#[path = "../../examples/resource_server.rs"]
mod example;

crate::on_both_backends!(
    the_example_inference_api_accepts_and_refuses_what_it_should,
    rate_limit_headers_belong_to_live_keys_only,
    f4_g2_with_a_resource_uri_the_example_takes_only_tokens_for_it_and_publishes_rfc_9728_metadata,
    refused_own_credentials_are_a_500_naming_them_not_an_outage,
);

/// Boots the example on port 0 against `app`; returns its base URL.
fn start_example(app: &TestApp, rs: &(String, String)) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    start_example_on(app, rs, listener, None)
}

/// Boots the example on `listener`, with `resource` as its RFC 8707 resource URI.
pub fn start_example_on(
    app: &TestApp,
    rs: &(String, String),
    listener: std::net::TcpListener,
    resource: Option<String>,
) -> String {
    start_example_for(app.address.clone(), rs, listener, resource)
}

/// Boots the example on `listener` against the tessera at `tessera_url`.
fn start_example_for(
    tessera_url: String,
    rs: &(String, String),
    listener: std::net::TcpListener,
    resource: Option<String>,
) -> String {
    let guard = actix_web::web::Data::new(example::Guard::new(example::Config {
        tessera_url,
        client_id: rs.0.clone(),
        client_secret: rs.1.clone(),
        resource,
        // Every request asks tessera, so a revocation shows at once in the test.
        revocation_cache: std::time::Duration::ZERO,
        jwks_refetch_interval: std::time::Duration::ZERO,
    }));
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(guard.clone())
            .configure(example::routes)
    })
    .workers(1)
    .listen(listener)
    .expect("listen");
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    format!("http://{addr}")
}

async fn call(base: &str, post: bool, bearer: Option<&str>) -> crate::helpers::api::Answer {
    let c = reqwest::Client::new();
    let mut r = if post {
        c.post(format!("{base}/v1/chat/completions")).json(
            &json!({"model": "tessera-small", "messages": [{"role": "user", "content": "hi"}]}),
        )
    } else {
        c.get(format!("{base}/v1/models"))
    };
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    answer(r.send().await.expect("call")).await
}

async fn the_example_inference_api_accepts_and_refuses_what_it_should(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let base = start_example(&app, &rs);

    // No credential, garbage.
    let a = call(&base, false, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(r#"Bearer realm="inference""#)
    );
    let a = call(&base, false, Some("not.a.token")).await;
    assert_eq!(a.status, 401);
    assert!(
        a.header("www-authenticate")
            .expect("ch")
            .contains(r#"error="invalid_token""#)
    );

    // A user's access token with both scopes: 200 on both routes.
    let client = app.web_client("inference:read inference:write");
    let full = app
        .user_tokens(&client, "inference:read inference:write")
        .await;
    let at = full["access_token"].as_str().expect("at");
    assert_eq!(call(&base, false, Some(at)).await.status, 200);
    let a = call(&base, true, Some(at)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["object"], "chat.completion");

    // Lacking inference:write: reading works, posting is 403 naming the scope.
    let narrow = app.user_tokens(&client, "inference:read").await;
    let narrow_at = narrow["access_token"].as_str().expect("at");
    assert_eq!(call(&base, false, Some(narrow_at)).await.status, 200);
    let a = call(&base, true, Some(narrow_at)).await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.header("www-authenticate"),
        Some(r#"Bearer realm="inference", error="insufficient_scope", scope="inference:write""#)
    );

    // Revoked: the refresh token's grant is revoked, its access token goes with it.
    let body =
        serde_urlencoded::to_string([("token", full["refresh_token"].as_str().expect("rt"))])
            .expect("form");
    let r = app
        .post_form(
            "/oauth/revoke",
            Some((&client.id, client.secret.as_deref().expect("secret"))),
            &body,
        )
        .await;
    assert_eq!(r.status(), 200);
    let a = call(&base, false, Some(at)).await;
    assert_eq!(a.status, 401, "a revoked token is refused");

    // API keys go through /api/v1/keys/verify, with the rate-limit headers passed on.
    let org = app.org(Plan::Free);
    let reader = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            limit: Some(2),
            ..Default::default()
        },
    );
    let a = call(&base, false, Some(&reader.key)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(a.header("x-ratelimit-remaining"), Some("1"));
    let a = call(&base, true, Some(&reader.key)).await;
    assert_eq!(a.status, 403, "the key lacks inference:write");
    assert!(
        a.header("www-authenticate")
            .expect("ch")
            .contains("inference:write")
    );
    assert_eq!(call(&base, false, Some(&reader.key)).await.status, 200);
    let a = call(&base, false, Some(&reader.key)).await;
    assert_eq!(a.status, 429);
    assert!(a.header("retry-after").is_some());
    assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(a.body["error"]["type"], "rate_limit_error");

    let admin = app.api_key(&org, KeySpec::default());
    let writer = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:write",
            ..Default::default()
        },
    );
    assert_eq!(call(&base, true, Some(&writer.key)).await.status, 200);
    let del = app
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{}", writer.id),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    let a = call(&base, true, Some(&writer.key)).await;
    assert_eq!(a.status, 401, "a revoked key is refused");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("revoked")
    );

    // A signing-key rotation: a token signed by the new key names a kid the example has
    // not seen, and it fetches the JWKS again.
    tessera::commands::keys(
        &app.state.settings,
        tessera::cli::KeysCommand::Rotate,
        app.clock.now(),
    )
    .expect("rotate");
    app.clock.advance(3600);
    app.get("/.well-known/jwks.json").await; // tessera reloads its keys
    let rotated = app.user_tokens(&client, "inference:read").await;
    let rotated_at = rotated["access_token"].as_str().expect("at");
    assert_ne!(
        jsonwebtoken::decode_header(rotated_at).expect("h").kid,
        jsonwebtoken::decode_header(narrow_at).expect("h").kid
    );
    assert_eq!(call(&base, false, Some(rotated_at)).await.status, 200);
}

const RATE_HEADERS: [&str; 3] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

fn no_rate_headers(a: &crate::helpers::api::Answer, what: &str) {
    for h in RATE_HEADERS {
        assert_eq!(a.header(h), None, "{what}: {h}");
    }
}

/// docs/spec.md §5: X-RateLimit headers and the `ratelimit` body describe a live key's
/// budget; a revoked, expired or unknown key has none, at verify, at the example resource
/// server and on `/api/v1`.
async fn rate_limit_headers_belong_to_live_keys_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let base = start_example(&app, &rs);
    app.at_minute_start(1);
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let spent = app.api_key(
        &org,
        KeySpec {
            scopes: "admin inference:read",
            limit: Some(2),
            ..Default::default()
        },
    );
    // Live: the budget shows, also when the scope is missing.
    let a = call(&base, false, Some(&spent.key)).await;
    assert_eq!(
        (a.status, a.header("x-ratelimit-remaining")),
        (200, Some("1"))
    );
    let v = app
        .verify(&rs, json!({"key": spent.key, "scopes": ["analytics:read"]}))
        .await;
    assert_eq!(v.body["code"], "INSUFFICIENT_SCOPE");
    assert_eq!(v.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(v.body["ratelimit"]["remaining"], 1);
    let a = call(&base, false, Some(&spent.key)).await;
    assert_eq!(
        (a.status, a.header("x-ratelimit-remaining")),
        (200, Some("0"))
    );
    // The window is spent; then the key is revoked.
    let del = app
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{}", spent.id),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    let a = call(&base, false, Some(&spent.key)).await;
    assert_eq!(a.status, 401);
    no_rate_headers(&a, "example, revoked");
    let v = app.verify(&rs, json!({"key": spent.key})).await;
    assert_eq!((v.status, v.body["code"].as_str()), (200, Some("REVOKED")));
    assert_eq!(v.body["ratelimit"], serde_json::Value::Null);
    no_rate_headers(&v, "verify, revoked");
    let a = app
        .api(reqwest::Method::GET, "/api/v1/api-keys", &spent.key, None)
        .await;
    assert_eq!(a.status, 401);
    no_rate_headers(&a, "/api/v1, revoked");

    // Expired.
    let old = app.api_key(
        &org,
        KeySpec {
            expiry: tessera::api_keys::store::Expiry::InDays(1),
            ..Default::default()
        },
    );
    let a = app
        .api(reqwest::Method::GET, "/api/v1/api-keys", &old.key, None)
        .await;
    assert_eq!(a.status, 200);
    assert!(
        a.header("x-ratelimit-limit").is_some(),
        "live: budget shown"
    );
    app.clock.advance(2 * 86_400);
    let v = app.verify(&rs, json!({"key": old.key})).await;
    assert_eq!(v.body["code"], "EXPIRED");
    assert_eq!(v.body["ratelimit"], serde_json::Value::Null);
    no_rate_headers(&v, "verify, expired");
    let a = app
        .api(reqwest::Method::GET, "/api/v1/api-keys", &old.key, None)
        .await;
    assert_eq!(a.status, 401);
    no_rate_headers(&a, "/api/v1, expired");
    let a = call(&base, false, Some(&old.key)).await;
    assert_eq!(a.status, 401);
    no_rate_headers(&a, "example, expired");

    // Unknown.
    // The last character changed (to one it is not: a key ending in `x` stays itself).
    let last = if admin.key.ends_with('x') { 'y' } else { 'x' };
    let unknown = format!("{}{last}", &admin.key[..admin.key.len() - 1]);
    let v = app.verify(&rs, json!({"key": unknown})).await;
    assert_eq!(v.body["code"], "NOT_FOUND");
    no_rate_headers(&v, "verify, unknown");
    let a = app
        .api(reqwest::Method::GET, "/api/v1/api-keys", &unknown, None)
        .await;
    assert_eq!(a.status, 401);
    no_rate_headers(&a, "/api/v1, unknown");
}

/// docs/spec.md §8: the example as an MCP-style resource with its own resource URI. A token
/// for it is accepted; a token for tessera's default audience or another resource is
/// refused (F4 from the resource server's side; tessera's introspection shows it only its
/// own tokens, G2); its RFC 9728 metadata names tessera, and its 401s point at it.
async fn f4_g2_with_a_resource_uri_the_example_takes_only_tokens_for_it_and_publishes_rfc_9728_metadata(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let resource = format!("http://{}", listener.local_addr().expect("addr"));
    let rs = crate::resources::resource_server_with(&app, &[resource.as_str()]);
    crate::resources::resource_server_with(&app, &[crate::resources::MCP]);
    let base = start_example_on(&app, &rs, listener, Some(resource.clone()));

    let meta = reqwest::get(format!("{base}/.well-known/oauth-protected-resource"))
        .await
        .expect("metadata");
    assert_eq!(meta.status(), 200);
    let meta: serde_json::Value = meta.json().await.expect("json");
    assert_eq!(meta["resource"], resource.as_str());
    assert_eq!(meta["authorization_servers"], json!([app.address]));

    let a = call(&base, false, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(
            format!(
                r#"Bearer realm="inference", resource_metadata="{resource}/.well-known/oauth-protected-resource""#
            )
            .as_str()
        )
    );

    let client = app.web_client("inference:read inference:write");
    let b = app.user("mcp-rs@example.com").await;
    let mut statuses = Vec::new();
    for res in [Some(resource.as_str()), None, Some(crate::resources::MCP)] {
        let (verifier, challenge) = crate::helpers::oauth::pkce();
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", crate::helpers::oauth::REDIRECT),
            ("scope", "inference:read"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if let Some(r) = res {
            params.push(("resource", r));
        }
        let location = app.consent(&b, &params).await;
        let code = crate::helpers::oauth::query_param(&location, "code").expect("code");
        let tokens: serde_json::Value = app
            .exchange(&client, &code, &verifier)
            .await
            .json()
            .await
            .expect("json");
        let at = tokens["access_token"].as_str().expect("at");
        let a = call(&base, false, Some(at)).await;
        if a.status == 401 {
            let challenge = a.header("www-authenticate").expect("challenge");
            assert!(
                challenge.contains("resource_metadata="),
                "every 401 points at the metadata"
            );
            // The client learns why: the token's aud is another resource.
            assert!(
                challenge.contains("issued for another resource"),
                "{challenge}"
            );
        }
        statuses.push(a.status);
    }
    assert_eq!(
        statuses,
        [200, 401, 401],
        "only a token whose aud is this resource is accepted"
    );
}

/// Issue 18: tessera refusing the example's own client credentials (a wrong
/// RS_CLIENT_SECRET) is a configuration mistake, answered 500 "misconfigured" (and logged),
/// never 503 "cannot be reached"; a tessera that is really down stays 503.
async fn refused_own_credentials_are_a_500_naming_them_not_an_outage(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let wrong = (rs.0.clone(), format!("{}x", rs.1));
    let base = start_example(&app, &wrong);
    let org = app.org(Plan::Free);
    let key = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    let a = call(&base, false, Some(&key.key)).await;
    assert_eq!(a.status, 500, "key verification refused: {:?}", a.body);
    let message = a.body["error"]["message"].as_str().expect("message");
    assert!(message.contains("refused its credentials"), "{message}");
    let client = app.web_client("inference:read");
    let tokens = app.user_tokens(&client, "inference:read").await;
    let at = tokens["access_token"].as_str().expect("at");
    let a = call(&base, false, Some(at)).await;
    assert_eq!(a.status, 500, "introspection refused: {:?}", a.body);

    // The right credentials against an address where nothing listens: 503, retry.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nowhere = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = start_example_for(nowhere, &rs, listener, None);
    let a = call(&base, false, Some(&key.key)).await;
    assert_eq!(a.status, 503, "{:?}", a.body);
}
