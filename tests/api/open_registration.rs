//! Open dynamic registration and `localhost` loopback redirect URIs (docs/spec.md §8):
//! `--registration open` lets an MCP client with nothing pre-registered register a public
//! code-flow client without a credential, never `admin`, at most 10 per IP per hour; the
//! janitor deletes such clients once idle (docs/security.md A2, A7, D3, D10).

use reqwest::Method;
use serde_json::{Value, json};
use tessera::clients::open_registration::RegistrationMode;
use tessera::clock::Clock as _;

use crate::helpers::api::{Answer, answer};
use crate::helpers::oauth::{WebClient, json, pkce, query_param};
use crate::helpers::{Backend, TestApp, TestDb, spawn_app, spawn_app_with};
use crate::mcp_registration::register;

crate::on_both_backends!(
    d10_open_registration_makes_public_code_flow_clients_without_admin,
    a2_a_public_localhost_client_completes_the_code_flow_on_any_port,
    open_registration_is_limited_to_10_per_ip_per_hour,
    k4_open_registrations_at_once_still_stop_at_10,
    the_janitor_deletes_idle_openly_registered_clients,
);

/// A server with `--registration open`.
async fn open_app(backend: Backend) -> Option<TestApp> {
    let db = TestDb::create(backend)?;
    let mut settings = db.settings();
    settings.registration = RegistrationMode::Open;
    Some(spawn_app_with(db, settings).await)
}

fn public_client(redirect: &str) -> Value {
    json!({
        "client_name": "MCP client",
        "redirect_uris": [redirect],
        "token_endpoint_auth_method": "none",
    })
}

