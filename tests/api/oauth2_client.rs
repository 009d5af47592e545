//! The whole flow driven by a third-party client library, the `oauth2` crate, as an
//! application would use it: its authorize URL, its PKCE, its Basic client
//! authentication (form-urlencoded credentials, docs/security.md D5), its refresh.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse, TokenUrl,
};

use crate::helpers::oauth::{REDIRECT, query_param};
use crate::helpers::{Backend, spawn_app};

crate::on_both_backends!(the_oauth2_crate_completes_the_code_flow_and_refreshes);

async fn the_oauth2_crate_completes_the_code_flow_and_refreshes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let registered = app.web_client("inference:read inference:write");
    let client = BasicClient::new(ClientId::new(registered.id.clone()))
        .set_client_secret(ClientSecret::new(
            registered.secret.clone().expect("secret"),
        ))
        .set_auth_uri(AuthUrl::new(format!("{}/oauth/authorize", app.address)).expect("url"))
        .set_token_uri(TokenUrl::new(format!("{}/oauth/token", app.address)).expect("url"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("url"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("inference:read".into()))
        .add_scope(Scope::new("inference:write".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The user's browser follows the URL, signs in (already) and approves.
    let b = app.user("ada@example.com").await;
    let page = b.get(auth_url.as_str()).send().await.expect("authorize");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let location = app.approve(&b, &html).await;
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    let code = query_param(&location, "code").expect("code");

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the library accepts our token response");
    assert_eq!(tokens.token_type().as_ref(), "bearer");
    let scopes: Vec<String> = tokens
        .scopes()
        .expect("scope")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["inference:read", "inference:write"]);
    let claims = crate::well_known::verify_with_served_jwks(
        &app,
        tokens.access_token().secret(),
        jsonwebtoken::Algorithm::ES256,
    )
    .await;
    assert_eq!(claims.client_id, registered.id);

    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().expect("refresh token"))
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.refresh_token().expect("rotated").secret(),
        tokens.refresh_token().expect("rt").secret()
    );
}
