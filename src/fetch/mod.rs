//! The guarded fetcher for URLs a client supplies (docs/spec.md §8, docs/security.md K6):
//! client ID metadata documents, and any other document a client names (`jwks_uri`).
//!
//! One fetch: the URL must be `https` (or `http` to a loopback address when
//! `--client-metadata-allow-loopback` is set) without user info or fragment; the host is
//! resolved once and every address it resolves to must be allowed ([`address::classify`]:
//! no private, loopback, link-local, multicast, … address, nor an IPv6 form carrying one);
//! the connection goes to exactly those checked addresses (reqwest's `resolve_to_addrs`
//! override, with a resolver that refuses any other name, so nothing is resolved twice),
//! while TLS SNI and the `Host` header stay the URL's host. No proxy, no redirect (a 3xx is
//! an error), at most [`TIMEOUT`] for everything, at most `max_bytes` of body (read in
//! chunks and cut off, whatever `Content-Length` says), `application/json` only.
//!
//! Successful fetches are cached per URL ([`Fetcher::get_json`]) for the response's
//! `Cache-Control: max-age`, clamped to [`MIN_TTL`]..[`MAX_TTL`]; failures are not cached.

pub mod address;
pub mod roots;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

/// docs/spec.md §8: a whole fetch (resolution, connection, TLS, headers, body) takes at most
/// 5 s.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// docs/spec.md §8: a client ID metadata document is at most 5 KB (5,120 bytes).
pub const METADATA_DOCUMENT_MAX_BYTES: usize = 5 * 1024;
/// docs/spec.md §8: a document is cached at least 5 minutes …
pub const MIN_TTL: Duration = Duration::from_secs(5 * 60);
/// … and at most 24 hours, whatever its `Cache-Control` says.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// How many documents the cache holds at most.
pub const CACHE_ENTRIES: u64 = 10_000;
/// docs/spec.md §8: a cached document is fetched again early at most once a minute per URL.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// Why a fetch failed. Each variant has a fixed description naming the problem
/// ([`FetchError::description`]); an endpoint answers it with its own error code
/// (`invalid_client` at authorize and token, RFC 6749 §5.2; `invalid_client_metadata` at
/// registration, RFC 7591 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute URL, or it has user info or a fragment.
    #[error("malformed URL")]
    Malformed,
    /// Not `https` (nor `http` to loopback with the flag).
    #[error("scheme not allowed")]
    Scheme,
    /// The host did not resolve.
    #[error("host did not resolve")]
    Resolve,
    /// The host resolves to an address of this class, which is not allowed.
    #[error("address refused: {0:?}")]
    Address(address::Class),
    /// The connection, TLS or HTTP exchange failed.
    #[error("connection failed")]
    Connect,
    /// The fetch took longer than [`TIMEOUT`].
    #[error("timed out")]
    Timeout,
    /// A 3xx answer: redirects are not followed.
    #[error("redirect refused")]
    Redirect,
    /// Another non-200 status.
    #[error("status {0}")]
    Status(u16),
    /// The body is larger than allowed.
    #[error("body too large")]
    TooLarge,
    /// The `Content-Type` is not `application/json`.
    #[error("not JSON content")]
    NotJson,
    /// The body does not parse as a JSON object.
    #[error("invalid JSON")]
    BadJson,
}

impl FetchError {
    /// A fixed description of the problem, within RFC 6749 §5.2's character set, that
    /// never echoes the URL or the document.
    pub fn description(&self) -> &'static str {
        match self {
            Self::Malformed => {
                "The URL is malformed (an absolute https URL without user info or fragment is needed)."
            }
            Self::Scheme => "The URL must use https.",
            Self::Resolve => "The URL's host does not resolve.",
            Self::Address(_) => {
                "The URL's host resolves to a private, loopback, link-local or other non-public address; it is not fetched."
            }
            Self::Connect => "The document could not be fetched (connection or TLS failure).",
            Self::Timeout => "Fetching the document took longer than 5 seconds.",
            Self::Redirect => {
                "The document's URL answered with a redirect; redirects are not followed."
            }
            Self::Status(_) => "The document's URL did not answer 200 OK.",
            Self::TooLarge => {
                "The document is larger than allowed (5 KB for a client metadata document)."
            }
            Self::NotJson => "The document is not served as application/json.",
            Self::BadJson => "The document is not a JSON object.",
        }
    }
}

