//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document;
//! docs/spec.md §8): a `client_id` that is an `https` URL with a path names a JSON document
//! that describes the client. The HTTP layer fetches it with the guarded fetcher
//! (`crate::fetch`, cached), [`validate`] checks it, and [`upsert`] keeps a row in
//! `clients` whose id is the URL itself.
//!
//! How such a client is represented: an ordinary platform client row (no organization,
//! public, `authorization_code` and `refresh_token` only, never `admin`, no resource
//! server) keyed by the URL, created on first use and brought up to date whenever a fetched
//! document differs from it. Grants, codes, refresh tokens and remembered consent reference
//! it like any other client, so `/account/apps`, withdrawal, revocation and refresh work
//! unchanged. Nobody edits the row: the document is the only source. A row's id tells what
//! it is ([`is_document_url`]); ids of other clients are `cli_…`.

use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::store::{self, ClientRow};
use super::{GrantType, NewClient, ValidClient, default_scope};
use crate::app::Ctx;
use crate::db::{DbConnection, write_tx};
use crate::error::AppError;
use crate::scope::{Catalogue, ScopeSet};

/// What the document says that tessera reads (other members are ignored, RFC 7591 §2).
#[derive(Debug, Deserialize)]
struct Document {
    client_id: Option<String>,
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    scope: Option<String>,
    client_secret: Option<serde_json::Value>,
    resource_server: Option<bool>,
    resources: Option<serde_json::Value>,
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
}

/// Whether `client_id` is meant as a metadata document URL: it starts with `https://` (or
/// `http://`, which only `--client-metadata-allow-loopback` lets through, and then only to
/// loopback). Such an id is never looked up as an ordinary client: it is fetched.
pub fn looks_like_url(client_id: &str) -> bool {
    let lower = client_id.get(..8).unwrap_or(client_id).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Whether `client_id` is a valid metadata document URL (draft §3): an absolute `https`
/// URL (`http` only with `allow_loopback`) with a host and a path other than `/`, no user
/// info, no fragment, no dot segments, and in normal form (it is compared as a string).
pub fn is_document_url(client_id: &str, allow_loopback: bool) -> bool {
    let Ok(url) = url::Url::parse(client_id) else {
        return false;
    };
    let scheme_ok = url.scheme() == "https" || (allow_loopback && url.scheme() == "http");
    scheme_ok
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && url.path() != "/"
        && !url.path().split('/').any(|s| s == "." || s == "..")
        && url.as_str() == client_id
}

fn invalid(msg: &str) -> String {
    format!("The client metadata document is invalid: {msg}")
}

/// Checks a fetched document for the client `url` (docs/spec.md §8): `client_id` equals
/// the URL exactly; `redirect_uris` present and valid (public-client rules of
/// `redirect_uri::validate`); `token_endpoint_auth_method` absent or `none`; grant types
/// within `authorization_code`, `refresh_token`; `response_types` within `code`; no
/// `client_secret`; no resource server. The scope is the document's (default: every
/// catalogue scope but `admin`) without `admin` and without scopes tessera does not know.
/// Errors: a message naming the member at fault.
pub fn validate(
    url: &str,
    json: &serde_json::Value,
    catalogue: &Catalogue,
) -> Result<ValidClient, String> {
    let doc: Document = serde_json::from_value(json.clone())
        .map_err(|_| invalid("a member has the wrong type."))?;
    if doc.client_id.as_deref() != Some(url) {
        return Err(invalid(
            "its client_id is not exactly the URL it was fetched from.",
        ));
    }
    let redirect_uris = doc
        .redirect_uris
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid("redirect_uris is required."))?;
    if doc.jwks.is_some() {
        return Err(invalid(
            "jwks: a metadata document client publishes its keys at jwks_uri.",
        ));
    }
    let jwks_uri = match (doc.token_endpoint_auth_method.as_deref(), doc.jwks_uri) {
        (None | Some("none"), None) => None,
        (Some("private_key_jwt"), Some(uri)) => Some(uri),
        (Some("private_key_jwt"), None) => {
            return Err(invalid(
                "token_endpoint_auth_method private_key_jwt needs a jwks_uri.",
            ));
        }
        (None | Some("none"), Some(_)) => {
            return Err(invalid(
                "jwks_uri needs token_endpoint_auth_method private_key_jwt.",
            ));
        }
        (Some(_), _) => {
            return Err(invalid(
                "token_endpoint_auth_method must be none or private_key_jwt (a metadata document client has no secret).",
            ));
        }
    };
    if doc.client_secret.is_some() {
        return Err(invalid("it must not carry a client_secret."));
    }
    if doc.resource_server == Some(true) || doc.resources.is_some() {
        return Err(invalid(
            "a metadata document client cannot be a resource server.",
        ));
    }
    if let Some(rt) = &doc.response_types
        && rt.iter().any(|t| t != "code")
    {
        return Err(invalid("response_types: only code is supported."));
    }
    let grant_types = match &doc.grant_types {
        None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        Some(list) => {
            let mut out = Vec::new();
            for g in list {
                match GrantType::parse(g) {
                    Some(g @ (GrantType::AuthorizationCode | GrantType::RefreshToken)) => {
                        if !out.contains(&g) {
                            out.push(g);
                        }
                    }
                    _ => {
                        return Err(invalid(
                            "grant_types: only authorization_code and refresh_token are allowed.",
                        ));
                    }
                }
            }
            out.sort();
            out
        }
    };
    let ceiling = default_scope(catalogue);
    let scope = match doc.scope.as_deref() {
        None | Some("") => ceiling,
        Some(s) => {
            let asked = ScopeSet::parse(s)
                .map_err(|_| invalid("scope must be scope names separated by single spaces."))?;
            let kept: Vec<&str> = asked
                .iter()
                .map(|s| s.as_str())
                .filter(|s| ceiling.contains(s))
                .collect();
            ScopeSet::parse_many(kept)
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| invalid("scope names no scope this server offers."))?
        }
    };
    let new = NewClient {
        name: doc.client_name.unwrap_or_default(),
        redirect_uris,
        public: jwks_uri.is_none(),
        resource_server: false,
        grant_types: Some(grant_types),
        scope: Some(scope),
        org_id: None,
        logo_uri: doc.logo_uri,
        client_uri: doc.client_uri,
        created_by: None,
        resources: None,
        post_logout_redirect_uris: None,
        id_token_signed_response_alg: None,
        jwks: None,
        jwks_uri,
    };
    new.validate(catalogue).map_err(|e| invalid(&e.to_string()))
}

