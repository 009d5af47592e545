//! The gateway check's route table (docs/spec.md §11): `[gateway]` and `[[gateway.routes]]`
//! of tessera.toml, validated at start-up, and the matching of an original request's method
//! and path against it. The check itself is `http::gateway`.

use serde::{Deserialize, Serialize};

use crate::scope::{Catalogue, ScopeSet};

/// `[gateway]` of tessera.toml as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// The audience a JWT access token must name (`aud`); without it the check accepts
    /// API keys only.
    pub audience: Option<String>,
    #[serde(default)]
    pub routes: Vec<RouteSettings>,
}

/// One `[[gateway.routes]]` entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// HTTP methods (any when left out).
    pub methods: Option<Vec<String>>,
    /// `/exact/path`, or a prefix `/v1/*` (matches `/v1/` and everything below it).
    pub path: String,
    /// Every one of them is required.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Units spent per request, 1–1000 (default 1), as verify's `cost`.
    pub cost: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathPattern {
    Exact(String),
    /// The prefix, ending in `/`.
    Prefix(String),
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its position in the file, from 1 (for messages).
    pub number: usize,
    methods: Option<Vec<String>>,
    path: PathPattern,
    pub scopes: ScopeSet,
    pub cost: i64,
}

/// The validated gateway configuration.
#[derive(Debug, Clone, Default)]
pub struct Gateway {
    pub audience: Option<String>,
    pub routes: Vec<Route>,
}

/// What the original request's path comes to.
#[derive(Debug)]
pub enum Matched<'a> {
    Route(&'a Route),
    /// No route matches: 403.
    NoRoute,
    /// Dot segments, an encoded `/` or `\`, a NUL, or not a path: 403.
    Refused,
}

/// RFC 9110 §5.6.2 `token` characters (a method name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `[gateway] audience` is the resource URI (RFC 8707) of the API behind the gateway, the
/// `aud` that access tokens must name: an absolute URL without a fragment, as every
/// registered resource (docs/spec.md §8, §11).
fn check_audience(a: &str) -> Result<(), String> {
    if a.trim().is_empty() {
        return Err("gateway.audience must not be empty".into());
    }
    match url::Url::parse(a) {
        Ok(u) if u.fragment().is_none() && !u.cannot_be_a_base() => Ok(()),
        Ok(_) => Err(format!(
            "gateway.audience {a:?} must be an absolute URL without a fragment, the resource \
             URI of the API behind the gateway (as registered with --resource)"
        )),
        Err(e) => Err(format!(
            "gateway.audience {a:?} is not a URL ({e}): it must be the resource URI of the API \
             behind the gateway, as registered with --resource, e.g. https://api.example/inference"
        )),
    }
}

/// True when `uri` is a resource some resource server registered (`client_resources`).
pub fn is_registered_resource(
    conn: &mut crate::db::DbConnection,
    uri: &str,
) -> diesel::QueryResult<bool> {
    use crate::db::schema::client_resources;
    use diesel::prelude::*;
    let found: i64 = client_resources::table
        .filter(client_resources::uri.eq(uri))
        .count()
        .get_result(conn)?;
    Ok(found > 0)
}

impl Gateway {
    /// The warnings `serve` logs at start about this configuration: routes without an
    /// audience (every access token refused: only API keys pass).
    pub fn start_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.routes.is_empty() && self.audience.is_none() {
            out.push(
                "[gateway] has routes but no audience: /gateway/check refuses every access \
                 token (401) and accepts API keys only. Set [gateway] audience in tessera.toml \
                 to the resource URI of the API (a resource registered with --resource) to \
                 accept access tokens issued for it."
                    .to_string(),
            );
        }
        out
    }

    /// Validates `[gateway]`; the error names the route (`gateway.routes[N]`, from 1) and
    /// what is wrong with it.
    pub fn new(s: GatewaySettings, catalogue: &Catalogue) -> Result<Self, String> {
        if let Some(a) = s.audience.as_deref() {
            check_audience(a)?;
        }
        let routes = s
            .routes
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Route::new(i + 1, r, catalogue)
                    .map_err(|m| format!("gateway.routes[{}]: {m}", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            audience: s.audience,
            routes,
        })
    }

    /// The first route matching `method` and the original `uri` (its query is ignored).
    pub fn route(&self, method: &str, uri: &str) -> Matched<'_> {
        let Some(path) = normalize(uri) else {
            return Matched::Refused;
        };
        self.routes
            .iter()
            .find(|r| r.matches(method, &path))
            .map_or(Matched::NoRoute, Matched::Route)
    }
}

