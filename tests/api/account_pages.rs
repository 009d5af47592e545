//! `/account` (password change and display name), the dashboard home and
//! `/settings/organization` through the pages, as a browser without JavaScript uses them
//! (docs/spec.md §6; docs/security.md H1).

use crate::helpers::api::KeySpec;
use crate::helpers::oauth::PASSWORD;
use crate::helpers::{Backend, hidden, login, spawn_app};
use tessera::clock::Clock;

crate::on_both_backends!(
    a_password_change_needs_the_current_password_ends_other_sessions_and_is_audited,
    h1_the_password_form_needs_its_csrf_token,
    e7_a_password_change_revokes_the_apps_refresh_and_access_tokens,
    k1_wrong_current_passwords_are_throttled_like_logins,
    the_dashboard_shows_keys_clients_and_usage_and_the_org_page_its_id,
);

const NEW_PASSWORD: &str = "a much better passphrase";

async fn a_password_change_needs_the_current_password_ends_other_sessions_and_is_audited(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("ada@example.com").await;
    let laptop = app.browser();
    assert_eq!(
        login(&app, &laptop, "ada@example.com", PASSWORD, "/")
            .await
            .status(),
        303
    );
    let (status, html) = app.page(&b, "/account").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"id="password-form""#), "{html}");

    // A wrong current password: 400 naming the field, nothing changed.
    let r = app
        .submit(
            &b,
            "/account",
            "/account/password",
            &[
                ("current_password", "not my password"),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("html").contains("current_password"));
    // A too short new one: 400 naming it.
    let r = app
        .submit(
            &b,
            "/account",
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", "short")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("html").contains("new_password"));
    assert_eq!(
        app.page(&laptop, "/account").await.0,
        200,
        "still signed in"
    );

    // The right one: 303 to the account page, which says what happened.
    let r = app
        .submit(
            &b,
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    let (location, status, _, html) = app.follow(&b, r).await;
    assert_eq!(location, "/account?done=password");
    assert_eq!(status, 200, "this device stays signed in");
    assert!(html.contains("Password changed"), "{html}");
    // The other device is signed out; the old password no longer works, the new one does.
    let r = laptop
        .get(format!("{}/account", app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 303, "the other session ended");
    let fresh = app.browser();
    let old = login(&app, &fresh, "ada@example.com", PASSWORD, "/").await;
    assert_ne!(old.status(), 303, "the old password is refused");
    let new = login(&app, &fresh, "ada@example.com", NEW_PASSWORD, "/").await;
    assert_eq!(new.status(), 303, "the new password signs in");
    // Audited in the user's organization, without the password.
    let org = app.org_of("ada@example.com");
    let rows = {
        let mut conn = app.state.pool.get().expect("conn");
        let actor = tessera::orgs::Actor {
            org_id: org.clone(),
            user_id: None,
            role: tessera::orgs::Role::Admin,
            label: "cli".into(),
        };
        tessera::audit::for_org(&mut conn, &actor).expect("audit")
    };
    let entry = rows
        .iter()
        .find(|e| e.action == "user.password_changed")
        .expect("an audit record");
    assert!(entry.actor.starts_with("user:"), "{}", entry.actor);
    assert!(
        entry.details.contains("\"other_sessions_ended\":1"),
        "{}",
        entry.details
    );
    assert!(!entry.details.contains(NEW_PASSWORD));
    // The audit page shows who by email, not by id.
    let (_, audit) = app.page(&b, "/settings/audit").await;
    let at = audit.find("user.password_changed").expect("listed");
    let row_start = audit[..at].rfind("<tr>").expect("row");
    assert!(
        audit[row_start..at].contains("ada@example.com"),
        "{}",
        &audit[row_start..at]
    );
}

async fn h1_the_password_form_needs_its_csrf_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("ada@example.com").await;
    let (_, html) = app.page(&b, "/account").await;
    // The name form's token is bound to its own path: it does not open the password form.
    let name_token = {
        let at = html.find(r#"action="/account/name""#).expect("name form");
        hidden(&html[at..], "csrf_token")
    };
    for token in ["", name_token.as_str()] {
        let r = app
            .post_page(
                &b,
                "/account/password",
                &[
                    ("csrf_token", token),
                    ("current_password", PASSWORD),
                    ("new_password", NEW_PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status(), 403);
    }
    let fresh = app.browser();
    let r = login(&app, &fresh, "ada@example.com", PASSWORD, "/").await;
    assert_eq!(r.status(), 303, "the password did not change");
}

async fn the_dashboard_shows_keys_clients_and_usage_and_the_org_page_its_id(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("ada@example.com").await;
    let (status, html) = app.page(&b, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"id="dashboard""#), "{html}");
    assert!(html.contains("No keys yet"), "an empty state: {html}");
    let org = app.org_of("ada@example.com");
    let k = app.api_key(
        &org,
        KeySpec {
            name: "deploy bot",
            ..Default::default()
        },
    );
    for _ in 0..3 {
        let r = app
            .api(reqwest::Method::GET, "/api/v1/api-keys", &k.key, None)
            .await;
        assert_eq!(r.status, 200);
    }
    {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::usage::store::flush(&mut conn, &app.state.api_keys.hourly).expect("flush");
    }
    app.register(tessera::clients::NewClient {
        name: "Checkout web app".into(),
        redirect_uris: vec![crate::helpers::oauth::REDIRECT.into()],
        org_id: Some(org.clone()),
        ..Default::default()
    });
    let (_, html) = app.page(&b, "/").await;
    assert!(html.contains("deploy bot"), "{html}");
    assert!(html.contains(&format!("tsr_sk_…{}", k.last_six)), "{html}");
    assert!(html.contains("Checkout web app"), "{html}");
    assert!(
        html.contains(r#"<p class="figure" id="requests-24h">3</p>"#),
        "{html}"
    );
    assert!(!html.contains(&k.key), "never the key itself");
    // The organization page: its id, to copy, and who is in it.
    let (_, html) = app.page(&b, "/settings/organization").await;
    assert!(
        html.contains(&format!(r#"id="org-id" class="mono" value="{org}""#)),
        "{html}"
    );
    assert!(html.contains("1 member, 0 pending invitations"), "{html}");
    // Keys offer admin last, with a warning.
    let (_, html) = app.page(&b, "/settings/api-keys").await;
    let admin = html
        .find(r#"value="admin""#)
        .expect("admin offered to an admin");
    let read = html
        .find(r#"value="inference:read""#)
        .expect("inference:read offered");
    assert!(read < admin, "admin is not offered first");
    assert!(html[admin..].contains("admin-warning"));
}

/// BCP §4.14.2 (docs/security.md E7): a password change revokes the person's grants — the
/// refresh token, the access token and a code not yet redeemed stop working — and leaves
/// another person's tokens of the same app alone.
async fn e7_a_password_change_revokes_the_apps_refresh_and_access_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    let (code, verifier) = app.code(&b, &client, "inference:read").await;
    let r = app.exchange(&client, &code, &verifier).await;
    assert_eq!(r.status(), 200);
    let mine: serde_json::Value = r.json().await.expect("json");
    let (at, rt) = (
        mine["access_token"].as_str().expect("at"),
        mine["refresh_token"].as_str().expect("rt"),
    );
    let (unredeemed, unredeemed_verifier) = app.code(&b, &client, "inference:read").await;
    let theirs = app.user_tokens(&client, "inference:read").await;
    assert_eq!(app.introspect(&rs, at).await["active"], true);

    let r = app
        .submit(
            &b,
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);

    assert_eq!(app.introspect(&rs, at).await["active"], false, "the AT");
    assert_eq!(app.introspect(&rs, rt).await["active"], false, "the RT");
    let r = app.refresh(&client, rt).await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    let r = app
        .exchange(&client, &unredeemed, &unredeemed_verifier)
        .await;
    assert_eq!(r.status(), 400, "a code of the revoked grant");
    let userinfo = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", app.address))
        .bearer_auth(at)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(userinfo.status(), 401, "the AT at userinfo");
    // Another person's tokens of the same app live on.
    for t in ["access_token", "refresh_token"] {
        let token = theirs[t].as_str().expect("token");
        assert_eq!(app.introspect(&rs, token).await["active"], true, "{t}");
    }
    // The audit record counts the grants (the two codes' grants: one redeemed, one not).
    let org = app.org_of("ada@example.com");
    let rows = {
        let mut conn = app.state.pool.get().expect("conn");
        let actor = tessera::orgs::Actor {
            org_id: org,
            user_id: None,
            role: tessera::orgs::Role::Admin,
            label: "cli".into(),
        };
        tessera::audit::for_org(&mut conn, &actor).expect("audit")
    };
    let entry = rows
        .iter()
        .find(|e| e.action == "user.password_changed")
        .expect("an audit record");
    assert!(
        entry.details.contains("\"grants_revoked\":2"),
        "{}",
        entry.details
    );
    // The consent stays: the app can sign the person in again without asking anew.
    let (_, apps) = app.page(&b, "/account/apps").await;
    assert!(apps.contains("Example App"), "{apps}");

    // The operator's reset (`tessera user set-password`) revokes the new grant the same way.
    let (code, verifier) = app.code(&b, &client, "inference:read").await;
    let r = app.exchange(&client, &code, &verifier).await;
    assert_eq!(r.status(), 200);
    let again: serde_json::Value = r.json().await.expect("json");
    let at = again["access_token"].as_str().expect("at");
    assert_eq!(app.introspect(&rs, at).await["active"], true);
    let hash = tessera::users::hash_password("an operator's reset password").expect("hash");
    let reset = {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::users::ops::set_password(&mut conn, &app.state.ctx(), "ada@example.com", &hash)
            .expect("reset")
    };
    assert_eq!(reset.grants_revoked, 1);
    assert_eq!(
        app.introspect(&rs, at).await["active"],
        false,
        "after a reset"
    );
    let rt = again["refresh_token"].as_str().expect("rt");
    assert_eq!(
        app.introspect(&rs, rt).await["active"],
        false,
        "after a reset"
    );
}

/// docs/security.md K1: guessing the current password on `/account` shares the login's
/// throttle — after ten wrong ones in a minute, even the right one is 429 with
/// `Retry-After`, and nothing changed.
async fn k1_wrong_current_passwords_are_throttled_like_logins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("ada@example.com").await;
    // Start at a window boundary so the whole burst falls in one window.
    app.clock.set(app.clock.now() - app.clock.now() % 60 + 60);
    for i in 0..10 {
        let r = app
            .submit(
                &b,
                "/account",
                "/account/password",
                &[
                    ("current_password", &format!("guess number {i}")),
                    ("new_password", NEW_PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status(), 400, "guess {i}");
    }
    let r = app
        .submit(
            &b,
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().await.expect("html").contains("Wait a minute"));
    // The window passes: the right password works again.
    app.clock.set(app.clock.now() + 61);
    let r = app
        .submit(
            &b,
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
}
