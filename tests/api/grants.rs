//! Authorization codes and refresh tokens at the token endpoint (docs/security.md B4, B5,
//! C1–C5, C7, E1–E6).

use tessera::clock::Clock;

use crate::helpers::oauth::{REDIRECT, json, pkce, query_param};
use crate::helpers::{Backend, spawn_app};

crate::on_both_backends!(
    c1_a_replayed_code_is_refused_and_revokes_what_the_first_use_issued,
    c2_twenty_parallel_redemptions_yield_exactly_one_token,
    c3_c4_c5_codes_expire_and_are_bound_to_client_and_redirect_uri,
    b4_b5_the_verifier_must_match_the_challenge,
    c7_a_code_dies_with_its_grant,
    e1_e2_refresh_rotates_and_reuse_after_the_grace_window_revokes_the_grant,
    e3_e4_refresh_tokens_are_bound_to_their_client_and_only_narrow_scope,
    e5_refresh_tokens_expire_when_idle_and_absolutely,
    e6_parallel_refreshes_inside_the_grace_window_all_succeed,
);

async fn c1_a_replayed_code_is_refused_and_revokes_what_the_first_use_issued(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    let (code, verifier) = app.code(&b, &client, "inference:read").await;
    let (status, first) = json(app.exchange(&client, &code, &verifier).await).await;
    assert_eq!(status, 200);
    app.clock.advance(1);
    let (status, err) = json(app.exchange(&client, &code, &verifier).await).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The refresh token from the first use no longer works: the grant is revoked.
    let (status, err) = json(
        app.refresh(&client, first["refresh_token"].as_str().expect("rt"))
            .await,
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // And again 30 s later (OIDF oidcc-codereuse-30seconds).
    app.clock.advance(30);
    let (status, _) = json(app.exchange(&client, &code, &verifier).await).await;
    assert_eq!(status, 400);
}

async fn c2_twenty_parallel_redemptions_yield_exactly_one_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    let (code, verifier) = app.code(&b, &client, "inference:read").await;
    let attempts = (0..20).map(|_| app.exchange(&client, &code, &verifier));
    let results = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 400).count(),
        19,
        "{statuses:?}"
    );
}

async fn c3_c4_c5_codes_expire_and_are_bound_to_client_and_redirect_uri(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let a = app.web_client("inference:read");
    let other = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;

    // C4: client B, properly authenticated, cannot redeem A's code; A still can.
    let (code, verifier) = app.code(&b, &a, "inference:read").await;
    let (status, err) = json(app.exchange(&other, &code, &verifier).await).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(app.exchange(&a, &code, &verifier).await.status(), 200);

    // C5: without, or with a different, redirect_uri.
    let (code, verifier) = app.code(&b, &a, "inference:read").await;
    let r = app
        .token(
            &a,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(json(r).await.1["error"], "invalid_grant");
    let (code, verifier) = app.code(&b, &a, "inference:read").await;
    let r = app
        .token(
            &a,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
                ("redirect_uri", "https://app.example/cb/"),
            ],
        )
        .await;
    assert_eq!(json(r).await.1["error"], "invalid_grant");

    // C3: 60 s lifetime, no leeway.
    let (code, verifier) = app.code(&b, &a, "inference:read").await;
    app.clock.advance(61);
    let (status, err) = json(app.exchange(&a, &code, &verifier).await).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

async fn b4_b5_the_verifier_must_match_the_challenge(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    for bad in [
        "x".repeat(43),
        "a".repeat(42),
        "a".repeat(129),
        format!("{}+", "a".repeat(50)),
        pkce().0,
    ] {
        let (code, _) = app.code(&b, &client, "inference:read").await;
        let (status, err) = json(app.exchange(&client, &code, &bad).await).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (400, Some("invalid_grant")),
            "{bad}"
        );
    }
    let (code, _) = app.code(&b, &client, "inference:read").await;
    let r = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    let (status, err) = json(r).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_request")),
        "missing verifier"
    );
    // B5: every code is issued with a challenge (none can be had without), so a verifier
    // can never downgrade a code that lacked one; a request without PKCE gets no code.
    let (_, challenge) = pkce();
    let r = app
        .authorize_get(
            &b,
            &[
                ("response_type", "code"),
                ("client_id", &client.id),
                ("redirect_uri", REDIRECT),
                ("state", "s"),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    let loc = r.headers()["location"].to_str().expect("ascii").to_string();
    assert_eq!(
        query_param(&loc, "error").as_deref(),
        Some("invalid_request")
    );
    let _ = challenge;
}

async fn c7_a_code_dies_with_its_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    let (code, verifier) = app.code(&b, &client, "inference:read").await;
    // Delete the client: its codes go with it.
    let mut conn = app.state.pool.get().expect("conn");
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    let grant: String = tessera::db::schema::grants::table
        .filter(tessera::db::schema::grants::client_id.eq(&client.id))
        .select(tessera::db::schema::grants::id)
        .first(&mut conn)
        .expect("grant");
    tessera::oauth::codes::revoke_grant(&mut conn, &grant, app.clock.now()).expect("revoke");
    let (status, err) = json(app.exchange(&client, &code, &verifier).await).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (code, verifier) = app.code(&b, &client, "inference:read").await;
    diesel::delete(tessera::db::schema::clients::table.find(&client.id))
        .execute(&mut conn)
        .expect("delete client");
    let r = app.exchange(&client, &code, &verifier).await;
    assert_eq!(r.status(), 401, "the client itself is gone");
}

