//! R9: malformed input replayed across every endpoint, property-based (proptest). Each case
//! picks a route of `tessera::http::route_table()` and a method (one it serves, or not), fills
//! its path parameters, query string and body with generated parameters — NUL and other
//! control characters raw and percent-encoded, bytes that are not UTF-8, broken percent
//! escapes, UTF-16 surrogates, duplicated names, JSON with duplicate keys and wrong types — and
//! sends it with or without working credentials. 1000 cases per database; every answer must be
//! below 500 and in the documented shape of its family (docs/spec.md §5, §7):
//!
//! - `/api/v1`: a 4xx is `{"error": {"type", "message"}}`;
//! - the OAuth endpoints: a 4xx is RFC 6749 §5.2 JSON, `error` and an `error_description` in the
//!   §5.2 character set; `/oauth/authorize` answers an HTML error page (its 405 is OAuth
//!   JSON), or redirects to the login page or to the client's registered redirect URI (never
//!   elsewhere);
//! - pages and the rest: a 4xx is an HTML page (or an empty 405), and a redirect stays on
//!   this origin.
//!
//! A failing case is shrunk by proptest to a minimal request, printed with the failure.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::Value;
use tessera::orgs::Plan;

use crate::helpers::api::KeySpec;
use crate::helpers::oauth::REDIRECT;
use crate::helpers::{Backend, TestApp, hidden, login, signup, spawn_app};

crate::on_both_backends!(
    r9_malformed_parameters_on_every_endpoint_never_5xx_always_the_documented_shape
);

const CASES: u32 = 1000;
const PASSWORD: &str = "correct horse battery";

/// One generated request.
#[derive(Debug, Clone)]
struct Case {
    /// Index into the route table.
    route: usize,
    /// `None`: a method the route serves (chosen by `method_pick`); `Some`: any method.
    other_method: Option<Method>,
    method_pick: usize,
    /// Replaces every `{param}` of the path (raw bytes; escaped into the URL).
    segment: Vec<u8>,
    query: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<(Vec<u8>, Vec<u8>)>,
    /// How the body is framed: 0 form, 1 JSON, 2 form without `Content-Type`, 3 JSON
    /// written as a form type.
    framing: u8,
    /// Send working credentials for the endpoint.
    authenticated: bool,
}

/// What the setup made: credentials the cases may send.
struct Fixtures {
    api_key: String,
    web: (String, String),
    rs: (String, String),
    registered: (String, String),
}

const NAMES: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "scope",
    "state",
    "code_verifier",
    "code_challenge",
    "code_challenge_method",
    "response_type",
    "refresh_token",
    "token",
    "token_type_hint",
    "request",
    "resource",
    "email",
    "password",
    "return_to",
    "csrf_token",
    "name",
    "scopes",
    "redirect_uris",
    "grant_types",
    "client_name",
    "role",
    "key",
    "expires_in_days",
    "decision",
];

fn raw_value(fx: &Fixtures) -> impl Strategy<Value = Vec<u8>> + use<> {
    let known: Vec<Vec<u8>> = [
        "",
        "client_credentials",
        "authorization_code",
        "refresh_token",
        "code",
        "S256",
        "plain",
        "inference:read",
        "inference%3Aread+admin",
        REDIRECT,
        "https%3A%2F%2Fapp.example%2Fcb",
        "%00",
        "abc%00x",
        "%0d%0a",
        "%09",
        "%7f",
        "%zz",
        "%",
        "%e",
        "%ff",
        "%ED%A0%80",
        "%C3%A9",
        "%E2%80%AE",
        "a+b",
        "%2B%26%3D",
        "true",
        "-1",
        "99999999999999999999",
        "admin",
        "member",
        fx.web.0.as_str(),
        fx.registered.0.as_str(),
        fx.api_key.as_str(),
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    prop_oneof![
        4 => prop::sample::select(known),
        2 => prop::collection::vec(any::<u8>(), 0..16),
        2 => "[ -~]{0,16}".prop_map(String::into_bytes),
        1 => prop::collection::vec(0u8..0x20, 1..4),
        1 => prop::collection::vec(0x80u8..=0xff, 1..4),
        1 => Just(vec![b'a'; 2000]),
    ]
}

fn raw_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::sample::select(NAMES).prop_map(|n| n.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..6),
        1 => prop::sample::select(vec!["", "%00", "a%00", "%ff", "%zz", "=", "&"])
            .prop_map(|n| n.as_bytes().to_vec()),
    ]
}

