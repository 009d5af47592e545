//! /healthz, /readyz, /metrics and the headers every response carries.

use diesel::RunQueryDsl;

use crate::helpers::{Backend, postgres as pg, spawn_app};

crate::on_both_backends!(
    healthz_and_readyz_answer_when_all_is_well,
    r4_readyz_goes_503_when_the_database_goes_away,
    metrics_count_requests_by_route_and_status,
    h2_h3_every_response_carries_the_security_headers,
    j6_compressed_request_bodies_are_refused,
    every_get_answers_head_and_other_methods_are_405_with_allow,
    product_counters_move_with_tokens_verifications_limits_logins_and_revocations,
);

async fn healthz_and_readyz_answer_when_all_is_well(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["signing_keys"], "ok");
}

async fn r4_readyz_goes_503_when_the_database_goes_away(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert_eq!(app.get("/readyz").await.status(), 200);
    match backend {
        Backend::Sqlite => {
            // Break the schema under the running server from another connection.
            let path = app.db().url.trim_start_matches("sqlite://").to_string();
            let mut conn = crate::helpers::sqlite_side_connection(&path);
            diesel::sql_query("DROP TABLE signing_keys")
                .execute(&mut conn)
                .expect("drop");
        }
        Backend::Postgres => pg::drop_database(&app.db().url),
    }
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["database"], "unreachable");
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "the process itself is still up"
    );
}

async fn metrics_count_requests_by_route_and_status(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.get("/healthz").await;
    app.get("/healthz").await;
    app.get("/no/such/route").await;
    let text = app.get("/metrics").await.text().await.expect("text");
    assert!(
        text.contains(
            r#"tessera_http_requests_total{method="GET",route="/healthz",status="200"} 2"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        text.contains("tessera_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(text.contains("tessera_db_pool_connections "), "{text}");
    assert!(text.contains("tessera_db_pool_max_connections 4"), "{text}");
    assert!(
        !text.contains("/no/such/route"),
        "raw paths never become labels"
    );
}

async fn h2_h3_every_response_carries_the_security_headers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for path in [
        "/healthz",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/nowhere",
    ] {
        let r = app.get(path).await;
        let h = r.headers();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(h.get("access-control-allow-origin").is_none(), "{path}");
    }
}

async fn j6_compressed_request_bodies_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let r = app
        .http
        .post(format!("{}/healthz", app.address))
        .header("Content-Encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0x00])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 415);
}

/// docs/spec.md §3: every route of `tessera::http::route_table` is walked. A `GET` answers
/// `HEAD` with the same status and headers and no body; every method a path does not serve
/// is 405 with `Allow` naming exactly the served ones (the `/api/v1` JSON error there); a
/// path that names nothing is 404 (JSON under `/api/v1`).
async fn every_get_answers_head_and_other_methods_are_405_with_allow(backend: Backend) {
    use reqwest::Method;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Signed in, so the pages answer 200 rather than a redirect to the login page.
    let b = app.user("ada@example.com").await;
    let table = tessera::http::route_table();
    assert!(table.len() >= 40, "{} routes", table.len());
    let stable = [
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwks.json",
        "/healthz",
        "/api/v1/openapi.json",
        "/static/tessera.css",
        "/static/copy.js",
    ];
    for (path, allow) in &table {
        let url = format!(
            "{}{}",
            app.address,
            path.replace("{id}", "x")
                .replace("{user_id}", "x")
                .replace("{client_id}", "x")
                .replace("{org_id}", "x")
                .replace("{invitation_id}", "x")
                .replace("{token}", "x")
        );
        assert!(!url.contains('{'), "{path}");
        let allow_header = allow
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let served: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
        assert_eq!(
            served.contains(&"GET"),
            served.contains(&"HEAD"),
            "{path}: GET and HEAD go together"
        );
        for method in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if served.contains(&method.as_str()) {
                continue;
            }
            let r = b
                .request(method.clone(), &url)
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 405, "{method} {path}");
            assert_eq!(
                r.headers()["allow"],
                allow_header.as_str(),
                "{method} {path}"
            );
            if path.starts_with("/api/v1/") && method != Method::HEAD {
                let body: serde_json::Value = r.json().await.expect("json");
                assert_eq!(body["error"]["type"], "invalid_request_error", "{path}");
                assert!(body["error"]["message"].is_string(), "{path}");
            }
        }
        if !served.contains(&"GET") {
            continue;
        }
        let get = b.get(&url).send().await.expect("get");
        let head = b.head(&url).send().await.expect("head");
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "HEAD {path}"
        );
        let get_length = get.headers().get("content-length").cloned();
        let head_length = head.headers().get("content-length").cloned();
        let body = get.bytes().await.expect("body");
        if stable.contains(path) {
            assert_eq!(head.status(), 200, "HEAD {path}");
            assert_eq!(head_length, get_length, "HEAD {path}");
            assert_eq!(
                head_length.as_ref().and_then(|v| v.to_str().ok()),
                Some(body.len().to_string().as_str()),
                "HEAD {path}"
            );
        }
        assert!(head.bytes().await.expect("body").is_empty(), "HEAD {path}");
    }
    for path in ["/api/v1/nothing", "/api/v1", "/api/v1/api-keys/x/nothing"] {
        let r = b
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{path}");
    }
    for method in [Method::GET, Method::HEAD, Method::POST] {
        let r = b
            .request(method.clone(), format!("{}/no/such/page", app.address))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 404, "{method}");
    }
}

