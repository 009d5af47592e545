//! Driving the authorization-code flow through the real pages, as a browser would.

use serde_json::Value;
use tessera::clients::{GrantType, NewClient};
use tessera::scope::ScopeSet;

use super::{TestApp, hidden, signup};

pub const REDIRECT: &str = "https://app.example/cb";
pub const PASSWORD: &str = "correct horse battery";

/// A PKCE pair (RFC 7636 §4.1/§4.2).
pub fn pkce() -> (String, String) {
    let verifier = tessera::crypto::random_base62(64);
    let challenge = tessera::oauth::codes::s256(&verifier);
    (verifier, challenge)
}

pub struct WebClient {
    pub id: String,
    pub secret: Option<String>,
}

impl TestApp {
    /// A confidential web app with code + refresh grants.
    pub fn web_client(&self, scope: &str) -> WebClient {
        let (id, secret) = self.register(NewClient {
            name: "Example App".into(),
            redirect_uris: vec![REDIRECT.into()],
            grant_types: Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
            scope: Some(ScopeSet::parse(scope).expect("scope")),
            ..Default::default()
        });
        WebClient { id, secret }
    }

    /// A signed-in browser.
    pub async fn user(&self, email: &str) -> reqwest::Client {
        let b = self.browser();
        assert_eq!(signup(self, &b, email, PASSWORD).await.status(), 303);
        b
    }

    /// GET /oauth/authorize with `params`.
    pub async fn authorize_get(
        &self,
        b: &reqwest::Client,
        params: &[(&str, &str)],
    ) -> reqwest::Response {
        let q = serde_urlencoded::to_string(params).expect("query");
        b.get(format!("{}/oauth/authorize?{q}", self.address))
            .send()
            .await
            .expect("authorize")
    }

    /// Runs authorize → consent (approve) and returns the redirect `Location`.
    pub async fn consent(&self, b: &reqwest::Client, params: &[(&str, &str)]) -> String {
        let r = self.authorize_get(b, params).await;
        if r.status() == 302 {
            return r.headers()["location"].to_str().expect("ascii").to_string();
        }
        assert_eq!(r.status(), 200, "consent page expected");
        let html = r.text().await.expect("html");
        self.approve(b, &html).await
    }

    /// Approves the consent page `html` (its hidden `request` and `csrf_token`) as the
    /// signed-in browser `b`: asserts the 303 (A9) and returns its `Location`, the
    /// redirect back to the client.
    pub async fn approve(&self, b: &reqwest::Client, html: &str) -> String {
        let approve = b
            .post(format!("{}/oauth/authorize", self.address))
            .form(&[
                ("request", hidden(html, "request")),
                ("csrf_token", hidden(html, "csrf_token")),
                ("decision", "approve".into()),
            ])
            .send()
            .await
            .expect("consent");
        assert_eq!(approve.status(), 303, "A9: 303 after the consent POST");
        approve.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_string()
    }

    /// A code for `client` and `scope` with a fresh PKCE pair: (code, verifier).
    pub async fn code(
        &self,
        b: &reqwest::Client,
        client: &WebClient,
        scope: &str,
    ) -> (String, String) {
        let (verifier, challenge) = pkce();
        let location = self
            .consent(
                b,
                &[
                    ("response_type", "code"),
                    ("client_id", &client.id),
                    ("redirect_uri", REDIRECT),
                    ("scope", scope),
                    ("state", "xyz"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .await;
        (
            query_param(&location, "code").expect("code in redirect"),
            verifier,
        )
    }

    /// POST /oauth/token authenticated as `client`.
    pub async fn token(&self, client: &WebClient, params: &[(&str, &str)]) -> reqwest::Response {
        let body = serde_urlencoded::to_string(params).expect("form");
        match &client.secret {
            Some(s) => {
                self.post_form("/oauth/token", Some((&client.id, s)), &body)
                    .await
            }
            None => {
                self.post_form(
                    "/oauth/token",
                    None,
                    &format!("{body}&client_id={}", client.id),
                )
                .await
            }
        }
    }

    pub async fn exchange(
        &self,
        client: &WebClient,
        code: &str,
        verifier: &str,
    ) -> reqwest::Response {
        self.token(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    pub async fn refresh(&self, client: &WebClient, rt: &str) -> reqwest::Response {
        self.token(
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await
    }
}

/// A query parameter of a URL, decoded.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub async fn json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

impl TestApp {
    /// A `--resource-server` client: (id, secret).
    pub fn resource_server(&self) -> (String, String) {
        let (id, secret) = self.register(NewClient {
            name: "Inference API".into(),
            resource_server: true,
            ..Default::default()
        });
        (id, secret.expect("confidential"))
    }

    /// Introspects `token` as the resource server `rs`.
    pub async fn introspect_as(&self, rs: &(String, String), token: &str) -> reqwest::Response {
        let body = serde_urlencoded::to_string([("token", token)]).expect("form");
        self.post_form("/oauth/introspect", Some((&rs.0, &rs.1)), &body)
            .await
    }

    pub async fn introspect(&self, rs: &(String, String), token: &str) -> Value {
        let r = self.introspect_as(rs, token).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        r.json().await.expect("json")
    }

    /// Tokens for a fresh user through the whole code flow.
    pub async fn user_tokens(&self, client: &WebClient, scope: &str) -> Value {
        let email = format!(
            "{}@example.com",
            tessera::crypto::random_base62(10).to_lowercase()
        );
        let b = self.user(&email).await;
        let (code, verifier) = self.code(&b, client, scope).await;
        let r = self.exchange(client, &code, &verifier).await;
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }
}
