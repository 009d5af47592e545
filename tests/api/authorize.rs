//! The authorization endpoint and consent (docs/spec.md §3, §6; docs/security.md A1–A12, B1–B3, H1).

use tessera::clients::{GrantType, NewClient};

use crate::helpers::oauth::{REDIRECT, json, pkce, query_param};
use crate::helpers::{Backend, hidden, spawn_app};

crate::on_both_backends!(
    a5_the_happy_path_returns_code_state_and_iss_and_the_code_buys_tokens,
    a1_a3_unverified_client_or_redirect_uri_gets_an_error_page_never_a_redirect,
    a4_a6_b1_b2_b3_other_errors_redirect_with_error_state_and_iss,
    not_logged_in_goes_to_login_and_comes_back,
    a11_h1_the_consent_decision_uses_the_stored_request_and_a_session_bound_token,
    remembered_consent_skips_the_page_and_a_new_scope_asks_again,
    a2_a12_loopback_port_may_vary_and_unknown_params_and_long_state_pass,
    b7_a_repeated_challenge_is_refused,
    a8_k4_no_cors_and_pending_requests_per_user_are_capped,
    a4_j1_j4_every_fault_after_verification_goes_back_by_redirect,
    a4_j1_consent_post_faults_go_back_by_redirect_once_the_form_is_ours,
    r1_concurrent_first_consents_of_one_user_for_one_client_all_succeed,
    r1_consent_pages_opened_at_once_by_one_user_all_stay_approvable,
);

/// Found by the R1 mixed load (docs/security.md R1): on PostgreSQL, storing a pending
/// request deleted "every other row of the user beyond the newest 20" by a second
/// statement, which also took a request another tab had stored in between; its approval
/// then answered "This request has expired".
async fn r1_consent_pages_opened_at_once_by_one_user_all_stay_approvable(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    for round in 0..10 {
        let b = app.user(&format!("opener{round}@example.com")).await;
        let opened: Vec<_> = (0..8)
            .map(|_| {
                let (_, challenge) = pkce();
                let q = serde_urlencoded::to_string(params(&client.id, &challenge)).expect("query");
                actix_web::rt::spawn(b.get(format!("{}/oauth/authorize?{q}", app.address)).send())
            })
            .collect();
        let mut pages = Vec::new();
        for page in opened {
            let r = page.await.expect("task").expect("authorize");
            assert_eq!(r.status(), 200, "a consent page");
            pages.push(r.text().await.expect("html"));
        }
        for (i, html) in pages.iter().enumerate() {
            let r = b
                .post(format!("{}/oauth/authorize", app.address))
                .form(&[
                    ("request", hidden(html, "request")),
                    ("csrf_token", hidden(html, "csrf_token")),
                    ("decision", "deny".into()),
                ])
                .send()
                .await
                .expect("deny");
            assert_eq!(
                r.status(),
                303,
                "round {round}, page {i}: every page opened at once can still be answered"
            );
        }
    }
}

/// Found by the R1 mixed load (docs/security.md R1): two tabs approving the first consent
/// for one client at once both get their code (PostgreSQL let both inserts race on the
/// primary key: a 500).
async fn r1_concurrent_first_consents_of_one_user_for_one_client_all_succeed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for round in 0..10 {
        let client = app.web_client("inference:read");
        let b = app.user(&format!("tabs{round}@example.com")).await;
        let mut pages = Vec::new();
        for _ in 0..4 {
            let (_, challenge) = pkce();
            let r = app.authorize_get(&b, &params(&client.id, &challenge)).await;
            assert_eq!(r.status(), 200, "a consent page");
            pages.push(r.text().await.expect("html"));
        }
        let approvals: Vec<_> = pages
            .iter()
            .map(|html| {
                actix_web::rt::spawn(
                    b.post(format!("{}/oauth/authorize", app.address))
                        .form(&[
                            ("request", hidden(html, "request")),
                            ("csrf_token", hidden(html, "csrf_token")),
                            ("decision", "approve".into()),
                        ])
                        .send(),
                )
            })
            .collect();
        for approval in approvals {
            let r = approval.await.expect("task").expect("approve");
            assert_eq!(r.status(), 303, "round {round}: every approval succeeds");
            let location = r.headers()["location"].to_str().expect("ascii").to_string();
            assert!(query_param(&location, "code").is_some(), "{location}");
        }
    }
}

