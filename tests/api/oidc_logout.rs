//! RP-Initiated Logout 1.0 (docs/spec.md §9): the `end_session_endpoint`, registered
//! `post_logout_redirect_uris`, `id_token_hint`, `state`, the confirmation page and the
//! ended session; and the registration of `post_logout_redirect_uris` and
//! `id_token_signed_response_alg` over `/api/v1/clients` and RFC 7591/7592.

use reqwest::Method;
use serde_json::{Value, json};
use tessera::clients::{GrantType, NewClient};
use tessera::orgs::Plan;
use tessera::scope::ScopeSet;

use crate::helpers::api::KeySpec;
use crate::helpers::oauth::{REDIRECT, WebClient, json as json_of, pkce, query_param};
use crate::helpers::{Backend, TestApp, hidden, spawn_app};

crate::on_both_backends!(
    l6_logout_confirms_ends_the_session_and_returns_to_the_registered_uri_with_state,
    l6_logout_redirects_only_to_registered_uris_and_refuses_bad_hints,
    l6_logout_for_another_person_is_not_silent_and_needs_the_csrf_token,
    logout_and_id_token_metadata_register_over_the_api_and_rfc_7591,
    the_cli_registers_logout_uris_and_the_id_token_alg,
);

const BYE: &str = "https://app.example/bye";

fn logout_client(app: &TestApp) -> WebClient {
    let (id, secret) = app.register(NewClient {
        name: "Logout App".into(),
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: Some(vec![BYE.into()]),
        grant_types: Some(vec![GrantType::AuthorizationCode]),
        scope: Some(ScopeSet::parse("openid email").expect("scope")),
        ..Default::default()
    });
    WebClient { id, secret }
}