/// Whether the stored row already says what `client` says.
fn same(row: &ClientRow, client: &ValidClient) -> bool {
    let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
    row.name == client.name
        && row.redirect_uri_list() == client.redirect_uris
        && row.grant_types == grants.join(" ")
        && row.scope == client.scope.to_string()
        && row.logo_uri == client.logo_uri
        && row.client_uri == client.client_uri
        && row.is_public == client.public
        && row.jwks_uri == client.jwks_uri
}

/// Creates or updates the row of the metadata document client `url` from its validated
/// document, with `client.created` / `client.updated` in the audit log (actor
/// `client-metadata`); a row that already matches is left alone. Returns the row.
pub fn upsert(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    url: &str,
    client: &ValidClient,
) -> Result<ClientRow, AppError> {
    let attempt = |conn: &mut DbConnection| {
        write_tx(
            conn,
            |conn| -> Result<(ClientRow, bool), super::ClientError> {
                let (action, changed) = match store::find(conn, url)? {
                    Some(row) if same(&row, client) => return Ok((row, false)),
                    Some(_) => {
                        store::update(conn, url, client, ctx.now)?;
                        ("client.updated", true)
                    }
                    None => {
                        store::insert_with_id(
                            conn,
                            url,
                            client,
                            &ctx.settings.key_prefix,
                            ctx.now,
                        )?;
                        ("client.created", false)
                    }
                };
                crate::audit::record(
                    conn,
                    &crate::audit::Event {
                        org_id: None,
                        actor: "client-metadata",
                        action,
                        target_type: "client",
                        target_id: url,
                        details: json!({"name": client.name}),
                    },
                    ctx.now,
                )?;
                let row = store::find(conn, url)?.ok_or(diesel::result::Error::NotFound)?;
                Ok((row, changed))
            },
        )
    };
    let outcome = match attempt(conn) {
        // Two first uses at once on PostgreSQL: the other one inserted the row.
        Err(super::ClientError::Db(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ))) => attempt(conn),
        other => other,
    };
    match outcome {
        Ok((row, changed)) => {
            if changed {
                ctx.client_changed(url);
            }
            Ok(row)
        }
        Err(super::ClientError::Db(e)) => Err(AppError::from_db(e)),
        Err(e) => Err(AppError::Internal(
            format!("metadata document client: {e}").into(),
        )),
    }
}

