//! The token endpoint (RFC 6749 §3.2, §4.4, §5) with the client-credentials grant, and the
//! client authentication and error rules every grant shares (docs/security.md D1–D12, J1–J4).

use diesel::RunQueryDsl;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use tessera::clients::{GrantType, NewClient};
use tessera::scope::ScopeSet;

use crate::helpers::oauth::json as json_of;
use crate::helpers::{Backend, TestApp, postgres as pg, spawn_app};
use crate::well_known::verify_with_served_jwks;

crate::on_both_backends!(
    d2_d11_client_credentials_issues_a_verifiable_jwt_and_no_refresh_token,
    client_secret_post_authenticates_too,
    d4_invalid_client_is_401_with_a_basic_challenge_and_one_body_for_all_causes,
    d6_d7_one_auth_method_and_never_credentials_in_the_url,
    d1_j6_only_form_posts_are_accepted_and_oversized_bodies_are_oauth_json,
    d8_d9_unsupported_and_unauthorized_grants,
    d10_scope_outside_the_client_registration_is_invalid_scope,
    j1_j3_j4_malformed_token_requests_get_oauth_errors_never_500,
    r4_token_requests_answer_503_when_the_database_goes_away,
    k2_guessing_a_client_secret_is_throttled_per_client,
    d3_d8_d10_j1_j4_each_parameter_fault_has_its_error_code,
);

async fn k2_guessing_a_client_secret_is_throttled_per_client(backend: Backend) {
    use tessera::clock::Clock;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read");
    let (other, other_secret) = app.machine_client("inference:read");
    app.clock.set(app.clock.now() - app.clock.now() % 60 + 60);
    for _ in 0..20 {
        let r = app
            .post_form(
                "/oauth/token",
                Some((&id, "tsr_cs_guess")),
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(r.status(), 401);
    }
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status(), 429, "even the right secret waits");
    assert!(r.headers().contains_key("retry-after"));
    let (_, body) = error_of(r).await;
    assert_eq!(body["error"], "slow_down");
    let r = app
        .post_form(
            "/oauth/token",
            Some((&other, &other_secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status(), 200, "other clients are unaffected");
    app.clock.advance(60);
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status(), 200, "the window ends");
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json error body");
    let desc = body["error_description"].as_str().unwrap_or("");
    // D3: printable ASCII without `"` or `\`.
    assert!(
        desc.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
        "{desc:?}"
    );
    (status, body)
}

async fn d2_d11_client_credentials_issues_a_verifiable_jwt_and_no_refresh_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read inference:write");
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(
        h["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["pragma"], "no-cache");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "inference:read inference:write");
    assert!(
        body.get("refresh_token").is_none(),
        "D11: no refresh token for client_credentials"
    );
    let claims = verify_with_served_jwks(
        &app,
        body["access_token"].as_str().expect("token"),
        Algorithm::ES256,
    )
    .await;
    assert_eq!(claims.sub, id, "sub is the client id");
    assert!(
        claims.sub.starts_with("cli_"),
        "client subjects cannot collide with usr_ ids"
    );
    assert_eq!(claims.client_id, id);
    assert_eq!(claims.scope, "inference:read inference:write");
    assert_eq!(claims.iss, app.state.issuer);

    // A narrower scope narrows the token.
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials&scope=inference%3Aread",
        )
        .await;
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["scope"], "inference:read");

    // The metadata advertises the endpoint that works.
    let m = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(m["token_endpoint"], format!("{}/oauth/token", app.address));
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
}

async fn client_secret_post_authenticates_too(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read");
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let r = app.post_form("/oauth/token", None, &body).await;
    assert_eq!(r.status(), 200);
}

