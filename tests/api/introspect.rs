//! Introspection and revocation (RFC 7662, RFC 7009; docs/security.md G1–G8, F2–F7, E7).

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tessera::clock::Clock;

use crate::helpers::oauth::json as read;
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::token::break_database;

crate::on_both_backends!(
    g1_introspection_requires_a_resource_server,
    g3_each_credential_kind_introspects_with_its_facts,
    g2_f2_f3_f4_forged_and_dead_tokens_reveal_nothing,
    f5_leeway_is_bounded,
    f6_tokens_of_a_retired_key_stay_valid_after_rotation,
    e7_f7_g5_revocation_of_refresh_and_access_tokens,
    g6_a_client_cannot_revoke_another_clients_token,
    c1_a_replayed_code_makes_the_first_access_token_inactive,
    g4_scanning_with_random_tokens_is_throttled,
    g7_r4_storage_failure_is_503_never_200_or_active,
    g5_r5_a_revocation_reaches_another_instances_cache,
);

const INACTIVE: &str = r#"{"active":false}"#;

pub(crate) async fn cc_token(app: &TestApp) -> (String, (String, String)) {
    let (id, secret) = app.machine_client("inference:read");
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials",
        )
        .await;
    let body: Value = r.json().await.expect("json");
    (
        body["access_token"].as_str().expect("at").to_string(),
        (id, secret),
    )
}

async fn g1_introspection_requires_a_resource_server(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (token, machine) = cc_token(&app).await;
    let r = app
        .post_form("/oauth/introspect", None, &format!("token={token}"))
        .await;
    assert_eq!(r.status(), 401, "no credentials");
    let r = app
        .post_form(
            "/oauth/introspect",
            Some(("cli_nobody", "x")),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(r.status(), 401, "unknown caller");
    let r = app.introspect_as(&machine, &token).await;
    assert_eq!(r.status(), 403, "authenticated but not a resource server");
    let rs = app.resource_server();
    assert_eq!(app.introspect(&rs, &token).await["active"], true);
    assert_eq!(app.get("/oauth/introspect").await.status(), 405);
    let m = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        m["introspection_endpoint"],
        format!("{}/oauth/introspect", app.address)
    );
    assert_eq!(
        m["revocation_endpoint"],
        format!("{}/oauth/revoke", app.address)
    );
}

async fn g3_each_credential_kind_introspects_with_its_facts(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let client = app.web_client("inference:read inference:write");
    let t = app.user_tokens(&client, "inference:read").await;
    let at = app
        .introspect(&rs, t["access_token"].as_str().expect("at"))
        .await;
    assert_eq!(at["active"], true);
    assert_eq!(at["token_type"], "Bearer");
    assert_eq!(at["scope"], "inference:read");
    assert_eq!(at["client_id"], client.id);
    assert!(at["sub"].as_str().expect("sub").starts_with("usr_"));
    assert_eq!(at["iss"], app.state.issuer);
    assert_eq!(at["aud"], app.state.audience);
    assert!(at["exp"].is_i64() && at["iat"].is_i64() && at["jti"].is_string());
    let rt = app
        .introspect(&rs, t["refresh_token"].as_str().expect("rt"))
        .await;
    assert_eq!(rt["active"], true);
    assert_eq!(rt["token_type"], "refresh_token");
    assert_eq!(rt["client_id"], client.id);
    assert_eq!(rt["scope"], "inference:read");

    // An API key made with the CLI's code path.
    let mut conn = app.state.pool.get().expect("conn");
    let org = tessera::orgs::store::insert(
        &mut conn,
        "Acme",
        tessera::orgs::Plan::Free,
        app.clock.now(),
    )
    .expect("org");
    let key = tessera::api_keys::store::create(
        &mut conn,
        tessera::api_keys::store::NewApiKey {
            org_id: org.id.clone(),
            name: "ci".into(),
            key_type: tessera::api_keys::KeyType::Secret,
            scopes: tessera::scope::ScopeSet::parse("inference:read").expect("scope"),
            expiry: tessera::api_keys::store::Expiry::InDays(1),
            rate_limit_per_minute: None,
            created_by: None,
            audited_as: None,
        },
        &app.state.settings.scopes,
        "tsr",
        &app.state.settings.plan_limits,
        app.clock.now(),
    )
    .expect("key");
    let k = app.introspect(&rs, &key.key).await;
    assert_eq!(k["active"], true);
    assert_eq!(k["token_type"], "api_key");
    assert_eq!(k["org_id"], org.id);
    assert_eq!(k["key_id"], key.id);
    assert_eq!(k["scope"], "inference:read");
    assert_eq!(
        k["exp"].as_i64().expect("exp") - k["iat"].as_i64().expect("iat"),
        86_400
    );
    app.clock.advance(86_400);
    assert_eq!(
        app.introspect(&rs, &key.key).await.to_string(),
        INACTIVE,
        "an expired key"
    );
}