/// The host a metadata document client is shown by on the consent page (docs/spec.md §8).
pub fn host_of(client_id: &str) -> Option<String> {
    url::Url::parse(client_id)
        .ok()?
        .host_str()
        .map(str::to_string)
}

/// Whether the client was registered by nobody the platform vetted: a metadata document
/// client or one made by open registration (the consent page marks both "not verified").
pub fn unverified(conn: &mut DbConnection, row: &ClientRow) -> QueryResult<bool> {
    Ok(looks_like_url(&row.id) || super::open_registration::is_open(conn, &row.id)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://app.example/oauth/client.json";

    fn doc(extra: serde_json::Value) -> serde_json::Value {
        let mut d = json!({
            "client_id": URL,
            "client_name": "Example MCP client",
            "redirect_uris": ["http://127.0.0.1/callback", "https://app.example/cb"],
        });
        if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                d.insert(k.clone(), v.clone());
            }
        }
        d
    }

    #[test]
    fn a13_document_urls_are_https_with_a_path_in_normal_form() {
        assert!(is_document_url(URL, false));
        for bad in [
            "https://app.example",
            "https://app.example/",
            "http://app.example/c",
            "https://app.example/c#x",
            "https://u@app.example/c",
            "https://app.example/a/../c",
            "https://APP.example/c",
            "cli_abc",
        ] {
            assert!(!is_document_url(bad, false), "{bad}");
        }
        assert!(is_document_url("http://localhost:8080/c", true));
        assert!(looks_like_url("HTTPS://x"));
        assert!(!looks_like_url("cli_https://"));
    }

    #[test]
    fn a13_a_document_must_name_its_url_and_keep_to_a_public_code_flow_client() {
        let cat = Catalogue::default();
        let ok = validate(URL, &doc(json!({})), &cat).expect("valid");
        assert!(ok.public);
        assert_eq!(
            ok.grant_types,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert!(!ok.scope.contains("admin"));
        let capped = validate(
            URL,
            &doc(json!({"scope": "admin inference:read root"})),
            &cat,
        )
        .expect("capped");
        assert_eq!(capped.scope.to_string(), "inference:read");
        assert!(ok.public && ok.jwks_uri.is_none());
        let signed = validate(
            URL,
            &doc(json!({"token_endpoint_auth_method": "private_key_jwt",
                        "jwks_uri": "https://app.example/jwks.json"})),
            &cat,
        )
        .expect("private_key_jwt with a jwks_uri");
        assert!(!signed.public);
        assert_eq!(
            signed.jwks_uri.as_deref(),
            Some("https://app.example/jwks.json")
        );
        for (extra, fault) in [
            (
                json!({"token_endpoint_auth_method": "private_key_jwt"}),
                "needs a jwks_uri",
            ),
            (
                json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": []}}),
                "jwks",
            ),
            (
                json!({"jwks_uri": "https://app.example/jwks.json"}),
                "jwks_uri needs",
            ),
            (
                json!({"token_endpoint_auth_method": "private_key_jwt",
                       "jwks_uri": "https://169.254.169.254/k"}),
                "jwks_uri",
            ),
            (
                json!({"client_id": "https://app.example/oauth/other.json"}),
                "client_id",
            ),
            (json!({"client_id": null}), "client_id"),
            (json!({"redirect_uris": []}), "redirect_uris"),
            (
                json!({"redirect_uris": ["javascript:alert(1)"]}),
                "redirect",
            ),
            (
                json!({"token_endpoint_auth_method": "client_secret_basic"}),
                "token_endpoint_auth_method",
            ),
            (json!({"client_secret": "s"}), "client_secret"),
            (
                json!({"grant_types": ["client_credentials"]}),
                "grant_types",
            ),
            (json!({"response_types": ["token"]}), "response_types"),
            (json!({"resource_server": true}), "resource server"),
            (json!({"scope": "admin"}), "scope"),
            (
                json!({"redirect_uris": "https://app.example/cb"}),
                "wrong type",
            ),
        ] {
            let e = validate(URL, &doc(extra.clone()), &cat).expect_err(&extra.to_string());
            assert!(e.contains(fault), "{extra}: {e}");
        }
    }
}
