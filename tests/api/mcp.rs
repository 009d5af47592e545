//! The MCP TypeScript SDK (`@modelcontextprotocol/sdk`, node) on both sides of issue #14's
//! "done when": an MCP client with nothing pre-registered authorizes against tessera and
//! calls a real MCP server whose resource is its own URL (docs/spec.md §8).
//!
//! - The server, `tests/mcp-sdk/server.mjs`: an SDK `McpServer` (one tool, `whoami`) over the
//!   SDK's Streamable HTTP server transport at `http://127.0.0.1:<port>/mcp`, registered here
//!   as a tessera resource server with that URL as its resource. It is guarded by the SDK's
//!   `requireBearerAuth` (401s carry `resource_metadata`) and publishes RFC 9728 metadata
//!   with the SDK's `mcpAuthMetadataRouter`; its verifier introspects tokens at tessera
//!   (RFC 7662, as the resource server) and takes only active ones whose `aud` names it.
//! - The client, `tests/mcp-sdk/mcp.mjs`: an SDK `Client` over
//!   `StreamableHTTPClientTransport` with an OAuthClientProvider. Its first connect meets the
//!   401; the transport's own flow discovers tessera through the RFC 9728 metadata, gets a
//!   client ID, sends the browser to `/oauth/authorize` with PKCE and `resource`; this test
//!   signs in and approves on the pages (the consent page lists the MCP server's URL); the
//!   client finishes with `transport.finishAuth(code)`, connects again, lists the tools and
//!   calls `whoami`, which answers the client ID the flow produced; the token's `aud` is the
//!   MCP server's URL.
//! - Two ways to a client ID: open registration (`--registration open`, RFC 7591, public),
//!   and a client ID metadata document the test serves over https (a test CA that tessera
//!   trusts through `--extra-ca-certs`; loopback allowed by
//!   `--client-metadata-allow-loopback`; registration closed), through the SDK's own
//!   `clientMetadataUrl` path.
//! - The MCP server refuses (401, `invalid_token`) a token for another audience: one tessera
//!   hides from it at introspection, and one for another resource of the same resource
//!   server, which only the server's own `aud` check catches.
//!
//! The scripts' packages come from the committed lockfile (`npm ci` in `tests/mcp-sdk`;
//! `.ci/run` does it). Without node or the packages it prints SKIPPED (a failure with
//! `TESSERA_REQUIRE_ALL=1`). The node processes are killed when a test ends, pass or fail.

use std::path::PathBuf;

use serde_json::{Value, json};
use tessera::clients::open_registration::RegistrationMode;

use crate::client_metadata::DocServer;
use crate::helpers::api::answer;
use crate::helpers::node::{NodeScript, package_ready, script_dir};
use crate::helpers::oauth::{WebClient, json as token_json, query_param};
use crate::helpers::postgres::unavailable;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app_with};
use crate::resource_grants::listed_resources;
use crate::resources::claims;

crate::on_both_backends!(
    mcp_sdk_client_registers_authorizes_and_calls_the_mcp_server,
    a13_mcp_sdk_client_uses_a_client_id_metadata_document,
    f4_g2_the_mcp_server_refuses_tokens_for_other_audiences,
);

fn sdk_dir() -> PathBuf {
    script_dir("mcp-sdk")
}

/// `tests/mcp-sdk/server.mjs` running as a tessera resource server; killed on drop (also
/// when the test panics).
struct McpServer {
    child: NodeScript,
    /// `http://127.0.0.1:<port>/mcp`: where it answers, and its resource URI.
    url: String,
    /// Its credentials at tessera (id, secret).
    rs: (String, String),
}

impl McpServer {
    /// Registers a resource server owning the MCP server's URL (and, at `other_paths` on
    /// the same origin, other resources), then starts the MCP server with its credentials.
    async fn start(app: &TestApp, other_paths: &[&str]) -> Self {
        // A free port, so the URL can be registered before the server starts (it needs the
        // credentials at start).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let url = format!("http://127.0.0.1:{port}/mcp");
        let others: Vec<String> = other_paths
            .iter()
            .map(|p| format!("http://127.0.0.1:{port}{p}"))
            .collect();
        let mut resources = vec![url.as_str()];
        resources.extend(others.iter().map(String::as_str));
        let rs = crate::resources::resource_server_with(app, &resources);
        let mut child = NodeScript::spawn(
            "the MCP server",
            &sdk_dir(),
            &["server.mjs", app.state.issuer.as_str(), &port.to_string()],
            &[("MCP_RS_CLIENT_ID", &rs.0), ("MCP_RS_CLIENT_SECRET", &rs.1)],
        );
        let started = child.line().await;
        let server = McpServer { child, url, rs };
        assert_eq!(started["url"], server.url.as_str(), "{started}");
        server
    }

