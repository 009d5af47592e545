//! Client ID Metadata Documents and the SSRF guard (docs/spec.md §8; docs/security.md
//! A13, K6): a `client_id` that is a URL is fetched (no redirects, 5 s, 5 KB, JSON) from a
//! public address only — loopback only with `--client-metadata-allow-loopback` — and must
//! name itself; such a client completes the code flow with PKCE and `resource`, shows up
//! on `/account/apps`, and is marked "not verified" on the consent page (as are clients
//! made by open registration).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tessera::clients::open_registration::RegistrationMode;

use crate::helpers::oauth::{REDIRECT, json as json_of, pkce, query_param};
use crate::helpers::test_ca::TestCa;
use crate::helpers::{Backend, TestApp, TestDb, hidden, spawn_app_with};
use crate::resources::{MCP, claims, resource_server_with};

crate::on_both_backends!(
    a13_k6_a_metadata_document_client_completes_the_code_flow_with_a_resource,
    a13_k6_documents_that_break_a_rule_are_refused_with_an_error_page,
    k6_without_the_flag_loopback_and_private_addresses_are_never_fetched,
    k6_a_document_slower_than_5_seconds_is_refused,
    openly_registered_clients_are_marked_not_verified_on_consent,
    k6_an_https_document_is_fetched_only_from_a_trusted_certificate,
    k4_a13_a_flood_of_new_client_ids_from_one_address_is_limited_and_swept,
);

/// What the document server answers for one path.
#[derive(Clone)]
pub(crate) enum Reply {
    Raw(String),
    /// Waits this long before answering.
    Slow(Duration, String),
}

/// A tiny HTTP/1.1 server on its own thread and a loopback port, answering each path with
/// a canned reply that the test may change; it counts the requests it gets.
pub(crate) struct DocServer {
    base: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<usize>>,
}

pub(crate) fn ok_json(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers one request on `sock` from `routes`, counting it in `hits`.
async fn answer<S>(mut sock: S, routes: Arc<Mutex<HashMap<String, Reply>>>, hits: Arc<Mutex<usize>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let Ok(n) = sock.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        got.extend_from_slice(&buf[..n]);
    }
    *hits.lock().expect("hits") += 1;
    let head = String::from_utf8_lossy(&got).to_string();
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    let reply = routes.lock().expect("routes").get(&path).cloned();
    let text = match reply {
        Some(Reply::Raw(t)) => t,
        Some(Reply::Slow(d, t)) => {
            tokio::time::sleep(d).await;
            t
        }
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
    };
    let _ = sock.write_all(text.as_bytes()).await;
    let _ = sock.shutdown().await;
}

impl DocServer {
    /// Plain http on a loopback port.
    pub(crate) fn start() -> Self {
        Self::start_with(None)
    }

    /// https on a loopback port, presenting `tls`'s certificate (for `127.0.0.1`).
    pub(crate) fn start_tls(tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!(
            "{scheme}://127.0.0.1:{}",
            std_listener.local_addr().expect("addr").port()
        );
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let hits: Arc<Mutex<usize>> = Arc::default();
        let (r, h) = (routes.clone(), hits.clone());
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        return;
                    };
                    let (r, h) = (r.clone(), h.clone());
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        match acceptor {
                            None => answer(sock, r, h).await,
                            Some(a) => {
                                if let Ok(tls) = a.accept(sock).await {
                                    answer(tls, r, h).await;
                                }
                            }
                        }
                    });
                }
            });
        });
        Self { base, routes, hits }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn set(&self, path: &str, reply: Reply) {
        self.routes
            .lock()
            .expect("routes")
            .insert(path.to_string(), reply);
    }

    /// Serves a valid document for `path` (its `client_id` is its own URL), with `extra`
    /// members merged in.
    pub(crate) fn document(&self, path: &str, extra: Value) -> String {
        let url = self.url(path);
        let mut doc = json!({
            "client_id": url,
            "client_name": "Example MCP client",
            "client_uri": "https://mcp-client.example/",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        });
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                d.insert(k.clone(), v.clone());
            }
        }
        self.set(path, Reply::Raw(ok_json(&doc.to_string())));
        url
    }

    pub(crate) fn hits(&self) -> usize {
        *self.hits.lock().expect("hits")
    }
}