async fn b7_a_repeated_challenge_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    let (_, challenge) = pkce();
    let loc = app.consent(&b, &params(&client.id, &challenge)).await;
    assert!(query_param(&loc, "code").is_some());
    expect_redirect_error(&app, &b, &params(&client.id, &challenge), "invalid_request").await;
}

async fn a8_k4_no_cors_and_pending_requests_per_user_are_capped(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    let (_, challenge) = pkce();
    let q = serde_urlencoded::to_string(params(&client.id, &challenge)).expect("query");
    for method in [reqwest::Method::GET, reqwest::Method::OPTIONS] {
        let r = b
            .request(
                method.clone(),
                format!("{}/oauth/authorize?{q}", app.address),
            )
            .header("Origin", "https://evil.example")
            .header("Access-Control-Request-Method", "GET")
            .send()
            .await
            .expect("request");
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{method}"
        );
    }
    for _ in 0..25 {
        let (_, c) = pkce();
        assert_eq!(
            app.authorize_get(&b, &params(&client.id, &c))
                .await
                .status(),
            200
        );
    }
    let mut conn = app.state.pool.get().expect("conn");
    use diesel::{QueryDsl, RunQueryDsl};
    let pending: i64 = tessera::db::schema::pending_authorizations::table
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(
        pending,
        tessera::consent::PENDING_PER_USER,
        "oldest pending requests are dropped"
    );
}

fn params<'a>(client_id: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "inference:read"),
        ("state", "st-123"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

fn with<'a>(
    mut p: Vec<(&'a str, &'a str)>,
    key: &'a str,
    value: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    p.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        p.push((key, v));
    }
    p
}

async fn a5_the_happy_path_returns_code_state_and_iss_and_the_code_buys_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read inference:write");
    let b = app.user("ada@example.com").await;
    let (verifier, challenge) = pkce();
    let page = app.authorize_get(&b, &params(&client.id, &challenge)).await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers().get("access-control-allow-origin").is_none(),
        "A8"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY", "H2");
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Example App")
            && html.contains("Read inference capabilities")
            && html.contains("ada@example.com")
    );
    let location = app.consent(&b, &params(&client.id, &challenge)).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(app.state.issuer.as_str()),
        "A5: iss is the issuer byte for byte"
    );
    let code = query_param(&location, "code").expect("code");
    let (status, tokens) = json(app.exchange(&client, &code, &verifier).await).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "inference:read");
    assert!(
        tokens["refresh_token"]
            .as_str()
            .expect("rt")
            .starts_with("tsr_rt_")
    );
    let claims = crate::well_known::verify_with_served_jwks(
        &app,
        tokens["access_token"].as_str().expect("at"),
        jsonwebtoken::Algorithm::ES256,
    )
    .await;
    assert!(claims.sub.starts_with("usr_"));
    assert_eq!(claims.client_id, client.id);
    let m = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        m["authorization_endpoint"],
        format!("{}/oauth/authorize", app.address)
    );
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
}

async fn assert_error_page(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 400, "{what}");
    assert!(
        r.headers().get("location").is_none(),
        "{what}: no Location header at all"
    );
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html"),
        "{what}"
    );
}

