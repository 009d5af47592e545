//! Invitations (docs/spec.md §5, docs/security.md I12): admins invite an email with a role;
//! the person joins only by accepting, signed in with that email; links are single use and
//! expire after 7 days; removing a member can revoke their keys; `--signup` (§7).

use reqwest::Method;
use serde_json::json;
use tessera::orgs::Plan;
use tessera::users::SignupMode;

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, TestApp, TestDb, hidden, signup, spawn_app, spawn_app_with};

crate::on_both_backends!(
    i12_an_invitation_is_answered_once_by_the_invited_email_only,
    i12_twenty_parallel_accepts_make_one_membership,
    i12_the_list_shows_invitations_to_accounts_older_than_them,
    i5_removing_a_member_with_revoke_keys_revokes_their_keys_on_every_instance,
    signup_invite_allows_only_the_invited_email_through_its_link,
    signup_closed_leaves_accounts_to_the_cli,
    members_page_invites_shows_the_link_once_and_revokes,
);

/// The token of an `invitation_url`.
fn token_of(url: &str) -> String {
    url.rsplit('/').next().expect("token").to_string()
}

/// An organization with an admin signed in on the pages (`admin@example.com`) and an admin
/// key made like the CLI's.
async fn org_with_admin(app: &TestApp) -> (String, reqwest::Client, String) {
    let browser = app.user("admin@example.com").await;
    let org = app.org_of("admin@example.com");
    let key = app.api_key(&org, KeySpec::default()).key;
    (org, browser, key)
}