    /// `http://127.0.0.1:<port>`.
    fn origin(&self) -> &str {
        self.url.trim_end_matches("/mcp")
    }

    /// Where its 401s point (RFC 9728 §3.1: the path after the well-known prefix).
    fn metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.origin())
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let logged = self.child.kill();
        // A failing test shows what the server logged.
        if std::thread::panicking() {
            eprintln!("the MCP server's stderr:\n{logged}");
        }
    }
}

/// Runs `tests/mcp-sdk/mcp.mjs` against `app` and the MCP server: signs in as a new user
/// and approves on the consent page when the SDK sends the browser there. `client_id_url`:
/// a client ID metadata document instead of open registration. Asserts what both ways
/// share (discovery, the consent page, the tool call, `aud`); returns the script's two
/// lines.
async fn run_sdk(
    app: &TestApp,
    mcp: &McpServer,
    redirect: &str,
    client_id_url: Option<&str>,
) -> (Value, Value) {
    let b = app.user("mcp-sdk@example.com").await;
    let mut args = vec!["mcp.mjs", mcp.url.as_str(), redirect];
    args.extend(client_id_url);
    let mut script = NodeScript::spawn("the MCP SDK", &sdk_dir(), &args, &[]);
    let first = script.line().await;
    // The transport found tessera through the MCP server's 401 and RFC 9728 metadata.
    assert_eq!(
        first["resource_metadata_url"],
        mcp.metadata_url().as_str(),
        "{first}"
    );
    assert_eq!(first["resource_metadata"]["resource"], mcp.url.as_str());
    assert_eq!(
        first["resource_metadata"]["authorization_servers"],
        json!([app.state.issuer])
    );
    let auth_url = first["authorization_url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(
        auth_url.starts_with(&format!("{}/oauth/authorize?", app.address)),
        "{auth_url}"
    );
    assert_eq!(
        query_param(&auth_url, "resource").as_deref(),
        Some(mcp.url.as_str())
    );
    assert_eq!(
        query_param(&auth_url, "code_challenge_method").as_deref(),
        Some("S256")
    );

    // The pages: the consent page lists the MCP server; approve; the redirect back.
    let r = b.get(&auth_url).send().await.expect("authorize");
    assert_eq!(r.status(), 200, "the consent page");
    let html = r.text().await.expect("html");
    assert_eq!(listed_resources(&html), [mcp.url.as_str()], "{html}");
    if client_id_url.is_some() {
        assert!(html.contains("id=\"unverified\""), "not verified: {html}");
    }
    let callback = app.approve(&b, &html).await;
    assert!(callback.starts_with(redirect), "{callback}");

    let done = script.finish(Some(&callback)).await;
    // The MCP server took the token: the tool ran and saw the client the flow produced.
    assert_eq!(done["tools"], json!(["whoami"]), "{done}");
    let client_id = done["client"]["client_id"].as_str().expect("client_id");
    assert_eq!(done["whoami"]["client_id"], client_id, "{done}");
    assert_eq!(done["whoami"]["scope"], done["scope"], "{done}");
    assert_eq!(done["whoami"]["aud"], mcp.url.as_str(), "{done}");
    assert!(done["whoami"]["sub"].is_string(), "a user's token: {done}");
    assert_eq!(done["aud"], mcp.url.as_str(), "{done}");
    (first, done)
}