pub(crate) async fn app_with(
    backend: Backend,
    allow_loopback: bool,
    open: bool,
) -> Option<TestApp> {
    let db = TestDb::create(backend)?;
    let mut settings = db.settings();
    settings.client_metadata_allow_loopback = allow_loopback;
    if open {
        settings.registration = RegistrationMode::Open;
    }
    Some(spawn_app_with(db, settings).await)
}

/// A server that fetches from loopback (`--client-metadata-allow-loopback`) and trusts
/// `ca` beside the system's roots (`--extra-ca-certs`).
pub(crate) async fn app_trusting(backend: Backend, ca: &TestCa) -> Option<TestApp> {
    let db = TestDb::create(backend)?;
    let mut settings = db.settings();
    settings.client_metadata_allow_loopback = true;
    settings.extra_ca_certs =
        tessera::fetch::roots::ExtraRoots::load(&ca.ca_pem).expect("the test CA");
    assert_eq!(settings.extra_ca_certs.len(), 1);
    Some(spawn_app_with(db, settings).await)
}

pub(crate) fn authorize_params<'a>(
    client_id: &'a str,
    challenge: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "inference:read offline_access"),
        ("state", "s-1"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("resource", MCP),
    ]
}

async fn token(app: &TestApp, params: &[(&str, &str)]) -> (u16, Value) {
    let body = serde_urlencoded::to_string(params).expect("form");
    json_of(app.post_form("/oauth/token", None, &body).await).await
}

/// An error page: 400, no `Location`, the message in the body.
async fn assert_error_page(app: &TestApp, b: &reqwest::Client, client_id: &str, needle: &str) {
    let (_, challenge) = pkce();
    let r = app
        .authorize_get(b, &authorize_params(client_id, &challenge))
        .await;
    assert_eq!(r.status(), 400, "{client_id}");
    assert!(
        r.headers().get("location").is_none(),
        "A3: no redirect for {client_id}"
    );
    let html = r.text().await.expect("html");
    assert!(
        html.contains(needle),
        "{client_id}: {needle:?} not in {html}"
    );
}

/// docs/spec.md §8, docs/security.md K6: an https document is fetched only when its
/// certificate chains to a trusted root: a private CA is refused (nothing is served: the
/// handshake fails) until `--extra-ca-certs` names it.
async fn k6_an_https_document_is_fetched_only_from_a_trusted_certificate(backend: Backend) {
    let Some(ca) = TestCa::or_skip() else {
        return;
    };
    let docs = DocServer::start_tls(ca.server_config());
    let url = docs.document("/tls/client.json", json!({}));
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let Some(untrusting) = app_with(backend, true, false).await else {
        return;
    };
    let b = untrusting.user("tls@example.com").await;
    assert_error_page(&untrusting, &b, &url, "connection or TLS failure").await;
    assert_eq!(
        docs.hits(),
        0,
        "no request got through an untrusted handshake"
    );

    let Some(trusting) = app_trusting(backend, &ca).await else {
        return;
    };
    resource_server_with(&trusting, &[MCP]);
    let b = trusting.user("tls@example.com").await;
    let (_, challenge) = pkce();
    let r = trusting
        .authorize_get(&b, &authorize_params(&url, &challenge))
        .await;
    let status = r.status();
    let location = format!("{:?}", r.headers().get("location"));
    let html = r.text().await.expect("html");
    assert_eq!(status, 200, "{location} {html}");
    assert!(html.contains("Example MCP client"), "{html}");
    assert_eq!(docs.hits(), 1, "fetched once, over TLS");
}