/// A fetched JSON document.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The parsed body (a JSON object).
    pub json: serde_json::Value,
    /// How long the cache keeps it: `max-age` clamped to [`MIN_TTL`]..[`MAX_TTL`].
    pub ttl: Duration,
}

struct TtlOf;

impl moka::Expiry<String, Arc<Fetched>> for TtlOf {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Fetched>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The fetcher: the policy, the TLS configuration (system roots and `--extra-ca-certs`) and
/// the cache. One per
/// server, in `AppState`.
pub struct Fetcher {
    allow_loopback: bool,
    tls: Option<rustls::ClientConfig>,
    cache: moka::sync::Cache<String, Arc<Fetched>>,
    refetched: moka::sync::Cache<String, ()>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("allow_loopback", &self.allow_loopback)
            .finish_non_exhaustive()
    }
}

/// The resolver the HTTP client falls back to for a name without a checked override: it
/// refuses, so no name is ever resolved a second time.
struct NoResolution;

impl reqwest::dns::Resolve for NoResolution {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async { Err("only the checked addresses are used".into()) })
    }
}

/// `max-age` of a `Cache-Control` value, clamped to [`MIN_TTL`]..[`MAX_TTL`] (absent or
/// unreadable: [`MIN_TTL`]).
pub fn ttl_from_cache_control(value: Option<&str>) -> Duration {
    let secs = value
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|d| {
            let (name, arg) = d.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| arg.trim().trim_matches('"').parse::<u64>().ok())?
        })
        .next()
        .unwrap_or(0);
    Duration::from_secs(secs).clamp(MIN_TTL, MAX_TTL)
}

/// Whether a `Content-Type` is JSON: `application/json` or `application/<x>+json`, with
/// any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|s| s.ends_with("+json"))
}

impl Fetcher {
    /// A fetcher; `allow_loopback` is `--client-metadata-allow-loopback` (development and
    /// tests: loopback addresses allowed, over `http` too).
    /// A fetcher trusting the system's roots only.
    pub fn new(allow_loopback: bool) -> Self {
        Self::with_roots(allow_loopback, &roots::ExtraRoots::default())
    }

    /// A fetcher trusting the system's roots and `extra` (`--extra-ca-certs`).
    pub fn with_roots(allow_loopback: bool, extra: &roots::ExtraRoots) -> Self {
        Self {
            allow_loopback,
            tls: roots::tls_config(extra),
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .expire_after(TtlOf)
                .build(),
            refetched: moka::sync::Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(REFETCH_INTERVAL)
                .build(),
        }
    }

    /// The JSON object at `url`, from the cache or fetched under the guard (module doc).
    /// Errors: [`FetchError`].
    pub async fn get_json(&self, url: &str, max_bytes: usize) -> Result<Arc<Fetched>, FetchError> {
        if let Some(hit) = self.cache.get(url) {
            return Ok(hit);
        }
        let fetched = Arc::new(self.fetch_json(url, max_bytes).await?);
        self.cache.insert(url.to_string(), fetched.clone());
        Ok(fetched)
    }

    /// Whether `url` may be fetched again before its cache lifetime ends (a JWK set that
    /// lacks an assertion's `kid`): true at most once per [`REFETCH_INTERVAL`] per URL.
    pub fn may_refetch(&self, url: &str) -> bool {
        self.refetched
            .entry(url.to_string())
            .or_insert(())
            .is_fresh()
    }

    /// Drops `url` from the cache.
    /// Whether a fetched document for `url` is in the cache (a lookup costs no fetch).
    pub fn is_cached(&self, url: &str) -> bool {
        self.cache.contains_key(url)
    }

    pub fn forget(&self, url: &str) {
        self.cache.invalidate(url);
    }

    /// Fetches the JSON object at `url` under the guard, without the cache.
    pub async fn fetch_json(&self, url: &str, max_bytes: usize) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(TIMEOUT, self.fetch_inner(url, max_bytes)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    /// The checked addresses to connect to for `url`: every address the host resolves to
    /// must be allowed, and plain `http` needs the loopback flag and loopback addresses only.
    pub async fn checked_addresses(&self, url: &Url) -> Result<Vec<SocketAddr>, FetchError> {
        let port = url.port_or_known_default().ok_or(FetchError::Malformed)?;
        let addrs: Vec<SocketAddr> = match url.host().ok_or(FetchError::Malformed)? {
            url::Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            url::Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            url::Host::Domain(name) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| FetchError::Resolve)?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(FetchError::Resolve);
        }
        for a in &addrs {
            let class = address::classify(a.ip());
            if !class.allowed(self.allow_loopback) {
                return Err(FetchError::Address(class));
            }
        }
        if url.scheme() == "http"
            && !addrs
                .iter()
                .all(|a| address::classify(a.ip()) == address::Class::Loopback)
        {
            return Err(FetchError::Scheme);
        }
        Ok(addrs)
    }

