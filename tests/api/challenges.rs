//! Authentication schemes and challenges on every authenticated endpoint (docs/spec.md §3:
//! every 401 carries `WWW-Authenticate`, RFC 9110 §15.5.2; schemes are case-insensitive,
//! RFC 9110 §11.1).

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use tessera::api_keys::store::Expiry;
use tessera::orgs::Plan;

use crate::helpers::api::{Answer, KeySpec, answer};
use crate::helpers::oauth::REDIRECT;
use crate::helpers::{Backend, TestApp, spawn_app};

crate::on_both_backends!(
    d4_i4_every_401_carries_a_challenge_of_the_endpoints_scheme,
    authentication_schemes_are_case_insensitive_everywhere,
);

const BASIC: &str = r#"Basic realm="tessera""#;
const BEARER: &str = r#"Bearer realm="tessera""#;

/// One request: method, path, `Authorization` value, body (form text or JSON).
struct Call<'a> {
    method: Method,
    path: String,
    authorization: Option<String>,
    form: Option<&'a str>,
    json: Option<Value>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            authorization: None,
            form: None,
            json: None,
        }
    }
    fn auth(mut self, value: impl Into<String>) -> Self {
        self.authorization = Some(value.into());
        self
    }
    fn form(mut self, body: &'a str) -> Self {
        self.form = Some(body);
        self
    }
    fn json(mut self, body: Value) -> Self {
        self.json = Some(body);
        self
    }
    async fn send(&self, app: &TestApp) -> Answer {
        let mut r = app
            .http
            .request(self.method.clone(), format!("{}{}", app.address, self.path));
        if let Some(a) = &self.authorization {
            r = r.header("Authorization", a);
        }
        if let Some(f) = self.form {
            r = r
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(f.to_string());
        }
        if let Some(j) = &self.json {
            r = r.json(j);
        }
        answer(r.send().await.expect("request")).await
    }
}

fn basic(scheme: &str, id: &str, secret: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("{scheme} {encoded}")
}

/// A client registered over RFC 7591: (client id, registration access token).
async fn registered(app: &TestApp, admin: &str) -> (String, String) {
    let a = Call::new(Method::POST, "/oauth/register")
        .auth(format!("Bearer {admin}"))
        .json(registration_body())
        .send(app)
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    (
        a.body["client_id"].as_str().expect("id").to_string(),
        a.body["registration_access_token"]
            .as_str()
            .expect("token")
            .to_string(),
    )
}

fn registration_body() -> Value {
    json!({
        "client_name": "Registered App",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "inference:read"
    })
}

