//! The detailed `private_key_jwt` rules of docs/spec.md §8 (docs/security.md D13) that
//! `private_key_jwt.rs` does not reach: header members that would choose the key or
//! demand extensions (`jku`, `jwk`, `x5u`, `x5c`, `crit`), `sub`/`iss` naming another
//! client, the `jti` length bounds (1–256 characters), the exact `exp`/`iat`/`nbf`
//! boundaries with the JWT leeway (the server checks them on its ManualClock), the size
//! bounds of a key set (10 keys, a 2,000-character `jwks_uri`, 16 KB fetched), and
//! discovery for the introspection and revocation endpoints.

use serde_json::{Value, json};
use tessera::clock::Clock as _;
use tessera::orgs::Plan;

use crate::client_metadata::{DocServer, Reply, app_with, ok_json};
use crate::helpers::{Backend, TestDb, spawn_app, spawn_app_with};
use crate::mcp_registration::register;
use crate::private_key_jwt::{ClientKey, claims, machine, token};

crate::on_both_backends!(
    d13_an_assertion_header_with_jku_jwk_x5u_x5c_or_crit_is_refused,
    d13_sub_or_iss_naming_another_client_is_refused,
    d13_a_jti_has_1_to_256_characters,
    d13_exp_iat_and_nbf_boundaries_follow_the_jwt_leeway,
    d13_k6_ten_keys_a_2000_character_jwks_uri_and_a_16_kb_fetched_set_are_the_bounds,
    d13_discovery_lists_private_key_jwt_and_its_algorithms_at_every_endpoint,
);

/// The answer is the one failed-client-authentication answer (D4): 401 `invalid_client`.
fn assert_refused(what: &str, (status, body): &(u16, Value)) {
    assert_eq!(*status, 401, "{what}: {body}");
    assert_eq!(body["error"], "invalid_client", "{what}: {body}");
    assert_eq!(
        body["error_description"], "Client authentication failed.",
        "{what}: the one body of every failed client authentication (D4)"
    );
}

fn assert_accepted(what: &str, (status, body): &(u16, Value)) {
    assert_eq!(*status, 200, "{what}: {body}");
    assert_eq!(body["token_type"], "Bearer", "{what}: {body}");
}

/// docs/spec.md §8: "no `jku`, `jwk`, `x5u`, `x5c` or `crit`" — each one alone, on an
/// assertion that is otherwise good (the client's own key, good claims), is refused; even
/// a `jwk` that is the client's registered key. A fresh plain assertion works afterwards.
async fn d13_an_assertion_header_with_jku_jwk_x5u_x5c_or_crit_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for alg in ["ES256", "EdDSA"] {
        let key = ClientKey::new(alg);
        let id = machine(&app, &key);
        for (member, value) in [
            ("jku", json!("https://keys.attacker.example/jwks.json")),
            ("jwk", key.jwk()),
            ("x5u", json!("https://keys.attacker.example/cert.pem")),
            ("x5c", json!(["MIIBszCCAVmgAwIBAgIUJ2Rv"])),
            ("crit", json!(["exp"])),
        ] {
            let mut header = json!({"typ": "JWT"});
            header[member] = value;
            let answer = token(&app, &key.sign_with(header, &claims(&app, &id)), Some(&id)).await;
            assert_refused(&format!("{alg} with {member}"), &answer);
        }
        let answer = token(&app, &key.sign(&claims(&app, &id)), Some(&id)).await;
        assert_accepted(&format!("{alg}, a plain header afterwards"), &answer);
    }
}

/// docs/spec.md §8: `iss` = `sub` = the client id. A `sub` or an `iss` naming another
/// (real) client is refused, with or without `client_id` in the body.
async fn d13_sub_or_iss_naming_another_client_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let key = ClientKey::new("ES256");
    let id = machine(&app, &key);
    // Another client registering the very same key: the signature verifies for both.
    let other = machine(&app, &key);
    for (what, field, body_id) in [
        (
            "sub another client, client_id sent",
            "sub",
            Some(id.as_str()),
        ),
        ("sub another client, no client_id", "sub", None),
        (
            "iss another client, client_id sent",
            "iss",
            Some(id.as_str()),
        ),
        ("iss another client, no client_id", "iss", None),
    ] {
        let mut c = claims(&app, &id);
        c[field] = json!(other);
        assert_refused(what, &token(&app, &key.sign(&c), body_id).await);
    }
    // sub = iss = the other client, but client_id in the body names the first one.
    let mut c = claims(&app, &id);
    c["sub"] = json!(other);
    c["iss"] = json!(other);
    assert_refused(
        "iss and sub another client than client_id",
        &token(&app, &key.sign(&c), Some(&id)).await,
    );
    // Each client still authenticates as itself.
    assert_accepted(
        "the client itself",
        &token(&app, &key.sign(&claims(&app, &id)), Some(&id)).await,
    );
    assert_accepted(
        "the other client as itself",
        &token(&app, &key.sign(&claims(&app, &other)), None).await,
    );
}