async fn invite(app: &TestApp, org: &str, key: &str, email: &str, role: &str) -> serde_json::Value {
    let a = app
        .api(
            Method::POST,
            &format!("/api/v1/orgs/{org}/members"),
            key,
            Some(json!({"email": email, "role": role})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body
}

fn member_emails(app: &TestApp, org: &str) -> Vec<String> {
    let mut conn = app.state.pool.get().expect("conn");
    tessera::orgs::store::members(&mut conn, org)
        .expect("members")
        .into_iter()
        .map(|m| m.email)
        .collect()
}

fn audit_actions(app: &TestApp, org: &str) -> Vec<String> {
    let mut conn = app.state.pool.get().expect("conn");
    tessera::audit::list_for_org(&mut conn, org, 200)
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

async fn i12_an_invitation_is_answered_once_by_the_invited_email_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (org, _admin, key) = org_with_admin(&app).await;
    let members = format!("/api/v1/orgs/{org}/members");

    // An email with an account and one without get the same answer (no account oracle).
    let bob_account = app.user("bob@example.com").await;
    app.clock.advance(1);
    let inv = invite(&app, &org, &key, "Bob@Example.com", "member").await;
    assert_eq!(inv["email"], "bob@example.com");
    assert_eq!(inv["role"], "member");
    let url = inv["invitation_url"].as_str().expect("url");
    assert!(
        url.starts_with(&format!("{}/invitations/", app.state.issuer)),
        "{url}"
    );
    let nobody = invite(&app, &org, &key, "nobody@example.com", "admin").await;
    let keys_of = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys_of(&inv), keys_of(&nobody));
    assert_eq!(
        keys_of(&inv),
        [
            "email",
            "expires_at",
            "invitation_id",
            "invitation_url",
            "role"
        ]
    );
    // Nobody was added; both are pending.
    assert_eq!(member_emails(&app, &org), ["admin@example.com"]);
    let list = app
        .api(
            Method::GET,
            &format!("/api/v1/orgs/{org}/invitations"),
            &key,
            None,
        )
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"].as_array().expect("data").len(), 2);
    // A member cannot invite; a member already is a 409; a bad email names the field.
    let worker = app.member(&org, "worker@example.com", tessera::orgs::Role::Member);
    let worker_key = app
        .api_key(
            &org,
            KeySpec {
                created_by: Some(&worker),
                ..Default::default()
            },
        )
        .key;
    let a = app
        .api(
            Method::POST,
            &members,
            &worker_key,
            Some(json!({"email": "x@example.com"})),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = app
        .api(
            Method::POST,
            &members,
            &key,
            Some(json!({"email": "admin@example.com"})),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.body);
    let a = app
        .api(
            Method::POST,
            &members,
            &key,
            Some(json!({"email": "not an address"})),
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(a.body.to_string().contains("email"), "{}", a.body);

    // Someone else, signed in, cannot see or answer Bob's invitation.
    let token = token_of(url);
    let link = format!("/invitations/{token}");
    let eve = app.user("eve@example.com").await;
    let (status, html) = app.page(&eve, &link).await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("bob@example.com"));
    assert!(!html.contains("name=\"decision\""));
    // A form Eve crafts with her own session's token for this path is refused too.
    let r = app.post_page(&eve, &link, &[("decision", "accept")]).await;
    assert_eq!(r.status(), 403, "no CSRF token");
    assert_eq!(
        member_emails(&app, &org),
        ["admin@example.com", "worker@example.com"]
    );

    // Signed out, the link asks to sign in or up and tells nothing about the organization.
    let (status, html) = app.page(&app.browser(), &link).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"login-link\""), "{html}");
    assert!(!html.contains("Acme") && !html.contains("admin@example.com"));

    // Bob accepts through the link, once.
    let (status, html) = app.page(&bob_account, &link).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("as <strong>member</strong>"), "{html}");
    let r = app
        .submit(&bob_account, &link, &link, &[("decision", "accept")])
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("html").contains("You joined"));
    assert!(member_emails(&app, &org).contains(&"bob@example.com".to_string()));
    let (status, _) = app.page(&bob_account, &link).await;
    assert_eq!(status, 410, "single use");
    // Bob's pages now act in the organization he joined.
    let (status, html) = app.page(&bob_account, "/settings/members").await;
    assert_eq!(status, 200);
    assert!(html.contains("admin@example.com"));

    // Revoked: the link stops working; revoking again is a 404.
    let carol = invite(&app, &org, &key, "carol@example.com", "member").await;
    let id = carol["invitation_id"].as_str().expect("id");
    let path = format!("/api/v1/orgs/{org}/invitations/{id}");
    assert_eq!(
        app.api(Method::DELETE, &path, &worker_key, None)
            .await
            .status,
        403
    );
    assert_eq!(app.api(Method::DELETE, &path, &key, None).await.status, 204);
    assert_eq!(app.api(Method::DELETE, &path, &key, None).await.status, 404);
    let carol_b = app.user("carol@example.com").await;
    let carol_link = format!(
        "/invitations/{}",
        token_of(carol["invitation_url"].as_str().expect("url"))
    );
    assert_eq!(app.page(&carol_b, &carol_link).await.0, 410);

    // Expired after 7 days.
    let dave = invite(&app, &org, &key, "dave@example.com", "member").await;
    let dave_b = app.user("dave@example.com").await;
    let dave_link = format!(
        "/invitations/{}",
        token_of(dave["invitation_url"].as_str().expect("url"))
    );
    let _ = dave_b;
    app.clock.advance(7 * 86_400 + 1);
    // (Sessions end sooner than that: sign in again.)
    let dave_b = app.browser();
    let pw = crate::helpers::oauth::PASSWORD;
    crate::helpers::login(&app, &dave_b, "dave@example.com", pw, "/").await;
    assert_eq!(app.page(&dave_b, &dave_link).await.0, 410);
    assert!(!member_emails(&app, &org).contains(&"dave@example.com".to_string()));

    // An unknown token is a 404.
    assert_eq!(app.page(&dave_b, "/invitations/no-such-token").await.0, 404);

    let log = audit_actions(&app, &org);
    for action in [
        "invitation.created",
        "invitation.accepted",
        "member.added",
        "invitation.revoked",
    ] {
        assert!(log.iter().any(|a| a == action), "{action} audited: {log:?}");
    }
}