async fn a13_k6_a_metadata_document_client_completes_the_code_flow_with_a_resource(
    backend: Backend,
) {
    let Some(app) = app_with(backend, true, false).await else {
        return;
    };
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    let oidc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(oidc["client_id_metadata_document_supported"], true);

    let docs = DocServer::start();
    let client_id = docs.document(
        "/oauth/client.json",
        json!({"scope": "admin inference:read offline_access"}),
    );
    let mcp = resource_server_with(&app, &[MCP]);
    let b = app.user("cimd@example.com").await;
    let (verifier, challenge) = pkce();
    let r = app
        .authorize_get(&b, &authorize_params(&client_id, &challenge))
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"unverified\""), "not verified: {html}");
    assert!(
        html.contains("<strong id=\"client-host\">127.0.0.1</strong>"),
        "{html}"
    );
    // The heading names the host beside the name the document gives itself (which anyone
    // may choose), so a document calling itself "Google" is seen to come from elsewhere.
    assert!(
        html.contains(
            "<span class=\"heading-host\" id=\"heading-host\">(127.0.0.1)</span> wants to access"
        ),
        "{html}"
    );
    assert!(html.contains("Example MCP client"));
    assert!(html.contains(MCP), "the resource is named");
    let location = app.approve(&b, &html).await;
    let code = query_param(&location, "code").expect("code");
    let (status, tokens) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let at = tokens["access_token"].as_str().expect("at");
    let c = claims(at);
    assert_eq!(c["aud"], MCP, "aud = the requested resource");
    assert_eq!(c["client_id"], client_id.as_str());
    assert!(!c["scope"].as_str().expect("scope").contains("admin"));
    assert_eq!(app.introspect(&mcp, at).await["active"], true);

    // The document is cached: the token request fetched nothing new.
    assert_eq!(docs.hits(), 1, "one fetch, then the cache");

    // Refresh works; the client is listed on /account/apps, and withdrawing consent there
    // (its id, a URL, percent-encoded in the path) ends its refresh token.
    let rt = tokens["refresh_token"].as_str().expect("rt").to_string();
    let (status, refreshed) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let rt = refreshed["refresh_token"].as_str().expect("rt").to_string();
    let apps = b
        .get(format!("{}/account/apps", app.address))
        .send()
        .await
        .expect("apps")
        .text()
        .await
        .expect("html");
    assert!(apps.contains("Example MCP client"), "{apps}");
    // Unverified there too (docs/spec.md §6): marked, identified by its host, and the
    // homepage it claims is not shown as if vouched for.
    assert!(apps.contains("Not verified"), "{apps}");
    assert!(apps.contains("identified by 127.0.0.1"), "{apps}");
    assert!(!apps.contains("mcp-client.example"), "{apps}");
    let encoded: String = url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let path = format!("/account/apps/{encoded}/revoke");
    assert!(apps.contains(&format!("action=\"{path}\"")), "{apps}");
    let r = b
        .post(format!("{}{path}", app.address))
        .form(&[("csrf_token", hidden(&apps, "csrf_token"))])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 303);
    let (status, body) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A document that turns bad (fetched again once dropped from the cache) stops the
    // client at the token endpoint: invalid_client, naming the problem.
    app.state.fetcher.forget(&client_id);
    docs.set(
        "/oauth/client.json",
        Reply::Raw(ok_json("{\"client_id\": \"https://elsewhere.example/c\"}")),
    );
    let (status, body) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "tsr_rt_whatever"),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    assert_eq!(
        body["error_description"],
        "The client metadata document is invalid: its client_id is not exactly the URL it was fetched from.",
        "names the problem (docs/spec.md §8)"
    );
}