/// docs/spec.md §8: a `jti` of 1–256 characters (characters, not bytes).
async fn d13_a_jti_has_1_to_256_characters(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let key = ClientKey::new("EdDSA");
    let id = machine(&app, &key);
    let with_jti = |jti: String| {
        let mut c = claims(&app, &id);
        c["jti"] = json!(jti);
        key.sign(&c)
    };
    let prefix = tessera::crypto::random_base62(16);
    let ascii_256 = format!("{prefix}{}", "a".repeat(256 - 16));
    let ascii_257 = format!("{prefix}{}", "b".repeat(257 - 16));
    let wide_256 = format!("{prefix}{}", "é".repeat(256 - 16));
    let wide_257 = format!("{prefix}{}", "ü".repeat(257 - 16));
    assert_eq!(wide_256.chars().count(), 256);
    assert!(wide_256.len() > 256, "two bytes a character");
    for (what, jti) in [
        ("an empty jti", String::new()),
        ("a jti of 257 characters", ascii_257),
        ("a jti of 257 two-byte characters", wide_257),
    ] {
        assert_refused(what, &token(&app, &with_jti(jti), Some(&id)).await);
    }
    for (what, jti) in [
        ("a jti of 1 character", "x".to_string()),
        ("a jti of 256 characters", ascii_256.clone()),
        ("a jti of 256 two-byte characters", wide_256),
    ] {
        assert_accepted(what, &token(&app, &with_jti(jti), Some(&id)).await);
    }
    // The 256-character jti was stored whole: a second use is a replay.
    assert_refused(
        "the 256-character jti again",
        &token(&app, &with_jti(ascii_256), Some(&id)).await,
    );
    assert_accepted(
        "a fresh assertion afterwards",
        &token(&app, &key.sign(&claims(&app, &id)), Some(&id)).await,
    );
}

/// docs/spec.md §8: `exp` in the future but at most 300 s ahead, `iat` and `nbf` not in
/// the future, all within `--jwt-leeway-seconds` L. The server's clock is the test's
/// ManualClock, so the boundaries are exact: `exp` up to now + 300 + L, `iat`/`nbf` up to
/// now + L, `exp` down to now − L + 1 (at now − L it has expired). Run with the default
/// leeway and with 0, so the setting, not a constant, is what moves them.
async fn d13_exp_iat_and_nbf_boundaries_follow_the_jwt_leeway(backend: Backend) {
    for leeway in [None, Some(0)] {
        let Some(db) = TestDb::create(backend) else {
            return;
        };
        let mut settings = db.settings();
        if let Some(l) = leeway {
            settings.jwt_leeway_seconds = l;
        }
        let app = spawn_app_with(db, settings).await;
        let l = app.state.settings.jwt_leeway_seconds;
        if leeway.is_none() {
            assert_eq!(l, 30, "the default leeway");
        }
        let key = ClientKey::new("ES256");
        let id = machine(&app, &key);
        let now = app.clock.now();
        let signed = |field: &str, value: i64| {
            let mut c = claims(&app, &id);
            c[field] = json!(value);
            key.sign(&c)
        };
        let refused = [
            (
                "exp more than 300 s (+ leeway) ahead",
                "exp",
                now + 300 + l + 1,
            ),
            ("exp expired beyond the leeway", "exp", now - l - 1),
            ("exp expired exactly the leeway ago", "exp", now - l),
            ("iat in the future beyond the leeway", "iat", now + l + 1),
            ("nbf in the future beyond the leeway", "nbf", now + l + 1),
        ];
        for (what, field, value) in refused {
            let what = format!("leeway {l}: {what}");
            assert_refused(&what, &token(&app, &signed(field, value), Some(&id)).await);
        }
        let accepted = [
            ("exp exactly 300 s (+ leeway) ahead", "exp", now + 300 + l),
            ("exp expired within the leeway", "exp", now - l + 1),
            ("iat in the future within the leeway", "iat", now + l),
            ("nbf in the future within the leeway", "nbf", now + l),
        ];
        for (what, field, value) in accepted {
            let what = format!("leeway {l}: {what}");
            assert_accepted(&what, &token(&app, &signed(field, value), Some(&id)).await);
        }
        assert_eq!(app.clock.now(), now, "the boundaries were at one instant");
        drop(app);
    }
}