async fn i12_twenty_parallel_accepts_make_one_membership(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (org, _admin, key) = org_with_admin(&app).await;
    let bob = app.user("bob@example.com").await;
    let inv = invite(&app, &org, &key, "bob@example.com", "admin").await;
    let link = format!(
        "/invitations/{}",
        token_of(inv["invitation_url"].as_str().expect("url"))
    );
    let (_, html) = app.page(&bob, &link).await;
    let csrf = hidden(&html, "csrf_token");
    let posts = (0..20).map(|i| {
        let decision = if i % 4 == 3 { "decline" } else { "accept" };
        let form = [
            ("csrf_token", csrf.clone()),
            ("decision", decision.to_string()),
        ];
        let (b, url, origin) = (
            bob.clone(),
            format!("{}{link}", app.address),
            app.address.clone(),
        );
        async move {
            b.post(url)
                .header("Origin", origin)
                .form(&form)
                .send()
                .await
                .expect("post")
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 410).count(),
        19,
        "{statuses:?}"
    );
    let mut conn = app.state.pool.get().expect("conn");
    let user = tessera::users::store::find_by_email(&mut conn, "bob@example.com")
        .expect("q")
        .expect("bob");
    let joined = tessera::orgs::store::role_of(&mut conn, &org, &user.id).expect("role");
    let log = tessera::audit::list_for_org(&mut conn, &org, 200).expect("audit");
    let answers = log
        .iter()
        .filter(|e| e.action == "invitation.accepted" || e.action == "invitation.declined")
        .count();
    assert_eq!(answers, 1, "exactly one answer counted");
    let accepted = log.iter().any(|e| e.action == "invitation.accepted");
    assert_eq!(joined.is_some(), accepted);
    if accepted {
        assert_eq!(joined, Some(tessera::orgs::Role::Admin));
    }
}

async fn i12_the_list_shows_invitations_to_accounts_older_than_them(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (org, _admin, key) = org_with_admin(&app).await;
    // Dave had his account before he was invited: he sees it after signing in.
    let dave = app.user("dave@example.com").await;
    app.clock.advance(1);
    invite(&app, &org, &key, "dave@example.com", "member").await;
    let (status, html) = app.page(&dave, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"invitations-notice\""), "{html}");
    let fresh = app.browser();
    let r = crate::helpers::login(
        &app,
        &fresh,
        "dave@example.com",
        crate::helpers::oauth::PASSWORD,
        "/",
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/invitations",
        "sign-in lands on the invitations"
    );
    let (status, html) = app.page(&dave, "/invitations").await;
    assert_eq!(status, 200);
    let id = {
        let at = html.find("data-invitation-id=\"").expect("listed") + 20;
        html[at..at + html[at..].find('"').expect("quote")].to_string()
    };
    let r = app
        .submit(
            &dave,
            "/invitations",
            "/invitations",
            &[("invitation_id", &id), ("decision", "decline")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("html").contains("You declined"));
    assert!(!member_emails(&app, &org).contains(&"dave@example.com".to_string()));
    assert!(
        audit_actions(&app, &org)
            .iter()
            .any(|a| a == "invitation.declined")
    );

    // Mallory signs up with an invited address after the invitation: the list does not
    // offer it (addresses are not verified); only the link, which Mallory lacks, would.
    invite(&app, &org, &key, "newhire@example.com", "admin").await;
    app.clock.advance(1);
    let mallory = app.user("newhire@example.com").await;
    let (_, html) = app.page(&mallory, "/invitations").await;
    assert!(html.contains("id=\"no-invitations\""), "{html}");
    let (_, html) = app.page(&mallory, "/").await;
    assert!(!html.contains("invitations-notice"));
    // Answering it by id is refused as well.
    let pending = app
        .api(
            Method::GET,
            &format!("/api/v1/orgs/{org}/invitations"),
            &key,
            None,
        )
        .await;
    let id = pending.body["data"][0]["invitation_id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut conn = app.state.pool.get().expect("conn");
    let user = tessera::users::store::find_by_email(&mut conn, "newhire@example.com")
        .expect("q")
        .expect("user");
    let ctx =
        tessera::app::Ctx::offline(&app.state.settings, tessera::clock::Clock::now(&*app.clock));
    let r = tessera::orgs::invitations::answer(
        &mut conn,
        &ctx,
        &user,
        tessera::orgs::invitations::Via::Id(&id),
        true,
    );
    assert!(
        matches!(
            r,
            Err(tessera::orgs::invitations::AnswerError::OtherAccount(_))
        ),
        "{r:?}"
    );
    drop(conn);
    assert!(!member_emails(&app, &org).contains(&"newhire@example.com".to_string()));
}

async fn i5_removing_a_member_with_revoke_keys_revokes_their_keys_on_every_instance(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let alice = app.member(&org, "alice@example.com", tessera::orgs::Role::Member);
    let bob = app.member(&org, "bob@example.com", tessera::orgs::Role::Member);
    let alice_keys: Vec<_> = (0..2)
        .map(|_| {
            app.api_key(
                &org,
                KeySpec {
                    scopes: "inference:read",
                    created_by: Some(&alice),
                    ..Default::default()
                },
            )
        })
        .collect();
    let bob_key = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            created_by: Some(&bob),
            ..Default::default()
        },
    );
    let rs = app.resource_server();
    let second = app.second_instance().await;
    // Cached as valid on both instances.
    for k in alice_keys.iter().chain([&bob_key]) {
        assert_eq!(
            app.verify(&rs, json!({"key": k.key})).await.body["code"],
            "VALID"
        );
        assert_eq!(
            second.verify(&rs, json!({"key": k.key})).await.body["code"],
            "VALID"
        );
    }
    let path = |u: &str| format!("/api/v1/orgs/{org}/members/{u}");
    let a = app
        .api(
            Method::DELETE,
            &format!("{}?revoke_keys=maybe", path(&alice)),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(a.body.to_string().contains("revoke_keys"), "{}", a.body);
    let a = app
        .api(
            Method::DELETE,
            &format!("{}?revoke_keys=true", path(&alice)),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    // This instance refuses them from the next request on; the other within its poll.
    for k in &alice_keys {
        assert_eq!(
            app.verify(&rs, json!({"key": k.key})).await.body["code"],
            "REVOKED"
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let codes = futures_util::future::join_all(
            alice_keys
                .iter()
                .map(|k| second.verify(&rs, json!({"key": k.key}))),
        )
        .await;
        if codes.iter().all(|c| c.body["code"] == "REVOKED") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "second instance still accepts"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Without revoke_keys, the person's keys stay (their organization's admins decide).
    let a = app.api(Method::DELETE, &path(&bob), &admin.key, None).await;
    assert_eq!(a.status, 204);
    assert_eq!(
        app.verify(&rs, json!({"key": bob_key.key})).await.body["code"],
        "VALID"
    );
    assert_eq!(
        app.verify(&rs, json!({"key": admin.key, "scopes": []}))
            .await
            .body["code"],
        "VALID"
    );
    let mut conn = app.state.pool.get().expect("conn");
    let log = tessera::audit::list_for_org(&mut conn, &org, 50).expect("audit");
    let revoked: Vec<_> = log
        .iter()
        .filter(|e| e.action == "api_key.revoked")
        .collect();
    assert_eq!(revoked.len(), 2, "one audit record per key");
    assert!(log.iter().any(|e| e.action == "member.removed"));
}

async fn signup_invite_allows_only_the_invited_email_through_its_link(backend: Backend) {
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let mut settings = db.settings();
    settings.signup = SignupMode::Invite;
    let app = spawn_app_with(db, settings).await;
    let org = app.org(Plan::Free);
    let key = app.api_key(&org, KeySpec::default()).key;
    // Without an invitation: refused, on the page and on a direct post.
    let b = app.browser();
    let (status, html) = app.page(&b, "/signup").await;
    assert_eq!(status, 403);
    assert!(html.contains("by invitation only"), "{html}");
    assert_eq!(
        signup(&app, &b, "x@example.com", "password-123")
            .await
            .status(),
        403
    );

    let inv = invite(&app, &org, &key, "ivy@example.com", "member").await;
    let link = format!(
        "/invitations/{}",
        token_of(inv["invitation_url"].as_str().expect("url"))
    );
    let back: String = url::form_urlencoded::byte_serialize(link.as_bytes()).collect();
    let (status, html) = app.page(&b, &format!("/signup?return_to={back}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("value=\"ivy@example.com\""),
        "the invited email is filled in"
    );
    let csrf = hidden(&html, "csrf_token");
    let post = |email: &'static str| {
        let form = [
            ("csrf_token", csrf.clone()),
            ("email", email.to_string()),
            ("password", "password-123".to_string()),
            ("return_to", link.clone()),
        ];
        let b = b.clone();
        let url = format!("{}/signup", app.address);
        async move { b.post(url).form(&form).send().await.expect("post") }
    };
    let r = post("other@example.com").await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("email: this invitation is for ivy@example.com")
    );
    let r = post("ivy@example.com").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], link.as_str());
    // No organization of her own: she joins by accepting.
    let r = app
        .submit(&b, &link, &link, &[("decision", "accept")])
        .await;
    assert_eq!(r.status(), 200);
    let mut conn = app.state.pool.get().expect("conn");
    let ivy = tessera::users::store::find_by_email(&mut conn, "ivy@example.com")
        .expect("q")
        .expect("ivy");
    assert_eq!(
        tessera::orgs::store::orgs_of(&mut conn, &ivy.id).expect("orgs"),
        std::slice::from_ref(&org)
    );
    // The used link signs nobody else up.
    let other = app.browser();
    let (status, _) = app.page(&other, &format!("/signup?return_to={back}")).await;
    assert_eq!(status, 403);
}

