//! /healthz, /readyz, /metrics and the headers every response carries.

use diesel::{Connection, RunQueryDsl, SqliteConnection};

use crate::helpers::{Backend, postgres as pg, spawn_app};

crate::on_both_backends!(
    healthz_and_readyz_answer_when_all_is_well,
    r4_readyz_goes_503_when_the_database_goes_away,
    metrics_count_requests_by_route_and_status,
    h2_h3_every_response_carries_the_security_headers,
    j6_compressed_request_bodies_are_refused,
    every_get_answers_head_and_other_methods_are_405_with_allow,
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
            let mut conn = SqliteConnection::establish(&path).expect("open");
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