/// Signs arbitrary header and claims with the server's own private key.
fn sign_with_server_key(app: &TestApp, header: Header, claims: &Value) -> String {
    let kid = header.kid.clone().expect("kid");
    let pem = std::fs::read(app.db().keys_dir().join(format!("{kid}.pem"))).expect("key file");
    encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(&pem).expect("ec key"),
    )
    .expect("encode")
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn g2_f2_f3_f4_forged_and_dead_tokens_reveal_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let (good, _) = cc_token(&app).await;
    assert_eq!(app.introspect(&rs, &good).await["active"], true);
    let header: Value = {
        use base64::Engine;
        let h = good.split('.').next().expect("header");
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .expect("b64"),
        )
        .expect("json")
    };
    let kid = header["kid"].as_str().expect("kid").to_string();
    let payload = good.split('.').nth(1).expect("payload").to_string();
    let claims: Value = {
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&payload)
                .expect("b64"),
        )
        .expect("json")
    };
    let mut forged: Vec<(String, String)> = Vec::new();
    for alg in ["none", "None", "NONE"] {
        let h = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        forged.push((format!("alg {alg}"), format!("{}.{payload}.", b64(&h))));
    }
    let sig_stripped = format!("{}.{payload}.", good.split('.').next().expect("h"));
    forged.push(("stripped signature".into(), sig_stripped));
    // HS256 keyed with our public key (as JWKS bytes and as the raw point).
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let mut hs = Header::new(Algorithm::HS256);
    hs.typ = Some("at+jwt".into());
    hs.kid = Some(kid.clone());
    for secret in [
        jwks["keys"][0].to_string().into_bytes(),
        jwks["keys"][0]["x"]
            .as_str()
            .expect("x")
            .as_bytes()
            .to_vec(),
    ] {
        forged.push((
            "HS256 with the public key".into(),
            encode(&hs, &claims, &EncodingKey::from_secret(&secret)).expect("hs"),
        ));
    }
    // Header claims that try to choose the key.
    for bad_kid in ["unknown0kid", "../../x", "' OR 1=1", &"k".repeat(10_000)] {
        let h = json!({"alg": "ES256", "typ": "at+jwt", "kid": bad_kid});
        let sig = good.split('.').nth(2).expect("sig");
        forged.push((
            format!("kid {}", &bad_kid[..bad_kid.len().min(12)]),
            format!("{}.{payload}.{sig}", b64(&h)),
        ));
    }
    let mut with = |name: &str, f: &dyn Fn(&mut Header)| {
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.clone());
        f(&mut h);
        forged.push((name.to_string(), sign_with_server_key(&app, h, &claims)));
    };
    with("jku", &|h| {
        h.jku = Some("https://attacker.example/jwks".into())
    });
    with("x5u", &|h| {
        h.x5u = Some("https://attacker.example/cert".into())
    });
    with("crit", &|h| h.crit = Some(vec!["exp".into()]));
    with("typ JWT", &|h| h.typ = Some("JWT".into()));
    with("no typ", &|h| h.typ = None);
    // Claims that fail their checks, signed by our own key.
    let mut claim = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        edit(&mut c);
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.clone());
        forged.push((name.to_string(), sign_with_server_key(&app, h, &c)));
    };
    claim("exp as a string", &|c| {
        c["exp"] = json!(c["exp"].to_string())
    });
    claim("nbf as a string", &|c| c["nbf"] = json!("0"));
    claim("missing exp", &|c| {
        c.as_object_mut().expect("obj").remove("exp");
    });
    claim("wrong iss", &|c| c["iss"] = json!("https://evil.example"));
    claim("wrong aud", &|c| c["aud"] = json!("https://other.example"));
    claim("expired", &|c| {
        c["exp"] = json!(c["iat"].as_i64().expect("iat") - 3600)
    });
    forged.push(("garbage".into(), "not a token".into()));
    forged.push((
        "unknown refresh token".into(),
        format!("tsr_rt_{}", "a".repeat(43)),
    ));
    forged.push((
        "unknown api key".into(),
        tessera::api_keys::format::generate("tsr", tessera::api_keys::KeyType::Secret)
            .expose()
            .to_string(),
    ));
    for (name, token) in forged {
        let r = app.introspect_as(&rs, &token).await;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.text().await.expect("body"), INACTIVE, "{name}");
    }
}