impl Route {
    fn new(number: usize, r: RouteSettings, catalogue: &Catalogue) -> Result<Self, String> {
        let path = match r.path.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('/') => PathPattern::Prefix(prefix.to_string()),
            Some(_) => return Err(format!("path {:?}: a prefix ends in \"/*\"", r.path)),
            None => PathPattern::Exact(r.path.clone()),
        };
        let plain = match &path {
            PathPattern::Exact(p) | PathPattern::Prefix(p) => p,
        };
        if normalize(plain).as_deref() != Some(plain.as_str())
            || plain.contains(['*', '?', '#', '%'])
        {
            return Err(format!(
                "path {:?} must start with \"/\" and have no dot segments, \"?\", \"#\", \"%\" or \"*\" (but a final \"/*\")",
                r.path
            ));
        }
        let methods = r
            .methods
            .map(|ms| {
                if ms.is_empty() {
                    return Err("methods must not be empty (leave it out for any method)".into());
                }
                ms.into_iter()
                    .map(|m| {
                        if is_token(&m) {
                            Ok(m.to_ascii_uppercase())
                        } else {
                            Err(format!("method {m:?} is not an HTTP method"))
                        }
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .transpose()?;
        let scopes = ScopeSet::parse_many(r.scopes.iter().map(String::as_str))
            .map_err(|e| format!("scopes: {e}"))?;
        if let Some(unknown) = scopes
            .iter()
            .find(|s| catalogue.description(s.as_str()).is_none())
        {
            return Err(format!(
                "scope {:?} is not in the scope catalogue",
                unknown.as_str()
            ));
        }
        let cost = r.cost.unwrap_or(1);
        if !(1..=crate::api_keys::verify::MAX_COST).contains(&cost) {
            return Err(format!("cost must be from 1 to 1000, got {cost}"));
        }
        Ok(Self {
            number,
            methods,
            path,
            scopes,
            cost,
        })
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self
            .methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m.eq_ignore_ascii_case(method)));
        method_ok
            && match &self.path {
                PathPattern::Exact(p) => path == p,
                PathPattern::Prefix(p) => path.starts_with(p.as_str()),
            }
    }
}

/// The decoded path of an original request URI (query and fragment dropped), or `None`
/// when it must be refused: not starting with `/`, a NUL, an encoded `/` or `\`, a dot
/// segment (`.`/`..`, also percent-encoded), or bytes that are not UTF-8 once decoded.
pub fn normalize(uri: &str) -> Option<String> {
    let raw = uri.split(['?', '#']).next().unwrap_or_default();
    if !raw.starts_with('/') || raw.contains('\0') || raw.contains('\\') {
        return None;
    }
    let lower = raw.to_ascii_lowercase();
    if ["%00", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
        return None;
    }
    let decoded = percent_decode(raw)?;
    if decoded.contains('\0') || decoded.split('/').any(|seg| seg == "." || seg == "..") {
        return None;
    }
    Some(decoded)
}

/// RFC 3986 §2.1 percent-decoding to UTF-8; `None` for a malformed escape or bytes that
/// are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The organization of each client, for `X-Auth-Org-Id` on `client_credentials` tokens
/// (docs/spec.md §11). A client never changes organization, and a deleted client's tokens
/// are inactive before this is asked, so entries need no invalidation; they expire after
/// [`CLIENT_ORG_TTL`] all the same, and at most [`CLIENT_ORG_CAPACITY`] are kept.
#[derive(Debug, Clone)]
pub struct ClientOrgs(moka::sync::Cache<String, Option<String>>);

/// How long a client's organization is remembered.
pub const CLIENT_ORG_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// How many clients' organizations are remembered.
pub const CLIENT_ORG_CAPACITY: u64 = 100_000;

impl Default for ClientOrgs {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(CLIENT_ORG_CAPACITY)
                .time_to_live(CLIENT_ORG_TTL)
                .build(),
        )
    }
}

impl ClientOrgs {
    /// `Some(org)` when known (`Some(None)`: the client has no organization).
    pub fn get(&self, client_id: &str) -> Option<Option<String>> {
        self.0.get(client_id)
    }

