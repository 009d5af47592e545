//! The MCP TypeScript SDK (`@modelcontextprotocol/sdk`, node) as an MCP client with nothing
//! pre-registered, against tessera under `--registration open` and the example resource
//! server with its own resource URI (docs/spec.md §8): the SDK's `auth()` discovers the
//! authorization server from the resource server's 401 and RFC 9728 metadata, registers
//! itself (RFC 7591, public), sends the browser to `/oauth/authorize` with PKCE and
//! `resource`; this test signs in and approves on the pages; the SDK exchanges the code and
//! calls the resource server, which accepts the token (its `aud` is that resource). A second
//! scenario does the same with a client ID metadata document the test serves over https
//! (a test CA that tessera trusts through `--extra-ca-certs`; loopback allowed by
//! `--client-metadata-allow-loopback`; registration closed), through the SDK's own
//! `clientMetadataUrl` path. The
//! script is `tests/mcp-sdk/mcp.mjs`, its packages come from the committed lockfile
//! (`npm ci` there; `.ci/run` does it). Without node or the packages it prints SKIPPED (a
//! failure with `TESSERA_REQUIRE_ALL=1`).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;
use tessera::clients::open_registration::RegistrationMode;

use crate::client_metadata::DocServer;
use crate::helpers::oauth::query_param;
use crate::helpers::postgres::unavailable;
use crate::helpers::{Backend, TestApp, TestDb, hidden, spawn_app_with};
use crate::openid_client::node_package_ready;
use crate::resource_server::start_example_on;

crate::on_both_backends!(
    mcp_sdk_client_registers_authorizes_and_calls_the_resource_server,
    a13_mcp_sdk_client_uses_a_client_id_metadata_document,
);

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp-sdk")
}

/// One line of the script's stdout, read off the async workers.
async fn read_line<R: BufRead + Send + 'static>(mut r: R) -> (R, String) {
    tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        r.read_line(&mut line).map(|_| (r, line))
    })
    .await
    .expect("join")
    .expect("read")
}

/// Runs `tests/mcp-sdk/mcp.mjs` against `app` and the example resource server for
/// `resource` (at `base`): signs in as a new user and approves on the consent page when the
/// SDK sends the browser there. `client_id_url`: a client ID metadata document instead of
/// open registration. Returns the script's final line (status, aud, client, discovery).
async fn run_sdk(
    app: &TestApp,
    base: &str,
    resource: &str,
    redirect: &str,
    client_id_url: Option<&str>,
) -> (Value, Value) {
    let b = app.user("mcp-sdk@example.com").await;
    let mut args = vec!["mcp.mjs", base, redirect];
    args.extend(client_id_url);
    let mut child = Command::new("node")
        .args(&args)
        .current_dir(sdk_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (stdout, line) = read_line(stdout).await;
    if line.is_empty() {
        let out = child.wait_with_output().expect("wait");
        panic!(
            "the MCP SDK stopped: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let first: Value = serde_json::from_str(&line).expect("json line");
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
        Some(resource)
    );
    assert_eq!(
        query_param(&auth_url, "code_challenge_method").as_deref(),
        Some("S256")
    );

    // The pages: the consent page names the resource; approve; the redirect back.
    let r = b.get(&auth_url).send().await.expect("authorize");
    assert_eq!(r.status(), 200, "the consent page");
    let html = r.text().await.expect("html");
    let host = resource.trim_start_matches("http://");
    assert!(html.contains(host), "the consent page names the resource");
    if client_id_url.is_some() {
        assert!(html.contains("id=\"unverified\""), "not verified: {html}");
    }
    let approve = b
        .post(format!("{}/oauth/authorize", app.address))
        .form(&[
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
            ("decision", "approve".into()),
        ])
        .send()
        .await
        .expect("consent");
    assert_eq!(approve.status(), 303);
    let callback = approve.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(callback.starts_with(redirect), "{callback}");

    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{callback}").expect("write");
    drop(stdin);
    let (_, result) = read_line(stdout).await;
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "the MCP SDK refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_str(&result).expect("json");
    assert_eq!(done["status"], 200, "the resource server accepts: {done}");
    assert_eq!(done["aud"], resource, "{done}");
    (first, done)
}

/// The example resource server for a resource URI of its own, on a loopback port.
fn example_server(app: &TestApp) -> (String, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let resource = format!("http://{}", listener.local_addr().expect("addr"));
    let rs = crate::resources::resource_server_with(app, &[resource.as_str()]);
    let base = start_example_on(app, &rs, listener, Some(resource.clone()));
    (resource, base)
}

async fn mcp_sdk_client_registers_authorizes_and_calls_the_resource_server(backend: Backend) {
    if let Err(why) = node_package_ready(&sdk_dir(), "@modelcontextprotocol/sdk") {
        unavailable("the MCP TypeScript SDK (node)", &why);
        return;
    }
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let mut settings = db.settings();
    settings.registration = RegistrationMode::Open;
    let app = spawn_app_with(db, settings).await;
    let (resource, base) = example_server(&app);
    // A localhost loopback redirect (RFC 8252 §7.3), as MCP clients use.
    let redirect = "http://localhost:33418/callback";
    let (_, done) = run_sdk(&app, &base, &resource, redirect, None).await;
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
    if let Err(why) = node_package_ready(&sdk_dir(), "@modelcontextprotocol/sdk") {
        unavailable("the MCP TypeScript SDK (node)", &why);
        return;
    }
    let Some(ca) = crate::helpers::test_ca::TestCa::or_skip() else {
        return;
    };
    let Some(app) = crate::client_metadata::app_trusting(backend, &ca).await else {
        return;
    };
    let (resource, base) = example_server(&app);
    let redirect = "http://localhost:33419/callback";
    let docs = DocServer::start_tls(ca.server_config());
    let client_id = docs.document(
        "/mcp/client.json",
        serde_json::json!({"client_name": "MCP SDK via metadata document", "redirect_uris": [redirect]}),
    );
    let (first, done) = run_sdk(&app, &base, &resource, redirect, Some(&client_id)).await;
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
