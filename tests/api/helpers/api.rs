//! Organizations, members and API keys made directly in the database, and calls to
//! `/api/v1` with a bearer credential.

use reqwest::header::HeaderMap;
use serde_json::Value;
use tessera::api_keys::KeyType;
use tessera::api_keys::store::{CreatedApiKey, Expiry, NewApiKey};
use tessera::clock::Clock;
use tessera::orgs::{Plan, Role};
use tessera::scope::ScopeSet;

use super::TestApp;

/// One answer: status, headers, JSON body (Null when empty).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn header_i64(&self, name: &str) -> i64 {
        self.header(name)
            .unwrap_or_else(|| panic!("header {name} missing"))
            .parse()
            .expect("integer header")
    }
}

pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}

pub struct KeySpec<'a> {
    pub name: &'a str,
    pub scopes: &'a str,
    pub created_by: Option<&'a str>,
    pub limit: Option<i64>,
    pub expiry: Expiry,
    pub key_type: KeyType,
}

impl Default for KeySpec<'_> {
    fn default() -> Self {
        Self {
            name: "test key",
            scopes: "admin inference:read",
            created_by: None,
            limit: None,
            expiry: Expiry::Never,
            key_type: KeyType::Secret,
        }
    }
}

impl TestApp {
    pub fn org(&self, plan: Plan) -> String {
        let mut conn = self.state.pool.get().expect("conn");
        tessera::orgs::store::insert(&mut conn, "Acme", plan, self.clock.now())
            .expect("org")
            .id
    }

    /// A user (no password login) who is `role` in `org`.
    pub fn member(&self, org: &str, email: &str, role: Role) -> String {
        let mut conn = self.state.pool.get().expect("conn");
        let user = tessera::users::store::insert(&mut conn, email, "x".into(), self.clock.now())
            .expect("user");
        tessera::orgs::store::add_member(&mut conn, org, &user.id, role, self.clock.now())
            .expect("member");
        user.id
    }

    pub fn api_key(&self, org: &str, spec: KeySpec<'_>) -> CreatedApiKey {
        let mut conn = self.state.pool.get().expect("conn");
        tessera::api_keys::store::create(
            &mut conn,
            NewApiKey {
                org_id: org.into(),
                name: spec.name.into(),
                key_type: spec.key_type,
                scopes: ScopeSet::parse(spec.scopes).expect("scopes"),
                expiry: spec.expiry,
                rate_limit_per_minute: spec.limit,
                created_by: spec.created_by.map(str::to_string),
                audited_as: None,
            },
            &self.state.settings.scopes,
            "tsr",
            &self.state.settings.plan_limits,
            self.clock.now(),
        )
        .expect("key")
    }

    /// A new organization of `plan` and an admin key of it (made like `tessera api-key
    /// create`: acting as an admin).
    pub fn org_with_admin(&self, plan: Plan) -> (String, CreatedApiKey) {
        let org = self.org(plan);
        let admin = self.api_key(&org, KeySpec::default());
        (org, admin)
    }

    /// `GET /api/v1/usage?{query}` with `bearer`.
    pub async fn usage(&self, bearer: &str, query: &str) -> Answer {
        self.api(
            reqwest::Method::GET,
            &format!("/api/v1/usage?{query}"),
            bearer,
            None,
        )
        .await
    }

    /// `method path` on `/api/v1` with `Authorization: Bearer <bearer>` and a JSON body.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut r = reqwest::Client::new()
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(bearer);
        if let Some(b) = body {
            r = r.json(&b);
        }
        answer(r.send().await.expect("request")).await
    }

    /// `POST /api/v1/keys/verify` as the resource server `rs`.
    pub async fn verify(&self, rs: &(String, String), body: Value) -> Answer {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/keys/verify", self.address))
            .basic_auth(&rs.0, Some(&rs.1))
            .json(&body)
            .send()
            .await
            .expect("verify");
        answer(r).await
    }

    /// Sets the manual clock to the start of the next minute plus `offset` seconds, so a
    /// rate-limit window has a known start.
    pub fn at_minute_start(&self, offset: i64) {
        let now = self.clock.now();
        self.clock.set(now - now.rem_euclid(60) + 60 + offset);
    }
}

impl TestApp {
    /// Another server on the same database and clock (several instances, one database).
    pub async fn second_instance(&self) -> TestApp {
        self.second_instance_with_clock(self.clock.clone()).await
    }

    /// Another server on the same database with a clock of its own (clock skew, R11).
    pub async fn second_instance_with_clock(
        &self,
        clock: std::sync::Arc<tessera::clock::ManualClock>,
    ) -> TestApp {
        let mut settings = self.state.settings.clone();
        settings.bind = "127.0.0.1:0".into();
        // Instances behind one name share the issuer (and so the audience).
        settings.issuer = Some(self.state.issuer.clone());
        settings.audience = Some(self.state.audience.clone());
        let app = tessera::startup::Application::build(settings, clock.clone())
            .expect("second instance builds");
        let port = app.port();
        let state = app.state();
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            state,
            clock,
            db: None,
            http: self.http.clone(),
            handle,
        }
    }
}