    fn parse_url(&self, url: &str) -> Result<Url, FetchError> {
        let parsed = Url::parse(url).map_err(|_| FetchError::Malformed)?;
        if parsed.cannot_be_a_base()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
            || parsed.fragment().is_some()
            || parsed.host().is_none()
        {
            return Err(FetchError::Malformed);
        }
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if self.allow_loopback => Ok(parsed),
            _ => Err(FetchError::Scheme),
        }
    }

    async fn fetch_inner(&self, url: &str, max_bytes: usize) -> Result<Fetched, FetchError> {
        let parsed = self.parse_url(url)?;
        let addrs = self.checked_addresses(&parsed).await?;
        self.fetch_from(parsed, &addrs, max_bytes).await
    }

    /// Fetches `parsed` connecting only to the checked `addrs`: the name is never resolved
    /// again, so DNS rebinding cannot redirect the connection (docs/security.md K6).
    async fn fetch_from(
        &self,
        parsed: Url,
        addrs: &[SocketAddr],
        max_bytes: usize,
    ) -> Result<Fetched, FetchError> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .pool_max_idle_per_host(0)
            .http1_only()
            .dns_resolver(Arc::new(NoResolution));
        if let Some(url::Host::Domain(name)) = parsed.host() {
            builder = builder.resolve_to_addrs(name, addrs);
        }
        // Always given: reqwest would otherwise look for a process-wide rustls provider.
        let tls = self.tls.clone().ok_or(FetchError::Connect)?;
        builder = builder.use_preconfigured_tls(tls);
        let client = builder.build().map_err(|_| FetchError::Connect)?;
        let mut response = client
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    FetchError::Timeout
                } else {
                    FetchError::Connect
                }
            })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect);
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        let headers = response.headers();
        let json_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        if !json_type {
            return Err(FetchError::NotJson);
        }
        let ttl = ttl_from_cache_control(
            headers
                .get(reqwest::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        );
        if response
            .content_length()
            .is_some_and(|n| n > max_bytes as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            if e.is_timeout() {
                FetchError::Timeout
            } else {
                FetchError::Connect
            }
        })? {
            if body.len() + chunk.len() > max_bytes {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| FetchError::BadJson)?;
        if !json.is_object() {
            return Err(FetchError::BadJson);
        }
        Ok(Fetched { json, ttl })
    }
}