/// docs/spec.md §8: a `jwks` of 1–10 keys (11 is 400 `invalid_client_metadata` naming
/// `jwks`); a `jwks_uri` of at most 2,000 characters (2,001 is 400 naming `jwks_uri`); a
/// fetched set of at most 16 KB (16,384 bytes; one more fails the authentication like a
/// wrong key, 401 `invalid_client`, whether its size is announced or only counted as it
/// arrives).
async fn d13_k6_ten_keys_a_2000_character_jwks_uri_and_a_16_kb_fetched_set_are_the_bounds(
    backend: Backend,
) {
    let Some(app) = app_with(backend, true, false).await else {
        return;
    };
    let (_, admin) = app.org_with_admin(Plan::Free);
    let metadata = |extra: Value| {
        let mut m = json!({
            "grant_types": ["client_credentials"],
            "scope": "inference:read",
            "token_endpoint_auth_method": "private_key_jwt",
        });
        for (k, v) in extra.as_object().expect("object") {
            m[k] = v.clone();
        }
        m
    };
    let keys: Vec<ClientKey> = (0..11).map(|_| ClientKey::new("ES256")).collect();
    let set = |n: usize| json!({"keys": keys[..n].iter().map(ClientKey::jwk).collect::<Vec<_>>()});

    // 11 keys: refused, naming jwks. 10: registered, and the tenth key signs.
    let reg = register(&app, Some(&admin.key), metadata(json!({"jwks": set(11)}))).await;
    assert_eq!(reg.status, 400, "11 keys: {}", reg.body);
    assert_eq!(reg.body["error"], "invalid_client_metadata");
    assert!(
        reg.body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("jwks:")),
        "{}",
        reg.body
    );
    let reg = register(&app, Some(&admin.key), metadata(json!({"jwks": set(10)}))).await;
    assert_eq!(reg.status, 201, "10 keys: {}", reg.body);
    let id = reg.body["client_id"].as_str().expect("id").to_string();
    assert_accepted(
        "the tenth key",
        &token(&app, &keys[9].sign(&claims(&app, &id)), Some(&id)).await,
    );

    // A jwks_uri of 2,001 characters: refused, naming jwks_uri; of 2,000: registered.
    let base = "https://keys.example/";
    let uri = |len: usize| format!("{base}{}", "k".repeat(len - base.len()));
    assert_eq!(uri(2000).chars().count(), 2000);
    let reg = register(
        &app,
        Some(&admin.key),
        metadata(json!({"jwks_uri": uri(2001)})),
    )
    .await;
    assert_eq!(reg.status, 400, "2001 characters: {}", reg.body);
    assert_eq!(reg.body["error"], "invalid_client_metadata");
    assert!(
        reg.body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("jwks_uri:")),
        "{}",
        reg.body
    );
    let reg = register(
        &app,
        Some(&admin.key),
        metadata(json!({"jwks_uri": uri(2000)})),
    )
    .await;
    assert_eq!(reg.status, 201, "2000 characters: {}", reg.body);
    assert_eq!(reg.body["jwks_uri"], uri(2000).as_str());

    // The fetched set: one good key, padded with JSON whitespace to an exact size.
    let docs = DocServer::start();
    let key = ClientKey::new("EdDSA");
    let padded = |bytes: usize| {
        let compact = key.jwks().to_string();
        let body = format!("{}{}", compact, " ".repeat(bytes - compact.len()));
        assert_eq!(body.len(), bytes);
        body
    };
    let unannounced = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}"
        )
    };
    let at = |path: &str, reply: String| {
        docs.set(path, Reply::Raw(reply));
        docs.url(path)
    };
    let cases = [
        (
            "16 KB announced",
            at("/exact.json", ok_json(&padded(16_384))),
            true,
        ),
        (
            "16 KB counted",
            at("/exact-stream.json", unannounced(&padded(16_384))),
            true,
        ),
        (
            "16 KB + 1 announced",
            at("/over.json", ok_json(&padded(16_385))),
            false,
        ),
        (
            "16 KB + 1 counted",
            at("/over-stream.json", unannounced(&padded(16_385))),
            false,
        ),
    ];
    for (what, url, fits) in cases {
        let reg = register(&app, Some(&admin.key), metadata(json!({"jwks_uri": url}))).await;
        assert_eq!(reg.status, 201, "{what}: {}", reg.body);
        let id = reg.body["client_id"].as_str().expect("id").to_string();
        let before = docs.hits();
        let answer = token(&app, &key.sign(&claims(&app, &id)), Some(&id)).await;
        assert!(docs.hits() > before, "{what}: the set was fetched");
        if fits {
            assert_accepted(what, &answer);
        } else {
            assert_refused(what, &answer);
        }
    }
}

/// docs/spec.md §8: discovery lists `private_key_jwt` for the token, introspection and
/// revocation endpoints, and the algorithms ES256, RS256, EdDSA for each, in both the
/// RFC 8414 document and the OpenID Connect one.
async fn d13_discovery_lists_private_key_jwt_and_its_algorithms_at_every_endpoint(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for doc in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let meta = app.get_json(doc).await;
        for endpoint in ["token", "introspection", "revocation"] {
            let methods = &meta[format!("{endpoint}_endpoint_auth_methods_supported")];
            assert!(
                methods
                    .as_array()
                    .is_some_and(|m| m.contains(&json!("private_key_jwt"))),
                "{doc}: {endpoint}: {methods}"
            );
            assert_eq!(
                meta[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
                json!(["ES256", "RS256", "EdDSA"]),
                "{doc}: {endpoint}"
            );
        }
        // The endpoints are published where a client looks for them.
        let issuer = &app.state.issuer;
        assert_eq!(
            meta["introspection_endpoint"],
            format!("{issuer}/oauth/introspect")
        );
        assert_eq!(
            meta["revocation_endpoint"],
            format!("{issuer}/oauth/revoke")
        );
    }
}