async fn d4_invalid_client_is_401_with_a_basic_challenge_and_one_body_for_all_causes(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read");
    let wrong = app
        .post_form(
            "/oauth/token",
            Some((&id, "tsr_cs_wrong")),
            "grant_type=client_credentials",
        )
        .await;
    let challenge = wrong.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let (status, wrong_body) = error_of(wrong).await;
    assert_eq!(status, 401);
    assert_eq!(wrong_body["error"], "invalid_client");
    let unknown = app
        .post_form(
            "/oauth/token",
            Some(("cli_doesnotexist", &secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert!(unknown.headers().contains_key("www-authenticate"));
    let (status, unknown_body) = error_of(unknown).await;
    assert_eq!(status, 401);
    assert_eq!(
        unknown_body, wrong_body,
        "unknown client and wrong secret are indistinguishable"
    );
    // A confidential client presenting no secret at all.
    let none = app
        .post_form(
            "/oauth/token",
            None,
            &format!("grant_type=client_credentials&client_id={id}"),
        )
        .await;
    let (status, body) = error_of(none).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // No credentials whatsoever.
    let (status, body) = error_of(
        app.post_form("/oauth/token", None, "grant_type=client_credentials")
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // Post credentials with a wrong secret: 401, no Basic challenge needed.
    let r = app
        .post_form(
            "/oauth/token",
            None,
            &format!("grant_type=client_credentials&client_id={id}&client_secret=nope"),
        )
        .await;
    assert_eq!(r.status(), 401);
}

async fn d6_d7_one_auth_method_and_never_credentials_in_the_url(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read");
    let both = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            &format!("grant_type=client_credentials&client_secret={secret}"),
        )
        .await;
    let (status, body) = error_of(both).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    for query in [
        format!("client_secret={secret}"),
        "code=abc".to_string(),
        "grant_type=client_credentials".to_string(),
    ] {
        let r = app
            .http
            .post(format!("{}/oauth/token?{query}", app.address))
            .basic_auth(&id, Some(&secret))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .expect("request");
        let (status, body) = error_of(r).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{query}"
        );
    }
}

async fn d1_j6_only_form_posts_are_accepted_and_oversized_bodies_are_oauth_json(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read");
    let get = app.get("/oauth/token?grant_type=client_credentials").await;
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let json = app
        .http
        .post(format!("{}/oauth/token", app.address))
        .basic_auth(&id, Some(&secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("request");
    let (status, body) = error_of(json).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let bare = app
        .http
        .post(format!("{}/oauth/token", app.address))
        .basic_auth(&id, Some(&secret))
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("request");
    assert_eq!(bare.status(), 400, "missing Content-Type");
    let huge = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            &format!(
                "grant_type=client_credentials&pad={}",
                "a".repeat(64 * 1024)
            ),
        )
        .await;
    assert_eq!(huge.status(), 413, "J6: oversized bodies are refused");
    // In the OAuth error shape (RFC 6749 §5.2), not actix's text, at every OAuth endpoint
    // with a form body.
    let body = json_of(huge).await;
    assert_eq!(body.1["error"], "invalid_request", "{body:?}");
    assert_eq!(
        body.1["error_description"],
        "The body is larger than 16 KiB."
    );
    for path in [
        "/oauth/introspect",
        "/oauth/revoke",
        "/oauth/device_authorization",
    ] {
        let (status, body) = json_of(
            app.post_form(path, Some((&id, &secret)), &"a".repeat(17 * 1024))
                .await,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (413, Some("invalid_request")),
            "{path}: {body}"
        );
    }
}

async fn d8_d9_unsupported_and_unauthorized_grants(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read");
    for g in ["password", "implicit", "foo"] {
        let r = app
            .post_form(
                "/oauth/token",
                Some((&id, &secret)),
                &format!("grant_type={g}&username=a&password=b"),
            )
            .await;
        let (status, body) = error_of(r).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("unsupported_grant_type")),
            "{g}"
        );
    }
    // A client registered without client_credentials.
    let (web_id, web_secret) = app.register(NewClient {
        name: "Web app".into(),
        redirect_uris: vec!["https://app.example/cb".into()],
        ..Default::default()
    });
    let r = app
        .post_form(
            "/oauth/token",
            Some((&web_id, &web_secret.expect("secret"))),
            "grant_type=client_credentials",
        )
        .await;
    let (status, body) = error_of(r).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    // A public client cannot use client_credentials (it has no secret to prove itself).
    let (public_id, _) = app.register(NewClient {
        name: "SPA".into(),
        public: true,
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        grant_types: Some(vec![GrantType::AuthorizationCode]),
        ..Default::default()
    });
    let r = app
        .post_form(
            "/oauth/token",
            None,
            &format!("grant_type=client_credentials&client_id={public_id}"),
        )
        .await;
    let (status, body) = error_of(r).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}

async fn d10_scope_outside_the_client_registration_is_invalid_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read");
    for scope in [
        "admin",
        "inference%3Aread+admin",
        "root",
        "inference%3Aread++admin",
        "%22x%22",
        "a%5Cb",
    ] {
        let r = app
            .post_form(
                "/oauth/token",
                Some((&id, &secret)),
                &format!("grant_type=client_credentials&scope={scope}"),
            )
            .await;
        let (status, body) = error_of(r).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope")),
            "{scope}"
        );
    }
    // Unicode is refused before scope parsing, as malformed input.
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials&scope=%C3%A9",
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(ScopeSet::parse("inference:read").is_ok());
}

