//! Headless Chromium: the invitation pages (docs/spec.md §5, §6): an admin invites on
//! `/settings/members` (the link shown once), the invitee opens the link, accepts, and the
//! members page then lists them; every page fits 1280 and 390 px without horizontal
//! scrolling. Screenshots go to `$TESSERA_SCREENSHOTS_DIR` (see `helpers::browser`).

use fantoccini::Locator;

use crate::helpers::{Backend, browser, spawn_app};

#[actix_web::test]
async fn br_an_invitation_is_made_opened_and_accepted_in_chromium_at_1280_and_390_px() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(br) = browser::start().await else {
        return;
    };
    let Some(guest) = browser::start().await else {
        return;
    };
    let c = &br.client;
    browser::signup(c, &app.address, "ada@example.com").await;
    browser::signup(&guest.client, &app.address, "bob@example.com").await;
    c.goto(&format!("{}/settings/members", app.address))
        .await
        .expect("goto");
    // The invite form sits in a disclosure under the page's title, closed at first.
    c.find(Locator::Css("#invite-panel summary"))
        .await
        .expect("invite disclosure")
        .click()
        .await
        .expect("open it");
    let form = c.find(Locator::Id("invite-member")).await.expect("form");
    form.find(Locator::Css("input[name=email]"))
        .await
        .expect("email")
        .send_keys("bob@example.com")
        .await
        .expect("type");
    form.find(Locator::Css("button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("invite");
    let link = c
        .wait()
        .for_element(Locator::Id("invitation-url"))
        .await
        .expect("link shown")
        .prop("value")
        .await
        .expect("value")
        .expect("a link");
    assert!(link.contains("/invitations/"), "{link}");
    for width in [1280u32, 390] {
        browser::set_width(c, width).await;
        browser::check_fits(c, "members-invited", width).await;
    }
    let g = &guest.client;
    g.goto(&link).await.expect("open link");
    for width in [1280u32, 390] {
        browser::set_width(g, width).await;
        browser::check_fits(g, "invitation", width).await;
    }
    // The link's page has the signed-in frame: the sections and who is signed in.
    g.find(Locator::Css("nav.sections a[href='/']"))
        .await
        .expect("the sections");
    let who = g
        .find(Locator::Id("account-link"))
        .await
        .expect("who is signed in")
        .text()
        .await
        .expect("text");
    assert_eq!(who, "bob@example.com");
    g.find(Locator::Css("button.accept"))
        .await
        .expect("accept")
        .click()
        .await
        .expect("click");
    let notice = g
        .wait()
        .for_element(Locator::Id("notice"))
        .await
        .expect("notice")
        .text()
        .await
        .expect("text");
    assert!(notice.contains("You joined"), "{notice}");
    browser::check_fits(g, "invitation-accepted", 390).await;
    // The frame now shows the organization joined as the current one.
    let current = g
        .execute(
            "var s = document.getElementById('org-select'); return s.options[s.selectedIndex].text;",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        current.as_str(),
        Some("ada@example.com's organization"),
        "{current}"
    );
    c.goto(&format!("{}/settings/members", app.address))
        .await
        .expect("goto");
    let members = c
        .find(Locator::Id("members"))
        .await
        .expect("members")
        .text()
        .await
        .expect("text");
    assert!(members.contains("bob@example.com"), "{members}");
}
