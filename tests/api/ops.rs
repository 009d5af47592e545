//! /healthz, /readyz, /metrics and the headers every response carries.

use diesel::{Connection, RunQueryDsl, SqliteConnection};

use crate::helpers::{Backend, postgres as pg, spawn_app};

crate::on_both_backends!(
    healthz_and_readyz_answer_when_all_is_well,
    r4_readyz_goes_503_when_the_database_goes_away,
    metrics_count_requests_by_route_and_status,
    h2_h3_every_response_carries_the_security_headers,
    j6_compressed_request_bodies_are_refused,
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