    pub fn insert(&self, client_id: &str, org_id: Option<String>) {
        self.0.insert(client_id.to_string(), org_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(toml_text: &str) -> Result<Gateway, String> {
        #[derive(Deserialize)]
        struct File {
            gateway: GatewaySettings,
        }
        let f: File = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Gateway::new(f.gateway, &Catalogue::default())
    }

    const SPEC_EXAMPLE: &str = r#"
[gateway]
audience = "https://api.example/inference"
[[gateway.routes]]
methods = ["POST"]
path = "/v1/chat/completions"
scopes = ["inference:write"]
cost = 1
[[gateway.routes]]
path = "/v1/*"
scopes = ["inference:read"]
"#;

    fn number(m: Matched<'_>) -> Option<usize> {
        match m {
            Matched::Route(r) => Some(r.number),
            _ => None,
        }
    }

    #[test]
    fn first_match_wins_exact_and_prefix_query_ignored() {
        let g = gateway(SPEC_EXAMPLE).expect("valid");
        assert_eq!(number(g.route("POST", "/v1/chat/completions")), Some(1));
        assert_eq!(number(g.route("post", "/v1/chat/completions?x=1")), Some(1));
        assert_eq!(number(g.route("GET", "/v1/chat/completions")), Some(2));
        assert_eq!(number(g.route("GET", "/v1/")), Some(2));
        assert_eq!(number(g.route("GET", "/v1/models/a%20b")), Some(2));
        assert!(matches!(g.route("GET", "/v1"), Matched::NoRoute));
        assert!(matches!(g.route("GET", "/v2/x"), Matched::NoRoute));
        assert!(matches!(g.route("GET", "/v1x/"), Matched::NoRoute));
    }

    #[test]
    fn dot_segments_encoded_slashes_and_nul_are_refused() {
        let g = gateway(SPEC_EXAMPLE).expect("valid");
        for bad in [
            "/v1/../admin",
            "/v1/./x",
            "/v1/%2e%2e/admin",
            "/v1/%2E/x",
            "/v1/a%2fb",
            "/v1/a%2Fb",
            "/v1/a%5cb",
            "/v1/a\\b",
            "/v1/a%00",
            "/v1/a\0",
            "v1/x",
            "",
            "/v1/%ff",
            "/v1/%zz",
        ] {
            assert!(matches!(g.route("GET", bad), Matched::Refused), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_route_is_named() {
        let cases = [
            (r#"path = "v1/x""#, "gateway.routes[1]"),
            (r#"path = "/v1*""#, "prefix"),
            (r#"path = "/v1/*/x""#, "gateway.routes[1]"),
            (r#"path = "/v1/../x""#, "gateway.routes[1]"),
            ("path = \"/x\"\nscopes = [\"nope:read\"]", "nope:read"),
            ("path = \"/x\"\ncost = 0", "cost"),
            ("path = \"/x\"\ncost = 1001", "cost"),
            ("path = \"/x\"\nmethods = [\"GE T\"]", "method"),
            ("path = \"/x\"\nmethods = []", "methods"),
            ("path = \"/x\"\nweight = 3", "weight"),
        ];
        for (route, needle) in cases {
            let text = format!(
                "[gateway]\n[[gateway.routes]]\npath = \"/ok\"\n[[gateway.routes]]\n{route}\n"
            );
            let text = text.replacen("[[gateway.routes]]\npath = \"/ok\"\n", "", 1);
            let err = gateway(&text).expect_err(route);
            assert!(err.contains(needle), "{route}: {err}");
        }
        let two =
            "[gateway]\n[[gateway.routes]]\npath = \"/ok\"\n[[gateway.routes]]\npath = \"bad\"\n";
        assert!(gateway(two).expect_err("bad").contains("gateway.routes[2]"));
        assert!(gateway("[gateway]\naudience = \"\"").is_err());
        let err = gateway("[gateway]\naudience = \"inference\"").expect_err("not a URL");
        assert!(
            err.contains("gateway.audience") && err.contains("not a URL"),
            "{err}"
        );
        let err = gateway("[gateway]\naudience = \"https://api.example/x#f\"").expect_err("#");
        assert!(err.contains("without a fragment"), "{err}");
        assert!(gateway("[gateway]\naudience = \"https://api.example/inference\"").is_ok());
    }

    #[test]
    fn routes_without_an_audience_are_warned_about() {
        let routes = "[[gateway.routes]]\npath = \"/v1/*\"\n";
        let bare = gateway(&format!("[gateway]\n{routes}")).expect("ok");
        let warnings = bare.start_warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("no audience") && warnings[0].contains("API keys only"));
        let with = gateway(&format!(
            "[gateway]\naudience = \"https://api.example\"\n{routes}"
        ));
        assert!(with.expect("ok").start_warnings().is_empty());
        assert!(Gateway::default().start_warnings().is_empty());
    }
}