async fn a13_k6_documents_that_break_a_rule_are_refused_with_an_error_page(backend: Backend) {
    let Some(app) = app_with(backend, true, false).await else {
        return;
    };
    let docs = DocServer::start();
    let b = app.user("faults@example.com").await;

    // client_id in the document is not the URL.
    let url = docs.url("/mismatch.json");
    docs.document(
        "/mismatch.json",
        json!({"client_id": docs.url("/other.json")}),
    );
    assert_error_page(&app, &b, &url, "not exactly the URL").await;

    // The redirect URI is not listed in the document.
    let url = docs.document(
        "/elsewhere.json",
        json!({"redirect_uris": ["https://other.example/cb"]}),
    );
    assert_error_page(&app, &b, &url, "not one the application registered").await;

    // No redirect_uris, a secret-using method, client_credentials.
    let url = docs.document("/no-redirects.json", json!({"redirect_uris": null}));
    assert_error_page(&app, &b, &url, "redirect_uris is required").await;
    let url = docs.document(
        "/secret.json",
        json!({"token_endpoint_auth_method": "client_secret_basic"}),
    );
    assert_error_page(&app, &b, &url, "token_endpoint_auth_method must be none").await;
    let url = docs.document(
        "/machine.json",
        json!({"grant_types": ["client_credentials"]}),
    );
    assert_error_page(&app, &b, &url, "grant_types").await;

    // Over 5 KB, with and without Content-Length.
    let url = docs.document("/big.json", json!({"padding": "x".repeat(5200)}));
    assert_error_page(&app, &b, &url, "larger than allowed").await;
    let big =
        json!({"client_id": docs.url("/chunked.json"), "padding": "x".repeat(6000)}).to_string();
    docs.set(
        "/chunked.json",
        Reply::Raw(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
            big.len()
        )),
    );
    assert_error_page(&app, &b, &docs.url("/chunked.json"), "larger than allowed").await;

    // A redirect is not followed, even to a valid document.
    let target = docs.document("/target.json", json!({}));
    docs.set(
        "/moved.json",
        Reply::Raw(format!(
            "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n"
        )),
    );
    let before = docs.hits();
    assert_error_page(
        &app,
        &b,
        &docs.url("/moved.json"),
        "redirects are not followed",
    )
    .await;
    assert_eq!(
        docs.hits(),
        before + 1,
        "the redirect's target was not fetched"
    );

    // Not JSON, not an object, not found.
    docs.set(
        "/page.html",
        Reply::Raw(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\n{}".into(),
        ),
    );
    assert_error_page(&app, &b, &docs.url("/page.html"), "is not served as").await;
    docs.set("/array.json", Reply::Raw(ok_json("[]")));
    assert_error_page(&app, &b, &docs.url("/array.json"), "not a JSON object").await;
    assert_error_page(&app, &b, &docs.url("/missing.json"), "did not answer 200").await;

    // Not a document URL: no path, a fragment.
    assert_error_page(
        &app,
        &b,
        &docs.url("/"),
        "not a valid client metadata document URL",
    )
    .await;
    assert_error_page(
        &app,
        &b,
        &docs.url("/c.json#x"),
        "not a valid client metadata document URL",
    )
    .await;

    // None of these left a client behind.
    let mut conn = app.state.pool.get().expect("conn");
    for path in ["/mismatch.json", "/big.json", "/moved.json", "/page.html"] {
        assert!(
            tessera::clients::store::find(&mut conn, &docs.url(path))
                .expect("query")
                .is_none(),
            "{path}"
        );
    }
}

async fn k6_without_the_flag_loopback_and_private_addresses_are_never_fetched(backend: Backend) {
    let Some(app) = app_with(backend, false, false).await else {
        return;
    };
    let docs = DocServer::start();
    let url = docs.document("/oauth/client.json", json!({}));
    let port = url::Url::parse(&url).expect("url").port().expect("port");
    let b = app.user("ssrf@example.com").await;
    // http is refused outright without the flag.
    assert_error_page(&app, &b, &url, "not a valid client metadata document URL").await;
    // https to loopback (by address, by name, IPv4-mapped) and to private and link-local
    // addresses: refused after resolution, before any connection.
    for id in [
        format!("https://127.0.0.1:{port}/oauth/client.json"),
        format!("https://localhost:{port}/oauth/client.json"),
        format!("https://[::1]:{port}/oauth/client.json"),
        // IPv4-mapped, in the normal form a document URL must have.
        format!("https://[::ffff:7f00:1]:{port}/oauth/client.json"),
        format!("https://[64:ff9b::7f00:1]:{port}/oauth/client.json"),
        "https://10.0.0.8/client.json".to_string(),
        "https://192.168.1.1/client.json".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://[fd00::1]/client.json".to_string(),
        "https://[fe80::1]/client.json".to_string(),
        "https://0.0.0.0/client.json".to_string(),
    ] {
        assert_error_page(&app, &b, &id, "private, loopback, link-local").await;
    }
    assert_eq!(docs.hits(), 0, "nothing was fetched");
    // The token endpoint refuses the same way.
    let (status, body) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "x"),
            (
                "client_id",
                &format!("https://127.0.0.1:{port}/oauth/client.json"),
            ),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("non-public address")),
        "{body}"
    );
}