/// docs/spec.md §8 (issue #14): under `--registration open`, the SDK client registers itself
/// (RFC 7591, public, no secret), authorizes with PKCE and `resource`, and calls `whoami`
/// on the MCP server, which answers the registered client's ID (`run_sdk`).
async fn mcp_sdk_client_registers_authorizes_and_calls_the_mcp_server(backend: Backend) {
    if let Err(why) = package_ready(&sdk_dir(), "@modelcontextprotocol/sdk") {
        unavailable("the MCP TypeScript SDK (node)", &why);
        return;
    }
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let mut settings = db.settings();
    settings.registration = RegistrationMode::Open;
    let app = spawn_app_with(db, settings).await;
    let mcp = McpServer::start(&app, &[]).await;
    // A localhost loopback redirect (RFC 8252 §7.3), as MCP clients use.
    let redirect = "http://localhost:33418/callback";
    let (_, done) = run_sdk(&app, &mcp, redirect, None).await;
    let client = &done["client"];
    assert_eq!(client["token_endpoint_auth_method"], "none", "{done}");
    assert!(client.get("client_secret").is_none(), "{done}");
    assert!(
        client["client_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("cli_")),
        "{done}"
    );
}

/// docs/spec.md §8, docs/security.md A13: an MCP client with nothing registered (and
/// registration closed to it: `--registration authenticated`) uses a client ID metadata
/// document the test serves over https on loopback, through the SDK's `clientMetadataUrl`.
async fn a13_mcp_sdk_client_uses_a_client_id_metadata_document(backend: Backend) {
    if let Err(why) = package_ready(&sdk_dir(), "@modelcontextprotocol/sdk") {
        unavailable("the MCP TypeScript SDK (node)", &why);
        return;
    }
    let Some(ca) = crate::helpers::test_ca::TestCa::or_skip() else {
        return;
    };
    let Some(app) = crate::client_metadata::app_trusting(backend, &ca).await else {
        return;
    };
    let mcp = McpServer::start(&app, &[]).await;
    let redirect = "http://localhost:33419/callback";
    let docs = DocServer::start_tls(ca.server_config());
    let client_id = docs.document(
        "/mcp/client.json",
        serde_json::json!({"client_name": "MCP SDK via metadata document", "redirect_uris": [redirect]}),
    );
    let (first, done) = run_sdk(&app, &mcp, redirect, Some(&client_id)).await;
    assert_eq!(
        first["cimd_supported"], true,
        "the SDK's discovery saw client_id_metadata_document_supported"
    );
    assert!(client_id.starts_with("https://"), "{client_id}");
    assert_eq!(done["client"]["client_id"], client_id.as_str(), "{done}");
    // What the SDK saves on its metadata-document path (not on registration's).
    assert_eq!(
        done["client"]["issuer"],
        app.state.issuer.as_str(),
        "{done}"
    );
    assert!(docs.hits() >= 1, "tessera fetched the document");
    // Nothing was registered: the only client rows are the resource server and the
    // document's.
    use diesel::prelude::*;
    let mut conn = app.state.pool.get().expect("conn");
    let ids: Vec<String> = tessera::db::schema::clients::table
        .select(tessera::db::schema::clients::id)
        .load(&mut conn)
        .expect("clients");
    assert!(ids.contains(&client_id), "{ids:?}");
    assert_eq!(
        ids.len(),
        2,
        "the resource server and the document's: {ids:?}"
    );
    // No registration happened: the one client made without a credential is the
    // document's (its first use counts toward the address's hourly budget, docs/spec.md §8).
    let open: Vec<String> = tessera::db::schema::open_registrations::table
        .select(tessera::db::schema::open_registrations::client_id)
        .load(&mut conn)
        .expect("open registrations");
    assert_eq!(open, std::slice::from_ref(&client_id));
}

/// A JSON-RPC `tools/call whoami` at the MCP server with `bearer` (the stateless server
/// needs no session first).
async fn call_whoami(mcp: &McpServer, bearer: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(&mcp.url)
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}},
        }));
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    r.send().await.expect("call")
}