async fn a1_a3_unverified_client_or_redirect_uri_gets_an_error_page_never_a_redirect(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    let (_, challenge) = pkce();
    let base = params(&client.id, &challenge);
    for bad in [
        "https://app.example/CB",
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://app.example/cb/../cb",
        "https://app.example/cb%2F",
        "https://app.example.evil/cb",
        "https://u@app.example/cb",
        "https://app.example/cb#f",
    ] {
        assert_error_page(
            app.authorize_get(&b, &with(base.clone(), "redirect_uri", Some(bad)))
                .await,
            bad,
        )
        .await;
    }
    assert_error_page(
        app.authorize_get(&b, &with(base.clone(), "client_id", None))
            .await,
        "missing client_id",
    )
    .await;
    assert_error_page(
        app.authorize_get(&b, &with(base.clone(), "client_id", Some("cli_unknown")))
            .await,
        "unknown client",
    )
    .await;
    let mut dup = base.clone();
    dup.push(("client_id", &client.id));
    assert_error_page(app.authorize_get(&b, &dup).await, "duplicated client_id").await;
    // The page names the parameter at fault (docs/spec.md §6).
    for (query, names) in [
        (
            with(base.clone(), "client_id", None),
            "client_id is missing",
        ),
        (dup.clone(), "client_id is repeated"),
        (
            with(base.clone(), "client_id", Some("cli\u{7f}x")),
            "client_id has characters outside printable ASCII",
        ),
    ] {
        let html = app
            .authorize_get(&b, &query)
            .await
            .text()
            .await
            .expect("html");
        assert!(html.contains(names), "{names}: {html}");
    }
    // Several registered redirect URIs and none in the request.
    let (multi, _) = app.register(NewClient {
        name: "Two URIs".into(),
        redirect_uris: vec![REDIRECT.into(), "https://app.example/other".into()],
        ..Default::default()
    });
    assert_error_page(
        app.authorize_get(&b, &with(params(&multi, &challenge), "redirect_uri", None))
            .await,
        "ambiguous redirect",
    )
    .await;
    // With exactly one registered URI it may be omitted.
    let r = app
        .authorize_get(&b, &with(base.clone(), "redirect_uri", None))
        .await;
    assert_eq!(r.status(), 200);
    // No code rows were created by any of the refused requests.
    let mut conn = app.state.pool.get().expect("conn");
    use diesel::{QueryDsl, RunQueryDsl};
    let codes: i64 = tessera::db::schema::authorization_codes::table
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(codes, 0);
}

async fn expect_redirect_error(
    app: &crate::helpers::TestApp,
    b: &reqwest::Client,
    p: &[(&str, &str)],
    error: &str,
) {
    let r = app.authorize_get(b, p).await;
    assert_eq!(r.status(), 302, "{error}: {p:?}");
    let loc = r.headers()["location"].to_str().expect("ascii").to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some(error), "{loc}");
    assert_eq!(
        query_param(&loc, "state").as_deref(),
        Some("st-123"),
        "{loc}"
    );
    assert_eq!(
        query_param(&loc, "iss").as_deref(),
        Some(app.state.issuer.as_str()),
        "{loc}"
    );
    assert!(query_param(&loc, "code").is_none() && query_param(&loc, "access_token").is_none());
}

async fn a4_a6_b1_b2_b3_other_errors_redirect_with_error_state_and_iss(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    let (verifier, challenge) = pkce();
    let base = params(&client.id, &challenge);
    for rt in ["token", "id_token", "code token"] {
        expect_redirect_error(
            &app,
            &b,
            &with(base.clone(), "response_type", Some(rt)),
            "unsupported_response_type",
        )
        .await;
    }
    expect_redirect_error(
        &app,
        &b,
        &with(base.clone(), "scope", Some("root")),
        "invalid_scope",
    )
    .await;
    expect_redirect_error(
        &app,
        &b,
        &with(base.clone(), "scope", Some("admin")),
        "invalid_scope",
    )
    .await;
    expect_redirect_error(
        &app,
        &b,
        &with(base.clone(), "scope", Some("inference:read  admin")),
        "invalid_scope",
    )
    .await;
    expect_redirect_error(
        &app,
        &b,
        &with(base.clone(), "code_challenge", None),
        "invalid_request",
    )
    .await;
    expect_redirect_error(
        &app,
        &b,
        &with(base.clone(), "code_challenge_method", Some("plain")),
        "invalid_request",
    )
    .await;
    expect_redirect_error(
        &app,
        &b,
        &with(base.clone(), "code_challenge_method", None),
        "invalid_request",
    )
    .await;
    let short = &challenge[..42];
    expect_redirect_error(
        &app,
        &b,
        &with(base.clone(), "code_challenge", Some(short)),
        "invalid_request",
    )
    .await;
    let plus = format!("{}+", &challenge[..42]);
    expect_redirect_error(
        &app,
        &b,
        &with(base.clone(), "code_challenge", Some(&plus)),
        "invalid_request",
    )
    .await;
    // The user clicks Deny.
    let html = app
        .authorize_get(&b, &base)
        .await
        .text()
        .await
        .expect("html");
    let deny = b
        .post(format!("{}/oauth/authorize", app.address))
        .form(&[
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
            ("decision", "deny".into()),
        ])
        .send()
        .await
        .expect("deny");
    assert_eq!(deny.status(), 303);
    let loc = deny.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_param(&loc, "iss").as_deref(),
        Some(app.state.issuer.as_str())
    );
    let _ = verifier;
    // A client not registered for the code grant.
    let (machine, _) = app.machine_client("inference:read");
    let r = app.authorize_get(&b, &params(&machine, &challenge)).await;
    assert_eq!(
        r.status(),
        400,
        "a client without redirect URIs cannot be redirected to"
    );
}

