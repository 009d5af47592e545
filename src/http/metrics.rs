//! The metrics and access-log middleware: times each request into
//! [`crate::metrics::Metrics`] and logs it (docs/spec.md §7).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::app::AppState;

/// Middleware: times each request and records it under its route pattern (never the raw
/// path, which would make label cardinality unbounded).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().clone();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16();
    let elapsed = start.elapsed().as_secs_f64();
    access_log(method.as_str(), &route, status, elapsed, || {
        res.request()
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    });
    if let Some(state) = state {
        state
            .metrics
            .observe(method.as_str(), route, status, elapsed);
    }
    Ok(res)
}

/// Milliseconds, rounded to a tenth.
fn latency_ms(seconds: f64) -> f64 {
    (seconds * 10_000.0).round() / 10.0
}

/// docs/spec.md §7: one `info` line per request with the route pattern, status and
/// latency (never the path's values, query string, headers or body, so no code, token,
/// secret or key), and a `warn` line for each refused authentication (every 401: client
/// authentication, bearer credentials, verify callers, registration; and a refused login,
/// which is a 403 on `/login` (docs/spec.md §6)) and each
/// throttled request (every 429: login and client-authentication throttles, key rate
/// limits), with the peer's address.
/// `peer` is only called for the lines that carry it.
fn access_log(method: &str, route: &str, status: u16, seconds: f64, peer: impl FnOnce() -> String) {
    let latency_ms = latency_ms(seconds);
    tracing::info!(target: "tessera::access", method, route, status, latency_ms, "request");
    if !matches!(status, 401 | 403 | 429) {
        return;
    }
    let peer = peer();
    let peer = peer.as_str();
    match status {
        401 => tracing::warn!(method, route, status, peer, "authentication failed"),
        403 if route == "/login" => {
            tracing::warn!(method, route, status, peer, "authentication failed")
        }
        429 => tracing::warn!(method, route, status, peer, "throttled"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn latency_is_rounded_to_a_tenth_of_a_millisecond() {
        assert_eq!(super::latency_ms(0.000_123_456), 0.1);
        assert_eq!(super::latency_ms(0.012_345_6), 12.3);
        assert_eq!(super::latency_ms(1.5), 1500.0);
    }
}