async fn f5_leeway_is_bounded(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let (token, _) = cc_token(&app).await;
    let ttl = app.state.settings.access_token_ttl_seconds;
    let leeway = app.state.settings.jwt_leeway_seconds;
    assert!(leeway <= 60);
    app.clock.advance(ttl + leeway - 1);
    assert_eq!(
        app.introspect(&rs, &token).await["active"],
        true,
        "exp + leeway - 1"
    );
    app.clock.advance(1);
    assert_eq!(
        app.introspect(&rs, &token).await.to_string(),
        INACTIVE,
        "exp + leeway"
    );
}

async fn f6_tokens_of_a_retired_key_stay_valid_after_rotation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let (old, _) = cc_token(&app).await;
    tessera::commands::keys(
        &app.state.settings,
        tessera::cli::KeysCommand::Rotate,
        app.clock.now(),
    )
    .expect("rotate");
    app.clock.advance(3600);
    app.get("/.well-known/jwks.json").await; // reload
    // Issued just before the switch: still valid until its own expiry.
    let (new, _) = cc_token(&app).await;
    assert_ne!(
        jsonwebtoken::decode_header(&old).expect("h").kid,
        jsonwebtoken::decode_header(&new).expect("h").kid
    );
    assert_eq!(app.introspect(&rs, &new).await["active"], true);
    let r = app.introspect(&rs, &old).await;
    assert_eq!(
        r.to_string(),
        INACTIVE,
        "the old token expired at 900 s anyway"
    );
}

async fn revoke(
    app: &TestApp,
    who: (&str, &str),
    token: &str,
    hint: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("token", token)];
    if let Some(h) = hint {
        form.push(("token_type_hint", h));
    }
    let body = serde_urlencoded::to_string(form).expect("form");
    app.post_form("/oauth/revoke", Some(who), &body).await
}

async fn e7_f7_g5_revocation_of_refresh_and_access_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let client = app.web_client("inference:read");
    let secret = client.secret.clone().expect("secret");
    let who = (client.id.as_str(), secret.as_str());

    // F7: an access token on its own.
    let t = app.user_tokens(&client, "inference:read").await;
    let at = t["access_token"].as_str().expect("at");
    let r = revoke(&app, who, at, Some("access_token")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.introspect(&rs, at).await.to_string(), INACTIVE);
    assert_eq!(
        app.introspect(&rs, t["refresh_token"].as_str().expect("rt"))
            .await["active"],
        true,
        "only the AT"
    );
    assert_eq!(
        revoke(&app, who, at, None).await.status(),
        200,
        "G5: already revoked"
    );

    // E7: a refresh token takes its grant's access tokens with it, whatever the hint.
    let t = app.user_tokens(&client, "inference:read").await;
    let at = t["access_token"].as_str().expect("at");
    let rt = t["refresh_token"].as_str().expect("rt");
    assert_eq!(
        revoke(&app, who, rt, Some("access_token")).await.status(),
        200,
        "G5: a wrong hint is only a hint"
    );
    assert_eq!(app.introspect(&rs, at).await.to_string(), INACTIVE);
    assert_eq!(app.introspect(&rs, rt).await.to_string(), INACTIVE);
    let (status, err) = read(app.refresh(&client, rt).await).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // G5: unknown tokens are fine; API keys are not this endpoint's.
    assert_eq!(revoke(&app, who, "never-issued", None).await.status(), 200);
    let key = tessera::api_keys::format::generate("tsr", tessera::api_keys::KeyType::Secret);
    let (status, err) = read(revoke(&app, who, key.expose(), None).await).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("unsupported_token_type"))
    );
    let r = app
        .post_form("/oauth/revoke", Some(who), "token_type_hint=access_token")
        .await;
    assert_eq!(r.status(), 400, "token is required");
}