/// The value of one series in `/metrics` (0 when absent).
async fn series(app: &crate::helpers::TestApp, name_and_labels: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("integer counter"))
        .unwrap_or(0)
}

/// docs/spec.md §7: the product counters of `/metrics` each move by one, under the right
/// label, when their event happens, and no other series of theirs moves with them.
async fn product_counters_move_with_tokens_verifications_limits_logins_and_revocations(
    backend: Backend,
) {
    use crate::helpers::api::KeySpec;
    use crate::helpers::{hidden, login};
    use tessera::orgs::Plan;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    const NAMES: [&str; 14] = [
        r#"tessera_tokens_issued_total{grant_type="authorization_code"}"#,
        r#"tessera_tokens_issued_total{grant_type="refresh_token"}"#,
        r#"tessera_tokens_issued_total{grant_type="client_credentials"}"#,
        r#"tessera_verifications_total{code="VALID"}"#,
        r#"tessera_verifications_total{code="NOT_FOUND"}"#,
        r#"tessera_verifications_total{code="INSUFFICIENT_SCOPE"}"#,
        r#"tessera_verifications_total{code="RATE_LIMITED"}"#,
        r#"tessera_verifications_total{code="REVOKED"}"#,
        "tessera_rate_limited_total",
        "tessera_login_failures_total",
        r#"tessera_revocations_total{kind="api_key"}"#,
        r#"tessera_revocations_total{kind="refresh_token"}"#,
        r#"tessera_revocations_total{kind="access_token"}"#,
        r#"tessera_revocations_total{kind="consent"}"#,
    ];
    let mut seen = Vec::new();
    for n in NAMES {
        seen.push(series(&app, n).await);
    }
    assert!(seen.iter().all(|&v| v == 0), "all start at 0: {seen:?}");
    // Checks that exactly the series named in `moved` grew, by the given amounts.
    let expect = |before: Vec<u64>, moved: Vec<(&'static str, u64)>, step: &'static str| {
        let app = &app;
        async move {
            let mut now = Vec::new();
            for (i, n) in NAMES.iter().enumerate() {
                let v = series(app, n).await;
                let delta = moved.iter().find(|(m, _)| m == n).map_or(0, |(_, d)| *d);
                assert_eq!(v, before[i] + delta, "{step}: {n}");
                now.push(v);
            }
            now
        }
    };

    // Tokens by grant type.
    let (id, secret) = app.machine_client("inference:read");
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, "wrong")),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status(), 401, "a refused request issues nothing");
    seen = expect(seen, vec![(NAMES[2], 1)], "client_credentials").await;
    let client = app.web_client("inference:read");
    let tokens = app.user_tokens(&client, "inference:read").await;
    let refreshed: serde_json::Value = app
        .refresh(&client, tokens["refresh_token"].as_str().expect("rt"))
        .await
        .json()
        .await
        .expect("json");
    seen = expect(seen, vec![(NAMES[0], 1), (NAMES[1], 1)], "code and refresh").await;

    // Verifications by code; a spent limit is also a rate-limited request.
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    let key = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            limit: Some(1),
            ..Default::default()
        },
    );
    let other = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    app.at_minute_start(1);
    let codes = [
        app.verify(&rs, serde_json::json!({"key": key.key})).await,
        app.verify(
            &rs,
            serde_json::json!({"key": other.key, "scopes": ["inference:write"]}),
        )
        .await,
        app.verify(&rs, serde_json::json!({"key": key.key})).await,
        app.verify(
            &rs,
            serde_json::json!({"key": "tsr_sk_00000000000000000000000000000000000000"}),
        )
        .await,
    ]
    .map(|a| a.body["code"].as_str().expect("code").to_string());
    assert_eq!(
        codes,
        ["VALID", "INSUFFICIENT_SCOPE", "RATE_LIMITED", "NOT_FOUND"]
    );
    seen = expect(
        seen,
        vec![
            (NAMES[3], 1),
            (NAMES[4], 1),
            (NAMES[5], 1),
            (NAMES[6], 1),
            (NAMES[8], 1),
        ],
        "verify",
    )
    .await;
    // A bearer call over the key's limit on /api/v1 is rate limited too.
    let admin_key = app.api_key(
        &org,
        KeySpec {
            scopes: "admin",
            limit: Some(1),
            ..Default::default()
        },
    );
    let statuses = [
        app.api(
            reqwest::Method::GET,
            "/api/v1/api-keys",
            &admin_key.key,
            None,
        )
        .await
        .status,
        app.api(
            reqwest::Method::GET,
            "/api/v1/api-keys",
            &admin_key.key,
            None,
        )
        .await
        .status,
    ];
    assert_eq!(statuses, [200, 429]);
    seen = expect(seen, vec![(NAMES[8], 1)], "bearer 429").await;

    // Failed logins (a wrong password; not a throttled one).
    app.user("ada@example.com").await;
    let r = login(
        &app,
        &app.browser(),
        "ada@example.com",
        "wrong password!",
        "/",
    )
    .await;
    assert_eq!(r.status(), 403, "a refused form login (docs/spec.md §6)");
    seen = expect(seen, vec![(NAMES[9], 1)], "login failure").await;

    // Revocations by kind: an API key, an access token and a refresh token (RFC 7009),
    // a withdrawn consent. Revoking the same thing again counts nothing.
    app.at_minute_start(1);
    for _ in 0..2 {
        app.api(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{}", key.id),
            &app.api_key(&org, KeySpec::default()).key,
            None,
        )
        .await;
    }
    let revoked = app.verify(&rs, serde_json::json!({"key": key.key})).await;
    assert_eq!(revoked.body["code"], "REVOKED");
    let web_secret = client.secret.clone().expect("secret");
    for _ in 0..2 {
        for t in ["access_token", "refresh_token"] {
            let body =
                serde_urlencoded::to_string([("token", refreshed[t].as_str().expect("token"))])
                    .expect("form");
            let r = app
                .post_form("/oauth/revoke", Some((&client.id, &web_secret)), &body)
                .await;
            assert_eq!(r.status(), 200);
        }
    }
    seen = expect(
        seen,
        vec![
            (NAMES[7], 1),
            (NAMES[10], 1),
            (NAMES[11], 1),
            (NAMES[12], 1),
        ],
        "revocations",
    )
    .await;
    let b = app.user("grace@example.com").await;
    let (code, verifier) = app.code(&b, &client, "inference:read").await;
    assert_eq!(app.exchange(&client, &code, &verifier).await.status(), 200);
    let page = b
        .get(format!("{}/account/apps", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let r = b
        .post(format!("{}/account/apps/{}/revoke", app.address, client.id))
        .form(&[("csrf_token", hidden(&page, "csrf_token"))])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    expect(
        seen,
        vec![(NAMES[0], 1), (NAMES[13], 1)],
        "consent withdrawn",
    )
    .await;
}

/// docs/security.md J6: a request head over the documented bounds is refused (431 for
/// headers over `MAX_HEADER_BYTES`, one big header or many; 414 for a URL over
/// `MAX_URI_BYTES`), one just under them is served, and the server keeps serving, on the
/// same client and on a fresh one.
#[actix_web::test]
async fn j6_oversized_headers_and_urls_are_refused_and_the_server_keeps_serving() {
    use tessera::http::security_headers::{MAX_HEADER_BYTES, MAX_URI_BYTES};
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    assert_eq!((MAX_HEADER_BYTES, MAX_URI_BYTES), (16 * 1024, 8 * 1024));
    // No pooled connections: the server closes a connection after refusing its head, and a
    // pooled client could race that close with its next request (a reset, not a refusal).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let healthz = format!("{}/healthz", app.address);
    let pad = |n: usize| "a".repeat(n);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "one header just under the bound",
            client
                .get(&healthz)
                .header("x-pad", pad(MAX_HEADER_BYTES - 1024)),
            200,
        ),
        (
            "one 64 KiB header",
            client.get(&healthz).header("x-pad", pad(64 * 1024)),
            431,
        ),
        (
            "one header just over the bound",
            client
                .get(&healthz)
                .header("x-pad", pad(MAX_HEADER_BYTES + 1)),
            431,
        ),
        (
            "many headers over the bound",
            {
                let mut r = client.get(&healthz);
                for i in 0..20 {
                    r = r.header(format!("x-pad-{i}"), pad(1024));
                }
                r
            },
            431,
        ),
        (
            "a 64 KiB cookie on a page",
            client
                .get(format!("{}/login", app.address))
                .header("cookie", format!("tessera_session={}", pad(64 * 1024))),
            431,
        ),
        (
            "a URL just under the bound",
            client.get(format!("{healthz}?pad={}", pad(MAX_URI_BYTES - 100))),
            200,
        ),
        (
            "a URL just over the bound",
            client.get(format!("{healthz}?pad={}", pad(MAX_URI_BYTES))),
            414,
        ),
        (
            // The longest URL the client library builds (the `http` crate stops at 64 KiB).
            "a 60 KB URL",
            client.get(format!("{healthz}?pad={}", pad(60 * 1000))),
            414,
        ),
        (
            "a header over actix-http's own 128 KiB head limit",
            client.get(&healthz).header("x-pad", pad(200 * 1024)),
            431,
        ),
    ];
    for (case, req, status) in cases {
        let r = req.send().await.expect(case);
        assert_eq!(r.status(), status, "{case}");
        assert_eq!(
            client.get(&healthz).send().await.expect("next").status(),
            200,
            "served after: {case}"
        );
        assert_eq!(app.get("/healthz").await.status(), 200, "{case}");
    }
}
