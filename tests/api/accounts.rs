//! Accounts through the pages: signup, login, logout, sessions, CSRF, throttling
//! (docs/spec.md §6; docs/security.md A9, A10, H1, H4, H6, K1).

use tessera::clock::Clock;

use crate::helpers::{Backend, hidden, login, signup, spawn_app};

crate::on_both_backends!(
    signup_logs_in_and_the_first_account_is_an_organization_admin,
    a9_a10_login_redirects_with_303_to_same_origin_paths_only,
    h1_login_and_logout_refuse_forms_without_a_valid_csrf_token,
    h4_sessions_are_httponly_rotated_at_login_and_dead_after_logout,
    h6_unknown_email_and_wrong_password_look_the_same,
    k1_repeated_failures_are_throttled_with_retry_after,
);

const PW: &str = "correct horse battery";

async fn signup_logs_in_and_the_first_account_is_an_organization_admin(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.browser();
    let r = signup(&app, &b, "Ada@Example.com", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let home = b
        .get(format!("{}/", app.address))
        .send()
        .await
        .expect("home")
        .text()
        .await
        .expect("html");
    assert!(home.contains("ada@example.com"), "{home}");
    let mut conn = app.state.pool.get().expect("conn");
    let user = tessera::users::store::find_by_email(&mut conn, "ada@example.com")
        .expect("query")
        .expect("user");
    let orgs = tessera::orgs::store::orgs_of(&mut conn, &user.id).expect("orgs");
    assert_eq!(
        tessera::orgs::store::role_of(&mut conn, &orgs[0], &user.id).expect("role"),
        Some(tessera::orgs::Role::Admin)
    );
    // The same email again is refused with a clear message.
    let again = signup(&app, &app.browser(), "ada@example.com", PW).await;
    assert_eq!(again.status(), 400);
    assert!(again.text().await.expect("html").contains("already exists"));
    let short = signup(&app, &app.browser(), "bob@example.com", "short").await;
    assert_eq!(short.status(), 400);
}

async fn a9_a10_login_redirects_with_303_to_same_origin_paths_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    signup(&app, &app.browser(), "ada@example.com", PW).await;
    for (return_to, expected) in [
        (
            "/oauth/authorize?client_id=x",
            "/oauth/authorize?client_id=x",
        ),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        let r = login(&app, &app.browser(), "ada@example.com", PW, return_to).await;
        assert_eq!(r.status(), 303, "{return_to}");
        assert_eq!(r.headers()["location"], expected, "{return_to}");
    }
    // GET /login?return_to=//evil renders the form with the safe value.
    let page = app
        .get("/login?return_to=//evil.example")
        .await
        .text()
        .await
        .expect("html");
    assert_eq!(hidden(&page, "return_to"), "/");
}