/// Parameters, where one name is often repeated.
fn params(fx: &Fixtures) -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> + use<> {
    (
        prop::collection::vec((raw_name(), raw_value(fx)), 0..6),
        any::<bool>(),
        raw_value(fx),
    )
        .prop_map(|(mut ps, repeat, value)| {
            if repeat && let Some((name, _)) = ps.first().cloned() {
                ps.push((name, value));
            }
            ps
        })
}

fn case(routes: usize, fx: &Fixtures) -> impl Strategy<Value = Case> + use<> {
    let other = prop_oneof![
        8 => Just(None),
        1 => prop::sample::select(vec![
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .prop_map(Some),
    ];
    (
        0..routes,
        other,
        any::<usize>(),
        prop_oneof![
            2 => raw_value(fx),
            1 => Just(b"x".to_vec()),
        ],
        params(fx),
        params(fx),
        0u8..4,
        prop::bool::weighted(0.7),
    )
        .prop_map(
            |(route, other_method, method_pick, segment, query, body, framing, authenticated)| {
                Case {
                    route,
                    other_method,
                    method_pick,
                    segment,
                    query,
                    body,
                    framing,
                    authenticated,
                }
            },
        )
}

/// Raw bytes into URL text: printable ASCII but the URL's delimiters stays as it is (so
/// `%zz` and a lone `%` reach the server), everything else is percent-encoded.
fn url_text(raw: &[u8], delimiters: &[u8]) -> String {
    let mut s = String::new();
    for &b in raw {
        if (0x21..0x7f).contains(&b) && !delimiters.contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn form_bytes(ps: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (n, v)) in ps.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(n);
        out.push(b'=');
        out.extend_from_slice(v);
    }
    out
}

/// A JSON object written by hand, so that names repeat and strings carry raw bytes: a value
/// is a string, a one-string array, or (for a value that looks like a number) the number.
fn json_bytes(ps: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"{".to_vec();
    for (i, (n, v)) in ps.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(n);
        out.extend_from_slice(b"\":");
        let plural = n.ends_with(b"s");
        if plural {
            out.push(b'[');
        }
        if !v.is_empty() && v.iter().all(u8::is_ascii_digit) {
            out.extend_from_slice(v);
        } else {
            out.push(b'"');
            out.extend_from_slice(v);
            out.push(b'"');
        }
        if plural {
            out.push(b']');
        }
    }
    out.push(b'}');
    out
}

/// The path of a URL as the client sends it (the `url` crate resolves `.` and `..`).
fn req_path(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(|_| String::new(), |u| u.path().to_string())
}

/// Everything a case needs at run time.
struct Ctx<'a> {
    app: &'a TestApp,
    fx: &'a Fixtures,
    table: Vec<(&'static str, Vec<Method>)>,
    signed_in: reqwest::Client,
    anonymous: reqwest::Client,
    csrf: String,
}

/// Sends one case and checks the answer; the request line in the error.
async fn run(ctx: &Ctx<'_>, c: &Case) -> Result<(), String> {
    let (template, served) = &ctx.table[c.route];
    let methods: Vec<&Method> = served.iter().filter(|m| **m != Method::HEAD).collect();
    let method = c
        .other_method
        .clone()
        .unwrap_or_else(|| methods[c.method_pick % methods.len()].clone());
    let registration = template.starts_with("/oauth/register/");
    let segment = if registration && c.authenticated {
        ctx.fx.registered.0.clone()
    } else {
        url_text(&c.segment, b"/?#")
    };
    let mut path = (*template).to_string();
    for param in ["{id}", "{user_id}", "{client_id}", "{org_id}"] {
        path = path.replace(param, &segment);
    }
    let query = c
        .query
        .iter()
        .map(|(n, v)| format!("{}={}", url_text(n, b"#&="), url_text(v, b"#&")))
        .collect::<Vec<_>>()
        .join("&");
    let url = if query.is_empty() {
        format!("{}{path}", ctx.app.address)
    } else {
        format!("{}{path}?{query}", ctx.app.address)
    };
    let api = template.starts_with("/api/v1");
    // Both answer a person's browser: their errors are pages (RP-Initiated Logout 1.0 §2
    // leaves a bad logout request to the OP's page, docs/spec.md §9).
    let authorize = matches!(*template, "/oauth/authorize" | "/oauth/end_session");
    let oauth = template.starts_with("/oauth/") && !authorize;
    // `/gateway/check` answers a proxy in the RFC 6750 JSON shape (docs/spec.md §11).
    let gateway = template.starts_with("/gateway/");
    let page = !api && !gateway && !template.starts_with("/oauth/");
    let client = if page && c.authenticated {
        &ctx.signed_in
    } else {
        &ctx.anonymous
    };
    let mut req = client.request(method.clone(), &url);
    if c.authenticated {
        req = match *template {
            t if api || t == "/oauth/register" => req.bearer_auth(&ctx.fx.api_key),
            _ if registration => req.bearer_auth(&ctx.fx.registered.1),
            "/oauth/introspect" => req.basic_auth(&ctx.fx.rs.0, Some(&ctx.fx.rs.1)),
            "/oauth/token" | "/oauth/revoke" => req.basic_auth(&ctx.fx.web.0, Some(&ctx.fx.web.1)),
            _ => req,
        };
    }
    if method != Method::GET && method != Method::DELETE {
        let mut fields = c.body.clone();
        // A signed-in form carries its token (not the logout form: the browser stays in).
        if page && c.authenticated && *template != "/logout" {
            fields.insert(0, (b"csrf_token".to_vec(), ctx.csrf.clone().into_bytes()));
        }
        req = match c.framing {
            0 => req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_bytes(&fields)),
            1 => req
                .header("Content-Type", "application/json")
                .body(json_bytes(&fields)),
            2 => req.body(form_bytes(&fields)),
            _ => req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(json_bytes(&fields)),
        };
    }
    let what = format!("{method} {url}");
    // An empty or dot segment leaves a path that names no endpoint (`/oauth/register/`):
    // the 404 of its family, a page outside `/api/v1`.
    let routed = {
        let sent_path = req_path(&url);
        let sent: Vec<&str> = sent_path.split('/').collect();
        let want: Vec<&str> = template.split('/').collect();
        sent.len() == want.len()
            && sent.iter().zip(&want).all(|(s, w)| {
                if w.starts_with('{') {
                    !s.is_empty()
                } else {
                    s == w
                }
            })
    };
    let r = req
        .send()
        .await
        .map_err(|e| format!("{what}: no answer: {e}"))?;
    let status = r.status().as_u16();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let location = header("location");
    let text = r.text().await.map_err(|e| format!("{what}: body: {e}"))?;
    let fail = |why: &str| Err(format!("{what}: {why}: {status} {content_type} {text}"));
    if status >= 500 {
        return fail("a 5xx");
    }
    if (300..400).contains(&status) {
        let Some(to) = location else {
            return fail("a redirect without Location");
        };
        let local = to.starts_with('/') && !to.starts_with("//") && !to.starts_with("/\\");
        let to_client = *template == "/oauth/authorize" && to.starts_with(REDIRECT);
        if !local && !to_client {
            return fail(&format!("a redirect to {to}"));
        }
        return Ok(());
    }
    if status < 400 {
        return Ok(());
    }
    // The authorization endpoint's 405 is in the shape of the OAuth family (docs/spec.md §3);
    // its other errors are pages.
    // A NUL in any URL outside `/oauth/` and `/api/v1` is refused by the page middleware
    // before routing, so the gateway may answer with a page too.
    if gateway && content_type.starts_with("text/html") {
        return Ok(());
    }
    let oauth = (oauth && routed) || (*template == "/oauth/authorize" && status == 405) || gateway;
    if api {
        let body: Value = serde_json::from_str(&text).unwrap_or_default();
        if !body["error"]["type"].is_string() || !body["error"]["message"].is_string() {
            return fail("not the /api/v1 error shape");
        }
    } else if oauth {
        let body: Value = serde_json::from_str(&text).unwrap_or_default();
        if !body["error"].is_string() {
            return fail("not an OAuth error");
        }
        if let Some(d) = body.get("error_description")
            && !d.as_str().is_some_and(tessera::error::is_description_text)
        {
            return fail("an error_description outside RFC 6749 §5.2's characters");
        }
    } else if !(content_type.starts_with("text/html")
        || (status == 405 && text.is_empty())
        // A path under `/oauth/` that names no endpoint: its 404 is a page, but a NUL in
        // its URL is refused first, in the OAuth shape of the prefix.
        || (!routed
            && template.starts_with("/oauth/")
            && serde_json::from_str::<Value>(&text).is_ok_and(|b| b["error"].is_string())))
    {
        return fail("not an HTML error page");
    }
    Ok(())
}

