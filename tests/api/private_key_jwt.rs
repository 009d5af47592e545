//! `private_key_jwt` client authentication (RFC 7523 §2.2, docs/spec.md §8,
//! docs/security.md D13): registration of a JWK set (RFC 7591 and `--registration open`),
//! assertions signed with ES256, RS256 and EdDSA keys at the token, introspection and
//! revocation endpoints, and every refusal as `invalid_client`: a key not registered,
//! wrong `aud`, expired or too long-lived, no `jti`, a replayed `jti` (20 at once: one
//! wins), `alg: none`, HS256; failures count against the client (K2); the janitor prunes
//! used `jti`s.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera::clients::open_registration::RegistrationMode;
use tessera::clients::{GrantType, NewClient};
use tessera::clock::Clock as _;
use tessera::orgs::Plan;
use tessera::scope::ScopeSet;

use crate::helpers::oauth::json as json_of;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app, spawn_app_with};
use crate::mcp_registration::register;

crate::on_both_backends!(
    d13_a_signed_assertion_authenticates_with_es256_rs256_and_eddsa,
    d13_bad_assertions_are_invalid_client,
    d13_k2_a_replayed_jti_fails_and_20_at_once_yield_one_token,
    d13_jwks_registration_is_validated_and_open_registration_accepts_private_key_jwt,
    d13_a_device_flow_client_authenticates_with_assertions_at_both_endpoints,
);

const TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's key pair: the private half signs, `jwk` is what the client registers.
pub enum Signer {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

pub struct ClientKey {
    pub alg: &'static str,
    pub kid: String,
    signer: Signer,
}

impl ClientKey {
    pub fn new(alg: &'static str) -> Self {
        let rng = SystemRandom::new();
        let signer = match alg {
            "ES256" => {
                let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .expect("ec");
                Signer::Es256(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref())
                        .expect("ec"),
                )
            }
            "RS256" => {
                Signer::Rs256(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa"))
            }
            _ => {
                let der = Ed25519KeyPair::generate_pkcs8(&rng).expect("ed");
                Signer::EdDsa(Ed25519KeyPair::from_pkcs8(der.as_ref()).expect("ed"))
            }
        };
        Self {
            alg,
            kid: tessera::crypto::random_base62(8),
            signer,
        }
    }

