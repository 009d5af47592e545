//! Prometheus metrics: request counts and latency histograms by method, route pattern and
//! status; the pool's usage is read when scraped.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

type SeriesKey = (String, String, u16);

#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<HashMap<SeriesKey, Series>>,
}

impl Metrics {
    #[expect(
        clippy::indexing_slicing,
        reason = "bucket arrays have BUCKETS.len() entries; keys come from the map itself"
    )]
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut map) = self.series.lock() else {
            return;
        };
        let s = map
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition of the request series.
    #[expect(
        clippy::indexing_slicing,
        reason = "bucket arrays have BUCKETS.len() entries; keys come from the map itself"
    )]
    pub fn render(&self, out: &mut String) {
        let map = match self.series.lock() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let mut keys: Vec<&SeriesKey> = map.keys().collect();
        keys.sort();
        out.push_str(
            "# HELP tessera_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE tessera_http_requests_total counter\n");
        for k in &keys {
            let _ = writeln!(
                out,
                "tessera_http_requests_total{{{}}} {}",
                labels(k),
                map[*k].count
            );
        }
        out.push_str("# HELP tessera_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE tessera_http_request_duration_seconds histogram\n");
        for k in &keys {
            let s = &map[*k];
            let l = labels(k);
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_sum{{{l}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_count{{{l}}} {}",
                s.count
            );
        }
    }
}

fn labels((method, route, status): &SeriesKey) -> String {
    let route = route.replace('\\', "\\\\").replace('"', "\\\"");
    format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"")
}