#[cfg(test)]
mod rebinding;
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lifetimes_are_clamped_to_five_minutes_and_a_day() {
        assert_eq!(ttl_from_cache_control(None), MIN_TTL);
        assert_eq!(ttl_from_cache_control(Some("no-store")), MIN_TTL);
        assert_eq!(ttl_from_cache_control(Some("max-age=60")), MIN_TTL);
        assert_eq!(
            ttl_from_cache_control(Some("public, max-age=3600")),
            Duration::from_secs(3600)
        );
        assert_eq!(
            ttl_from_cache_control(Some("Max-Age=\"7200\"")),
            Duration::from_secs(7200)
        );
        assert_eq!(ttl_from_cache_control(Some("max-age=999999999")), MAX_TTL);
        assert_eq!(ttl_from_cache_control(Some("max-age=-1")), MIN_TTL);
    }

    #[test]
    fn only_json_content_types_are_json() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/oauth-client+json"));
        assert!(!is_json("text/html"));
        assert!(!is_json("text/json"));
        assert!(!is_json(""));
    }

    #[tokio::test]
    async fn k6_urls_are_refused_before_any_connection() {
        let strict = Fetcher::new(false);
        let dev = Fetcher::new(true);
        let refused = [
            ("not a url", FetchError::Malformed),
            ("https://user:pw@example.com/c", FetchError::Malformed),
            ("https://example.com/c#frag", FetchError::Malformed),
            ("ftp://example.com/c", FetchError::Scheme),
            ("http://127.0.0.1/c", FetchError::Scheme),
            (
                "https://127.0.0.1/c",
                FetchError::Address(address::Class::Loopback),
            ),
            (
                "https://[::1]/c",
                FetchError::Address(address::Class::Loopback),
            ),
            (
                "https://10.0.0.1/c",
                FetchError::Address(address::Class::Private),
            ),
            (
                "https://169.254.169.254/latest/meta-data",
                FetchError::Address(address::Class::LinkLocal),
            ),
            (
                "https://[::ffff:169.254.169.254]/c",
                FetchError::Address(address::Class::LinkLocal),
            ),
            (
                "https://[64:ff9b::a00:1]/c",
                FetchError::Address(address::Class::Private),
            ),
            (
                "https://[fd00::1]/c",
                FetchError::Address(address::Class::Private),
            ),
            (
                "https://localhost/c",
                FetchError::Address(address::Class::Loopback),
            ),
            (
                "https://0x7f.1/c",
                FetchError::Address(address::Class::Loopback),
            ),
        ];
        for (url, want) in refused {
            let got = strict.fetch_json(url, 100).await.expect_err(url);
            assert_eq!(got, want, "{url}");
        }
        // With the flag, loopback is allowed (also over http); private and link-local stay
        // refused, and http to anything but loopback stays refused.
        assert_eq!(
            dev.fetch_json("http://10.0.0.1/c", 100)
                .await
                .expect_err("private"),
            FetchError::Address(address::Class::Private)
        );
        assert_eq!(
            dev.fetch_json("http://169.254.169.254/c", 100)
                .await
                .expect_err("link-local"),
            FetchError::Address(address::Class::LinkLocal)
        );
        assert_eq!(
            dev.fetch_json("http://8.8.8.8:9/c", 100)
                .await
                .expect_err("http public"),
            FetchError::Scheme
        );
    }

    /// A tiny HTTP/1.1 server on a loopback port answering each path with a canned response.
    pub(super) async fn serve(routes: Vec<(&'static str, String)>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let routes = routes.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        let Ok(n) = sock.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    let head = String::from_utf8_lossy(&got).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let answer = routes
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map(|(_, r)| r.clone())
                        .unwrap_or_else(|| {
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into()
                        });
                    let _ = sock.write_all(answer.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        format!("http://localhost:{}", addr.port())
    }

    pub(super) fn json_response(extra_headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn k6_the_fetcher_refuses_redirects_big_bodies_and_non_json_and_caches_within_bounds() {
        let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(6000));
        let base = serve(vec![
            ("/ok", json_response("Cache-Control: max-age=7200\r\n", r#"{"client_id": "x"}"#)),
            ("/redirect", "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n".into()),
            ("/big", json_response("", &big)),
            // Lies about its length: the cap counts what arrives.
            (
                "/big-chunked",
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
                    big.len()
                ),
            ),
            ("/html", "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\n{}".into()),
            ("/array", json_response("", "[1, 2]")),
            ("/garbage", json_response("", "{not json")),
        ])
        .await;
        let strict = Fetcher::new(false);
        assert_eq!(
            strict
                .fetch_json(&format!("{base}/ok"), 5120)
                .await
                .expect_err("no flag"),
            FetchError::Scheme
        );
        let https_loopback = base.replace("http://", "https://");
        assert_eq!(
            strict
                .fetch_json(&format!("{https_loopback}/ok"), 5120)
                .await
                .expect_err("no flag"),
            FetchError::Address(address::Class::Loopback)
        );
        let dev = Fetcher::new(true);
        let ok = dev.get_json(&format!("{base}/ok"), 5120).await.expect("ok");
        assert_eq!(ok.json["client_id"], "x");
        assert_eq!(ok.ttl, Duration::from_secs(7200));
        for (path, want) in [
            ("/redirect", FetchError::Redirect),
            ("/big", FetchError::TooLarge),
            ("/big-chunked", FetchError::TooLarge),
            ("/html", FetchError::NotJson),
            ("/array", FetchError::BadJson),
            ("/garbage", FetchError::BadJson),
            ("/missing", FetchError::Status(404)),
        ] {
            let got = dev
                .fetch_json(&format!("{base}{path}"), 5120)
                .await
                .expect_err(path);
            assert_eq!(got, want, "{path}");
        }
    }
}