async fn r9_malformed_parameters_on_every_endpoint_never_5xx_always_the_documented_shape(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert_eq!(
        signup(&app, &app.browser(), "ada@example.com", PASSWORD)
            .await
            .status(),
        303
    );
    let org = app.org(Plan::Pro);
    let api_key = app
        .api_key(
            &org,
            KeySpec {
                limit: Some(100_000),
                ..KeySpec::default()
            },
        )
        .key;
    let web = app.web_client("inference:read");
    let registered = app
        .http
        .post(format!("{}/oauth/register", app.address))
        .bearer_auth(&api_key)
        .json(&serde_json::json!({"client_name": "r9", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .expect("register")
        .json::<Value>()
        .await
        .expect("json");
    let fx = Fixtures {
        api_key,
        web: (web.id.clone(), web.secret.clone().expect("confidential")),
        rs: app.resource_server(),
        registered: (
            registered["client_id"].as_str().expect("id").to_string(),
            registered["registration_access_token"]
                .as_str()
                .expect("rat")
                .to_string(),
        ),
    };
    let table = tessera::http::route_table();

    // The cases run on a thread of their own with its own runtime (proptest's runner is
    // synchronous); the server runs on its own threads meanwhile.
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let ctx = rt.block_on(async {
                // Browsers from their own loopback addresses, so that a run of bad logins
                // (K1) throttles neither the other tests' nor each other's address.
                let make = |last: u8| {
                    reqwest::Client::builder()
                        .cookie_store(true)
                        .redirect(reqwest::redirect::Policy::none())
                        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 9, last)))
                        .build()
                        .expect("client")
                };
                let signed_in = make(1);
                let anonymous = make(2);
                let r = login(&app, &signed_in, "ada@example.com", PASSWORD, "/").await;
                assert_eq!(r.status(), 303, "signed in");
                let page = signed_in
                    .get(format!("{}/settings/api-keys", app.address))
                    .send()
                    .await
                    .expect("page")
                    .text()
                    .await
                    .expect("html");
                let csrf = hidden(&page, "csrf_token");
                Ctx {
                    app: &app,
                    fx: &fx,
                    // actix-web's `Method` (http 0.2) as reqwest's (http 1).
                    table: table
                        .iter()
                        .map(|(path, methods)| {
                            let methods = methods
                                .iter()
                                .map(|m| Method::from_bytes(m.as_str().as_bytes()).expect("method"))
                                .collect();
                            (*path, methods)
                        })
                        .collect(),
                    signed_in,
                    anonymous,
                    csrf,
                }
            });
            let strategy = case(table.len(), &fx);
            let mut runner = TestRunner::new(Config {
                cases: CASES,
                failure_persistence: None,
                ..Config::default()
            });
            let statuses =
                std::cell::RefCell::new(std::collections::BTreeMap::<String, u32>::new());
            let result = runner.run(&strategy, |c| {
                rt.block_on(run(&ctx, &c)).map_err(TestCaseError::fail)?;
                *statuses
                    .borrow_mut()
                    .entry(ctx.table[c.route].0.to_string())
                    .or_default() += 1;
                Ok(())
            });
            (result, statuses.into_inner())
        })
        .join()
        .expect("the replay thread")
    });
    let (result, per_route) = outcome;
    if let Err(e) = result {
        panic!("R9 {backend:?}: {e}");
    }
    eprintln!("R9 {backend:?}: {CASES} cases passed; per route: {per_route:?}");
    assert!(
        table.iter().all(|(path, _)| per_route.contains_key(*path)),
        "R9: every route was exercised: {per_route:?}"
    );
}
