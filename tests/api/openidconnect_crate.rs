//! A second ID-token validator (docs/spec.md §9): the Rust `openidconnect` crate, an
//! independent OpenID Connect relying party, does discovery from
//! `/.well-known/openid-configuration`, the code flow with `nonce` and PKCE (sign-in and
//! consent completed through the real pages), validates the ID token (signature against
//! the JWKS, `iss`, `aud`, `exp`, `nonce`, `at_hash`) for a client of each
//! `id_token_signed_response_alg` (RS256, ES256, EdDSA), and calls userinfo.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use tessera::clients::{GrantType, NewClient};
use tessera::scope::ScopeSet;

use crate::helpers::oauth::{REDIRECT, query_param};
use crate::helpers::{Backend, TestApp, spawn_app};

crate::on_both_backends!(
    l2_l3_openidconnect_crate_validates_id_tokens_of_every_algorithm_and_reads_userinfo,
);

fn http_client() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// One full login of a fresh person for a client signing with `alg`, as the crate does it.
async fn login(app: &TestApp, provider: &CoreProviderMetadata, alg: &str) {
    let (id, secret) = app.register(NewClient {
        name: format!("RP {alg}"),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: Some(vec![GrantType::AuthorizationCode]),
        scope: Some(ScopeSet::parse("openid email profile").expect("scope")),
        id_token_signed_response_alg: Some(alg.into()),
        ..Default::default()
    });
    let client = CoreClient::from_provider_metadata(
        provider.clone(),
        ClientId::new(id.clone()),
        Some(ClientSecret::new(secret.expect("confidential"))),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("redirect"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    // The person signs in and consents through the pages, with the crate's own request.
    let email = format!(
        "{}@example.com",
        tessera::crypto::random_base62(10).to_lowercase()
    );
    let b = app.user(&email).await;
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let params: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let location = app.consent(&b, &params).await;
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    let code = query_param(&location, "code").expect("code");

    let http = http_client();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("a token endpoint was discovered")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the crate exchanges the code");
    let id_token = tokens.id_token().expect("an id_token with openid");
    let expected_alg = match alg {
        "ES256" => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        "EdDSA" => CoreJwsSigningAlgorithm::EdDsa,
        _ => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    };
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![expected_alg.clone()]);
    let claims = id_token
        .claims(&verifier, &nonce)
        .unwrap_or_else(|e| panic!("{alg}: the crate validates the ID token: {e:?}"));
    assert_eq!(
        id_token.signing_alg().expect("alg").clone(),
        expected_alg,
        "signed with the client's id_token_signed_response_alg"
    );
    assert!(claims.subject().as_str().starts_with("usr_"));
    assert_eq!(
        claims.email().map(|e| e.as_str().to_string()),
        Some(email.clone())
    );
    // OpenID Connect Core §3.1.3.8: at_hash over the access token with the alg's hash.
    let expected = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().expect("alg"),
        id_token.signing_key(&verifier).expect("key"),
    )
    .expect("hash");
    assert_eq!(&actual, expected, "{alg}: at_hash");
    // A different nonce is refused by the crate.
    assert!(
        id_token
            .claims(&verifier, &Nonce::new("another".into()))
            .is_err(),
        "the nonce is checked"
    );

    let info: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().to_owned(),
            Some(claims.subject().clone()),
        )
        .expect("userinfo endpoint discovered")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("{alg}: userinfo: {e:?}"));
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.email().map(|e| e.as_str().to_string()), Some(email));
}

async fn l2_l3_openidconnect_crate_validates_id_tokens_of_every_algorithm_and_reads_userinfo(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let provider = CoreProviderMetadata::discover_async(
        IssuerUrl::new(app.address.clone()).expect("issuer"),
        &http_client(),
    )
    .await
    .expect("the crate accepts the discovery document");
    let algs: Vec<String> = provider
        .id_token_signing_alg_values_supported()
        .iter()
        .map(|a| {
            serde_json::to_value(a)
                .expect("alg")
                .as_str()
                .expect("str")
                .to_string()
        })
        .collect();
    assert_eq!(algs, ["RS256", "ES256", "EdDSA"]);
    assert!(provider.userinfo_endpoint().is_some());
    for alg in ["RS256", "ES256", "EdDSA"] {
        login(&app, &provider, alg).await;
    }
}