    /// The public JWK (RFC 7517), with `kid`, `alg` and `use`.
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.signer {
            Signer::Es256(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256",
                       "x": URL_SAFE_NO_PAD.encode(&p[1..33]),
                       "y": URL_SAFE_NO_PAD.encode(&p[33..65])})
            }
            Signer::EdDsa(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(k.public_key().as_ref())})
            }
            Signer::Rs256(k) => {
                let p = k.public_key();
                json!({"kty": "RSA",
                       "n": URL_SAFE_NO_PAD.encode(p.modulus().big_endian_without_leading_zero()),
                       "e": URL_SAFE_NO_PAD.encode(p.exponent().big_endian_without_leading_zero())})
            }
        };
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(self.alg);
        jwk["use"] = json!("sig");
        jwk
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk()]})
    }

    /// A JWS over `claims` with this key and `header` (`alg` and `kid` added unless given).
    pub fn sign_with(&self, mut header: Value, claims: &Value) -> String {
        if header.get("alg").is_none() {
            header["alg"] = json!(self.alg);
        }
        if header.get("kid").is_none() {
            header["kid"] = json!(self.kid);
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Es256(k) => k
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            Signer::EdDsa(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
            Signer::Rs256(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .expect("sign");
                sig
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(json!({"typ": "JWT"}), claims)
    }
}

/// Good claims for `client_id` at the app's clock: `aud` the issuer, 60 s, a fresh `jti`.
pub fn claims(app: &TestApp, client_id: &str) -> Value {
    let now = app.clock.now();
    json!({
        "iss": client_id, "sub": client_id, "aud": app.state.issuer,
        "iat": now, "exp": now + 60, "jti": tessera::crypto::random_base62(16),
    })
}

/// A `client_credentials` client authenticating with `key`.
pub(crate) fn machine(app: &TestApp, key: &ClientKey) -> String {
    let (id, secret) = app.register(NewClient {
        name: "Signed job".into(),
        grant_types: Some(vec![GrantType::ClientCredentials]),
        scope: Some(ScopeSet::parse("inference:read").expect("scope")),
        jwks: Some(key.jwks()),
        ..Default::default()
    });
    assert!(secret.is_none(), "a private_key_jwt client has no secret");
    id
}

/// `POST /oauth/token` with `grant_type=client_credentials` and the assertion.
pub(crate) async fn token(app: &TestApp, assertion: &str, client_id: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", TYPE),
        ("client_assertion", assertion),
    ];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    let body = serde_urlencoded::to_string(&form).expect("form");
    json_of(app.post_form("/oauth/token", None, &body).await).await
}

async fn d13_a_signed_assertion_authenticates_with_es256_rs256_and_eddsa(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let methods = &meta["token_endpoint_auth_methods_supported"];
    assert!(
        methods
            .as_array()
            .expect("list")
            .contains(&json!("private_key_jwt")),
        "{methods}"
    );
    assert_eq!(
        meta["token_endpoint_auth_signing_alg_values_supported"],
        json!(["ES256", "RS256", "EdDSA"])
    );
    let oidc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(oidc["token_endpoint_auth_methods_supported"], *methods);
    for alg in ["ES256", "RS256", "EdDSA"] {
        let key = ClientKey::new(alg);
        let id = machine(&app, &key);
        // client_id in the body, aud the issuer.
        let (status, body) = token(&app, &key.sign(&claims(&app, &id)), Some(&id)).await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        // Without client_id (RFC 7521 §4.2), aud the token endpoint in an array.
        let mut c = claims(&app, &id);
        c["aud"] = json!([
            "https://other.example",
            format!("{}/oauth/token", app.state.issuer)
        ]);
        let (status, body) = token(&app, &key.sign(&c), None).await;
        assert_eq!(status, 200, "{alg} without client_id: {body}");
        let access = body["access_token"].as_str().expect("token").to_string();
        // Revocation authenticates the same way.
        let form = serde_urlencoded::to_string([
            ("token", access.as_str()),
            ("client_assertion_type", TYPE),
            ("client_assertion", &key.sign(&claims(&app, &id))),
        ])
        .expect("form");
        let r = app.post_form("/oauth/revoke", None, &form).await;
        assert_eq!(r.status(), 200, "{alg}: revocation");
    }
    // A resource server with keys introspects with an assertion.
    let key = ClientKey::new("ES256");
    let (rs, secret) = app.register(NewClient {
        name: "Signed RS".into(),
        resource_server: true,
        jwks: Some(key.jwks()),
        ..Default::default()
    });
    assert!(secret.is_none());
    let form = serde_urlencoded::to_string([
        ("token", "tsr_sk_nothing"),
        ("client_assertion_type", TYPE),
        ("client_assertion", &key.sign(&claims(&app, &rs))),
    ])
    .expect("form");
    let (status, body) = json_of(app.post_form("/oauth/introspect", None, &form).await).await;
    assert_eq!((status, &body["active"]), (200, &json!(false)), "{body}");
}

async fn d13_bad_assertions_are_invalid_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let key = ClientKey::new("ES256");
    let id = machine(&app, &key);
    let now = app.clock.now();
    let other = ClientKey::new("ES256");
    let mut cases: Vec<(&str, String)> = Vec::new();
    // A key the client did not register, even with the registered kid.
    cases.push((
        "wrong key",
        other.sign_with(json!({"kid": key.kid}), &claims(&app, &id)),
    ));
    for (what, field, value) in [
        ("wrong aud", "aud", json!("https://elsewhere.example")),
        ("expired", "exp", json!(now - 120)),
        ("exp too far ahead", "exp", json!(now + 3600)),
        ("iat in the future", "iat", json!(now + 600)),
        ("nbf in the future", "nbf", json!(now + 600)),
        ("another iss", "iss", json!("cli_someone")),
        ("exp a string", "exp", json!((now + 60).to_string())),
    ] {
        let mut c = claims(&app, &id);
        c[field] = value;
        cases.push((what, key.sign(&c)));
    }
    let mut c = claims(&app, &id);
    c.as_object_mut().expect("object").remove("jti");
    cases.push(("missing jti", key.sign(&c)));
    // alg none: the header says none and there is no signature.
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(&app, &id).to_string())
    );
    cases.push(("alg none", unsigned));
    // HS256 with a secret anyone could have (the public key's bytes).
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(&app, &id),
        &jsonwebtoken::EncodingKey::from_secret(key.jwk()["x"].as_str().expect("x").as_bytes()),
    )
    .expect("hs256");
    cases.push(("HS256", hs));
    // The right key, but alg RS256 in the header.
    cases.push((
        "alg not the key's",
        key.sign_with(json!({"alg": "RS256"}), &claims(&app, &id)),
    ));
    for (what, assertion) in &cases {
        let (status, body) = token(&app, assertion, Some(&id)).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"], "invalid_client", "{what}");
        assert_eq!(
            body["error_description"], "Client authentication failed.",
            "{what}: one body for every cause (D4)"
        );
    }
    // A secret is no way in for a client with keys; nor is a second method beside the
    // assertion, or another assertion type.
    let r = app
        .post_form(
            "/oauth/token",
            Some((&id, "guess")),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status(), 401);
    let form = serde_urlencoded::to_string([
        ("grant_type", "client_credentials"),
        ("client_assertion_type", TYPE),
        ("client_assertion", &key.sign(&claims(&app, &id))),
    ])
    .expect("form");
    let (status, body) =
        json_of(app.post_form("/oauth/token", Some((&id, "x")), &form).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let form = serde_urlencoded::to_string([
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        ),
        ("client_assertion", &key.sign(&claims(&app, &id))),
    ])
    .expect("form");
    let (status, body) = json_of(app.post_form("/oauth/token", None, &form).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // The good assertion still works: nothing above used its jti.
    let (status, body) = token(&app, &key.sign(&claims(&app, &id)), Some(&id)).await;
    assert_eq!(status, 200, "{body}");
}

