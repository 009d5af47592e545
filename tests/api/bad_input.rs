//! Bad input that can never be stored: a NUL character in any text that could reach the
//! database (forms, JSON bodies, registration metadata, query strings, path segments,
//! headers) is refused as a 400 in the shape of its endpoint, never a 5xx, on SQLite and
//! PostgreSQL alike (docs/security.md J4; `src/http/bad_input.rs`).

use std::io::{Read, Write};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::KeySpec;
use crate::helpers::oauth::REDIRECT;
use crate::helpers::{Backend, TestApp, hidden, spawn_app};

crate::on_both_backends!(
    j4_a_nul_character_is_bad_input_on_every_endpoint,
    validation_messages_name_the_field_and_the_valid_scopes,
);

/// What a refusal must look like.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `/api/v1`: `{"error": {"type": "invalid_request_error", "message"}}`.
    Api(&'static str),
    /// OAuth JSON `{"error": code, "error_description"}`.
    OAuth(u16, &'static str, &'static str),
    /// An HTML page with this text.
    Page(u16, &'static str),
    /// Exactly this status and body.
    Exactly(u16, &'static str),
}

struct Case {
    what: &'static str,
    request: reqwest::RequestBuilder,
    shape: Shape,
}

async fn check(case: Case) {
    let Case {
        what,
        request,
        shape,
    } = case;
    let r = request.send().await.expect("request");
    let status = r.status().as_u16();
    let location = r.headers().get("location").cloned();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().await.expect("body");
    assert!(status < 500, "{what}: {status} {text}");
    assert!(location.is_none(), "{what}: redirected");
    match shape {
        Shape::Api(message) => {
            let body: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(status, 400, "{what}: {text}");
            assert_eq!(body["error"]["type"], "invalid_request_error", "{what}");
            assert_eq!(body["error"]["message"], message, "{what}");
        }
        Shape::OAuth(expected, code, description) => {
            let body: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(status, expected, "{what}: {text}");
            assert_eq!(body["error"], code, "{what}: {text}");
            if !description.is_empty() {
                assert_eq!(body["error_description"], description, "{what}");
            }
            let d = body["error_description"].as_str().expect("description");
            assert!(tessera::error::is_description_text(d), "{what}: {d:?}");
        }
        Shape::Exactly(expected, body) => {
            assert_eq!(status, expected, "{what}: {text}");
            assert_eq!(text, body, "{what}");
        }
        Shape::Page(expected, needle) => {
            assert_eq!(status, expected, "{what}: {text}");
            assert!(
                content_type.starts_with("text/html"),
                "{what}: {content_type}"
            );
            assert!(text.contains(needle), "{what}: {text}");
        }
    }
}

const PATH: &str = "The URL path contains a NUL character, which is not allowed.";
const QUERY: &str = "The query string contains a NUL character, which is not allowed.";

async fn j4_a_nul_character_is_bad_input_on_every_endpoint(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let a = &app.address;
    let b = app.user("owner@example.com").await;
    let (org, user) = {
        let mut conn = app.state.pool.get().expect("conn");
        let user = tessera::users::store::find_by_email(&mut conn, "owner@example.com")
            .expect("query")
            .expect("user");
        let org = tessera::orgs::store::orgs_of(&mut conn, &user.id).expect("orgs")[0].clone();
        (org, user.id)
    };
    let key = app.api_key(&org, KeySpec::default()).key;
    let rs = app.resource_server();
    let web = app.web_client("inference:read");
    let http = reqwest::Client::new();
    let api = |m: Method, path: &str| http.request(m, format!("{a}{path}")).bearer_auth(&key);
    let registered = http
        .post(format!("{a}/oauth/register"))
        .bearer_auth(&key)
        .json(&json!({"client_name": "x", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .expect("register")
        .json::<Value>()
        .await
        .expect("json");
    let client_id = registered["client_id"].as_str().expect("id").to_string();
    let rat = registered["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_string();
    let field = |f: &str| format!("The field {f} contains a NUL character, which is not allowed.");
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };

    // Form tokens of a signed-in browser and of the login and signup pages.
    let csrf_of = |html: &str, anchor: &str| {
        let at = html.find(anchor).unwrap_or(0);
        hidden(&html[at..], "csrf_token")
    };
    let get_html = |path: String| {
        let b = b.clone();
        async move {
            b.get(path)
                .send()
                .await
                .expect("get")
                .text()
                .await
                .expect("html")
        }
    };
    let keys_csrf = csrf_of(&get_html(format!("{a}/settings/api-keys")).await, "");
    let clients_csrf = csrf_of(&get_html(format!("{a}/developer/clients")).await, "");
    let members_csrf = csrf_of(
        &get_html(format!("{a}/settings/members")).await,
        r#"id="invite-member""#,
    );
    let anon = app.browser();
    let login_csrf = hidden(
        &anon
            .get(format!("{a}/login"))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("html"),
        "csrf_token",
    );
    let anon_signup = app.browser();
    let signup_csrf = hidden(
        &anon_signup
            .get(format!("{a}/signup"))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("html"),
        "csrf_token",
    );

    let cases = vec![
        // /api/v1: JSON bodies name the field; paths and queries are refused whole.
        Case {
            what: "api-keys name",
            request: api(Method::POST, "/api/v1/api-keys")
                .json(&json!({"name": "a\u{0}", "scopes": ["inference:read"]})),
            shape: Shape::Api(leak(field("name"))),
        },
        Case {
            what: "api-keys scope",
            request: api(Method::POST, "/api/v1/api-keys")
                .json(&json!({"name": "a", "scopes": ["inference:read\u{0}"]})),
            shape: Shape::Api(leak(field("scopes[0]"))),
        },
        Case {
            what: "clients redirect_uris",
            request: api(Method::POST, "/api/v1/clients")
                .json(&json!({"name": "x", "redirect_uris": [format!("{REDIRECT}\u{0}")]})),
            shape: Shape::Api(leak(field("redirect_uris[0]"))),
        },
        Case {
            what: "clients update name",
            request: api(Method::PUT, &format!("/api/v1/clients/{client_id}"))
                .json(&json!({"name": "\u{0}", "redirect_uris": [REDIRECT]})),
            shape: Shape::Api(leak(field("name"))),
        },
        Case {
            what: "members email",
            request: api(Method::POST, &format!("/api/v1/orgs/{org}/members"))
                .json(&json!({"email": "a\u{0}@example.com", "role": "member"})),
            shape: Shape::Api(leak(field("email"))),
        },
        Case {
            what: "members role",
            request: api(Method::PATCH, &format!("/api/v1/orgs/{org}/members/{user}"))
                .json(&json!({"role": "admin\u{0}"})),
            shape: Shape::Api(leak(field("role"))),
        },
        Case {
            what: "verify key",
            request: http
                .post(format!("{a}/api/v1/keys/verify"))
                .basic_auth(&rs.0, Some(&rs.1))
                .json(&json!({"key": "tsr_sk_\u{0}"})),
            shape: Shape::Api(leak(field("key"))),
        },
        Case {
            what: "clients path",
            request: api(Method::GET, "/api/v1/clients/cli_a%00b"),
            shape: Shape::Api(PATH),
        },
        Case {
            what: "client secret path",
            request: api(Method::POST, "/api/v1/clients/cli_a%00b/secret"),
            shape: Shape::Api(PATH),
        },
        Case {
            what: "api-keys path",
            request: api(Method::DELETE, "/api/v1/api-keys/key_%00"),
            shape: Shape::Api(PATH),
        },
        Case {
            what: "roll path",
            request: api(Method::POST, "/api/v1/api-keys/key_%00/roll"),
            shape: Shape::Api(PATH),
        },
        Case {
            what: "members org path",
            request: api(Method::GET, "/api/v1/orgs/org_%00/members"),
            shape: Shape::Api(PATH),
        },
        Case {
            what: "member path",
            request: api(
                Method::DELETE,
                &format!("/api/v1/orgs/{org}/members/usr_%00?revoke_keys=true"),
            ),
            shape: Shape::Api(PATH),
        },
        Case {
            what: "api query",
            request: api(Method::GET, "/api/v1/api-keys?after=%00"),
            shape: Shape::Api(QUERY),
        },
        // Registration: OAuth error JSON.
        Case {
            what: "register client_name",
            request: http
                .post(format!("{a}/oauth/register"))
                .bearer_auth(&key)
                .json(&json!({"client_name": "a\u{0}", "redirect_uris": [REDIRECT]})),
            shape: Shape::OAuth(400, "invalid_client_metadata", leak(field("client_name"))),
        },
        Case {
            what: "register redirect_uris",
            request: http
                .post(format!("{a}/oauth/register"))
                .bearer_auth(&key)
                .json(&json!({"redirect_uris": [format!("{REDIRECT}\u{0}")]})),
            shape: Shape::OAuth(
                400,
                "invalid_client_metadata",
                leak(field("redirect_uris[0]")),
            ),
        },
        Case {
            what: "register update",
            request: http
                .put(format!("{a}/oauth/register/{client_id}"))
                .bearer_auth(&rat)
                .json(&json!({"client_id": client_id, "client_uri": "https://a.example/\u{0}", "redirect_uris": [REDIRECT]})),
            shape: Shape::OAuth(400, "invalid_client_metadata", leak(field("client_uri"))),
        },
        Case {
            what: "register path",
            request: http
                .get(format!("{a}/oauth/register/cli_%00"))
                .bearer_auth(&rat),
            shape: Shape::OAuth(400, "invalid_request", PATH),
        },
        // OAuth forms and credentials.
        Case {
            what: "token client_id",
            request: http
                .post(format!("{a}/oauth/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials&client_id=abc%00x&client_secret=s"),
            shape: Shape::OAuth(400, "invalid_request", ""),
        },
        Case {
            what: "token query",
            request: http
                .post(format!("{a}/oauth/token?x=%00"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials"),
            shape: Shape::OAuth(400, "invalid_request", QUERY),
        },
        Case {
            what: "token basic credentials",
            request: http
                .post(format!("{a}/oauth/token"))
                .basic_auth("abc%00x", Some("s"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials"),
            shape: Shape::OAuth(401, "invalid_client", ""),
        },
        Case {
            what: "introspect token",
            request: http
                .post(format!("{a}/oauth/introspect"))
                .basic_auth(&rs.0, Some(&rs.1))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("token=abc%00"),
            // RFC 7662 §2.2: a token that cannot be ours is simply inactive.
            shape: Shape::Exactly(200, r#"{"active":false}"#),
        },
        Case {
            what: "revoke token",
            request: http
                .post(format!("{a}/oauth/revoke"))
                .basic_auth(&web.id, web.secret.as_deref())
                .header("content-type", "application/x-www-form-urlencoded")
                .body("token=abc%00"),
            // RFC 7009 §2.2: an invalid token is answered 200, nothing revoked.
            shape: Shape::Exactly(200, ""),
        },
        // Pages: the login and signup forms come back with the message; signed-in forms
        // get a page naming the field; paths and queries an error page.
        Case {
            what: "login email",
            request: anon.post(format!("{a}/login")).form(&[
                ("email", "owner\u{0}@example.com"),
                ("password", "correct horse battery"),
                ("csrf_token", &login_csrf),
                ("return_to", "/"),
            ]),
            shape: Shape::Page(400, "The field email contains a NUL character"),
        },
        Case {
            what: "login password",
            request: anon.post(format!("{a}/login")).form(&[
                ("email", "owner@example.com"),
                ("password", "correct\u{0}"),
                ("csrf_token", &login_csrf),
            ]),
            shape: Shape::Page(400, r#"value="owner@example.com""#),
        },
        Case {
            what: "signup email",
            request: anon_signup.post(format!("{a}/signup")).form(&[
                ("email", "new\u{0}@example.com"),
                ("password", "correct horse battery"),
                ("csrf_token", &signup_csrf),
            ]),
            shape: Shape::Page(400, "The field email contains a NUL character"),
        },
        Case {
            what: "api key form",
            request: b.post(format!("{a}/settings/api-keys")).form(&[
                ("csrf_token", keys_csrf.as_str()),
                ("name", "a\u{0}"),
                ("type", "secret"),
                ("expiration", "30"),
                ("scope", "inference:read"),
            ]),
            shape: Shape::Page(400, "The field name contains a NUL character"),
        },
        Case {
            what: "client form",
            request: b.post(format!("{a}/developer/clients")).form(&[
                ("csrf_token", clients_csrf.as_str()),
                ("name", "x"),
                ("redirect_uris", &format!("{REDIRECT}\u{0}")),
                ("grant_type", "authorization_code"),
                ("scope", "inference:read"),
            ]),
            shape: Shape::Page(400, "The field redirect_uris contains a NUL character"),
        },
        Case {
            what: "members form",
            request: b.post(format!("{a}/settings/members")).form(&[
                ("csrf_token", members_csrf.as_str()),
                ("email", "x\u{0}@example.com"),
                ("role", "member"),
            ]),
            shape: Shape::Page(400, "The field email contains a NUL character"),
        },
        Case {
            what: "client page path",
            request: b.get(format!("{a}/developer/clients/cli_%00")),
            shape: Shape::Page(400, PATH),
        },
        Case {
            what: "client delete path",
            request: b
                .post(format!("{a}/developer/clients/cli_%00/delete"))
                .form(&[("csrf_token", "x")]),
            shape: Shape::Page(400, PATH),
        },
        Case {
            what: "key revoke path",
            request: b.get(format!("{a}/settings/api-keys/key_%00/revoke")),
            shape: Shape::Page(400, PATH),
        },
        Case {
            what: "login query",
            request: anon.get(format!("{a}/login?return_to=%2F%00")),
            shape: Shape::Page(400, QUERY),
        },
        Case {
            what: "authorize client_id",
            request: b.get(format!(
                "{a}/oauth/authorize?response_type=code&client_id=cli_%00&redirect_uri={}",
                url_encode(REDIRECT)
            )),
            shape: Shape::Page(400, "<html"),
        },
        // Forms whose token is bound to a value: a NUL makes the token wrong (403).
        Case {
            what: "consent request id",
            request: b.post(format!("{a}/oauth/authorize")).form(&[
                ("request", "req_\u{0}"),
                ("csrf_token", "x"),
                ("decision", "approve"),
            ]),
            shape: Shape::Page(403, "<html"),
        },
        Case {
            what: "logout token",
            request: b
                .post(format!("{a}/logout"))
                .form(&[("csrf_token", "\u{0}")]),
            shape: Shape::Page(403, "<html"),
        },
    ];
    for case in cases {
        check(case).await;
    }

    // Headers: the HTTP parser refuses a NUL in a header value before any handler.
    let answer = raw(
        &app,
        &format!(
            "GET /api/v1/api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nTessera-Organization: org_\0x\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // Nothing was stored, and the server keeps serving.
    let r = app.api(Method::GET, "/api/v1/api-keys", &key, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(1));
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Sends `request` as raw bytes and returns the answer's text.
fn raw(app: &TestApp, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

async fn validation_messages_name_the_field_and_the_valid_scopes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("owner@example.com").await;
    let org = {
        let mut conn = app.state.pool.get().expect("conn");
        let user = tessera::users::store::find_by_email(&mut conn, "owner@example.com")
            .expect("query")
            .expect("user");
        tessera::orgs::store::orgs_of(&mut conn, &user.id).expect("orgs")[0].clone()
    };
    let key = app.api_key(&org, KeySpec::default()).key;
    let valid = "Valid scopes: admin analytics:read email inference:read inference:write offline_access openid profile.";
    for (method, path, body, message) in [
        (
            Method::POST,
            "/api/v1/api-keys".to_string(),
            json!({"name": "x", "scopes": ["inference:read", "root"]}),
            format!("Scope not in the catalogue: root. {valid}"),
        ),
        (
            Method::POST,
            "/api/v1/api-keys".to_string(),
            json!({"name": "x", "scopes": []}),
            format!("scopes: at least one scope is required. {valid}"),
        ),
        (
            Method::POST,
            "/api/v1/api-keys".to_string(),
            json!({"name": "x", "type": "publishable", "scopes": ["inference:read", "inference:write"]}),
            "publishable keys may only carry read scopes (*:read), not inference:write.".into(),
        ),
        (
            Method::POST,
            "/api/v1/api-keys".to_string(),
            json!({"scopes": ["inference:read"]}),
            "The body has a missing field name (line 1, column 29).".into(),
        ),
        (
            Method::POST,
            "/api/v1/api-keys".to_string(),
            json!({"name": "x", "scopes": ["inference:read"], "nmae": "y"}),
            "The body has an unknown field nmae (line 1, column 18).".into(),
        ),
        (
            Method::POST,
            "/api/v1/clients".to_string(),
            json!({"name": "x", "redirect_uris": [REDIRECT], "scopes": "inference:read root"}),
            format!("Scope not in the catalogue: root. {valid}"),
        ),
        (
            Method::POST,
            "/api/v1/clients".to_string(),
            json!({"name": "x", "redirect_uris": [REDIRECT], "grant_types": ["password"]}),
            "Unsupported grant type: password. Valid grant types: authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code.".into(),
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/{org}/members"),
            json!({"email": "not an address", "role": "member"}),
            "email is not a valid address.".into(),
        ),
    ] {
        let a = app.api(method, &path, &key, Some(body.clone())).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(a.body["error"]["message"], message, "{body}");
    }
    // The pages show the same messages on their forms.
    let html = b
        .get(format!("{}/developer/clients", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let csrf = hidden(&html, "csrf_token");
    let r = b
        .post(format!("{}/developer/clients", app.address))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("name", "x"),
            ("redirect_uris", REDIRECT),
            ("grant_type", "authorization_code"),
            ("scope", "root"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let html = r.text().await.expect("html");
    assert!(
        html.contains(&format!("Scope not in the catalogue: root. {valid}")),
        "{html}"
    );
}
