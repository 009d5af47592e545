//! Prometheus metrics: request counts and latency histograms by method, route pattern and
//! status, kept by a `metrics-exporter-prometheus` recorder that belongs to one
//! `Application` (never installed as the process-wide recorder: tests run many
//! applications in one process). The pool's usage is read when scraped
//! (`http::ops::metrics_get`).

use metrics::{Unit, describe_counter, describe_histogram, with_local_recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const REQUESTS: &str = "tessera_http_requests_total";
const DURATION: &str = "tessera_http_request_duration_seconds";
const JANITOR_DELETED: &str = "tessera_janitor_deleted_rows_total";

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug)]
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        // Buckets make the latency a histogram (not a summary); the only error is an
        // empty bucket list, which BUCKETS is not.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_string()), &BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        with_local_recorder(&recorder, || {
            describe_counter!(REQUESTS, "HTTP requests by method, route and status.");
            describe_histogram!(DURATION, Unit::Seconds, "HTTP request latency.");
            describe_counter!(
                JANITOR_DELETED,
                "Expired rows deleted by the janitor, by table (docs/security.md R12)."
            );
        });
        let handle = recorder.handle();
        Self { recorder, handle }
    }
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = [
            ("method", method.to_string()),
            ("route", route.to_string()),
            ("status", status.to_string()),
        ];
        with_local_recorder(&self.recorder, || {
            metrics::counter!(REQUESTS, &labels).increment(1);
            metrics::histogram!(DURATION, &labels).record(seconds);
        });
    }

    /// Counts rows the janitor deleted from `table` (`janitor::sweep`).
    pub fn janitor_deleted(&self, table: &'static str, rows: u64) {
        with_local_recorder(&self.recorder, || {
            metrics::counter!(JANITOR_DELETED, "table" => table).increment(rows);
        });
    }

    /// The Prometheus text exposition of the request series.
    pub fn render(&self, out: &mut String) {
        out.push_str(&self.handle.render());
    }

    /// Moves recorded latencies into their histograms; without it they pile up between
    /// scrapes. Called by the background loop in `startup`.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_and_timed_per_route_and_status() {
        let m = Metrics::default();
        m.observe("GET", "/healthz", 200, 0.002);
        m.observe("GET", "/healthz", 200, 0.2);
        m.observe("POST", r#"/a"b"#, 400, 3.0);
        let other = Metrics::default();
        other.observe("GET", "/x", 200, 0.1);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains(
                r#"tessera_http_requests_total{method="GET",route="/healthz",status="200"} 2"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"tessera_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200",le="0.0025"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"tessera_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 2"#),
            "{out}"
        );
        assert!(out.contains(r#"route="/a\"b""#), "{out}");
        assert!(out.contains("# TYPE tessera_http_request_duration_seconds histogram"));
        assert!(
            !out.contains(r#"route="/x""#),
            "each application has its own series"
        );
    }
}
