//! Headless Chromium: the consent page of a client ID metadata document client
//! (docs/spec.md §8) says "not verified" with the client's host and fits a 1280 px and a
//! 390 px wide window.

use std::time::Duration;

use serde_json::json;

use crate::client_metadata::{DocServer, app_with, authorize_params};
use crate::helpers::oauth::pkce;
use crate::helpers::{Backend, browser};
use crate::resources::{MCP, resource_server_with};

/// The consent page of a metadata document client in Chromium: the "not verified" notice
/// with the client's host, nothing wider than a 1280 px or a 390 px window. Screenshots go
/// to `$TESSERA_SCREENSHOTS` when it is set.
#[actix_web::test]
async fn br_the_consent_page_marks_a_metadata_document_client_at_1280_and_390_px() {
    use fantoccini::Locator;
    let Some(app) = app_with(Backend::Sqlite, true, false).await else {
        return;
    };
    let Some(br) = crate::helpers::browser::start().await else {
        return;
    };
    // The request names a resource: it must be registered, or authorize redirects back to
    // the client with invalid_target instead of showing the consent page.
    let _mcp = resource_server_with(&app, &[MCP]);
    let docs = DocServer::start();
    let client_id = docs.document(
        "/a/rather/long/path/to/the/client-metadata-document.json",
        json!({"client_name": ""}),
    );
    let c = &br.client;
    crate::helpers::browser::signup(c, &app.address, "chromium@example.com").await;
    let (_, challenge) = pkce();
    let q = serde_urlencoded::to_string(authorize_params(&client_id, &challenge)).expect("query");
    c.goto(&format!("{}/oauth/authorize?{q}", app.address))
        .await
        .expect("goto");
    let notice = match c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("unverified"))
        .await
    {
        Ok(e) => e,
        Err(e) => panic!(
            "no not-verified notice at {:?}: {e}\n{}",
            c.current_url().await,
            c.source().await.unwrap_or_default()
        ),
    };
    let text = notice.text().await.expect("text");
    assert!(text.starts_with("Not verified."), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    // The unverified app's homepage is not shown: it would read as vouched for.
    assert!(
        c.find(Locator::Id("client-uri")).await.is_err(),
        "no unverified App homepage line"
    );
    let allow = c.find(Locator::Id("approve")).await.expect("allow");
    let deny = c.find(Locator::Id("deny")).await.expect("deny");
    let look = |e: fantoccini::elements::Element| async move {
        e.css_value("background-color").await.expect("css")
    };
    assert_ne!(
        look(allow).await,
        look(deny).await,
        "Allow (primary) and Deny (secondary) look different"
    );
    for width in [1280u32, 390] {
        browser::set_width(c, width).await;
        browser::check_fits(c, "consent-cimd", width).await;
    }
    // Allowed, it is listed on /account/apps, marked "Not verified" by its host, without the
    // homepage it claims (docs/spec.md §6); the page fits both widths.
    c.find(Locator::Id("approve"))
        .await
        .expect("allow")
        .click()
        .await
        .expect("click");
    // Wait until the browser has left for the client's redirect URI (the consent POST done).
    for _ in 0..120 {
        let url = c.current_url().await.expect("url");
        if !url.as_str().starts_with(&app.address) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    c.goto(&format!("{}/account/apps", app.address))
        .await
        .expect("goto");
    let badge = c
        .wait()
        .for_element(Locator::Id("unverified-1"))
        .await
        .expect("the not-verified badge");
    assert_eq!(badge.text().await.expect("text"), "Not verified");
    let source = c.source().await.expect("source");
    assert!(source.contains("identified by 127.0.0.1"), "{source}");
    assert!(!source.contains("mcp-client.example"), "{source}");
    for width in [1280u32, 390] {
        browser::set_width(c, width).await;
        browser::check_fits(c, "account-apps-unverified", width).await;
    }
    br.client.clone().close().await.expect("close");
}
