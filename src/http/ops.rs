//! Operations endpoints (docs/spec.md §7): liveness, readiness, metrics.

use std::fmt::Write;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::AppState;
use crate::error::AppError;
use crate::http::with_db;

/// The process is up.
pub async fn healthz_get() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({"status": "ok"}))
}

/// Ready to serve: the database answers a query on a core table and a key can sign.
pub async fn readyz_get(state: web::Data<AppState>) -> HttpResponse {
    let db = with_db(&state, |conn| -> Result<(), AppError> {
        Ok(crate::db::ping(conn)?)
    })
    .await;
    let keys = state.keys.can_sign(state.clock.now());
    let db_ok = db.is_ok();
    if let Err(e) = &db {
        tracing::warn!(error = %e, "readiness: database check failed");
    }
    let body = json!({
        "status": if db_ok && keys { "ready" } else { "unavailable" },
        "database": if db_ok { "ok" } else { "unreachable" },
        "signing_keys": if keys { "ok" } else { "missing" },
    });
    let mut resp = if db_ok && keys {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    resp.insert_header(("Cache-Control", "no-store")).json(body)
}

/// Prometheus text exposition.
pub async fn metrics_get(state: web::Data<AppState>) -> HttpResponse {
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    let pool = state.pool.state();
    out.push_str("# HELP tessera_db_pool_connections Open database connections.\n# TYPE tessera_db_pool_connections gauge\n");
    let _ = writeln!(out, "tessera_db_pool_connections {}", pool.connections);
    out.push_str("# HELP tessera_db_pool_idle_connections Idle database connections.\n# TYPE tessera_db_pool_idle_connections gauge\n");
    let _ = writeln!(
        out,
        "tessera_db_pool_idle_connections {}",
        pool.idle_connections
    );
    let _ = writeln!(
        out,
        "# HELP tessera_db_pool_max_connections Pool size.\n# TYPE tessera_db_pool_max_connections gauge\ntessera_db_pool_max_connections {}",
        state.pool.max_size()
    );
    let published = state
        .keys
        .snapshot()
        .published(state.clock.now(), state.keys.retention())
        .len();
    let _ = writeln!(
        out,
        "# HELP tessera_signing_keys_published Keys in the JWKS.\n# TYPE tessera_signing_keys_published gauge\ntessera_signing_keys_published {published}"
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}
