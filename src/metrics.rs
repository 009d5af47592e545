//! Prometheus metrics: request counts and latency histograms by method, route pattern and
//! status, and the product counters of docs/spec.md §7 (tokens issued, key verifications,
//! rate-limited requests, failed logins, revocations), kept by a `metrics-exporter-prometheus` recorder that belongs to one
//! `Application` (never installed as the process-wide recorder: tests run many
//! applications in one process). The pool's usage is read when scraped
//! (`http::ops::metrics_get`).

use std::cell::RefCell;
use std::collections::HashMap;

use metrics::{
    Counter, Histogram, Unit, describe_counter, describe_histogram, with_local_recorder,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const REQUESTS: &str = "tessera_http_requests_total";
const DURATION: &str = "tessera_http_request_duration_seconds";
const TOKENS_ISSUED: &str = "tessera_tokens_issued_total";
const VERIFICATIONS: &str = "tessera_verifications_total";
const RATE_LIMITED: &str = "tessera_rate_limited_total";
const LOGIN_FAILURES: &str = "tessera_login_failures_total";
const REVOCATIONS: &str = "tessera_revocations_total";

use crate::api_keys::verify::Code;
use crate::clients::GrantType;
use thread_local::ThreadLocal;

/// What a revocation took away (`kind` of `tessera_revocations_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// An API key (`/api/v1`, the settings page).
    ApiKey,
    /// A refresh token and its grant (RFC 7009 §2.1).
    RefreshToken,
    /// One access token (RFC 7009).
    AccessToken,
    /// A user withdrew an app's consent, and its grants with it (`/account/apps`).
    Consent,
}

impl Revocation {
    pub const ALL: [Revocation; 4] = [
        Self::ApiKey,
        Self::RefreshToken,
        Self::AccessToken,
        Self::Consent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::RefreshToken => "refresh_token",
            Self::AccessToken => "access_token",
            Self::Consent => "consent",
        }
    }
}
const JANITOR_DELETED: &str = "tessera_janitor_deleted_rows_total";
const GROUP_COMMIT_BATCH: &str = "tessera_group_commit_batch_size";
/// Buckets of [`GROUP_COMMIT_BATCH`]: jobs per transaction, up to `db::group_commit::MAX_BATCH`.
const BATCH_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The most (method, route, status) handles one worker thread keeps; past it a request's
/// series is looked up in the registry each time (the method label is the client's).
const MAX_CACHED_SERIES: usize = 4096;

/// The request series one worker thread has used: (route pattern, method, status) →
/// the counter and histogram handles, registered once.
type SeriesCache = RefCell<HashMap<(String, &'static str, u16), (Counter, Histogram)>>;

/// The methods whose series are kept per thread (RFC 9110 §9 and PATCH); any other method
/// name comes from the client and is looked up each time.
fn standard_method(method: &str) -> Option<&'static str> {
    [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ]
    .into_iter()
    .find(|m| *m == method)
}

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Per worker thread, so a request takes no lock and builds no label set once its
    /// series was seen on that thread.
    series: ThreadLocal<SeriesCache>,
    tokens_issued: [Counter; GrantType::ALL.len()],
    verifications: [Counter; Code::ALL.len()],
    revocations: [Counter; Revocation::ALL.len()],
    rate_limited: Counter,
    login_failures: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        // Buckets make the latency a histogram (not a summary); the only error is an
        // empty bucket list, which BUCKETS is not.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_string()), &BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(GROUP_COMMIT_BATCH.to_string()),
                    &BATCH_BUCKETS,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let (tokens_issued, verifications, revocations, rate_limited, login_failures) =
            with_local_recorder(&recorder, || {
                describe_counter!(REQUESTS, "HTTP requests by method, route and status.");
                describe_histogram!(DURATION, Unit::Seconds, "HTTP request latency.");
                describe_counter!(
                    TOKENS_ISSUED,
                    "Access tokens issued by the token endpoint, by grant type."
                );
                describe_counter!(
                    VERIFICATIONS,
                    "API key verifications (/api/v1/keys/verify), by verdict code."
                );
                describe_counter!(
                    RATE_LIMITED,
                    "Requests refused because an API key's rate limit was spent (verify RATE_LIMITED, /api/v1 429)."
                );
                describe_counter!(
                    LOGIN_FAILURES,
                    "Login attempts refused for a wrong email or password."
                );
                describe_counter!(REVOCATIONS, "Credentials revoked, by kind.");
                describe_counter!(
                    JANITOR_DELETED,
                    "Expired rows deleted by the janitor, by table (docs/security.md R12)."
                );
                // Every series exists from the start at 0, so a rate over it is defined;
                // the handles are kept, so counting is one atomic add.
                let zero = |c: Counter| {
                    c.absolute(0);
                    c
                };
                (
                    GrantType::ALL.map(|g| {
                        zero(metrics::counter!(TOKENS_ISSUED, "grant_type" => g.as_str()))
                    }),
                    Code::ALL.map(|c| zero(metrics::counter!(VERIFICATIONS, "code" => c.as_str()))),
                    Revocation::ALL
                        .map(|k| zero(metrics::counter!(REVOCATIONS, "kind" => k.as_str()))),
                    zero(metrics::counter!(RATE_LIMITED)),
                    zero(metrics::counter!(LOGIN_FAILURES)),
                )
            });
        let handle = recorder.handle();
        Self {
            recorder,
            handle,
            series: ThreadLocal::new(),
            tokens_issued,
            verifications,
            revocations,
            rate_limited,
            login_failures,
        }
    }
}