async fn g6_a_client_cannot_revoke_another_clients_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let a = app.web_client("inference:read");
    let b = app.web_client("inference:read");
    let t = app.user_tokens(&a, "inference:read").await;
    let b_secret = b.secret.clone().expect("secret");
    for token in [
        t["access_token"].as_str().expect("at"),
        t["refresh_token"].as_str().expect("rt"),
    ] {
        let (status, err) = read(revoke(&app, (&b.id, &b_secret), token, None).await).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (400, Some("unauthorized_client"))
        );
        assert_eq!(
            app.introspect(&rs, token).await["active"],
            true,
            "the token stays active"
        );
    }
}

async fn c1_a_replayed_code_makes_the_first_access_token_inactive(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    let (code, verifier) = app.code(&b, &client, "inference:read").await;
    let (_, first) = read(app.exchange(&client, &code, &verifier).await).await;
    let at = first["access_token"].as_str().expect("at");
    assert_eq!(app.introspect(&rs, at).await["active"], true);
    assert_eq!(app.exchange(&client, &code, &verifier).await.status(), 400);
    assert_eq!(app.introspect(&rs, at).await.to_string(), INACTIVE);
    assert_eq!(
        app.introspect(&rs, first["refresh_token"].as_str().expect("rt"))
            .await
            .to_string(),
        INACTIVE
    );
}

async fn g4_scanning_with_random_tokens_is_throttled(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    app.clock.set(app.clock.now() - app.clock.now() % 60 + 60);
    let mut limited_at = None;
    for i in 0..1000 {
        let r = app
            .introspect_as(&rs, &tessera::crypto::random_token())
            .await;
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            limited_at = Some(i);
            break;
        }
    }
    assert_eq!(limited_at, Some(300), "429 after the threshold");
    let other = app.resource_server();
    let (token, _) = cc_token(&app).await;
    assert_eq!(
        app.introspect(&other, &token).await["active"],
        true,
        "other callers are unaffected"
    );
}

async fn g7_r4_storage_failure_is_503_never_200_or_active(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let client = app.web_client("inference:read");
    let t = app.user_tokens(&client, "inference:read").await;
    let secret = client.secret.clone().expect("secret");
    break_database(&app);
    let r = app
        .introspect_as(&rs, t["access_token"].as_str().expect("at"))
        .await;
    assert_eq!(r.status(), 503, "introspection fails closed");
    assert!(!r.text().await.expect("body").contains("\"active\":true"));
    let r = revoke(
        &app,
        (&client.id, &secret),
        t["refresh_token"].as_str().expect("rt"),
        None,
    )
    .await;
    assert_eq!(
        r.status(),
        503,
        "revocation never claims success it did not commit"
    );
}

/// docs/spec.md §7: the instance that revokes honours it from the next request on; another
/// instance, which had the token's liveness cached, within the cache bound (it polls for
/// revocations every 100 ms).
async fn g5_r5_a_revocation_reaches_another_instances_cache(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rs = app.resource_server();
    let client = app.web_client("inference:read");
    let secret = client.secret.clone().expect("secret");
    let second = app.second_instance().await;
    let a = app.user_tokens(&client, "inference:read").await;
    let b = app.user_tokens(&client, "inference:read").await;
    let (at_a, at_b) = (
        a["access_token"].as_str().expect("at"),
        b["access_token"].as_str().expect("at"),
    );
    for _ in 0..3 {
        for instance in [&app, &second] {
            assert_eq!(instance.introspect(&rs, at_a).await["active"], true);
            assert_eq!(instance.introspect(&rs, at_b).await["active"], true);
        }
    }
    // One access token by its jti, the other through its grant (its refresh token).
    assert_eq!(
        revoke(&app, (&client.id, &secret), at_a, None)
            .await
            .status(),
        200
    );
    let rt_b = b["refresh_token"].as_str().expect("rt");
    assert_eq!(
        revoke(&app, (&client.id, &secret), rt_b, None)
            .await
            .status(),
        200
    );
    let revoked_at = std::time::Instant::now();
    assert_eq!(
        app.introspect(&rs, at_a).await.to_string(),
        INACTIVE,
        "at once here"
    );
    assert_eq!(
        app.introspect(&rs, at_b).await.to_string(),
        INACTIVE,
        "at once here"
    );
    for token in [at_a, at_b] {
        loop {
            let v = second.introspect(&rs, token).await;
            if v == serde_json::json!({"active": false}) {
                break;
            }
            assert!(
                revoked_at.elapsed() < std::time::Duration::from_millis(1000),
                "the other instance must follow within the cache bound"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
