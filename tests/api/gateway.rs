//! docs/spec.md §11: `/gateway/check` for reverse proxies, and real nginx in front of an
//! upstream with the README's configuration (examples/gateway/nginx.conf).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tessera::gateway::{Gateway, GatewaySettings};
use tessera::orgs::Plan;

use crate::helpers::api::{Answer, KeySpec, answer};
use crate::helpers::{Backend, TestApp, TestDb, spawn_app_with};
use tessera::clock::Clock as _;

crate::on_both_backends!(
    gateway_routes_decide_before_credentials_and_refuse_unsafe_paths,
    i3_i6_gateway_api_keys_scopes_cost_identity_and_budget,
    gateway_access_tokens_must_name_the_gateway_audience,
    i6_nginx_in_front_of_an_upstream_with_the_documented_configuration,
);

pub(crate) const AUDIENCE: &str = "https://api.example/inference";

const ROUTES: &str = r#"
audience = "https://api.example/inference"
[[routes]]
methods = ["POST"]
path = "/v1/chat/completions"
scopes = ["inference:write"]
cost = 5
[[routes]]
path = "/v1/*"
scopes = ["inference:read"]
"#;

pub(crate) async fn gateway_app(backend: Backend, token_audience: Option<&str>) -> Option<TestApp> {
    let db = TestDb::create(backend)?;
    let mut settings = db.settings();
    let gw: GatewaySettings = toml::from_str(ROUTES).expect("routes");
    settings.gateway = Gateway::new(gw, &settings.scopes).expect("valid routes");
    settings.audience = token_audience.map(str::to_string);
    Some(spawn_app_with(db, settings).await)
}

/// `/gateway/check` with the original method and URI in the given header spelling.
pub(crate) async fn check(
    app: &TestApp,
    method: &str,
    uri: &str,
    bearer: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    let mut r = reqwest::Client::new()
        .get(format!("{}/gateway/check", app.address))
        .header("X-Forwarded-Method", method)
        .header("X-Forwarded-Uri", uri);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    answer(r.send().await.expect("check")).await
}