/// A signed-in browser for a fresh user and an ID token issued to `client` for it.
async fn signed_in_with_id_token(app: &TestApp, client: &WebClient) -> (reqwest::Client, String) {
    let email = format!(
        "{}@example.com",
        tessera::crypto::random_base62(10).to_lowercase()
    );
    let b = app.user(&email).await;
    let (verifier, challenge) = pkce();
    let location = app
        .consent(
            &b,
            &[
                ("response_type", "code"),
                ("client_id", &client.id),
                ("redirect_uri", REDIRECT),
                ("scope", "openid email"),
                ("state", "s1"),
                ("nonce", "n-logout"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    let code = query_param(&location, "code").expect("code");
    let (status, body) = json_of(app.exchange(client, &code, &verifier).await).await;
    assert_eq!(status, 200, "{body}");
    let id_token = body["id_token"].as_str().expect("id_token").to_string();
    (b, id_token)
}

fn end_session_url(app: &TestApp, params: &[(&str, &str)]) -> String {
    format!(
        "{}/oauth/end_session?{}",
        app.address,
        serde_urlencoded::to_string(params).expect("query")
    )
}

async fn get(b: &reqwest::Client, url: &str) -> (u16, Option<String>, String) {
    let r = b.get(url).send().await.expect("get");
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().expect("ascii").to_string());
    (status, location, r.text().await.expect("body"))
}

/// Whether `b` is still signed in: `/` answers 200 (else 303 to `/login`).
async fn signed_in(app: &TestApp, b: &reqwest::Client) -> bool {
    let (status, _) = app.page(b, "/").await;
    status == 200
}

async fn l6_logout_confirms_ends_the_session_and_returns_to_the_registered_uri_with_state(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        discovery["end_session_endpoint"],
        format!("{}/oauth/end_session", app.address)
    );
    let client = logout_client(&app);
    let (b, id_token) = signed_in_with_id_token(&app, &client).await;

    // The request shows the confirmation page and ends nothing yet.
    let url = end_session_url(
        &app,
        &[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", BYE),
            ("state", "st 1"),
            ("ui_locales", "de"),
        ],
    );
    let (status, location, html) = get(&b, &url).await;
    assert_eq!(status, 200, "{html}");
    assert!(location.is_none());
    assert!(html.contains("Logout App"), "{html}");
    assert!(!html.contains("end-session-warning"), "{html}");
    assert!(signed_in(&app, &b).await, "a GET ends no session");

    // Confirmed: the session row is gone, the cookie cleared, and the browser goes back.
    let csrf = hidden(&html, "csrf_token");
    let r = app
        .post_page(
            &b,
            "/oauth/end_session",
            &[
                ("csrf_token", csrf.as_str()),
                ("client_id", &hidden(&html, "client_id")),
                (
                    "post_logout_redirect_uri",
                    &hidden(&html, "post_logout_redirect_uri"),
                ),
                ("state", &hidden(&html, "state")),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"].to_str().expect("ascii"),
        format!("{BYE}?state=st+1")
    );
    let cleared = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().is_ok_and(|c| c.starts_with("tessera_session=;")));
    assert!(cleared, "the session cookie is cleared");
    assert!(!signed_in(&app, &b).await, "the session has ended");
    let sub = {
        let claims: Value =
            serde_json::from_slice(&base64_url(id_token.split('.').nth(1).expect("payload")))
                .expect("claims");
        claims["sub"].as_str().expect("sub").to_string()
    };
    {
        use diesel::prelude::*;
        use tessera::db::schema::sessions;
        let mut conn = app.state.pool.get().expect("conn");
        let left: i64 = sessions::table
            .filter(sessions::user_id.eq(&sub))
            .count()
            .get_result(&mut conn)
            .expect("count");
        assert_eq!(left, 0, "the server-side session row is gone");
    }

    // Nobody signed in any more: the request goes straight back (logout is idempotent).
    let (status, location, _) = get(&b, &url).await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some("https://app.example/bye?state=st+1")
    );
    // Without a redirect URI: the "signed out" page.
    let (status, _, html) = get(&b, &end_session_url(&app, &[("client_id", &client.id)])).await;
    assert_eq!(status, 200);
    assert!(html.contains("signed-out"), "{html}");

    // An expired ID token is still a valid hint (RP-Initiated Logout 1.0 §4).
    let (b2, old) = signed_in_with_id_token(&app, &client).await;
    app.clock.advance(7_200);
    let (status, _, html) = get(
        &b2,
        &end_session_url(
            &app,
            &[("id_token_hint", &old), ("post_logout_redirect_uri", BYE)],
        ),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("end-session-confirm"), "{html}");
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

async fn l6_logout_redirects_only_to_registered_uris_and_refuses_bad_hints(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = logout_client(&app);
    let other = app.web_client("openid");
    let (b, id_token) = signed_in_with_id_token(&app, &client).await;
    let access_token = app.user_tokens(&client, "openid").await["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
            "post_logout_redirect_uri",
        ),
        (
            vec![
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", "https://app.example/bye/x"),
            ],
            "post_logout_redirect_uri",
        ),
        (
            vec![
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", "https://app.example/BYE"),
            ],
            "post_logout_redirect_uri",
        ),
        // No client named: nothing to check the URI against.
        (
            vec![("post_logout_redirect_uri", BYE)],
            "post_logout_redirect_uri",
        ),
        // Registered for another client only.
        (
            vec![("client_id", &other.id), ("post_logout_redirect_uri", BYE)],
            "post_logout_redirect_uri",
        ),
        (
            vec![("id_token_hint", &id_token), ("client_id", &other.id)],
            "client_id",
        ),
        (vec![("client_id", "cli_nope")], "client_id"),
        (vec![("id_token_hint", "not.a.jwt")], "id_token_hint"),
        // An access token is not an ID token (docs/spec.md §9).
        (vec![("id_token_hint", &access_token)], "id_token_hint"),
        (vec![("state", "a"), ("state", "b")], "state"),
    ];
    for (params, field) in cases {
        let (status, location, html) = get(&b, &end_session_url(&app, &params)).await;
        assert_eq!(status, 400, "{params:?}: {html}");
        assert!(location.is_none(), "{params:?}: never redirected");
        assert!(html.contains(field), "{params:?} names {field}: {html}");
        assert!(signed_in(&app, &b).await, "{params:?} ends nothing");
    }
    // A relying party's POST form is handled like the GET.
    let r = app
        .post_page(
            &b,
            "/oauth/end_session",
            &[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    let r = app
        .post_page(
            &b,
            "/oauth/end_session",
            &[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", BYE),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("end-session-confirm")
    );
    // The confirmation's hidden fields are checked again: a swapped URI is refused.
    let (_, _, html) = get(&b, &end_session_url(&app, &[("client_id", &client.id)])).await;
    let csrf = hidden(&html, "csrf_token");
    let r = app
        .post_page(
            &b,
            "/oauth/end_session",
            &[
                ("csrf_token", csrf.as_str()),
                ("client_id", &client.id),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(signed_in(&app, &b).await);
}

async fn l6_logout_for_another_person_is_not_silent_and_needs_the_csrf_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = logout_client(&app);
    let (_alice, alice_token) = signed_in_with_id_token(&app, &client).await;
    let (bob, _) = signed_in_with_id_token(&app, &client).await;
    // Alice's hint in Bob's browser: Bob is told, and nothing ends without his click.
    let url = end_session_url(
        &app,
        &[
            ("id_token_hint", &alice_token),
            ("post_logout_redirect_uri", BYE),
        ],
    );
    let (status, _, html) = get(&bob, &url).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("end-session-warning"), "{html}");
    assert!(signed_in(&app, &bob).await);
    // Forged confirmations: no token, a wrong one, a cross-site Origin.
    let r = app
        .post_page(&bob, "/oauth/end_session", &[("csrf_token", "x")])
        .await;
    assert_eq!(r.status(), 403);
    let csrf = hidden(&html, "csrf_token");
    let r = bob
        .post(format!("{}/oauth/end_session", app.address))
        .header("Origin", "https://evil.example")
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    assert!(
        signed_in(&app, &bob).await,
        "no forged form ends the session"
    );
    // Bob confirms: he is signed out and sent back.
    let r = app
        .post_page(
            &bob,
            "/oauth/end_session",
            &[
                ("csrf_token", csrf.as_str()),
                ("client_id", &client.id),
                ("post_logout_redirect_uri", BYE),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], BYE);
    assert!(!signed_in(&app, &bob).await);
}

async fn logout_and_id_token_metadata_register_over_the_api_and_rfc_7591(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    let a = app
        .api(
            Method::POST,
            "/api/v1/clients",
            &admin.key,
            Some(json!({
                "name": "RP",
                "redirect_uris": [REDIRECT],
                "post_logout_redirect_uris": [BYE, BYE],
                "id_token_signed_response_alg": "ES256",
            })),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["post_logout_redirect_uris"], json!([BYE]));
    assert_eq!(a.body["id_token_signed_response_alg"], "ES256");
    let id = a.body["client_id"].as_str().expect("id").to_string();
    // An update without them keeps them.
    let a = app
        .api(
            Method::PUT,
            &format!("/api/v1/clients/{id}"),
            &admin.key,
            Some(json!({"name": "RP 2", "redirect_uris": [REDIRECT]})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["post_logout_redirect_uris"], json!([BYE]));
    assert_eq!(a.body["id_token_signed_response_alg"], "ES256");
    for (body, field) in [
        (
            json!({"redirect_uris": [REDIRECT], "id_token_signed_response_alg": "HS256"}),
            "id_token_signed_response_alg",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "id_token_signed_response_alg": "none"}),
            "id_token_signed_response_alg",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "post_logout_redirect_uris": ["http://app.example/bye"]}),
            "post_logout_redirect_uris",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "post_logout_redirect_uris": ["https://app.example/bye#x"]}),
            "post_logout_redirect_uris",
        ),
    ] {
        let a = app
            .api(
                Method::POST,
                "/api/v1/clients",
                &admin.key,
                Some(body.clone()),
            )
            .await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert!(a.body.to_string().contains(field), "{body}: {}", a.body);
        // RFC 7591: invalid_client_metadata naming the field.
        let mut rfc = body.clone();
        rfc["client_name"] = json!("x");
        let r = reqwest::Client::new()
            .post(format!("{}/oauth/register", app.address))
            .bearer_auth(&admin.key)
            .json(&rfc)
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["error"], "invalid_client_metadata", "{e}");
        assert!(
            e["error_description"].as_str().expect("d").contains(field),
            "{e}"
        );
    }
    // RFC 7591 registration and RFC 7592 update.
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/register", app.address))
        .bearer_auth(&admin.key)
        .json(&json!({
            "client_name": "RP",
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": [BYE],
            "id_token_signed_response_alg": "EdDSA",
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.expect("json");
    assert_eq!(reg["post_logout_redirect_uris"], json!([BYE]));
    assert_eq!(reg["id_token_signed_response_alg"], "EdDSA");
    let r = reqwest::Client::new()
        .put(format!(
            "{}/oauth/register/{}",
            app.address,
            reg["client_id"].as_str().expect("id")
        ))
        .bearer_auth(reg["registration_access_token"].as_str().expect("rat"))
        .json(&json!({
            "client_id": reg["client_id"],
            "client_name": "RP",
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": ["https://app.example/other"],
            "id_token_signed_response_alg": "RS256",
        }))
        .send()
        .await
        .expect("update");
    assert_eq!(r.status(), 200);
    let upd: Value = r.json().await.expect("json");
    assert_eq!(
        upd["post_logout_redirect_uris"],
        json!(["https://app.example/other"])
    );
    assert_eq!(upd["id_token_signed_response_alg"], "RS256");
}

async fn the_cli_registers_logout_uris_and_the_id_token_alg(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let run = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "CLI RP",
            "--redirect-uri",
            REDIRECT,
            "--post-logout-redirect-uri",
            BYE,
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("--database-url")
            .arg(&app.db().url)
            .arg("--keys-dir")
            .arg(app.db().keys_dir())
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run tessera")
    };
    let out = run(&["--id-token-signed-response-alg", "ES256"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = printed["client_id"].as_str().expect("client_id");
    let mut conn = app.state.pool.get().expect("conn");
    let row = tessera::clients::store::find(&mut conn, id)
        .expect("query")
        .expect("row");
    assert_eq!(row.post_logout_redirect_uri_list(), [BYE]);
    assert_eq!(row.id_token_signed_response_alg, "ES256");
    let out = run(&["--id-token-signed-response-alg", "HS256"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("id_token_signed_response_alg"), "{err}");
}