async fn not_logged_in_goes_to_login_and_comes_back(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    app.user("ada@example.com").await;
    let b = app.browser();
    let (_, challenge) = pkce();
    let r = app.authorize_get(&b, &params(&client.id, &challenge)).await;
    assert_eq!(r.status(), 303);
    let login_url = r.headers()["location"].to_str().expect("ascii").to_string();
    assert!(
        login_url.starts_with("/login?return_to=%2Foauth%2Fauthorize%3F"),
        "{login_url}"
    );
    let return_to = query_param(&format!("http://x{login_url}"), "return_to").expect("return_to");
    let after = crate::helpers::login(
        &app,
        &b,
        "ada@example.com",
        crate::helpers::oauth::PASSWORD,
        &return_to,
    )
    .await;
    assert_eq!(after.status(), 303);
    let back = after.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(back, return_to);
    let consent = b
        .get(format!("{}{back}", app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(consent.status(), 200);
    assert!(consent.text().await.expect("html").contains("Example App"));
    // Errors in the request still redirect to the verified client before any login.
    let bad = app
        .authorize_get(
            &app.browser(),
            &with(params(&client.id, &challenge), "scope", Some("root")),
        )
        .await;
    assert_eq!(bad.status(), 302);
}

async fn a11_h1_the_consent_decision_uses_the_stored_request_and_a_session_bound_token(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read inference:write");
    let b = app.user("ada@example.com").await;
    let (verifier, challenge) = pkce();
    let html = app
        .authorize_get(&b, &params(&client.id, &challenge))
        .await
        .text()
        .await
        .expect("html");
    let request = hidden(&html, "request");
    let token = hidden(&html, "csrf_token");
    // Another user's session cannot answer this consent page.
    let mallory = app.user("mallory@example.com").await;
    let r = mallory
        .post(format!("{}/oauth/authorize", app.address))
        .form(&[
            ("request", request.as_str()),
            ("csrf_token", token.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // No token, or a cross-site origin: refused.
    let r = b
        .post(format!("{}/oauth/authorize", app.address))
        .form(&[
            ("request", request.as_str()),
            ("decision", "approve"),
            ("csrf_token", ""),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = b
        .post(format!("{}/oauth/authorize", app.address))
        .header("Origin", "https://evil.example")
        .form(&[
            ("request", request.as_str()),
            ("csrf_token", token.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // Edited hidden fields are ignored: the code carries the stored scope and redirect URI.
    let r = b
        .post(format!("{}/oauth/authorize", app.address))
        .form(&[
            ("request", request.as_str()),
            ("csrf_token", token.as_str()),
            ("decision", "approve"),
            ("scope", "inference:read inference:write admin"),
            ("redirect_uri", "https://evil.example/cb"),
            ("client_id", "cli_other"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().expect("ascii").to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let code = query_param(&loc, "code").expect("code");
    let (status, tokens) = json(app.exchange(&client, &code, &verifier).await).await;
    assert_eq!(status, 200);
    assert_eq!(tokens["scope"], "inference:read");
    // The same consent form cannot be submitted twice.
    let again = b
        .post(format!("{}/oauth/authorize", app.address))
        .form(&[
            ("request", request.as_str()),
            ("csrf_token", token.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(again.status(), 400);
    // A GET carrying decision=approve mints nothing: it shows the page (for a user who has
    // not consented yet).
    let (_, fresh) = pkce();
    let mut p = params(&client.id, &fresh);
    p.push(("decision", "approve"));
    assert_eq!(app.authorize_get(&mallory, &p).await.status(), 200);
}

async fn remembered_consent_skips_the_page_and_a_new_scope_asks_again(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read inference:write");
    let b = app.user("ada@example.com").await;
    app.code(&b, &client, "inference:read").await;
    let (_, challenge) = pkce();
    let again = app.authorize_get(&b, &params(&client.id, &challenge)).await;
    assert_eq!(again.status(), 302, "consent remembered");
    assert!(query_param(again.headers()["location"].to_str().expect("ascii"), "code").is_some());
    let (_, fresh) = pkce();
    let wider = app
        .authorize_get(
            &b,
            &with(
                params(&client.id, &fresh),
                "scope",
                Some("inference:read inference:write"),
            ),
        )
        .await;
    assert_eq!(wider.status(), 200, "a new scope asks again");
}

async fn a2_a12_loopback_port_may_vary_and_unknown_params_and_long_state_pass(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (native, _) = app.register(NewClient {
        name: "CLI tool".into(),
        public: true,
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        grant_types: Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
        ..Default::default()
    });
    let b = app.user("ada@example.com").await;
    let (verifier, challenge) = pkce();
    let state = "s".repeat(2048);
    let p = vec![
        ("response_type", "code"),
        ("client_id", native.as_str()),
        ("redirect_uri", "http://127.0.0.1:51004/cb"),
        ("scope", "inference:write inference:read"),
        ("state", state.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("foo", "bar"),
    ];
    let loc = app.consent(&b, &p).await;
    assert!(loc.starts_with("http://127.0.0.1:51004/cb?"), "{loc}");
    assert_eq!(
        query_param(&loc, "state").as_deref(),
        Some(state.as_str()),
        "A12: state round-trips byte for byte"
    );
    let code = query_param(&loc, "code").expect("code");
    // A public client authenticates with PKCE alone (auth method "none").
    let body = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:51004/cb"),
        ("code_verifier", verifier.as_str()),
        ("client_id", native.as_str()),
    ])
    .expect("form");
    let (status, tokens) = json(app.post_form("/oauth/token", None, &body).await).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "inference:read inference:write");
    for bad in [
        "http://127.0.0.1:51004/cb?x",
        "http://127.0.0.1.nip.io/cb",
        "http://localhost.evil.test/cb",
    ] {
        let r = app
            .authorize_get(&b, &with(p.clone(), "redirect_uri", Some(bad)))
            .await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}

/// The answer to a request whose client and redirect URI check out: a redirect with
/// `error`, `iss` and, when the request had exactly one printable `state`, that state.
async fn expect_refused(
    app: &crate::helpers::TestApp,
    b: &reqwest::Client,
    p: &[(&str, &str)],
    error: &str,
    state: Option<&str>,
) {
    let r = app.authorize_get(b, p).await;
    assert_eq!(r.status(), 302, "{error}: {p:?}");
    let loc = r.headers()["location"].to_str().expect("ascii").to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(
        query_param(&loc, "error").as_deref(),
        Some(error),
        "{p:?}: {loc}"
    );
    assert_eq!(query_param(&loc, "state").as_deref(), state, "{p:?}: {loc}");
    assert_eq!(
        query_param(&loc, "iss").as_deref(),
        Some(app.state.issuer.as_str()),
        "{loc}"
    );
    assert!(query_param(&loc, "code").is_none(), "{loc}");
}

/// RFC 6749 §4.1.2.1: once `client_id` and `redirect_uri` are verified, every fault of the
/// request goes back to the client; only a fault in those two gets the error page. The
/// table pins the code for each parameter (docs/spec.md §3: what is not advertised is
/// refused, never ignored).
async fn a4_j1_j4_every_fault_after_verification_goes_back_by_redirect(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // What is advertised is what works (docs/security.md G8): the query response mode only.
    let m = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(m["response_modes_supported"], serde_json::json!(["query"]));
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(m["request_parameter_supported"], false);
    assert_eq!(m["request_uri_parameter_supported"], false);
    assert!(m.get("pushed_authorization_request_endpoint").is_none());
    let client = app.web_client("inference:read");
    let signed_in = app.user("ada@example.com").await;
    let (_, challenge) = pkce();
    let base = params(&client.id, &challenge);
    let plus = |extra: &[(&'static str, &'static str)]| {
        let mut p = base.clone();
        p.extend_from_slice(extra);
        p
    };
    let st = Some("st-123");
    // (query, error, state echoed)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        // Repeated parameters (RFC 6749 §3.1).
        (plus(&[("scope", "inference:read")]), "invalid_request", st),
        (plus(&[("code_challenge", "x")]), "invalid_request", st),
        (
            plus(&[("code_challenge_method", "S256")]),
            "invalid_request",
            st,
        ),
        (plus(&[("response_type", "code")]), "invalid_request", st),
        (plus(&[("foo", "1"), ("foo", "2")]), "invalid_request", st),
        (plus(&[("state", "st-123")]), "invalid_request", None),
        // What is not advertised: response modes other than query, request objects.
        (
            plus(&[("response_mode", "form_post")]),
            "invalid_request",
            st,
        ),
        (
            plus(&[("response_mode", "fragment")]),
            "invalid_request",
            st,
        ),
        (
            plus(&[("response_mode", "query.jwt")]),
            "invalid_request",
            st,
        ),
        (plus(&[("response_mode", "Query")]), "invalid_request", st),
        (
            plus(&[("request", "eyJhbGciOiJub25lIn0.e30.")]),
            "request_not_supported",
            st,
        ),
        (
            plus(&[("request_uri", "urn:ietf:params:oauth:request_uri:abc")]),
            "request_uri_not_supported",
            st,
        ),
        // Values outside VSCHAR: the code of the parameter that carries them.
        (
            with(base.clone(), "scope", Some("inference:réad")),
            "invalid_scope",
            st,
        ),
        (
            with(base.clone(), "scope", Some("inference:read\u{0}")),
            "invalid_scope",
            st,
        ),
        (
            with(base.clone(), "scope", Some("inference:read\"x")),
            "invalid_scope",
            st,
        ),
        (
            with(base.clone(), "response_type", Some("code\u{7f}")),
            "unsupported_response_type",
            st,
        ),
        (
            with(base.clone(), "state", Some("a\r\nb")),
            "invalid_request",
            None,
        ),
        (
            with(base.clone(), "code_challenge", Some("é")),
            "invalid_request",
            st,
        ),
        (
            with(base.clone(), "code_challenge_method", Some("S256\t")),
            "invalid_request",
            st,
        ),
        (plus(&[("response_mode", "qüery")]), "invalid_request", st),
        // OpenID Connect's nonce goes into the ID token: read, so it must be VSCHAR.
        (
            with(base.clone(), "nonce", Some("n\u{0}")),
            "invalid_request",
            st,
        ),
    ];
    for b in [&signed_in, &app.browser()] {
        for (p, error, state) in &cases {
            expect_refused(&app, b, p, error, *state).await;
        }
    }
    // Advertised or unknown-and-ignored: the request goes on to the consent page.
    for p in [
        plus(&[("response_mode", "query")]),
        plus(&[("request", "")]),
        plus(&[("ui_locales", "ñ\u{0}")]),
    ] {
        let r = app.authorize_get(&signed_in, &p).await;
        assert_eq!(r.status(), 200, "{p:?}");
    }
    // A fault in client_id or redirect_uri cannot be verified: the error page.
    for p in [
        plus(&[("redirect_uri", REDIRECT)]),
        plus(&[("client_id", "cli_other")]),
        with(
            base.clone(),
            "redirect_uri",
            Some("https://app.example/cb\u{0}"),
        ),
        with(
            base.clone(),
            "client_id",
            Some(&format!("{}\u{e9}", client.id)),
        ),
    ] {
        assert_error_page(app.authorize_get(&signed_in, &p).await, &format!("{p:?}")).await;
    }
}

/// The consent POST: a form whose request id and CSRF token check out is ours, its
/// pending request names a verified client, so its faults go back to the client
/// (RFC 6749 §4.1.2.1) and use the request up; anything less is 403 with nothing changed.
async fn a4_j1_consent_post_faults_go_back_by_redirect_once_the_form_is_ours(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    let post = |form: Vec<(&'static str, String)>| {
        let b = b.clone();
        let url = format!("{}/oauth/authorize", app.address);
        async move { b.post(url).form(&form).send().await.expect("post") }
    };
    // A faulty form, given the page's request id and CSRF token.
    type Fault = fn(String, String) -> Vec<(&'static str, String)>;
    let faults: Vec<Fault> = vec![
        |r, t| {
            vec![
                ("request", r),
                ("csrf_token", t),
                ("decision", "approve".into()),
                ("decision", "deny".into()),
            ]
        },
        |r, t| {
            vec![
                ("request", r),
                ("csrf_token", t),
                ("decision", "approve".into()),
                ("decision", "approve".into()),
            ]
        },
        |r, t| {
            vec![
                ("request", r),
                ("csrf_token", t),
                ("decision", "approve".into()),
                ("scope", "a".into()),
                ("scope", "b".into()),
            ]
        },
        |r, t| {
            vec![
                ("request", r),
                ("csrf_token", t),
                ("decision", "maybe".into()),
            ]
        },
        |r, t| vec![("request", r), ("csrf_token", t)],
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let (_, challenge) = pkce();
        let html = app
            .authorize_get(&b, &params(&client.id, &challenge))
            .await
            .text()
            .await
            .expect("html");
        let (request, token) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
        // Not ours: a repeated or missing request id or token is refused, nothing used up.
        for form in [
            vec![
                ("request", request.clone()),
                ("request", request.clone()),
                ("csrf_token", token.clone()),
                ("decision", "approve".to_string()),
            ],
            vec![
                ("request", request.clone()),
                ("csrf_token", token.clone()),
                ("csrf_token", "forged".to_string()),
                ("decision", "approve".to_string()),
            ],
            vec![
                ("request", request.clone()),
                ("decision", "approve".to_string()),
            ],
        ] {
            assert_eq!(post(form).await.status(), 403, "case {i}");
        }
        let r = post(fault(request.clone(), token.clone())).await;
        assert_eq!(r.status(), 303, "case {i}");
        let loc = r.headers()["location"].to_str().expect("ascii").to_string();
        assert!(loc.starts_with(REDIRECT), "{loc}");
        assert_eq!(
            query_param(&loc, "error").as_deref(),
            Some("invalid_request"),
            "case {i}"
        );
        assert_eq!(
            query_param(&loc, "state").as_deref(),
            Some("st-123"),
            "case {i}"
        );
        assert_eq!(
            query_param(&loc, "iss").as_deref(),
            Some(app.state.issuer.as_str())
        );
        assert!(query_param(&loc, "code").is_none());
        // Used up: the same form, now well-formed, finds no pending request.
        let again = post(vec![
            ("request", request),
            ("csrf_token", token),
            ("decision", "approve".to_string()),
        ])
        .await;
        assert_eq!(again.status(), 400, "case {i}");
    }
    // Nothing was approved, so nothing is remembered: the next request asks again.
    let (_, challenge) = pkce();
    assert_eq!(
        app.authorize_get(&b, &params(&client.id, &challenge))
            .await
            .status(),
        200
    );
}
