//! Headless Chromium visits every signed-in page with data in its tables at 1280 px and
//! 390 px (docs/spec.md §6): none scrolls sideways, no action is cut off, and each page's
//! screenshot is written to `$TESSERA_SCREENSHOTS_DIR` (default: `screenshots/` in the
//! cargo target directory).

use fantoccini::Locator;
use reqwest::Method;
use tessera::api_keys::requests::NewKeyRequest;
use tessera::clients::{GrantType, NewClient};
use tessera::clock::Clock;
use tessera::orgs::{Actor, Plan, Role};
use tessera::scope::{ScopeSet, ScopesInput};

use crate::helpers::api::KeySpec;
use crate::helpers::oauth::{REDIRECT, WebClient};
use crate::helpers::{Backend, browser, spawn_app};

/// Fills an organization with keys (and their requests), clients, members, a pending
/// invitation, a key request, an authorized app and audit entries; `ada` is its admin and
/// also a member of a second organization, and invited to a third. Returns (org, a key id,
/// a client id).
async fn populate(
    app: &crate::helpers::TestApp,
    ada: &reqwest::Client,
) -> (String, String, String) {
    let org = app.org_of("ada@example.com");
    let ada_id = {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::users::store::find_by_email(&mut conn, "ada@example.com")
            .expect("query")
            .expect("ada")
            .id
    };
    // A rename through the page (an audit entry), to a long name that must still fit.
    let r = app
        .submit(
            ada,
            "/settings/organization",
            "/settings/organization",
            &[("name", "Analytical Engines International")],
        )
        .await;
    assert_eq!(r.status(), 200, "renamed");
    let mut first_key = String::new();
    for (i, name) in [
        "production checkout service",
        "nightly_batch_export",
        "a key with a rather long name for a narrow screen",
    ]
    .into_iter()
    .enumerate()
    {
        let k = app.api_key(
            &org,
            KeySpec {
                name,
                ..Default::default()
            },
        );
        for _ in 0..(i + 1) * 2 {
            let r = app.api(Method::GET, "/api/v1/api-keys", &k.key, None).await;
            assert_eq!(r.status, 200);
        }
        if first_key.is_empty() {
            first_key = k.id.clone();
        }
    }
    {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::usage::store::flush(&mut conn, &app.state.api_keys.hourly).expect("flush");
    }
    let (client, _) = app.register(NewClient {
        name: "Checkout web app".into(),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
        scope: Some(ScopeSet::parse("openid profile inference:read").expect("scope")),
        org_id: Some(org.clone()),
        client_uri: Some("https://checkout.example".into()),
        ..Default::default()
    });
    app.register(NewClient {
        name: "Mobile app".into(),
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
        public: true,
        org_id: Some(org.clone()),
        ..Default::default()
    });
    // Ada authorizes the org's web app: a line on /account/apps.
    let web = WebClient {
        id: client.clone(),
        secret: None,
    };
    app.code(ada, &web, "inference:read").await;
    // A member who asks for a key, and a pending invitation (through the page: audited).
    let bob = app.member(&org, "bob.the.builder@example.com", Role::Member);
    {
        let mut conn = app.state.pool.get().expect("conn");
        let actor = Actor {
            org_id: org.clone(),
            user_id: Some(bob.clone()),
            role: Role::Member,
            label: format!("user:{bob}"),
        };
        tessera::api_keys::requests::create(
            &mut conn,
            &app.state.ctx(),
            &actor,
            &NewKeyRequest {
                name: "staging deploy".into(),
                scopes: ScopesInput::List(vec!["inference:read".into()]),
                reason: "The staging deploy job reads the model list before it rolls out.".into(),
                expires_in_days: Some(30),
            },
        )
        .expect("key request");
    }
    let r = app
        .submit(
            ada,
            "/settings/members",
            "/settings/members",
            &[
                ("email", "carol.long-surname@example.com"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(r.status(), 201, "invited");
    // A second organization (the switcher shows), and an invitation to a third.
    let second = app.org(Plan::Pro);
    {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::orgs::store::add_member(
            &mut conn,
            &second,
            &ada_id,
            Role::Member,
            app.clock.now(),
        )
        .expect("member");
    }
    let (third, _) = app.org_with_admin(Plan::Free);
    let boss = app.member(&third, "boss@example.com", Role::Admin);
    {
        let mut conn = app.state.pool.get().expect("conn");
        let actor = Actor {
            org_id: third.clone(),
            user_id: Some(boss.clone()),
            role: Role::Admin,
            label: format!("user:{boss}"),
        };
        tessera::orgs::invitations::invite(
            &mut conn,
            &app.state.ctx(),
            &actor,
            &tessera::orgs::invitations::Invite {
                email: "ada@example.com".into(),
                role: Role::Member,
            },
        )
        .expect("invite ada");
    }
    (org, first_key, client)
}

/// Every signed-in page, with data in its tables, at 1280 px and 390 px: nothing scrolls
/// sideways, no button is cut off, tables are cards at 390 px, and the organization
/// switcher is on each page.
#[actix_web::test]
async fn br_every_signed_in_page_fits_1280_and_390_px_with_screenshots() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(br) = browser::start().await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let (_org, key_id, client_id) = populate(&app, &ada).await;
    let c = &br.client;
    browser::login(c, &app.address, "ada@example.com").await;
    // Ada has a pending invitation: signing in lands on /invitations (docs/spec.md §5),
    // which offers the way on to the dashboard without answering.
    c.wait()
        .for_element(Locator::Id("invitations"))
        .await
        .expect("the pending invitations first");
    c.find(Locator::Id("to-dashboard"))
        .await
        .expect("a way on to the dashboard")
        .click()
        .await
        .expect("click");
    c.wait()
        .for_element(Locator::Id("dashboard"))
        .await
        .expect("the dashboard");
    let pages = [
        ("home", "/".to_string()),
        ("api-keys", "/settings/api-keys".into()),
        (
            "api-key-revoke",
            format!("/settings/api-keys/{key_id}/revoke"),
        ),
        ("usage", "/settings/usage".into()),
        ("key-requests", "/settings/key-requests".into()),
        ("clients", "/developer/clients".into()),
        ("client", format!("/developer/clients/{client_id}")),
        (
            "client-delete",
            format!("/developer/clients/{client_id}/delete"),
        ),
        ("members", "/settings/members".into()),
        ("organization", "/settings/organization".into()),
        ("audit", "/settings/audit".into()),
        ("account", "/account".into()),
        ("account-apps", "/account/apps".into()),
        ("invitations", "/invitations".into()),
    ];
    for width in [1280u32, 390] {
        browser::set_width(c, width).await;
        for (name, path) in &pages {
            c.goto(&format!("{}{path}", app.address))
                .await
                .expect("goto");
            assert!(
                c.find(Locator::Id("error-message")).await.is_err(),
                "{path} is not an error page"
            );
            browser::check_fits(c, name, width).await;
            c.find(Locator::Id("org-select"))
                .await
                .unwrap_or_else(|_| panic!("{path} has the organization switcher"));
        }
        // Tables are tables at 1280 px and stacked cards (no header row) at 390 px.
        c.goto(&format!("{}/settings/api-keys", app.address))
            .await
            .expect("goto");
        let head = c
            .execute(
                "return getComputedStyle(document.querySelector('#keys thead')).display;",
                vec![],
            )
            .await
            .expect("script");
        let expected = if width < 600 {
            "none"
        } else {
            "table-header-group"
        };
        assert_eq!(head, expected, "the key table's header at {width} px");
        // A key's underscores are drawn: the monospace face keeps `_` inside its box.
        let font = c
            .execute(
                "return getComputedStyle(document.querySelector('code.last-six')).fontFamily;",
                vec![],
            )
            .await
            .expect("script");
        assert!(
            font.as_str().unwrap_or("").contains("DejaVu Sans Mono"),
            "{font}"
        );
        // The open disclosures: the create forms fit too.
        for (name, path, panel) in [
            (
                "api-keys-create",
                "/settings/api-keys",
                "#create-key-panel summary",
            ),
            (
                "members-invite",
                "/settings/members",
                "#invite-panel summary",
            ),
            (
                "members-remove-confirm",
                "/settings/members",
                "#members tbody tr:last-child details.confirm summary",
            ),
            (
                "clients-register",
                "/developer/clients",
                "#register-panel summary",
            ),
        ] {
            c.goto(&format!("{}{path}", app.address))
                .await
                .expect("goto");
            c.find(Locator::Css(panel))
                .await
                .expect("disclosure")
                .click()
                .await
                .expect("open");
            browser::check_fits(c, name, width).await;
        }
        // Under 600 px the sections fold into a menu that names the current one
        // (docs/spec.md §6); it opens, fits, and leads on.
        if width < 600 {
            c.goto(&format!("{}/settings/usage", app.address))
                .await
                .expect("goto");
            let tabs = c.find(Locator::Css("nav.sections")).await.expect("tabs");
            assert!(
                !tabs.is_displayed().await.expect("displayed"),
                "no tab rows"
            );
            let summary = c
                .find(Locator::Css("nav.menu summary"))
                .await
                .expect("the menu");
            assert!(
                summary.text().await.expect("text").contains("Usage"),
                "names the current section"
            );
            summary.click().await.expect("open");
            browser::check_fits(c, "menu-open", width).await;
            c.find(Locator::Css("nav.menu a[href='/settings/audit']"))
                .await
                .expect("a section in the menu")
                .click()
                .await
                .expect("click");
            c.wait()
                .for_element(Locator::Id("audit"))
                .await
                .expect("the audit log");
        }
    }
    // The dashboard's primary action opens the key form.
    c.goto(&format!("{}/", app.address)).await.expect("goto");
    c.find(Locator::Id("nav-api-keys"))
        .await
        .expect("the dashboard's primary action")
        .click()
        .await
        .expect("click");
    let open = c
        .wait()
        .for_element(Locator::Id("create-key-panel"))
        .await
        .expect("the key page")
        .attr("open")
        .await
        .expect("attr");
    assert!(open.is_some(), "the create form is open");
    // The custom date shows only when "Custom date" is chosen.
    let date = c.find(Locator::Id("expires-on")).await.expect("date field");
    assert!(
        !date.is_displayed().await.expect("displayed"),
        "hidden at first"
    );
    c.find(Locator::Css("#expiration option[value=custom]"))
        .await
        .expect("custom")
        .click()
        .await
        .expect("choose");
    assert!(
        date.is_displayed().await.expect("displayed"),
        "shown for custom"
    );
    // The client form offers admin last, with its warning, too.
    c.goto(&format!("{}/developer/clients/{client_id}", app.address))
        .await
        .expect("goto");
    let scopes: Vec<String> = serde_json::from_value(
        c.execute(
            "return Array.from(document.querySelectorAll('#client-scopes input[name=scope]')).map(function (i) { return i.value; });",
            vec![],
        )
        .await
        .expect("script"),
    )
    .expect("strings");
    assert_eq!(
        scopes.last().map(String::as_str),
        Some("admin"),
        "{scopes:?}"
    );
    // The admin scope is offered last, with its warning.
    c.goto(&format!("{}/settings/api-keys", app.address))
        .await
        .expect("goto");
    let scopes: Vec<String> = serde_json::from_value(
        c.execute(
            "return Array.from(document.querySelectorAll('#permissions input[name=scope]')).map(function (i) { return i.value; });",
            vec![],
        )
        .await
        .expect("script"),
    )
    .expect("strings");
    assert_eq!(
        scopes.last().map(String::as_str),
        Some("admin"),
        "{scopes:?}"
    );
    assert!(
        c.find(Locator::Css("#permissions .admin-warning"))
            .await
            .is_ok(),
        "admin carries a warning"
    );
}
