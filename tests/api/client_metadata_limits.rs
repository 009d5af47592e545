//! Client ID Metadata Documents, the rules around the fetch (docs/spec.md §8;
//! docs/security.md A13, K4): new document clients and open registrations share one hourly
//! budget per address; an uncached document is fetched at most 10 times a minute per URL
//! and address; only valid documents are cached; a document that changes updates its
//! client row, audited as `client-metadata`.

use serde_json::json;
use tessera::clock::Clock as _;

use crate::client_metadata::{DocServer, Reply, app_with, authorize_params, ok_json};
use crate::helpers::api::answer;
use crate::helpers::oauth::{REDIRECT, pkce};
use crate::helpers::{Backend, TestApp};
use crate::mcp_registration::register;
use crate::resources::{MCP, resource_server_with};

crate::on_both_backends!(
    k4_a13_documents_and_open_registrations_share_one_hourly_budget,
    k4_an_uncached_document_is_fetched_at_most_10_times_a_minute_per_url,
    a13_only_valid_documents_are_cached_and_a_changed_one_updates_its_client,
);

/// `GET /oauth/authorize` for the document client `url`: its status and page.
async fn authorize(app: &TestApp, b: &reqwest::Client, url: &str) -> (u16, String) {
    let (_, challenge) = pkce();
    let r = app
        .authorize_get(b, &authorize_params(url, &challenge))
        .await;
    let status = r.status().as_u16();
    (status, r.text().await.expect("html"))
}

fn public_client() -> serde_json::Value {
    json!({
        "client_name": "MCP client",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
    })
}

/// docs/spec.md §8: "at most 10 new clients per IP per hour together": four open
/// registrations and six first uses of documents exhaust it; then a document's first use
/// is a 429 page at authorize and 429 `slow_down` with `Retry-After` at the token endpoint,
/// and an open registration is a 429 with `Retry-After` too.
async fn k4_a13_documents_and_open_registrations_share_one_hourly_budget(backend: Backend) {
    let Some(app) = app_with(backend, true, true).await else {
        return;
    };
    resource_server_with(&app, &[MCP]);
    let docs = DocServer::start();
    let b = app.user("budget@example.com").await;
    for i in 0..4 {
        let a = register(&app, None, public_client()).await;
        assert_eq!(a.status, 201, "registration {i}: {}", a.body);
    }
    for i in 0..6 {
        let url = docs.document(&format!("/budget/{i}.json"), json!({}));
        let (status, html) = authorize(&app, &b, &url).await;
        assert_eq!(status, 200, "document {i}: {html}");
    }
    let url = docs.document("/budget/6.json", json!({}));
    let (status, html) = authorize(&app, &b, &url).await;
    assert_eq!(status, 429, "the 11th new client: {html}");
    assert!(html.contains("Too many new applications"), "{html}");

    let url = docs.document("/budget/7.json", json!({}));
    let form = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("client_id", url.as_str()),
        ("code", "nothing"),
        ("redirect_uri", REDIRECT),
        ("code_verifier", "x"),
    ])
    .expect("form");
    let a = answer(app.post_form("/oauth/token", None, &form).await).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (429, Some("slow_down")),
        "{}",
        a.body
    );
    let retry = a.header_i64("retry-after");
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");

    let a = register(&app, None, public_client()).await;
    assert_eq!(
        a.status, 429,
        "open registration shares the budget: {}",
        a.body
    );
    let retry = a.header_i64("retry-after");
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
}

/// docs/spec.md §8: "documents that are not cached are fetched at most ... 10 times a
/// minute per URL and IP (then 429 before any fetch)". An invalid document is never
/// cached, so each use fetches it; the 11th within the minute is refused unfetched, while
/// another URL is still fetched; a minute later the first is fetched again.
async fn k4_an_uncached_document_is_fetched_at_most_10_times_a_minute_per_url(backend: Backend) {
    let Some(app) = app_with(backend, true, false).await else {
        return;
    };
    resource_server_with(&app, &[MCP]);
    let docs = DocServer::start();
    let b = app.user("per-url@example.com").await;
    let t0 = app.clock.now();
    let bad = docs.url("/bad.json");
    docs.set(
        "/bad.json",
        Reply::Raw(ok_json("{\"client_id\": \"https://elsewhere.example/c\"}")),
    );
    for i in 1..=10 {
        let (status, html) = authorize(&app, &b, &bad).await;
        assert_eq!(status, 400, "use {i}: {html}");
        assert!(html.contains("not exactly the URL"), "{html}");
        assert_eq!(docs.hits(), i, "use {i} fetched the document");
    }
    let (status, _) = authorize(&app, &b, &bad).await;
    assert_eq!(status, 429, "the 11th fetch of one URL within the minute");
    assert_eq!(docs.hits(), 10, "refused before any fetch");

    let other = docs.document("/other.json", json!({}));
    let (status, html) = authorize(&app, &b, &other).await;
    assert_eq!(status, 200, "another URL is fetched: {html}");
    assert_eq!(docs.hits(), 11);

    app.clock.set(t0 + 61);
    let (status, _) = authorize(&app, &b, &bad).await;
    assert_eq!(status, 400, "fetched again a minute later");
    assert_eq!(docs.hits(), 12);
}