impl Metrics {
    /// Counts one request and records its latency (`seconds`) under its method, route
    /// pattern and status (`tessera_http_requests_total`,
    /// `tessera_http_request_duration_seconds`). `route` is taken, not copied, when the
    /// series is new on this thread.
    pub fn observe(&self, method: &str, route: String, status: u16, seconds: f64) {
        let Some(known) = standard_method(method) else {
            let (counter, histogram) = self.series_handles(method, &route, status);
            counter.increment(1);
            histogram.record(seconds);
            return;
        };
        let cache = self.series.get_or_default();
        let key = (route, known, status);
        if let Some((counter, histogram)) = cache.borrow().get(&key) {
            counter.increment(1);
            histogram.record(seconds);
            return;
        }
        let (counter, histogram) = self.series_handles(method, &key.0, status);
        counter.increment(1);
        histogram.record(seconds);
        let mut cache = cache.borrow_mut();
        if cache.len() < MAX_CACHED_SERIES {
            cache.insert(key, (counter, histogram));
        }
    }

    /// Registers (or finds) the request series of one method, route and status.
    fn series_handles(&self, method: &str, route: &str, status: u16) -> (Counter, Histogram) {
        let labels = [
            ("method", method.to_string()),
            ("route", route.to_string()),
            ("status", status.to_string()),
        ];
        with_local_recorder(&self.recorder, || {
            (
                metrics::counter!(REQUESTS, &labels),
                metrics::histogram!(DURATION, &labels),
            )
        })
    }

    /// An access token was issued for `grant` (docs/spec.md §7).
    pub fn token_issued(&self, grant: GrantType) {
        let at = GrantType::ALL.iter().position(|g| *g == grant);
        if let Some(c) = at.and_then(|i| self.tokens_issued.get(i)) {
            c.increment(1);
        }
    }

    /// A key verification answered `code`.
    pub fn verification(&self, code: Code) {
        let at = Code::ALL.iter().position(|c| *c == code);
        if let Some(c) = at.and_then(|i| self.verifications.get(i)) {
            c.increment(1);
        }
    }

    /// A request was refused because its API key's rate limit was spent.
    pub fn rate_limited(&self) {
        self.rate_limited.increment(1);
    }

    /// A login was refused: unknown email or wrong password.
    pub fn login_failure(&self) {
        self.login_failures.increment(1);
    }

    /// A credential was revoked.
    pub fn revocation(&self, kind: Revocation) {
        let at = Revocation::ALL.iter().position(|k| *k == kind);
        if let Some(c) = at.and_then(|i| self.revocations.get(i)) {
            c.increment(1);
        }
    }

    /// Counts rows the janitor deleted from `table` (`janitor::sweep`).
    pub fn janitor_deleted(&self, table: &'static str, rows: u64) {
        with_local_recorder(&self.recorder, || {
            metrics::counter!(JANITOR_DELETED, "table" => table).increment(rows);
        });
    }

    /// The histogram of jobs per group-commit transaction (`tessera_group_commit_batch_size`,
    /// docs/architecture.md §6.1), recorded by the SQLite writer thread.
    pub fn group_commit_batch(&self) -> Histogram {
        with_local_recorder(&self.recorder, || {
            describe_histogram!(
                GROUP_COMMIT_BATCH,
                Unit::Count,
                "Write transactions committed together in one SQLite transaction (group commit)."
            );
            metrics::histogram!(GROUP_COMMIT_BATCH)
        })
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
        m.observe("GET", "/healthz".into(), 200, 0.002);
        m.observe("GET", "/healthz".into(), 200, 0.2);
        m.observe("POST", r#"/a"b"#.into(), 400, 3.0);
        m.observe("BREW", "/healthz".into(), 405, 0.1);
        let other = Metrics::default();
        other.observe("GET", "/x".into(), 200, 0.1);
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
        assert!(
            out.contains(
                r#"tessera_http_requests_total{method="BREW",route="/healthz",status="405"} 1"#
            ),
            "an unusual method is counted too: {out}"
        );
        assert!(out.contains("# TYPE tessera_http_request_duration_seconds histogram"));
        assert!(
            !out.contains(r#"route="/x""#),
            "each application has its own series"
        );
    }

    #[test]
    fn product_counters_start_at_zero_and_count_by_label() {
        let m = Metrics::default();
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            r#"tessera_tokens_issued_total{grant_type="client_credentials"} 0"#,
            r#"tessera_verifications_total{code="RATE_LIMITED"} 0"#,
            r#"tessera_revocations_total{kind="consent"} 0"#,
            "tessera_rate_limited_total 0",
            "tessera_login_failures_total 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in {out}");
        }
        for c in crate::api_keys::verify::Code::ALL {
            assert_eq!(serde_json::to_value(c).expect("json"), c.as_str());
        }
        m.token_issued(crate::clients::GrantType::RefreshToken);
        m.verification(crate::api_keys::verify::Code::Valid);
        m.verification(crate::api_keys::verify::Code::Valid);
        m.rate_limited();
        m.login_failure();
        m.revocation(Revocation::ApiKey);
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            r#"tessera_tokens_issued_total{grant_type="refresh_token"} 1"#,
            r#"tessera_tokens_issued_total{grant_type="authorization_code"} 0"#,
            r#"tessera_verifications_total{code="VALID"} 2"#,
            r#"tessera_revocations_total{kind="api_key"} 1"#,
            "tessera_rate_limited_total 1",
            "tessera_login_failures_total 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in {out}");
        }
    }
}
