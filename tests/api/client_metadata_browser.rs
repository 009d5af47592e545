//! Headless Chromium: the consent page of a client ID metadata document client
//! (docs/spec.md §8) says "not verified" with the client's host and fits a 1280 px and a
//! 390 px wide window.

use std::time::Duration;

use serde_json::json;

use crate::client_metadata::{DocServer, app_with, authorize_params};
use crate::helpers::Backend;
use crate::helpers::oauth::pkce;
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
    let notice = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("unverified"))
        .await
        .expect("the not-verified notice");
    let text = notice.text().await.expect("text");
    assert!(text.starts_with("Not verified."), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    for width in [1280u32, 390] {
        c.set_window_size(width, 900).await.expect("window size");
        let overflow = c
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .expect("script")
            .as_i64()
            .expect("number");
        assert_eq!(
            overflow, 0,
            "the consent page overflows a {width} px window"
        );
        if let Some(dir) = std::env::var_os("TESSERA_SCREENSHOTS") {
            let png = c.screenshot().await.expect("screenshot");
            std::fs::write(
                std::path::Path::new(&dir).join(format!("consent-cimd-{width}.png")),
                png,
            )
            .expect("write screenshot");
        }
    }
    br.client.clone().close().await.expect("close");
}