async fn j1_j3_j4_malformed_token_requests_get_oauth_errors_never_500(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read");
    for body in [
        "grant_type=client_credentials&grant_type=client_credentials",
        "grant_type=client_credentials&scope=inference%3Aread&scope=inference%3Aread",
        "grant_type=client_credentials&x=%zz",
        "grant_type=client_credentials&x=%",
        "grant_type=client_credentials&x=%ff",
        "grant_type=client_credentials&x=%ED%A0%80",
        "grant_type=client_credentials&&=c",
        "grant_type=client_credentials&a%00=b",
    ] {
        let (status, err) = error_of(
            app.post_form("/oauth/token", Some((&id, &secret)), body)
                .await,
        )
        .await;
        assert_eq!(
            (status, err["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
    }
    // Empty values are absent: an empty scope asks for the default.
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials&scope=",
        )
        .await;
    assert_eq!(r.status(), 200);
    // A NUL in the client id never matches the real client.
    let r = app
        .post_form(
            "/oauth/token",
            None,
            &format!("grant_type=client_credentials&client_id={id}%00x&client_secret={secret}"),
        )
        .await;
    assert_eq!(r.status(), 400);
}

async fn r4_token_requests_answer_503_when_the_database_goes_away(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read");
    assert_eq!(
        app.post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials"
        )
        .await
        .status(),
        200
    );
    break_database(&app);
    // docs/spec.md §7: a client authenticated within the cache TTL is served from the
    // credential cache only while the change poll keeps succeeding, like verify (the
    // health window, 500 ms); after that every token request is 503, and stays so.
    let broken_at = std::time::Instant::now();
    loop {
        let r = app
            .post_form(
                "/oauth/token",
                Some((&id, &secret)),
                "grant_type=client_credentials",
            )
            .await;
        if r.status() == 503 {
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            broken_at.elapsed() < std::time::Duration::from_millis(1000),
            "cached issuance stops within the health window"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(body.get("access_token").is_none());
}

/// Takes the database away from under the running server.
pub fn break_database(app: &TestApp) {
    match app.db().url.strip_prefix("sqlite://") {
        Some(path) => {
            let mut conn = crate::helpers::sqlite_side_connection(path);
            diesel::sql_query("PRAGMA foreign_keys = OFF")
                .execute(&mut conn)
                .expect("pragma");
            for t in [
                "client_secrets",
                "clients",
                "signing_keys",
                "api_keys",
                "audit_events",
            ] {
                diesel::sql_query(format!("DROP TABLE {t}"))
                    .execute(&mut conn)
                    .expect("drop");
            }
        }
        None => pg::drop_database(&app.db().url),
    }
}

/// What one request must get: an OAuth error code with its status, or a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Error(u16, &'static str),
    /// 200 from the token endpoint or revocation.
    Ok,
    /// 200 `{"active": false}` from introspection.
    Inactive,
    /// 200 `{"active": true}` from introspection.
    Active,
}

/// docs/security.md D3, D8, D10, J1–J4: every parameter of the token, introspection and
/// revocation endpoints, sent malformed, gets the error code RFC 6749 §5.2 (and RFC 7662,
/// RFC 7009) gives that parameter; never a generic "not valid form encoding" for a value
/// that is well encoded. Unknown parameters are ignored, whatever they hold (§3.2).
async fn d3_d8_d10_j1_j4_each_parameter_fault_has_its_error_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client("inference:read");
    let rs = app.resource_server();
    let at = |r: Value| r["access_token"].as_str().expect("at").to_string();
    let token = at(app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials",
        )
        .await
        .json()
        .await
        .expect("json"));
    let client = Some((id.as_str(), secret.as_str()));
    let resource = Some((rs.0.as_str(), rs.1.as_str()));
    let invalid_request = Expect::Error(400, "invalid_request");
    let invalid_scope = Expect::Error(400, "invalid_scope");
    let invalid_grant = Expect::Error(400, "invalid_grant");
    let unsupported = Expect::Error(400, "unsupported_grant_type");
    let invalid_client = Expect::Error(401, "invalid_client");
    let cc = "grant_type=client_credentials";
    let post_id = format!("{cc}&client_id={id}%00&client_secret={secret}");
    let post_secret = format!("{cc}&client_id={id}&client_secret=%C3%A9");
    let rs_post = format!("token={token}&client_id={}%0a&client_secret={}", rs.0, rs.1);
    let with_hint = |hint: &str| format!("token={token}&token_type_hint={hint}");
    // (path, Basic credentials, body, expected answer)
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, String, Expect);
    let cases: Vec<Case<'_>> = vec![
        // grant_type
        ("/oauth/token", client, "scope=inference%3Aread".into(), invalid_request),
        ("/oauth/token", client, "grant_type=".into(), invalid_request),
        ("/oauth/token", client, format!("{cc}&{cc}"), invalid_request),
        ("/oauth/token", client, "grant_type=password".into(), unsupported),
        ("/oauth/token", client, "grant_type=CLIENT_CREDENTIALS".into(), unsupported),
        ("/oauth/token", client, "grant_type=client%20credentials".into(), unsupported),
        ("/oauth/token", client, format!("{cc}%00"), unsupported),
        ("/oauth/token", client, "grant_type=client_cr%C3%A9dentials".into(), unsupported),
        // scope (RFC 6749 §3.3: NQCHAR tokens, one space between them)
        ("/oauth/token", client, format!("{cc}&scope=inference%3Ar%C3%A9ad"), invalid_scope),
        ("/oauth/token", client, format!("{cc}&scope=inference%3Aread%00"), invalid_scope),
        ("/oauth/token", client, format!("{cc}&scope=inference%3Aread%09"), invalid_scope),
        ("/oauth/token", client, format!("{cc}&scope=a%22b"), invalid_scope),
        ("/oauth/token", client, format!("{cc}&scope=a%5Cb"), invalid_scope),
        ("/oauth/token", client, format!("{cc}&scope=a++b"), invalid_scope),
        ("/oauth/token", client, format!("{cc}&scope=+a"), invalid_scope),
        ("/oauth/token", client, format!("{cc}&scope=root"), invalid_scope),
        ("/oauth/token", client, format!("{cc}&scope=x&scope=y"), invalid_request),
        ("/oauth/token", client, format!("{cc}&scope="), Expect::Ok),
        // authorization_code: code, code_verifier, redirect_uri
        (
            "/oauth/token",
            client,
            "grant_type=authorization_code&code_verifier=v".into(),
            invalid_request,
        ),
        (
            "/oauth/token",
            client,
            "grant_type=authorization_code&code=abc".into(),
            invalid_request,
        ),
        (
            "/oauth/token",
            client,
            "grant_type=authorization_code&code=%C3%A9&code_verifier=v".into(),
            invalid_grant,
        ),
        (
            "/oauth/token",
            client,
            "grant_type=authorization_code&code=abc&code_verifier=%00".into(),
            invalid_grant,
        ),
        (
            "/oauth/token",
            client,
            "grant_type=authorization_code&code=abc&code_verifier=v&redirect_uri=https%3A%2F%2Fa%0a"
                .into(),
            invalid_grant,
        ),
        // refresh_token
        ("/oauth/token", client, "grant_type=refresh_token".into(), invalid_request),
        (
            "/oauth/token",
            client,
            "grant_type=refresh_token&refresh_token=%C3%A9".into(),
            invalid_grant,
        ),
        (
            "/oauth/token",
            client,
            "grant_type=refresh_token&refresh_token=abc&scope=%C3%A9".into(),
            invalid_scope,
        ),
        // client_id, client_secret (J4: never read as absent, never matching)
        ("/oauth/token", None, post_id.clone(), invalid_request),
        ("/oauth/token", None, post_secret, invalid_request),
        ("/oauth/token", None, format!("{cc}&client_id=cli_unknown"), invalid_client),
        // Encoding itself
        ("/oauth/token", client, format!("{cc}&x=%zz"), invalid_request),
        ("/oauth/token", client, format!("{cc}&x=%ff"), invalid_request),
        // Unknown parameters are ignored, whatever they hold.
        ("/oauth/token", client, format!("{cc}&state=%0d%0a"), Expect::Ok),
        ("/oauth/token", client, format!("{cc}&nonce=%C3%A9"), Expect::Ok),
        ("/oauth/token", client, format!("{cc}&code=%00"), Expect::Ok),
        // Introspection: a token no token of ours can be is inactive; the hint is a hint.
        ("/oauth/introspect", resource, "token=%C3%A9".into(), Expect::Inactive),
        ("/oauth/introspect", resource, "token=abc%00".into(), Expect::Inactive),
        ("/oauth/introspect", resource, "token=".into(), invalid_request),
        ("/oauth/introspect", resource, "x=1".into(), invalid_request),
        ("/oauth/introspect", resource, "token=a&token=b".into(), invalid_request),
        ("/oauth/introspect", resource, with_hint("%C3%A9"), Expect::Active),
        ("/oauth/introspect", resource, with_hint("refresh_token"), Expect::Active),
        ("/oauth/introspect", resource, with_hint("nonsense"), Expect::Active),
        ("/oauth/introspect", None, rs_post, invalid_request),
        ("/oauth/introspect", None, "token=%C3%A9".into(), invalid_client),
        // Revocation: an unknown token is revoked already (RFC 7009 §2.2).
        ("/oauth/revoke", client, "token=%C3%A9".into(), Expect::Ok),
        ("/oauth/revoke", client, "token=abc%00".into(), Expect::Ok),
        ("/oauth/revoke", client, "token=".into(), invalid_request),
        ("/oauth/revoke", client, "token=a&token=b".into(), invalid_request),
        ("/oauth/revoke", None, "token=%C3%A9".into(), invalid_client),
        ("/oauth/revoke", None, post_id, invalid_request),
    ];
    for (path, auth, body, expect) in &cases {
        let r = app.post_form(path, *auth, body).await;
        let status = r.status().as_u16();
        match expect {
            Expect::Error(want, code) => {
                let (got, err) = error_of(r).await;
                assert_eq!(
                    (got, err["error"].as_str()),
                    (*want, Some(*code)),
                    "{path} {body}"
                );
            }
            Expect::Ok => assert_eq!(status, 200, "{path} {body}"),
            Expect::Inactive | Expect::Active => {
                assert_eq!(status, 200, "{path} {body}");
                let v: Value = r.json().await.expect("json");
                assert_eq!(
                    v,
                    if *expect == Expect::Active {
                        v.clone()
                    } else {
                        serde_json::json!({"active": false})
                    },
                    "{path} {body}"
                );
                assert_eq!(v["active"], *expect == Expect::Active, "{path} {body}");
            }
        }
    }
    // A hint outside VSCHAR does not stop the revocation.
    let r = app
        .post_form("/oauth/revoke", client, &with_hint("%00"))
        .await;
    assert_eq!(r.status(), 200);
    let v = app.introspect(&rs, &token).await;
    assert_eq!(v["active"], false, "revoked");
}