async fn gateway_routes_decide_before_credentials_and_refuse_unsafe_paths(backend: Backend) {
    let Some(app) = gateway_app(backend, None).await else {
        return;
    };
    // No route: 403 before any credential is looked at (none, or a bad one).
    for bearer in [None, Some("tsr_sk_nonsense")] {
        let a = check(&app, "GET", "/v2/models", bearer, &[]).await;
        assert_eq!(a.status, 403);
        assert!(a.header("www-authenticate").is_none());
    }
    assert_eq!(
        check(&app, "GET", "/v1", None, &[]).await.status,
        403,
        "/v1/* is not /v1"
    );
    for bad in [
        "/v1/../admin",
        "/v1/%2e%2e/admin",
        "/v1/a%2Fb",
        "/v1/a%00",
        "/v1/./x",
    ] {
        assert_eq!(
            check(&app, "GET", bad, None, &[]).await.status,
            403,
            "{bad}"
        );
    }
    // A route matches: now a missing credential is 401 with a bare RFC 6750 challenge.
    let a = check(&app, "GET", "/v1/models?limit=5", None, &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(r#"Bearer realm="tessera""#)
    );
    let a = check(&app, "GET", "/v1/", Some("tsr_sk_nonsense"), &[]).await;
    assert_eq!(a.status, 401);
    assert!(
        a.header("www-authenticate")
            .unwrap_or_default()
            .contains(r#"error="invalid_token""#)
    );
    // The other spelling of the forwarded headers, and POST to the check itself.
    let a = answer(
        reqwest::Client::new()
            .post(format!("{}/gateway/check", app.address))
            .header("X-Original-Method", "GET")
            .header("X-Original-URI", "/v2/x")
            .send()
            .await
            .expect("check"),
    )
    .await;
    assert_eq!(a.status, 403);
    // Without the original URI nothing matches.
    let a = answer(
        app.http
            .get(format!("{}/gateway/check", app.address))
            .send()
            .await
            .expect("c"),
    )
    .await;
    assert_eq!(a.status, 403);
}

async fn i3_i6_gateway_api_keys_scopes_cost_identity_and_budget(backend: Backend) {
    let Some(app) = gateway_app(backend, None).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let reader = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            limit: Some(12),
            ..Default::default()
        },
    );
    let writer = app.api_key(
        &org,
        KeySpec {
            scopes: "admin inference:read inference:write",
            limit: Some(12),
            ..Default::default()
        },
    );
    app.at_minute_start(0);
    // Identity headers are outputs only: what the client sends under them is ignored.
    let spoof = [
        ("X-Auth-Subject", "usr_admin"),
        ("X-Auth-Org-Id", "org_other"),
        ("X-Auth-Scopes", "admin"),
    ];
    let a = check(&app, "GET", "/v1/models", Some(&reader.key), &spoof).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-auth-subject"), Some(reader.id.as_str()));
    assert_eq!(a.header("x-auth-key-id"), Some(reader.id.as_str()));
    assert_eq!(a.header("x-auth-org-id"), Some(org.as_str()));
    assert_eq!(a.header("x-auth-scopes"), Some("inference:read"));
    assert_eq!(a.header("x-auth-credential"), Some("api_key"));
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 11);
    assert_eq!(a.header("ratelimit"), Some(r#""key";r=11;t=60"#));
    let a = check(&app, "GET", "/v1/models", None, &spoof).await;
    assert_eq!(a.status, 401);
    assert!(a.header("x-auth-subject").is_none());
    // The route's scopes are all required: 403 insufficient_scope naming them.
    let a = check(&app, "POST", "/v1/chat/completions", Some(&reader.key), &[]).await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.header("www-authenticate"),
        Some(r#"Bearer realm="tessera", error="insufficient_scope", scope="inference:write""#)
    );
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 11, "nothing spent");
    // The route's cost (5) is spent; over budget: 429 + Retry-After, nothing spent.
    for remaining in [7, 2] {
        let a = check(&app, "POST", "/v1/chat/completions", Some(&writer.key), &[]).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header_i64("x-ratelimit-remaining"), remaining);
    }
    let a = check(&app, "POST", "/v1/chat/completions", Some(&writer.key), &[]).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header_i64("retry-after"), 60);
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 2);
    // nginx passes only 2xx/401/403: the same refusal as 403 + X-Auth-Error.
    let nginx = [("X-Auth-Mode", "nginx")];
    let a = check(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(&writer.key),
        &nginx,
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.header("x-auth-error"), Some("rate_limited"));
    assert_eq!(a.header_i64("retry-after"), 60);
    // The cheaper route still fits in what is left.
    let a = check(&app, "GET", "/v1/models", Some(&writer.key), &nginx).await;
    assert_eq!((a.status, a.header_i64("x-ratelimit-remaining")), (200, 1));
    // Verify and the gateway share the budget.
    let rs = app.resource_server();
    let v = app.verify(&rs, json!({"key": writer.key, "cost": 2})).await;
    assert_eq!(v.body["code"], "RATE_LIMITED");
    // Revocation: refused from the next request on, with no budget headers.
    let a = app
        .api(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", reader.id),
            &writer.key,
            None,
        )
        .await;
    assert_eq!(a.status, 204);
    let a = check(&app, "GET", "/v1/models", Some(&reader.key), &[]).await;
    assert_eq!(a.status, 401);
    assert!(a.header("x-ratelimit-remaining").is_none() && a.header("ratelimit").is_none());
    // Gateway answers count in the usage like verify (docs/spec.md §10, §11).
    tessera::startup::flush_key_usage(&app.state).await;
    let analytics = app.api_key(
        &org,
        KeySpec {
            scopes: "analytics:read",
            ..Default::default()
        },
    );
    let now = app.clock.now();
    let r = app
        .api(
            Method::GET,
            &format!(
                "/api/v1/usage?start={}&end={}&key_id={}",
                tessera::clock::rfc3339(now - 3 * 3600),
                tessera::clock::rfc3339(now + 3 * 3600),
                reader.id
            ),
            &analytics.key,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let counted = |code: &str| -> i64 {
        r.body["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter(|p| p["code"] == code)
            .map(|p| p["count"].as_i64().unwrap_or(0))
            .sum()
    };
    assert_eq!(counted("VALID"), 1, "{}", r.body);
    assert_eq!(counted("INSUFFICIENT_SCOPE"), 1, "{}", r.body);
}

async fn client_token(app: &TestApp, scope: &str) -> String {
    let (id, secret) = app.machine_client(scope);
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            &format!(
                "grant_type=client_credentials&scope={}",
                scope.replace(' ', "+")
            ),
        )
        .await;
    let body: Value = r.json().await.expect("token");
    body["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

async fn gateway_access_tokens_must_name_the_gateway_audience(backend: Backend) {
    // Tokens for the gateway's audience.
    let Some(app) = gateway_app(backend, Some(AUDIENCE)).await else {
        return;
    };
    let token = client_token(&app, "inference:read").await;
    let a = check(&app, "GET", "/v1/models", Some(&token), &[]).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.header("x-auth-credential"), Some("access_token"));
    assert_eq!(a.header("x-auth-scopes"), Some("inference:read"));
    assert!(a.header("x-auth-client-id").is_some_and(|c| !c.is_empty()));
    assert_eq!(a.header("x-auth-subject"), a.header("x-auth-client-id"));
    assert!(
        a.header("x-ratelimit-limit").is_none(),
        "budgets are for API keys"
    );
    let a = check(&app, "POST", "/v1/chat/completions", Some(&token), &[]).await;
    assert_eq!(a.status, 403);
    assert!(
        a.header("www-authenticate")
            .unwrap_or_default()
            .contains("insufficient_scope")
    );
    let a = check(&app, "GET", "/v1/models", Some(&format!("{token}x")), &[]).await;
    assert_eq!(a.status, 401);
    drop(app);
    // Tokens for another audience (the server's default) are refused.
    let Some(other) = gateway_app(backend, None).await else {
        return;
    };
    let token = client_token(&other, "inference:read").await;
    let a = check(&other, "GET", "/v1/models", Some(&token), &[]).await;
    assert_eq!(a.status, 401);
    assert!(
        a.header("www-authenticate")
            .unwrap_or_default()
            .contains("invalid_token")
    );
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

fn nginx_binary() -> Option<String> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The upstream API: answers 200 with the X-Auth-* headers it received, as JSON.
async fn start_upstream() -> u16 {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|req: HttpRequest| async move {
            let mut seen = serde_json::Map::new();
            for (k, v) in req.headers() {
                if k.as_str().starts_with("x-auth-") {
                    seen.insert(k.as_str().into(), v.to_str().unwrap_or("").into());
                }
            }
            HttpResponse::Ok().json(json!({"upstream": true, "headers": seen}))
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind upstream");
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    port
}

async fn i6_nginx_in_front_of_an_upstream_with_the_documented_configuration(backend: Backend) {
    let Some(nginx) = nginx_binary() else {
        if std::env::var_os("TESSERA_REQUIRE_ALL").is_some() {
            panic!("nginx is required (TESSERA_REQUIRE_ALL=1): apt-get install nginx");
        }
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx)");
        return;
    };
    let Some(app) = gateway_app(backend, None).await else {
        return;
    };
    let upstream = start_upstream().await;
    let listen = free_port();
    let dir = tempfile::tempdir().expect("dir");
    let site = include_str!("../../examples/gateway/nginx.conf")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", app.port))
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream}"))
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{listen}"));
    let d = dir.path().display();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    let main = format!(
        "{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/tessera.conf;\n}}\n",
        user = if is_root { "user root;\n" } else { "" },
    );
    std::fs::write(dir.path().join("tessera.conf"), site).expect("site");
    std::fs::write(dir.path().join("nginx.conf"), main).expect("main");
    let child = Command::new(&nginx)
        .args([
            "-p",
            &d.to_string(),
            "-c",
            &format!("{d}/nginx.conf"),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    let _nginx = Nginx(child);
    let base = format!("http://127.0.0.1:{listen}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let org = app.org(Plan::Free);
    let reader = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            limit: Some(2),
            ..Default::default()
        },
    );
    app.at_minute_start(0);
    let client = reqwest::Client::new();
    // A valid key reaches the upstream, which sees tessera's identity headers, not the
    // client's.
    let r = client
        .get(format!("{base}/v1/models"))
        .bearer_auth(&reader.key)
        .header("X-Auth-Subject", "usr_spoofed")
        .header("X-Auth-Client-Id", "cli_spoofed")
        .header("X-Forwarded-Uri", "/v1/public")
        .send()
        .await
        .expect("through nginx");
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert!(text.starts_with('{'), "{status} {text} {log}");
    let a = Answer {
        status: status.as_u16(),
        headers,
        body: serde_json::from_str(&text).expect("json"),
    };
    assert_eq!(
        a.status,
        200,
        "{}",
        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
    );
    assert_eq!(a.body["upstream"], true);
    let seen = &a.body["headers"];
    assert_eq!(seen["x-auth-subject"], reader.id.as_str());
    assert_eq!(seen["x-auth-key-id"], reader.id.as_str());
    assert_eq!(seen["x-auth-org-id"], org.as_str());
    assert_eq!(seen["x-auth-scopes"], "inference:read");
    assert_eq!(seen["x-auth-credential"], "api_key");
    assert!(
        seen.get("x-auth-client-id").is_none(),
        "the client's value is removed"
    );
    assert_eq!(a.header_i64("x-ratelimit-remaining"), 1);
    assert_eq!(a.header("ratelimit"), Some(r#""key";r=1;t=60"#));
    // 401 passes back with its challenge; the upstream is not reached.
    let r = client
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .expect("401");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(r#"Bearer realm="tessera""#)
    );
    // 403 insufficient_scope passes back with its challenge.
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&reader.key)
        .send()
        .await
        .expect("403");
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(r#"Bearer realm="tessera", error="insufficient_scope", scope="inference:write""#)
    );
    // No route: 403.
    let r = client
        .get(format!("{base}/admin"))
        .bearer_auth(&reader.key)
        .send()
        .await
        .expect("403");
    assert_eq!(r.status(), 403);
    // The budget: the last unit, then 429 with Retry-After (the nginx mode, turned back).
    let r = client
        .get(format!("{base}/v1/models"))
        .bearer_auth(&reader.key)
        .send()
        .await
        .expect("ok");
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{base}/v1/models"))
        .bearer_auth(&reader.key)
        .send()
        .await
        .expect("429");
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("60")
    );
    assert_eq!(
        r.headers()
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok()),
        Some("0")
    );
    let _ = app.clock.now();
}