async fn d10_open_registration_makes_public_code_flow_clients_without_admin(backend: Backend) {
    // Authenticated (the default): no credential is 401 with a Bearer challenge.
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert_eq!(
        app.state.settings.registration,
        RegistrationMode::Authenticated
    );
    let a = register(&app, None, public_client("http://localhost/cb")).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(
        a.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "{:?}",
        a.header("www-authenticate")
    );
    assert_eq!(a.body["error"], "invalid_token");
    drop(app);

    let Some(app) = open_app(backend).await else {
        return;
    };
    let a = register(&app, None, public_client("http://localhost/cb")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["token_endpoint_auth_method"], "none");
    assert!(a.body.get("client_secret").is_none());
    assert_eq!(
        a.body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    let scope = a.body["scope"].as_str().expect("scope");
    assert!(!scope.split(' ').any(|s| s == "admin"), "D10: {scope}");
    let id = a.body["client_id"].as_str().expect("id").to_string();
    let rat = a.body["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_string();

    // What an open registration may not be, each named in an RFC 7591 §3.2.2 error.
    for (body, field) in [
        (
            json!({"redirect_uris": ["https://app.example/cb"]}),
            "token_endpoint_auth_method",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            "token_endpoint_auth_method",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none",
                   "grant_types": ["authorization_code", "client_credentials"]}),
            "grant_types",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none",
                   "scope": "inference:read admin"}),
            "scope",
        ),
        (
            json!({"token_endpoint_auth_method": "none", "resource_server": true,
                   "resources": ["https://mcp.example/"]}),
            "resource",
        ),
    ] {
        let a = register(&app, None, body.clone()).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(a.body["error"], "invalid_client_metadata", "{body}");
        let d = a.body["error_description"].as_str().expect("description");
        assert!(d.contains(field), "{body}: {d}");
    }
    // A credential that is present is checked as ever: a bad one is 401, never the open
    // path.
    let a = register(&app, Some("garbage"), public_client("http://localhost/cb")).await;
    assert_eq!(a.status, 401, "{}", a.body);

    // RFC 7592 updates keep the same rules.
    let update = |body: Value| {
        let app = &app;
        let (id, rat) = (id.clone(), rat.clone());
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
    let a: Answer = update(
        json!({"client_id": id, "redirect_uris": ["http://localhost/cb"],
        "token_endpoint_auth_method": "none", "scope": "admin"}),
    )
    .await;
    assert_eq!(a.status, 400, "D10: {}", a.body);
    let a = update(
        json!({"client_id": id, "redirect_uris": ["http://localhost/cb"],
        "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = update(
        json!({"client_id": id, "redirect_uris": ["http://localhost/other"],
        "token_endpoint_auth_method": "none", "client_name": "renamed"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["redirect_uris"], json!(["http://localhost/other"]));
    // And RFC 7592 delete works for a client of no organization.
    let r = reqwest::Client::new()
        .delete(format!("{}/oauth/register/{id}", app.address))
        .bearer_auth(&rat)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
}

/// Registers a public client openly and runs the code flow with `redirect` (whose port
/// may differ from the registered one): the token answer.
async fn public_flow(app: &TestApp, id: &str, redirect: &str, email: &str) -> (u16, Value) {
    let b = app.user(email).await;
    let (verifier, challenge) = pkce();
    let location = app
        .consent(
            &b,
            &[
                ("response_type", "code"),
                ("client_id", id),
                ("redirect_uri", redirect),
                ("scope", "inference:read"),
                ("state", "s1"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert!(location.starts_with(redirect), "{location}");
    let code = query_param(&location, "code").expect("code");
    let client = WebClient {
        id: id.to_string(),
        secret: None,
    };
    json(
        app.token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
            ],
        )
        .await,
    )
    .await
}

async fn a2_a_public_localhost_client_completes_the_code_flow_on_any_port(backend: Backend) {
    let Some(app) = open_app(backend).await else {
        return;
    };
    let a = register(&app, None, public_client("http://localhost/callback")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body["client_id"].as_str().expect("id").to_string();
    let (status, tokens) = public_flow(
        &app,
        &id,
        "http://localhost:53682/callback",
        "loopback@example.com",
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string());
    // Only the port may vary (A2): another path or host is refused before any redirect.
    let b = app.user("loopback2@example.com").await;
    let (_, challenge) = pkce();
    for bad in [
        "http://localhost:53682/other",
        "http://127.0.0.1:53682/callback",
        "http://localhost.evil.test:53682/callback",
    ] {
        let r = app
            .authorize_get(
                &b,
                &[
                    ("response_type", "code"),
                    ("client_id", &id),
                    ("redirect_uri", bad),
                    ("scope", "inference:read"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .await;
        assert_eq!(r.status(), 400, "A2: {bad}");
    }
    // A7: a confidential client may not use localhost (it may resolve elsewhere).
    let admin = app.api_key(
        &app.org(tessera::orgs::Plan::Free),
        crate::helpers::api::KeySpec::default(),
    );
    let a = register(
        &app,
        Some(&admin.key),
        json!({"redirect_uris": ["http://localhost/cb"]}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["error"], "invalid_redirect_uri");
    let a = register(
        &app,
        Some(&admin.key),
        json!({"redirect_uris": ["http://localhost:8080/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
}

async fn open_registration_is_limited_to_10_per_ip_per_hour(backend: Backend) {
    let Some(app) = open_app(backend).await else {
        return;
    };
    let t0 = app.clock.now();
    for i in 0..10 {
        app.clock.set(t0 + i * 60);
        let a = register(&app, None, public_client("http://localhost/cb")).await;
        assert_eq!(a.status, 201, "registration {i}: {}", a.body);
    }
    app.clock.set(t0 + 1800);
    let a = register(&app, None, public_client("http://localhost/cb")).await;
    assert_eq!(a.status, 429, "{}", a.body);
    // The first registration leaves the window at t0 + 3600.
    assert_eq!(a.header_i64("retry-after"), 1800);
    assert!(a.body["error"].is_string(), "OAuth-shaped: {}", a.body);
    // A credential-bearing registration is not limited by it.
    let admin = app.api_key(
        &app.org(tessera::orgs::Plan::Free),
        crate::helpers::api::KeySpec::default(),
    );
    let a = register(
        &app,
        Some(&admin.key),
        json!({"redirect_uris": ["https://app.example/cb"]}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    app.clock.set(t0 + 3601);
    let a = register(&app, None, public_client("http://localhost/cb")).await;
    assert_eq!(a.status, 201, "{}", a.body);
}

/// Twenty registrations from one address at the same moment: exactly ten get a client
/// (PostgreSQL's READ COMMITTED would let two see nine without the per-IP lock).
async fn k4_open_registrations_at_once_still_stop_at_10(backend: Backend) {
    let Some(app) = open_app(backend).await else {
        return;
    };
    let calls = (0..20).map(|_| register(&app, None, public_client("http://localhost/cb")));
    let answers = futures_util::future::join_all(calls).await;
    let made = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers.iter().filter(|a| a.status == 429).count();
    assert_eq!((made, refused), (10, 10));
}

async fn the_janitor_deletes_idle_openly_registered_clients(backend: Backend) {
    let Some(app) = open_app(backend).await else {
        return;
    };
    assert_eq!(app.state.settings.open_registration_idle_days, 30);
    let t0 = app.clock.now();
    let idle = register(&app, None, public_client("http://localhost/cb")).await;
    let used = register(&app, None, public_client("http://localhost/cb")).await;
    let idle = idle.body["client_id"].as_str().expect("id").to_string();
    let used = used.body["client_id"].as_str().expect("id").to_string();
    // The used one obtains a token on day 20.
    app.clock.set(t0 + 20 * 86_400);
    let (status, _) =
        public_flow(&app, &used, "http://localhost:4000/cb", "idle@example.com").await;
    assert_eq!(status, 200);

    let retention = tessera::janitor::Retention::from_settings(&app.state.settings);
    let mut conn = app.state.pool.get().expect("conn");
    // Day 29: nothing is idle for 30 days yet.
    let swept = tessera::janitor::sweep(&mut conn, &retention, t0 + 29 * 86_400).expect("sweep");
    assert_eq!(swept.get("clients"), 0);
    // Day 31: the idle one goes; the used one stays.
    let swept = tessera::janitor::sweep(&mut conn, &retention, t0 + 31 * 86_400).expect("sweep");
    assert_eq!(swept.get("clients"), 1);
    assert!(
        tessera::clients::store::find(&mut conn, &idle)
            .expect("query")
            .is_none()
    );
    assert!(
        tessera::clients::store::find(&mut conn, &used)
            .expect("query")
            .is_some()
    );
    // Day 51: the used one has been idle for 31 days (its grant and refresh token date
    // from day 20), and goes too.
    let swept = tessera::janitor::sweep(&mut conn, &retention, t0 + 51 * 86_400).expect("sweep");
    assert_eq!(swept.get("clients"), 1);
    assert!(
        tessera::clients::store::find(&mut conn, &used)
            .expect("query")
            .is_none()
    );
}