async fn d13_k2_a_replayed_jti_fails_and_20_at_once_yield_one_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let key = ClientKey::new("EdDSA");
    let id = machine(&app, &key);
    let assertion = key.sign(&claims(&app, &id));
    let runs = (0..20).map(|_| token(&app, &assertion, Some(&id)));
    let answers = futures_util::future::join_all(runs).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
    }
    let (status, _) = token(&app, &assertion, Some(&id)).await;
    assert_eq!(status, 401, "replayed later");
    // Stored until exp, then the janitor prunes it (and only then).
    let count = |app: &TestApp| -> i64 {
        use diesel::prelude::*;
        let mut conn = app.state.pool.get().expect("conn");
        tessera::db::schema::client_assertion_jtis::table
            .count()
            .get_result(&mut conn)
            .expect("count")
    };
    assert_eq!(count(&app), 1);
    let retention = tessera::janitor::Retention::from_settings(&app.state.settings);
    let mut conn = app.state.pool.get().expect("conn");
    let now = app.clock.now();
    tessera::janitor::sweep(&mut conn, &retention, now).expect("sweep");
    assert_eq!(count(&app), 1, "kept before exp");
    tessera::janitor::sweep(&mut conn, &retention, now + 60 + 3600).expect("sweep");
    assert_eq!(count(&app), 0, "pruned after exp");
    drop(conn);
    // K2: failed assertions count like failed secrets; the 20 failures above and one more
    // make the client wait, even with a good assertion.
    let _ = token(&app, &assertion, Some(&id)).await;
    let (status, body) = token(&app, &key.sign(&claims(&app, &id)), Some(&id)).await;
    assert_eq!(status, 429, "{body}");
}

