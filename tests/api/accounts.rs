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
    h1_every_form_without_a_usable_token_is_403_and_changes_nothing,
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
    // R9 regression: a doubled `return_to` is ambiguous and lands on `/`, never a text 400.
    for path in ["/login", "/signup"] {
        let r = app
            .get(&format!("{path}?return_to=/a&return_to=%0d%0a"))
            .await;
        assert_eq!(r.status(), 200, "{path}");
        let page = r.text().await.expect("html");
        assert_eq!(hidden(&page, "return_to"), "/", "{path}");
    }
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

/// The bodies a forged or broken form post may carry, each built around the form's real
/// fields (`good`, with the right token): every one must be refused like a wrong token.
fn broken_bodies(good: &[(&str, String)]) -> Vec<(&'static str, Option<&'static str>, String)> {
    let form = |fields: Vec<(&str, String)>| serde_urlencoded::to_string(fields).expect("form");
    let without_token: Vec<_> = good
        .iter()
        .filter(|(k, _)| *k != "csrf_token")
        .cloned()
        .collect();
    let wrong_token: Vec<_> = good
        .iter()
        .map(|(k, v)| {
            let v = if *k == "csrf_token" {
                "forged".to_string()
            } else {
                v.clone()
            };
            (*k, v)
        })
        .collect();
    let json: serde_json::Map<String, serde_json::Value> = good
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
        .collect();
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    vec![
        ("missing token", FORM, form(without_token)),
        (
            "empty token",
            FORM,
            form(vec![("csrf_token", String::new())]),
        ),
        ("empty body", FORM, String::new()),
        ("no content type", None, form(good.to_vec())),
        ("text/plain", Some("text/plain"), form(good.to_vec())),
        (
            "json",
            Some("application/json"),
            serde_json::Value::Object(json).to_string(),
        ),
        ("wrong token", FORM, form(wrong_token)),
    ]
}

async fn post_raw(
    b: &reqwest::Client,
    url: &str,
    content_type: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut req = b.post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    req.send().await.expect("post")
}

/// Rows in `table` (a `tessera::db::schema` table).
macro_rules! count {
    ($app:expr, $table:path) => {{
        use diesel::{QueryDsl, RunQueryDsl};
        let mut conn = $app.state.pool.get().expect("conn");
        $table.count().get_result::<i64>(&mut conn).expect("count")
    }};
}

/// docs/security.md H1: login, signup, consent and logout refuse a post without a usable
/// `csrf_token` (missing, empty, an empty body, no or another content type, a wrong token)
/// with the same 403 page, and nothing happens: no session, no account, no consent, no
/// code, no logout. The real form works afterwards.
async fn h1_every_form_without_a_usable_token_is_403_and_changes_nothing(backend: Backend) {
    use tessera::db::schema::{consents, sessions, users};
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;

    // Login and signup, from a fresh browser with its pre-session cookie.
    for (path, email) in [
        ("/login", "ada@example.com"),
        ("/signup", "bob@example.com"),
    ] {
        let b = app.browser();
        let page = b
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("html");
        let good = vec![
            ("email", email.to_string()),
            ("password", PW.to_string()),
            ("csrf_token", hidden(&page, "csrf_token")),
            ("return_to", "/".to_string()),
        ];
        let (n_sessions, n_users) = (count!(app, sessions::table), count!(app, users::table));
        for (case, ct, body) in broken_bodies(&good) {
            let r = post_raw(&b, &format!("{}{path}", app.address), ct, body).await;
            assert_eq!(r.status(), 403, "{path}: {case}");
            assert!(session_cookie(&r).is_none(), "{path}: {case}");
            assert!(
                r.text().await.expect("html").contains("Form expired"),
                "{path}: {case}"
            );
        }
        assert_eq!(
            count!(app, sessions::table),
            n_sessions,
            "{path}: no session"
        );
        assert_eq!(count!(app, users::table), n_users, "{path}: no account");
        let home = b
            .get(format!("{}/", app.address))
            .send()
            .await
            .expect("home");
        assert_eq!(home.status(), 303, "{path}: not signed in");
        let r = post_raw(
            &b,
            &format!("{}{path}", app.address),
            Some("application/x-www-form-urlencoded"),
            serde_urlencoded::to_string(&good).expect("form"),
        )
        .await;
        assert_eq!(r.status(), 303, "{path}: the real form works");
    }

    // Consent: no decision is taken, nothing is remembered, the request stays answerable.
    let client = app.web_client("inference:read");
    let (_, challenge) = crate::helpers::oauth::pkce();
    let params = [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", crate::helpers::oauth::REDIRECT),
        ("scope", "inference:read"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let html = app
        .authorize_get(&ada, &params)
        .await
        .text()
        .await
        .expect("html");
    let good = vec![
        ("request", hidden(&html, "request")),
        ("csrf_token", hidden(&html, "csrf_token")),
        ("decision", "approve".to_string()),
    ];
    let url = format!("{}/oauth/authorize", app.address);
    for (case, ct, body) in broken_bodies(&good) {
        let r = post_raw(&ada, &url, ct, body).await;
        assert_eq!(r.status(), 403, "consent: {case}");
        assert!(r.headers().get("location").is_none(), "consent: {case}");
    }
    assert_eq!(count!(app, consents::table), 0, "no consent stored");
    assert_eq!(
        app.authorize_get(&ada, &params).await.status(),
        200,
        "the consent page is still asked"
    );
    let r = post_raw(
        &ada,
        &url,
        Some("application/x-www-form-urlencoded"),
        serde_urlencoded::to_string(&good).expect("form"),
    )
    .await;
    assert_eq!(r.status(), 303, "the real consent form works");
    assert_eq!(count!(app, consents::table), 1);

    // Logout: still signed in after every broken post.
    let page = ada
        .get(format!("{}/logout", app.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let good = vec![("csrf_token", hidden(&page, "csrf_token"))];
    let url = format!("{}/logout", app.address);
    for (case, ct, body) in broken_bodies(&good) {
        let r = post_raw(&ada, &url, ct, body).await;
        assert_eq!(r.status(), 403, "logout: {case}");
        let home = ada
            .get(format!("{}/", app.address))
            .send()
            .await
            .expect("home");
        assert_eq!(home.status(), 200, "logout: {case}: still signed in");
    }
    let r = post_raw(
        &ada,
        &url,
        Some("application/x-www-form-urlencoded"),
        serde_urlencoded::to_string(&good).expect("form"),
    )
    .await;
    assert_eq!(r.status(), 303, "the real logout form works");
}
