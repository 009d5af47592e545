//! Headless Chromium: RP-Initiated Logout (docs/spec.md §9) as a person meets it. A
//! relying party sends the browser to `/oauth/end_session`; the confirmation page fits a
//! 1280 px and a 390 px wide window; the click signs out and lands on the registered URI
//! with `state`. Screenshots go to `$TESSERA_SCREENSHOTS` when it is set.

use fantoccini::Locator;
use tessera::clients::{GrantType, NewClient};
use tessera::scope::ScopeSet;

use crate::helpers::{Backend, browser, spawn_app};

#[actix_web::test]
async fn br_logout_confirms_in_chromium_at_1280_and_390_px() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(br) = browser::start().await else {
        return;
    };
    // The relying party's "signed out" page: here, tessera's own login page.
    let back = format!("{}/login", app.address);
    let (client_id, _) = app.register(NewClient {
        name: "Example Site".into(),
        redirect_uris: vec!["https://site.example/cb".into()],
        post_logout_redirect_uris: Some(vec![back.clone()]),
        grant_types: Some(vec![GrantType::AuthorizationCode]),
        scope: Some(ScopeSet::parse("openid").expect("scope")),
        ..Default::default()
    });
    let c = &br.client;
    browser::signup(c, &app.address, "logout-browser@example.com").await;
    let q = serde_urlencoded::to_string([
        ("client_id", client_id.as_str()),
        ("post_logout_redirect_uri", back.as_str()),
        ("state", "bye-123"),
    ])
    .expect("query");
    let url = format!("{}/oauth/end_session?{q}", app.address);
    for width in [1280u32, 390] {
        browser::set_width(c, width).await;
        c.goto(&url).await.expect("goto");
        let who = c
            .find(Locator::Id("end-session-client"))
            .await
            .expect("the confirmation page")
            .text()
            .await
            .expect("text");
        assert!(who.contains("Example Site"), "{who}");
        let account = c
            .find(Locator::Id("end-session-account"))
            .await
            .expect("account line")
            .text()
            .await
            .expect("text");
        assert!(account.contains("logout-browser@example.com"), "{account}");
        assert_eq!(browser::overflow(c).await, 0, "fits {width} px");
        let (_, _, w, _) = c
            .find(Locator::Id("end-session-confirm"))
            .await
            .expect("button")
            .rectangle()
            .await
            .expect("size");
        assert!(w > 40.0, "the button is drawn: {w}");
        browser::shoot(c, &format!("logout-confirm-{width}")).await;
    }
    c.find(Locator::Id("end-session-confirm"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    c.wait()
        .for_element(Locator::Css("input[name=email]"))
        .await
        .expect("back at the relying party");
    let landed = c.current_url().await.expect("url");
    assert_eq!(landed.path(), "/login");
    assert_eq!(landed.query(), Some("state=bye-123"));
    // Signed out: the home page sends the browser to sign in.
    c.goto(&format!("{}/", app.address)).await.expect("goto");
    assert_eq!(c.current_url().await.expect("url").path(), "/login");
    browser::shoot(c, "logout-done").await;
    br.client.clone().close().await.expect("close");
}