/// A `client_credentials` access token for `machine`, with `resource` if given.
async fn cc_token(app: &TestApp, machine: &WebClient, resource: Option<&str>) -> String {
    let mut params = vec![("grant_type", "client_credentials")];
    params.extend(resource.map(|r| ("resource", r)));
    let (status, body) = token_json(app.token(machine, &params).await).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// The MCP server's 401: `invalid_token` with `description`, pointing at its metadata.
async fn assert_refused(mcp: &McpServer, bearer: Option<&str>, description: &str) {
    let r = call_whoami(mcp, bearer).await;
    if r.status() != 401 {
        let status = r.status();
        panic!(
            "{description}: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }
    let a = answer(r).await;
    assert_eq!(
        a.header("www-authenticate"),
        Some(
            format!(
                "Bearer error=\"invalid_token\", error_description=\"{description}\", \
                 resource_metadata=\"{}\"",
                mcp.metadata_url()
            )
            .as_str()
        )
    );
    assert_eq!(a.body["error"], "invalid_token", "{}", a.body);
    assert_eq!(a.body["error_description"], description, "{}", a.body);
}

/// docs/spec.md §8, docs/security.md F4 and G2, from the MCP server's side: it publishes
/// RFC 9728 metadata naming tessera, and takes a token only when tessera's introspection
/// says active and its `aud` names the server. A `client_credentials` token without
/// `resource` (aud = the default audience) is inactive for it at tessera: 401. A token
/// for another resource of the same resource server is active at introspection, so only
/// the server's own `aud` check refuses it: 401. One for its URL is taken and `whoami`
/// sees its client.
async fn f4_g2_the_mcp_server_refuses_tokens_for_other_audiences(backend: Backend) {
    if let Err(why) = package_ready(&sdk_dir(), "@modelcontextprotocol/sdk") {
        unavailable("the MCP TypeScript SDK (node)", &why);
        return;
    }
    let Some(app) = crate::helpers::spawn_app(backend).await else {
        return;
    };
    // The resource server also owns another resource URI: same origin, another path.
    let mcp = McpServer::start(&app, &["/other"]).await;
    let other = format!("{}/other", mcp.origin());

    // RFC 9728: the metadata the 401s point at names the server and tessera.
    let meta = app.http.get(mcp.metadata_url()).send().await.expect("get");
    assert_eq!(meta.status(), 200);
    let meta: Value = meta.json().await.expect("json");
    assert_eq!(meta["resource"], mcp.url.as_str(), "{meta}");
    assert_eq!(
        meta["authorization_servers"],
        json!([app.state.issuer]),
        "{meta}"
    );
    assert_refused(&mcp, None, "Missing Authorization header").await;
    assert_refused(&mcp, Some("not-a-token"), "Token is not active").await;

    let (id, secret) = app.machine_client("inference:read");
    let machine = WebClient {
        id: id.clone(),
        secret: Some(secret),
    };
    // The default audience: tessera hides it from this resource server.
    let default = cc_token(&app, &machine, None).await;
    assert_eq!(claims(&default)["aud"], app.state.issuer.as_str());
    assert_refused(&mcp, Some(&default), "Token is not active").await;

    // Another resource of the same resource server: active at introspection …
    let elsewhere = cc_token(&app, &machine, Some(&other)).await;
    assert_eq!(claims(&elsewhere)["aud"], other.as_str());
    let introspected = answer(
        app.post_form(
            "/oauth/introspect",
            Some((&mcp.rs.0, &mcp.rs.1)),
            &format!("token={elsewhere}"),
        )
        .await,
    )
    .await;
    assert_eq!(introspected.status, 200);
    assert_eq!(introspected.body["active"], true, "{}", introspected.body);
    assert_eq!(introspected.body["aud"], other.as_str());
    // … refused by the MCP server's own check.
    assert_refused(
        &mcp,
        Some(&elsewhere),
        "Token was not issued for this resource",
    )
    .await;

    // Its own URL: taken; the tool sees the machine client.
    let own = cc_token(&app, &machine, Some(&mcp.url)).await;
    let r = call_whoami(&mcp, Some(&own)).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.expect("body");
    // The stateless transport answers one SSE event: `data: {jsonrpc response}`.
    let data = body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no SSE data: {body}"));
    let rpc: Value = serde_json::from_str(data).expect("json-rpc");
    let text = rpc["result"]["content"][0]["text"].as_str().expect("text");
    let who: Value = serde_json::from_str(text).expect("whoami json");
    assert_eq!(who["client_id"], id.as_str(), "{who}");
    assert_eq!(who["aud"], mcp.url.as_str(), "{who}");
    assert_eq!(who["scope"], "inference:read", "{who}");
}