async fn d13_jwks_registration_is_validated_and_open_registration_accepts_private_key_jwt(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, admin) = app.org_with_admin(Plan::Free);
    let key = ClientKey::new("RS256");
    let a = register(
        &app,
        Some(&admin.key),
        json!({
            "client_name": "Signed app",
            "redirect_uris": ["https://app.example/cb"],
            "grant_types": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": key.jwks(),
        }),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["token_endpoint_auth_method"], "private_key_jwt");
    assert!(a.body.get("client_secret").is_none(), "{}", a.body);
    assert_eq!(a.body["jwks"], key.jwks());
    let id = a.body["client_id"].as_str().expect("id").to_string();
    let (status, body) = token(&app, &key.sign(&claims(&app, &id)), Some(&id)).await;
    assert_eq!(status, 200, "{body}");
    let mut private = key.jwk();
    private["d"] = json!("AAAA");
    for (what, meta) in [
        (
            "no jwks",
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
        ),
        (
            "jwks with a secret method",
            json!({"token_endpoint_auth_method": "client_secret_basic", "jwks": key.jwks()}),
        ),
        (
            "private key",
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}}),
        ),
        (
            "symmetric key",
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        ),
        (
            "not a set",
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": [key.jwk()]}),
        ),
    ] {
        let mut meta = meta;
        meta["redirect_uris"] = json!(["https://app.example/cb"]);
        let a = register(&app, Some(&admin.key), meta).await;
        assert_eq!(a.status, 400, "{what}: {}", a.body);
        assert_eq!(a.body["error"], "invalid_client_metadata", "{what}");
        assert!(
            a.body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("jwks")),
            "{what}: {}",
            a.body
        );
    }
    // /api/v1/clients takes jwks too.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/clients", app.address))
        .bearer_auth(&admin.key)
        .json(&json!({"name": "Job", "grant_types": ["client_credentials"], "jwks": key.jwks()}))
        .send()
        .await
        .expect("create");
    let (status, body) = json_of(r).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
    assert!(
        body.get("client_secret").is_none_or(Value::is_null),
        "{body}"
    );
    drop(app);

    // Open registration (docs/spec.md §8) registers a private_key_jwt code-flow client.
    let db = TestDb::create(backend).expect("database");
    let mut settings = db.settings();
    settings.registration = RegistrationMode::Open;
    let app = spawn_app_with(db, settings).await;
    let key = ClientKey::new("ES256");
    let a = register(
        &app,
        None,
        json!({
            "redirect_uris": ["https://mcp.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": key.jwks(),
        }),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["token_endpoint_auth_method"], "private_key_jwt");
    assert!(a.body.get("client_secret").is_none());
}

/// docs/spec.md §8/§9, docs/security.md D13: a device-flow client with a registered key
/// set authenticates with assertions at the device-authorization endpoint (RFC 8628 §3.1:
/// as at the token endpoint) and when it polls; a replayed or foreign assertion is
/// `invalid_client` at the device-authorization endpoint too.
async fn d13_a_device_flow_client_authenticates_with_assertions_at_both_endpoints(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let key = ClientKey::new("EdDSA");
    let (id, secret) = app.register(NewClient {
        name: "Example CLI".into(),
        grant_types: Some(vec![GrantType::DeviceCode, GrantType::RefreshToken]),
        scope: Some(ScopeSet::parse("inference:read offline_access").expect("scope")),
        jwks: Some(key.jwks()),
        ..Default::default()
    });
    assert!(secret.is_none());
    let start = |assertion: String| {
        let form = serde_urlencoded::to_string([
            ("client_id", id.as_str()),
            ("scope", "inference:read offline_access"),
            ("client_assertion_type", TYPE),
            ("client_assertion", assertion.as_str()),
        ])
        .expect("form");
        let app = &app;
        async move {
            json_of(
                app.post_form("/oauth/device_authorization", None, &form)
                    .await,
            )
            .await
        }
    };
    let poll = |device_code: String, assertion: String| {
        let form = serde_urlencoded::to_string([
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code.as_str()),
            ("client_assertion_type", TYPE),
            ("client_assertion", assertion.as_str()),
        ])
        .expect("form");
        let app = &app;
        async move { json_of(app.post_form("/oauth/token", None, &form).await).await }
    };
    // Without any credential: this client is confidential.
    let (status, body) = json_of(
        app.post_form(
            "/oauth/device_authorization",
            None,
            &format!("client_id={id}&scope=inference:read"),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // A key it did not register.
    let other = ClientKey::new("EdDSA");
    let (status, body) = start(other.sign_with(json!({"kid": key.kid}), &claims(&app, &id))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // A good assertion, then the same one again.
    let assertion = key.sign(&claims(&app, &id));
    let (status, d) = start(assertion.clone()).await;
    assert_eq!(status, 200, "{d}");
    let (status, body) = start(assertion).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "replayed jti: {body}"
    );
    let device_code = d["device_code"].as_str().expect("device_code").to_string();
    let (status, body) = poll(device_code.clone(), key.sign(&claims(&app, &id))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending")),
        "{body}"
    );
    // Approved by a person: the next poll, with a fresh assertion, gets the tokens.
    let complete = d["verification_uri_complete"].as_str().expect("complete");
    let (status, _) = crate::device::decide(&app, complete, "approve").await;
    assert_eq!(status, 200);
    app.clock.advance(6);
    let (status, body) = poll(device_code, key.sign(&claims(&app, &id))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["access_token"].is_string() && body["refresh_token"].is_string(),
        "{body}"
    );
}