async fn tokens(
    app: &crate::helpers::TestApp,
    client: &crate::helpers::oauth::WebClient,
    scope: &str,
) -> serde_json::Value {
    let b = app
        .user(&format!(
            "{}@example.com",
            tessera::crypto::random_base62(8).to_lowercase()
        ))
        .await;
    let (code, verifier) = app.code(&b, client, scope).await;
    let (status, t) = json(app.exchange(client, &code, &verifier).await).await;
    assert_eq!(status, 200, "{t}");
    t
}

async fn e1_e2_refresh_rotates_and_reuse_after_the_grace_window_revokes_the_grant(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let t = tokens(&app, &client, "inference:read").await;
    let rt1 = t["refresh_token"].as_str().expect("rt").to_string();
    let (status, t2) = json(app.refresh(&client, &rt1).await).await;
    assert_eq!(status, 200);
    let rt2 = t2["refresh_token"].as_str().expect("rt").to_string();
    assert_ne!(rt1, rt2, "E1: a new refresh token every time");
    // A retry of rt1 inside the grace window works and keeps the grant alive.
    app.clock.advance(5);
    let (status, retry) = json(app.refresh(&client, &rt1).await).await;
    assert_eq!(status, 200, "{retry}");
    let (status, t3) = json(app.refresh(&client, &rt2).await).await;
    assert_eq!(status, 200);
    let rt3 = t3["refresh_token"].as_str().expect("rt").to_string();
    // After the window, reuse of rt1 revokes the whole grant (E2).
    app.clock.advance(11);
    let (status, err) = json(app.refresh(&client, &rt1).await).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for rt in [&rt3, retry["refresh_token"].as_str().expect("rt")] {
        let (status, _) = json(app.refresh(&client, rt).await).await;
        assert_eq!(status, 400, "every token of the grant is dead");
    }
}

async fn e3_e4_refresh_tokens_are_bound_to_their_client_and_only_narrow_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let a = app.web_client("inference:read inference:write");
    let other = app.web_client("inference:read inference:write");
    let t = tokens(&app, &a, "inference:read inference:write").await;
    let rt = t["refresh_token"].as_str().expect("rt").to_string();
    let (status, err) = json(app.refresh(&other, &rt).await).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // A's token is unaffected by B's attempt.
    let narrow = app
        .token(
            &a,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("scope", "inference:read"),
            ],
        )
        .await;
    let (status, narrowed) = json(narrow).await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(
        narrowed["scope"], "inference:read",
        "the access token is narrowed"
    );
    let rt2 = narrowed["refresh_token"].as_str().expect("rt").to_string();
    let wider = app
        .token(
            &a,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt2),
                ("scope", "inference:read admin"),
            ],
        )
        .await;
    let (status, err) = json(wider).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // The new refresh token keeps the original scope.
    let (status, full) = json(app.refresh(&a, &rt2).await).await;
    assert_eq!(status, 200);
    assert_eq!(full["scope"], "inference:read inference:write");
}

async fn e5_refresh_tokens_expire_when_idle_and_absolutely(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let idle = app.state.settings.refresh_idle_ttl_seconds;
    let t = tokens(&app, &client, "inference:read").await;
    app.clock.advance(idle);
    let (status, err) = json(
        app.refresh(&client, t["refresh_token"].as_str().expect("rt"))
            .await,
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant")),
        "idle expiry"
    );
    // Used often enough never to idle out, it still ends at the absolute limit.
    let t = tokens(&app, &client, "inference:read").await;
    let mut rt = t["refresh_token"].as_str().expect("rt").to_string();
    let absolute = app.state.settings.refresh_absolute_ttl_seconds;
    let mut elapsed = 0;
    while elapsed + idle / 2 < absolute {
        app.clock.advance(idle / 2);
        elapsed += idle / 2;
        let (status, next) = json(app.refresh(&client, &rt).await).await;
        assert_eq!(status, 200, "at {elapsed}s");
        rt = next["refresh_token"].as_str().expect("rt").to_string();
    }
    app.clock.advance(absolute - elapsed);
    let (status, err) = json(app.refresh(&client, &rt).await).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant")),
        "absolute expiry"
    );
}

async fn e6_parallel_refreshes_inside_the_grace_window_all_succeed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let t = tokens(&app, &client, "inference:read").await;
    let rt = t["refresh_token"].as_str().expect("rt").to_string();
    let results = futures_util::future::join_all((0..20).map(|_| app.refresh(&client, &rt))).await;
    let mut issued = std::collections::HashSet::new();
    for r in results {
        let (status, body) = json(r).await;
        assert_eq!(
            status, 200,
            "policy: retries inside the grace window succeed: {body}"
        );
        assert!(
            issued.insert(body["refresh_token"].as_str().expect("rt").to_string()),
            "each retry gets its own token"
        );
    }
    // Exactly one of them rotated the original (the rest were retries).
    let mut conn = app.state.pool.get().expect("conn");
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    let rotated: i64 = tessera::db::schema::refresh_tokens::table
        .filter(tessera::db::schema::refresh_tokens::replaced_by.is_not_null())
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(rotated, 1);
}
