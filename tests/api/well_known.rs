//! RFC 8414 metadata and the JWKS, checked with an independent JWT verifier.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use tessera::cli::SigningAlg;
use tessera::clock::Clock;
use tessera::tokens::jwt::{AccessTokenClaims, AccessTokenRequest, issue_access_token};

use crate::helpers::{Backend, TestApp, TestDb, spawn_app, spawn_app_with};

crate::on_both_backends!(
    g8_metadata_issuer_is_byte_identical_and_lists_only_what_works,
    f6_jwks_publishes_public_members_only_with_a_max_age,
    f1_a_server_signed_token_verifies_against_the_served_jwks,
    rs256_and_eddsa_keys_sign_tokens_that_verify_against_the_jwks,
);

async fn g8_metadata_issuer_is_byte_identical_and_lists_only_what_works(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let r = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    let m: serde_json::Value = r.json().await.expect("json");
    assert_eq!(m["issuer"], app.address.as_str());
    assert_eq!(m["issuer"], app.state.issuer.as_str());
    assert_eq!(
        m["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.address)
    );
    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status(), 200, "the advertised jwks_uri works");
    let scopes: Vec<&str> = m["scopes_supported"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        scopes,
        [
            "admin",
            "analytics:read",
            "email",
            "inference:read",
            "inference:write",
            "offline_access",
            "openid",
            "profile"
        ]
    );
    // Every advertised endpoint must answer; none is advertised before it exists.
    for (field, value) in m.as_object().expect("object") {
        if field.ends_with("_endpoint") || field == "jwks_uri" {
            let path = value
                .as_str()
                .expect("url")
                .trim_start_matches(&app.address)
                .to_string();
            assert_ne!(
                app.get(&path).await.status(),
                404,
                "{field} is advertised but missing"
            );
        }
    }
}

async fn f6_jwks_publishes_public_members_only_with_a_max_age(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let r = app.get("/.well-known/jwks.json").await;
    let cache = r.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(cache.contains("max-age=300"), "{cache}");
    let body: serde_json::Value = r.json().await.expect("json");
    let keys = body["keys"].as_array().expect("keys");
    // The access-token key first, then the ID-token keys (docs/spec.md §9).
    assert_eq!(keys.len(), 4);
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                k.get(private).is_none(),
                "private member {private} published"
            );
        }
        assert!(k["kid"].is_string());
        assert_eq!(k["use"], "sig");
    }
    let access = &keys[0];
    assert_eq!(access["alg"], "ES256");
    assert_eq!(access["kty"], "EC");
    assert_eq!(access["crv"], "P-256");
    let algs: Vec<&str> = keys.iter().filter_map(|k| k["alg"].as_str()).collect();
    assert!(
        algs.contains(&"RS256") && algs.contains(&"EdDSA"),
        "{algs:?}"
    );
    // It is a valid RFC 7517 set as an independent library reads it.
    let _: JwkSet = serde_json::from_value(body).expect("a JWK set");
}

fn request<'a>(app: &'a TestApp) -> AccessTokenRequest<'a> {
    AccessTokenRequest {
        issuer: &app.state.issuer,
        audience: std::slice::from_ref(&app.state.audience),
        subject: "usr_test",
        client_id: "cli_test",
        scope: "inference:read",
        lifetime: app.state.settings.access_token_ttl_seconds,
        grant_id: None,
    }
}

/// Verifies `token` with jsonwebtoken against the JWKS fetched over HTTP.
pub async fn verify_with_served_jwks(
    app: &TestApp,
    token: &str,
    alg: Algorithm,
) -> AccessTokenClaims {
    let header = decode_header(token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, alg);
    let kid = header.kid.expect("kid");
    let set: JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("jwks");
    let jwk: &Jwk = set.find(&kid).expect("the signing key is published");
    let key = DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut v = Validation::new(alg);
    v.set_audience(&[app.state.audience.as_str()]);
    v.set_issuer(&[app.state.issuer.as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    decode::<AccessTokenClaims>(token, &key, &v)
        .expect("verifies")
        .claims
}

async fn f1_a_server_signed_token_verifies_against_the_served_jwks(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let now = app.clock.now();
    let (token, claims) = issue_access_token(&app.state.keys, &request(&app), now).expect("sign");
    let verified = verify_with_served_jwks(&app, &token, Algorithm::ES256).await;
    assert_eq!(verified, claims);
    assert_eq!(verified.exp - verified.iat, 900);
    assert_eq!(verified.aud.0, [app.address.as_str()]);
    // A flipped signature byte fails the same verifier.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    let set: JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("jwks");
    let key = DecodingKey::from_jwk(&set.keys[0]).expect("key");
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[app.state.audience.as_str()]);
    assert!(decode::<AccessTokenClaims>(&forged, &key, &v).is_err());
}

async fn rs256_and_eddsa_keys_sign_tokens_that_verify_against_the_jwks(backend: Backend) {
    for (alg, jose) in [
        (SigningAlg::RS256, Algorithm::RS256),
        (SigningAlg::EdDSA, Algorithm::EdDSA),
    ] {
        let Some(db) = TestDb::create(backend) else {
            return;
        };
        let mut settings = db.settings();
        settings.signing_alg = alg;
        let app = spawn_app_with(db, settings).await;
        let (token, claims) =
            issue_access_token(&app.state.keys, &request(&app), app.clock.now()).expect("sign");
        assert_eq!(verify_with_served_jwks(&app, &token, jose).await, claims);
    }
}