async fn h1_login_and_logout_refuse_forms_without_a_valid_csrf_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    signup(&app, &app.browser(), "ada@example.com", PW).await;
    let b = app.browser();
    let page = b
        .get(format!("{}/login", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let token = hidden(&page, "csrf_token");
    let post = |fields: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let b = b.clone();
        let url = format!("{}/login", app.address);
        async move {
            let mut req = b.post(url).form(&fields);
            if let Some(o) = origin {
                req = req.header("Origin", o);
            }
            req.send().await.expect("post").status().as_u16()
        }
    };
    let base = |t: &str| {
        vec![
            ("email", "ada@example.com".to_string()),
            ("password", PW.to_string()),
            ("csrf_token", t.to_string()),
        ]
    };
    assert_eq!(post(base(""), None).await, 403, "no token");
    assert_eq!(post(base("forged"), None).await, 403, "wrong token");
    assert_eq!(
        post(base(&token), Some("https://evil.example")).await,
        403,
        "cross-site origin"
    );
    // A token from another browser's cookie does not work in this one.
    let other = app.browser();
    let other_page = other
        .get(format!("{}/login", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert_eq!(
        post(base(&hidden(&other_page, "csrf_token")), None).await,
        403,
        "other session's token"
    );
    assert_eq!(post(base(&token), None).await, 303, "the real token works");

    // Logout: GET shows a button; a POST with a bad token is 403 and keeps the session.
    let logout_page = b
        .get(format!("{}/logout", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(logout_page.contains("<button"));
    let bad = b
        .post(format!("{}/logout", app.address))
        .form(&[("csrf_token", "nope")])
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 403);
    assert_eq!(
        b.get(format!("{}/", app.address))
            .send()
            .await
            .expect("home")
            .status(),
        200,
        "still signed in"
    );
    let good = b
        .post(format!("{}/logout", app.address))
        .form(&[("csrf_token", hidden(&logout_page, "csrf_token"))])
        .send()
        .await
        .expect("post");
    assert_eq!(good.status(), 303);
    assert_eq!(
        b.get(format!("{}/", app.address))
            .send()
            .await
            .expect("home")
            .status(),
        303,
        "signed out"
    );
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("tessera_session=") && !c.starts_with("tessera_session=;"))
        .map(str::to_string)
}

async fn h4_sessions_are_httponly_rotated_at_login_and_dead_after_logout(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let first = signup(&app, &app.browser(), "ada@example.com", PW).await;
    let cookie = session_cookie(&first).expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http issuer: no Secure flag"
    );
    let first_id = cookie.split(';').next().expect("pair").to_string();
    // Logging in while presenting an existing session id (fixation) issues a new id and
    // kills the old one.
    let login_page = app.get("/login").await;
    let pre = login_page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("tessera_csrf="))
        .expect("pre-session cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let token = hidden(&login_page.text().await.expect("html"), "csrf_token");
    let second = app
        .http
        .post(format!("{}/login", app.address))
        .header("Cookie", format!("{pre}; {first_id}"))
        .form(&[
            ("email", "ada@example.com"),
            ("password", PW),
            ("csrf_token", &token),
            ("return_to", "/"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(second.status(), 303);
    let second_id = session_cookie(&second)
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    assert_ne!(first_id, second_id, "the session id is rotated at login");
    let replay = app
        .http
        .get(format!("{}/", app.address))
        .header("Cookie", &first_id)
        .send()
        .await
        .expect("get");
    assert_eq!(replay.status(), 303, "the old session is dead");
    let home = app
        .http
        .get(format!("{}/logout", app.address))
        .header("Cookie", &second_id)
        .send()
        .await
        .expect("get");
    let logout_token = hidden(&home.text().await.expect("html"), "csrf_token");
    let out = app
        .http
        .post(format!("{}/logout", app.address))
        .header("Cookie", &second_id)
        .form(&[("csrf_token", logout_token)])
        .send()
        .await
        .expect("post");
    assert_eq!(out.status(), 303);
    // After logout the cookie value is worthless even if replayed.
    let replay = app
        .http
        .get(format!("{}/", app.address))
        .header("Cookie", &second_id)
        .send()
        .await
        .expect("get");
    assert_eq!(replay.status(), 303);
    // No session row was stored in the clear.
    let raw = second_id.split('=').nth(1).expect("value");
    let mut conn = app.state.pool.get().expect("conn");
    assert!(
        tessera::sessions::find(&mut conn, raw, app.clock.now())
            .expect("query")
            .is_none()
    );
}

async fn h6_unknown_email_and_wrong_password_look_the_same(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    signup(&app, &app.browser(), "ada@example.com", PW).await;
    let b = app.browser();
    let wrong = login(&app, &b, "ada@example.com", "wrong password!", "/").await;
    let wrong_status = wrong.status();
    let wrong_body = wrong
        .text()
        .await
        .expect("html")
        .replace("ada@example.com", "EMAIL");
    let unknown = login(&app, &b, "nobody@example.com", "wrong password!", "/").await;
    assert_eq!(unknown.status(), wrong_status);
    assert_eq!(
        wrong_status, 403,
        "credentials sent and refused; no 401 without a challenge"
    );
    let unknown_body = unknown
        .text()
        .await
        .expect("html")
        .replace("nobody@example.com", "EMAIL");
    assert_eq!(unknown_body, wrong_body);
}

async fn k1_repeated_failures_are_throttled_with_retry_after(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    signup(&app, &app.browser(), "ada@example.com", PW).await;
    // Start at a window boundary so the whole burst falls in one window.

    app.clock.set(app.clock.now() - app.clock.now() % 60 + 60);
    let b = app.browser();
    for _ in 0..10 {
        assert_eq!(
            login(&app, &b, "ada@example.com", "wrong password!", "/")
                .await
                .status(),
            403
        );
    }
    let locked = login(&app, &b, "ada@example.com", PW, "/").await;
    assert_eq!(locked.status(), 429, "even the right password waits");
    let retry: i64 = locked.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
    app.clock.advance(60);
    assert_eq!(
        login(&app, &b, "ada@example.com", PW, "/").await.status(),
        303,
        "unlocked after the window"
    );
}