/// The audit events of the document client `url`: (actor, action, details), oldest first.
fn audit_of(app: &TestApp, url: &str) -> Vec<(String, String, String)> {
    use diesel::prelude::*;
    use tessera::db::schema::audit_events as a;
    let mut conn = app.state.pool.get().expect("conn");
    a::table
        .filter(a::target_id.eq(url))
        .order(a::seq.asc())
        .select((a::actor, a::action, a::details))
        .load(&mut conn)
        .expect("audit")
}

fn client_name(app: &TestApp, url: &str) -> String {
    use diesel::prelude::*;
    use tessera::db::schema::clients;
    let mut conn = app.state.pool.get().expect("conn");
    clients::table
        .filter(clients::id.eq(url))
        .select(clients::name)
        .first(&mut conn)
        .expect("client row")
}

/// docs/spec.md §8: the client row is "created on first use, updated when a fetched
/// document differs, audit actor `client-metadata`", and "only valid documents are
/// cached": a document that turned invalid is fetched again on the next use, and once
/// valid again it is cached (no fetch on the use after).
async fn a13_only_valid_documents_are_cached_and_a_changed_one_updates_its_client(
    backend: Backend,
) {
    let Some(app) = app_with(backend, true, false).await else {
        return;
    };
    resource_server_with(&app, &[MCP]);
    let docs = DocServer::start();
    let b = app.user("changes@example.com").await;
    let url = docs.document("/c.json", json!({}));
    let (status, html) = authorize(&app, &b, &url).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(client_name(&app, &url), "Example MCP client");
    let events = audit_of(&app, &url);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("client-metadata", "client.created")
    );

    // Cached: a second use fetches nothing, even though the document changed meanwhile.
    docs.document("/c.json", json!({"client_name": "Renamed MCP client"}));
    let (status, _) = authorize(&app, &b, &url).await;
    assert_eq!(status, 200);
    assert_eq!(docs.hits(), 1, "served from the cache");
    assert_eq!(client_name(&app, &url), "Example MCP client");

    // Once the cached copy is gone (as when it expires), the changed document updates the
    // row, audited; the consent page shows the new name.
    app.state.fetcher.forget(&url);
    let (status, html) = authorize(&app, &b, &url).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Renamed MCP client"), "{html}");
    assert_eq!(docs.hits(), 2);
    assert_eq!(client_name(&app, &url), "Renamed MCP client");
    let events = audit_of(&app, &url);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[1].0.as_str(), events[1].1.as_str()),
        ("client-metadata", "client.updated")
    );
    assert!(events[1].2.contains("Renamed MCP client"), "{events:?}");

    // The same document fetched again changes nothing and audits nothing.
    app.state.fetcher.forget(&url);
    let (status, _) = authorize(&app, &b, &url).await;
    assert_eq!(status, 200);
    assert_eq!(docs.hits(), 3);
    assert_eq!(
        audit_of(&app, &url).len(),
        2,
        "an unchanged document is no update"
    );

    // A document that turned invalid is refused and not cached: once it is valid again,
    // the next use fetches it (it was not kept), and the use after that does not.
    app.state.fetcher.forget(&url);
    docs.set(
        "/c.json",
        Reply::Raw(ok_json("{\"client_id\": \"https://elsewhere.example/c\"}")),
    );
    let (status, html) = authorize(&app, &b, &url).await;
    assert_eq!(status, 400, "{html}");
    assert_eq!(docs.hits(), 4);
    docs.document("/c.json", json!({}));
    let (status, html) = authorize(&app, &b, &url).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(docs.hits(), 5, "the invalid document was not cached");
    let (status, _) = authorize(&app, &b, &url).await;
    assert_eq!(status, 200);
    assert_eq!(docs.hits(), 5, "the valid one is");
    assert_eq!(client_name(&app, &url), "Example MCP client");
}