/// docs/spec.md §8, docs/security.md K4/A13: one address can make tessera create at most
/// 10 new clients an hour from metadata documents (the open-registration budget), and
/// fetch at most 30 uncached documents a minute; what it made is swept like an idle
/// open registration.
async fn k4_a13_a_flood_of_new_client_ids_from_one_address_is_limited_and_swept(backend: Backend) {
    let Some(app) = app_with(backend, true, false).await else {
        return;
    };
    resource_server_with(&app, &[MCP]);
    let docs = DocServer::start();
    let b = app.user("flood@example.com").await;
    let t0 = tessera::clock::Clock::now(app.clock.as_ref());
    let (_, challenge) = pkce();
    let authorize = |url: String| {
        let (app, b, challenge) = (&app, &b, challenge.clone());
        async move {
            let r = app
                .authorize_get(b, &authorize_params(&url, &challenge))
                .await;
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i64>().ok());
            (status, retry, r.text().await.expect("html"))
        }
    };
    let doc = |i: usize| docs.document(&format!("/flood/{i}.json"), json!({}));
    for i in 0..10 {
        let (status, _, html) = authorize(doc(i)).await;
        assert_eq!(status, 200, "client {i}: {html}");
    }
    // The 11th new client ID within the hour: 429, no row.
    let (status, retry, html) = authorize(doc(10)).await;
    assert_eq!(status, 429, "{html}");
    assert_eq!(retry, Some(3600));
    assert!(html.contains("Too many new applications"), "{html}");
    // At the token endpoint too: 429 slow_down.
    let (status, body) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &doc(11)),
            ("code", "nothing"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "x"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("slow_down")),
        "{body}"
    );
    // A client that exists goes on working.
    let (status, _, html) = authorize(docs.url("/flood/0.json")).await;
    assert_eq!(status, 200, "{html}");
    // 12 uncached fetches so far; 18 more are fetched (and refused by the hourly limit),
    // then the 31st within the minute is refused before fetching.
    for i in 12..30 {
        let (status, _, _) = authorize(doc(i)).await;
        assert_eq!(status, 429, "client {i}");
    }
    let hits = docs.hits();
    let (status, retry, _) = authorize(doc(30)).await;
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|r| (1..=60).contains(&r)), "{retry:?}");
    assert_eq!(docs.hits(), hits, "not fetched");
    app.clock.set(t0 + 61);
    let (status, _, _) = authorize(doc(31)).await;
    assert_eq!(status, 429);
    assert_eq!(docs.hits(), hits + 1, "fetched again after the minute");
    app.clock.set(t0 + 3601);
    let (status, _, html) = authorize(doc(32)).await;
    assert_eq!(status, 200, "{html}");

    use diesel::prelude::*;
    use tessera::db::schema::clients;
    let mut conn = app.state.pool.get().expect("conn");
    let made: i64 = clients::table
        .filter(clients::id.like(format!("{}/flood/%", docs.url(""))))
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(made, 11, "10 in the first hour, 1 in the next");
    // None of them obtained a token: the janitor deletes them after the idle days.
    let retention = tessera::janitor::Retention::from_settings(&app.state.settings);
    let swept =
        tessera::janitor::sweep(&mut conn, &retention, t0 + 3601 + 31 * 86_400).expect("sweep");
    assert_eq!(swept.get("clients"), 11);
}

async fn k6_a_document_slower_than_5_seconds_is_refused(backend: Backend) {
    let Some(app) = app_with(backend, true, false).await else {
        return;
    };
    let docs = DocServer::start();
    let url = docs.url("/slow.json");
    let body = json!({"client_id": url, "redirect_uris": [REDIRECT]}).to_string();
    docs.set(
        "/slow.json",
        Reply::Slow(Duration::from_secs(7), ok_json(&body)),
    );
    let b = app.user("slow@example.com").await;
    let started = std::time::Instant::now();
    assert_error_page(&app, &b, &url, "longer than 5 seconds").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_secs(7),
        "{took:?}"
    );
}

async fn openly_registered_clients_are_marked_not_verified_on_consent(backend: Backend) {
    let Some(app) = app_with(backend, false, true).await else {
        return;
    };
    let b = app.user("trial@example.com").await;
    // A client made by open registration: marked, without a host line.
    let a = crate::mcp_registration::register(
        &app,
        None,
        json!({"client_name": "Self-registered", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let open_id = a.body["client_id"].as_str().expect("id").to_string();
    let (_, challenge) = pkce();
    let params = [
        ("response_type", "code"),
        ("client_id", open_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "inference:read"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let html = app
        .authorize_get(&b, &params)
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("id=\"unverified\""), "{html}");
    assert!(html.contains("registered itself"), "{html}");
    assert!(!html.contains("client-host"));
    // A client an operator or organization made is not marked.
    let vetted = app.web_client("inference:read");
    let params = [
        ("response_type", "code"),
        ("client_id", vetted.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "inference:read"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let html = app
        .authorize_get(&b, &params)
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("id=\"client-name\""), "{html}");
    assert!(!html.contains("id=\"unverified\""), "{html}");
}