/// Walks every endpoint that can answer 401, in every way a caller can fail to
/// authenticate there, and requires the challenge of that endpoint's scheme: HTTP Basic
/// where clients and resource servers authenticate (RFC 6749 §2.3.1, §5.2), Bearer where
/// bearer credentials are taken (RFC 6750 §3).
async fn d4_i4_every_401_carries_a_challenge_of_the_endpoints_scheme(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (machine, secret) = app.machine_client("inference:read");
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let revoked = app.api_key(&org, KeySpec::default());
    let del = app
        .api(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", revoked.id),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    let expiring = app.api_key(
        &org,
        KeySpec {
            expiry: Expiry::InDays(1),
            ..Default::default()
        },
    );
    let (registered_id, registration_token) = registered(&app, &admin.key).await;
    app.clock.advance(2 * 86_400);

    let wrong_basic = basic("Basic", &machine, "wrong-secret");
    let unknown_basic = basic("Basic", "cli_unknown", "x");
    let cc = "grant_type=client_credentials".to_string();
    let cc_post_wrong = format!("{cc}&client_id={machine}&client_secret=wrong");
    let cc_none = format!("{cc}&client_id={machine}");
    let cc_unknown = format!("{cc}&client_id=cli_unknown&client_secret=x");
    let tok = "token=abc".to_string();
    let tok_post_wrong = format!("{tok}&client_id={}&client_secret=wrong", rs.0);
    let tok_none = format!("{tok}&client_id={}", rs.0);

    let mut basic_calls: Vec<(&str, Call<'_>)> = Vec::new();
    for (endpoint, body, post_wrong, none) in [
        ("/oauth/token", &cc, &cc_post_wrong, &cc_none),
        ("/oauth/introspect", &tok, &tok_post_wrong, &tok_none),
        ("/oauth/revoke", &tok, &tok_post_wrong, &tok_none),
    ] {
        basic_calls.extend([
            (
                "no client authentication",
                Call::new(Method::POST, endpoint).form(body),
            ),
            (
                "client_secret_basic, wrong secret",
                Call::new(Method::POST, endpoint)
                    .auth(wrong_basic.clone())
                    .form(body),
            ),
            (
                "client_secret_basic, unknown client",
                Call::new(Method::POST, endpoint)
                    .auth(unknown_basic.clone())
                    .form(body),
            ),
            (
                "client_secret_basic, not base64",
                Call::new(Method::POST, endpoint)
                    .auth("Basic !!!")
                    .form(body),
            ),
            (
                "a Bearer credential",
                Call::new(Method::POST, endpoint)
                    .auth(format!("Bearer {}", admin.key))
                    .form(body),
            ),
            (
                "client_secret_post, wrong secret",
                Call::new(Method::POST, endpoint).form(post_wrong),
            ),
            (
                "none for a confidential client",
                Call::new(Method::POST, endpoint).form(none),
            ),
        ]);
    }
    basic_calls.push((
        "client_secret_post, unknown client",
        Call::new(Method::POST, "/oauth/token").form(&cc_unknown),
    ));
    let verify = || Call::new(Method::POST, "/api/v1/keys/verify").json(json!({"key": "x"}));
    basic_calls.extend([
        ("verify, no credential", verify()),
        (
            "verify, wrong secret",
            verify().auth(basic("Basic", &rs.0, "wrong")),
        ),
        (
            "verify, unknown client",
            verify().auth(unknown_basic.clone()),
        ),
        (
            "verify, a Bearer credential",
            verify().auth(format!("Bearer {}", admin.key)),
        ),
    ]);
    for (what, call) in &basic_calls {
        let a = call.send(&app).await;
        assert_eq!(a.status, 401, "{} {}: {what}", call.method, call.path);
        let challenge = a.header("www-authenticate").unwrap_or_else(|| {
            panic!("{} {}: {what}: no WWW-Authenticate", call.method, call.path)
        });
        assert!(
            challenge.starts_with(BASIC),
            "{} {}: {what}: {challenge}",
            call.method,
            call.path
        );
    }
    // The answer is one for every cause (docs/security.md D4): same body, same challenge.
    let one = Call::new(Method::POST, "/oauth/token")
        .form(&cc_post_wrong)
        .send(&app)
        .await;
    let other = Call::new(Method::POST, "/oauth/token")
        .auth(wrong_basic.clone())
        .form(&cc)
        .send(&app)
        .await;
    assert_eq!(one.body, other.body);
    assert_eq!(
        one.header("www-authenticate"),
        other.header("www-authenticate")
    );
    let _ = secret;

    // Bearer endpoints: every /api/v1 route that needs a credential, and registration.
    let bearer_routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/v1/api-keys".into(), None),
        (
            Method::POST,
            "/api/v1/api-keys".into(),
            Some(json!({"name": "k", "scopes": ["inference:read"], "type": "secret"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/api-keys/{}", admin.id),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/api-keys/{}/roll", admin.id),
            Some(json!({})),
        ),
        (Method::GET, "/api/v1/clients".into(), None),
        (
            Method::POST,
            "/api/v1/clients".into(),
            Some(json!({"name": "c"})),
        ),
        (Method::GET, format!("/api/v1/clients/{machine}"), None),
        (
            Method::PUT,
            format!("/api/v1/clients/{machine}"),
            Some(json!({"name": "c"})),
        ),
        (Method::DELETE, format!("/api/v1/clients/{machine}"), None),
        (
            Method::POST,
            format!("/api/v1/clients/{machine}/secret"),
            Some(json!({})),
        ),
        (Method::GET, format!("/api/v1/orgs/{org}/members"), None),
        (
            Method::POST,
            format!("/api/v1/orgs/{org}/members"),
            Some(json!({"email": "x@example.com", "role": "member"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/orgs/{org}/members/usr_x"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/orgs/{org}/members/usr_x"),
            None,
        ),
        (
            Method::POST,
            "/oauth/register".into(),
            Some(registration_body()),
        ),
    ];
    let failures: Vec<(&str, Option<String>)> = vec![
        ("no credential", None),
        ("garbage", Some("Bearer garbage".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("a revoked key", Some(format!("Bearer {}", revoked.key))),
        ("an expired key", Some(format!("Bearer {}", expiring.key))),
        ("a forged JWT", Some("Bearer a.b.c".into())),
        ("Basic credentials", Some(basic("Basic", &machine, "x"))),
    ];
    for (method, path, body) in &bearer_routes {
        for (what, auth) in &failures {
            let mut call = Call::new(method.clone(), path.clone());
            if let Some(a) = auth {
                call = call.auth(a.clone());
            }
            if let Some(b) = body {
                call = call.json(b.clone());
            }
            let a = call.send(&app).await;
            assert_eq!(a.status, 401, "{method} {path}: {what}: {}", a.body);
            let challenge = a
                .header("www-authenticate")
                .unwrap_or_else(|| panic!("{method} {path}: {what}: no WWW-Authenticate"));
            assert!(
                challenge.starts_with(BEARER),
                "{method} {path}: {what}: {challenge}"
            );
            if auth
                .as_deref()
                .is_some_and(|a| a.starts_with("Bearer ") && a.len() > 7)
            {
                assert!(
                    challenge.contains(r#"error="invalid_token""#),
                    "{method} {path}: {what}: {challenge}"
                );
            }
            for h in ["x-ratelimit-limit", "x-ratelimit-remaining"] {
                assert_eq!(a.header(h), None, "{method} {path}: {what}: {h}");
            }
        }
    }
    // RFC 7592 with a registration access token that is missing or not this client's.
    let path = format!("/oauth/register/{registered_id}");
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        for auth in [
            None,
            Some("Bearer wrong".to_string()),
            Some(format!("Bearer {}", admin.key)),
            Some(basic("Basic", &registered_id, &registration_token)),
        ] {
            let mut call = Call::new(method.clone(), path.clone());
            if let Some(a) = &auth {
                call = call.auth(a.clone());
            }
            if method == Method::PUT {
                call = call.json(registration_body());
            }
            let a = call.send(&app).await;
            assert_eq!(a.status, 401, "{method} {path}: {auth:?}");
            assert!(
                a.header("www-authenticate")
                    .is_some_and(|c| c.starts_with(BEARER)),
                "{method} {path}: {auth:?}"
            );
        }
    }
}

/// `Basic`, `basic`, `BASIC`; `Bearer`, `bearer`, `BEARER`: one scheme each, wherever an
/// `Authorization` header is read (RFC 9110 §11.1).
async fn authentication_schemes_are_case_insensitive_everywhere(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (machine, secret) = app.machine_client("inference:read");
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
        let a = Call::new(Method::POST, "/oauth/token")
            .auth(basic(scheme, &machine, &secret))
            .form("grant_type=client_credentials")
            .send(&app)
            .await;
        assert_eq!(a.status, 200, "token, {scheme}: {}", a.body);
        let at = a.body["access_token"].as_str().expect("at").to_string();
        let body = format!("token={at}");
        let a = Call::new(Method::POST, "/oauth/introspect")
            .auth(basic(scheme, &rs.0, &rs.1))
            .form(&body)
            .send(&app)
            .await;
        assert_eq!(
            (a.status, &a.body["active"]),
            (200, &json!(true)),
            "introspect, {scheme}"
        );
        let a = Call::new(Method::POST, "/oauth/revoke")
            .auth(basic(scheme, &machine, &secret))
            .form(&body)
            .send(&app)
            .await;
        assert_eq!(a.status, 200, "revoke, {scheme}: {}", a.body);
        let a = Call::new(Method::POST, "/oauth/introspect")
            .auth(basic("Basic", &rs.0, &rs.1))
            .form(&body)
            .send(&app)
            .await;
        assert_eq!(a.body["active"], false, "revoked with {scheme}");
        let a = Call::new(Method::POST, "/api/v1/keys/verify")
            .auth(basic(scheme, &rs.0, &rs.1))
            .json(json!({"key": admin.key}))
            .send(&app)
            .await;
        assert_eq!(
            (a.status, &a.body["code"]),
            (200, &json!("VALID")),
            "verify, {scheme}"
        );
    }
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let a = Call::new(Method::GET, "/api/v1/api-keys")
            .auth(format!("{scheme} {}", admin.key))
            .send(&app)
            .await;
        assert_eq!(a.status, 200, "/api/v1, {scheme}: {}", a.body);
        let a = Call::new(Method::POST, "/oauth/register")
            .auth(format!("{scheme} {}", admin.key))
            .json(registration_body())
            .send(&app)
            .await;
        assert_eq!(a.status, 201, "register, {scheme}: {}", a.body);
        let id = a.body["client_id"].as_str().expect("id").to_string();
        let token = a.body["registration_access_token"]
            .as_str()
            .expect("t")
            .to_string();
        let a = Call::new(Method::GET, format!("/oauth/register/{id}"))
            .auth(format!("{scheme} {token}"))
            .send(&app)
            .await;
        assert_eq!(a.status, 200, "RFC 7592 read, {scheme}: {}", a.body);
    }
}