async fn signup_closed_leaves_accounts_to_the_cli(backend: Backend) {
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let mut settings = db.settings();
    settings.signup = SignupMode::Closed;
    let app = spawn_app_with(db, settings).await;
    let b = app.browser();
    let (status, html) = app.page(&b, "/signup").await;
    assert_eq!(status, 403);
    assert!(html.contains("Sign-up is closed"), "{html}");
    assert_eq!(
        signup(&app, &b, "x@example.com", "password-123")
            .await
            .status(),
        403
    );
    let (_, html) = app.page(&b, "/login").await;
    assert!(!html.contains("href=\"/signup"), "no sign-up link");
    let mut conn = app.state.pool.get().expect("conn");
    assert!(
        tessera::users::store::find_by_email(&mut conn, "x@example.com")
            .expect("q")
            .is_none()
    );
}

async fn members_page_invites_shows_the_link_once_and_revokes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.user("admin@example.com").await;
    let org = app.org_of("admin@example.com");
    let (_, html) = app.page(&admin, "/settings/members").await;
    let at = html.find(r#"id="invite-member""#).expect("invite form");
    let csrf = hidden(&html[at..], "csrf_token");
    let r = app
        .post_page(
            &admin,
            "/settings/members",
            &[
                ("csrf_token", &csrf),
                ("email", "bob@example.com"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(r.status(), 201);
    let html = r.text().await.expect("html");
    let marker = "id=\"invitation-url\" value=\"";
    let link_at = html.find(marker).expect("link shown") + marker.len();
    let link = &html[link_at..link_at + html[link_at..].find('"').expect("quote")];
    assert!(link.contains("invitations"), "{link}");
    // Shown once: the page again lists the invitation, not its link.
    let (_, html) = app.page(&admin, "/settings/members").await;
    assert!(!html.contains(link));
    assert!(html.contains("bob@example.com"));
    let id = {
        let at = html.find("data-invitation-id=\"").expect("row") + 20;
        html[at..at + html[at..].find('"').expect("quote")].to_string()
    };
    let action = format!("/settings/members/invitations/{id}/revoke");
    let row = html
        .find(&format!("data-invitation-id=\"{id}\""))
        .expect("row");
    let csrf = hidden(&html[row..], "csrf_token");
    let r = app
        .post_page(&admin, &action, &[("csrf_token", &csrf)])
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Invitation revoked.")
    );
    let pending = {
        let mut conn = app.state.pool.get().expect("conn");
        let actor = tessera::orgs::Actor::cli(&org);
        let ctx = tessera::app::Ctx::offline(
            &app.state.settings,
            tessera::clock::Clock::now(&*app.clock),
        );
        tessera::orgs::invitations::list(&mut conn, &ctx, &actor).expect("list")
    };
    assert!(pending.is_empty());
}
