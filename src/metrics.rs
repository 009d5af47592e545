//! Prometheus metrics: request counts and latency histograms by method, route pattern and
//! status, and the product counters of docs/spec.md §7 (tokens issued, key verifications,
//! rate-limited requests, failed logins, revocations), kept by a `metrics-exporter-prometheus` recorder that belongs to one
//! `Application` (never installed as the process-wide recorder: tests run many
//! applications in one process). The pool's usage is read when scraped
//! (`http::ops::metrics_get`).

use metrics::{Unit, describe_counter, describe_histogram, with_local_recorder};
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
            // Every series exists from the start at 0, so a rate over it is defined.
            for g in crate::clients::GrantType::ALL {
                metrics::counter!(TOKENS_ISSUED, "grant_type" => g.as_str()).absolute(0);
            }
            for c in crate::api_keys::verify::Code::ALL {
                metrics::counter!(VERIFICATIONS, "code" => c.as_str()).absolute(0);
            }
            for k in Revocation::ALL {
                metrics::counter!(REVOCATIONS, "kind" => k.as_str()).absolute(0);
            }
            metrics::counter!(RATE_LIMITED).absolute(0);
            metrics::counter!(LOGIN_FAILURES).absolute(0);
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

    /// An access token was issued for `grant` (docs/spec.md §7).
    pub fn token_issued(&self, grant: crate::clients::GrantType) {
        with_local_recorder(&self.recorder, || {
            metrics::counter!(TOKENS_ISSUED, "grant_type" => grant.as_str()).increment(1);
        });
    }

    /// A key verification answered `code`.
    pub fn verification(&self, code: crate::api_keys::verify::Code) {
        with_local_recorder(&self.recorder, || {
            metrics::counter!(VERIFICATIONS, "code" => code.as_str()).increment(1);
        });
    }

    /// A request was refused because its API key's rate limit was spent.
    pub fn rate_limited(&self) {
        with_local_recorder(&self.recorder, || {
            metrics::counter!(RATE_LIMITED).increment(1);
        });
    }

    /// A login was refused: unknown email or wrong password.
    pub fn login_failure(&self) {
        with_local_recorder(&self.recorder, || {
            metrics::counter!(LOGIN_FAILURES).increment(1);
        });
    }

    /// A credential was revoked.
    pub fn revocation(&self, kind: Revocation) {
        with_local_recorder(&self.recorder, || {
            metrics::counter!(REVOCATIONS, "kind" => kind.as_str()).increment(1);
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
