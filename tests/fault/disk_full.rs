//! R3: the database is full. SQLite is capped with `PRAGMA max_page_count` at its current
//! size; the pragma holds per connection, so it is set on every pooled connection of the
//! server (the pool is held whole while it is set). PostgreSQL's tables live on a
//! size-capped tmpfs that is filled up (`disk_full_pg.rs`). Every write that needs a page
//! then fails (SQLITE_FULL; PostgreSQL's `disk_full`): key creation, code redemption,
//! refresh rotation and access-token revocation must answer 503 with `Retry-After` and no
//! secret, commit nothing (the code and refresh token stay usable, the token stays active,
//! no key row or audit record is left), while reads go on (introspection, key verification,
//! stateless `client_credentials`). Raising the cap or growing the mount (space freed)
//! recovers without a restart.

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};
use serde_json::{Value, json};
use tessera::api_keys::KeyType;
use tessera::orgs::Plan;

use crate::disk_full_pg::Volume;
use crate::helpers::api::{KeySpec, answer};
use crate::helpers::oauth::WebClient;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app_with};

crate::on_both_backends!(r3_a_full_database_answers_503_commits_nothing_serves_reads_and_recovers);

/// How the database is made full, and given space again.
enum Space {
    /// SQLite: `PRAGMA max_page_count` on every pooled connection.
    PageCap,
    /// PostgreSQL: its tables on a size-capped tmpfs.
    Tmpfs(Volume),
}

impl Space {
    fn fill(&self, app: &TestApp) {
        match self {
            Self::PageCap => cap(app, true),
            Self::Tmpfs(volume) => {
                volume.fill();
            }
        }
    }

    fn free(&self, app: &TestApp) {
        match self {
            Self::PageCap => cap(app, false),
            Self::Tmpfs(volume) => volume.free(),
        }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

const POOL: u32 = 2;

/// Sets `PRAGMA max_page_count` on every pooled connection: `full` caps the file at its
/// current size (asking for 1 page, SQLite never goes below the current size); otherwise the
/// cap is lifted (space freed).
fn cap(app: &TestApp, full: bool) {
    let mut held: Vec<_> = (0..POOL)
        .map(|_| app.state.pool.get().expect("a pooled connection"))
        .collect();
    for conn in &mut held {
        diesel::sql_query(sql_for(full))
            .execute(&mut **conn)
            .expect("pragma");
    }
    // SQLite's group-commit writer (code redemption, refresh rotation) has a connection of
    // its own: the pragma is per connection, so it is capped through the writer too.
    if let Some(group) = app.state.group_commit.as_ref() {
        group
            .run(move |conn| diesel::sql_query(sql_for(full)).execute(conn))
            .expect("pragma on the writer");
    }
}

fn sql_for(full: bool) -> &'static str {
    if full {
        "PRAGMA max_page_count = 1"
    } else {
        "PRAGMA max_page_count = 1073741823"
    }
}

fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = app.state.pool.get().expect("conn");
    diesel::sql_query(sql)
        .get_result::<Count>(&mut *conn)
        .expect("count")
        .n
}

/// A 503 that leaks nothing: `Retry-After`, the documented body, no secret.
fn unavailable(what: &str, status: u16, retry_after: Option<&str>, body: &Value) {
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(retry_after, Some("1"), "{what}: Retry-After");
    let text = body.to_string();
    for secret in [
        "tsr_sk_",
        "access_token",
        "refresh_token",
        "\"key\"",
        "client_secret",
    ] {
        assert!(
            !text.contains(secret),
            "{what}: {secret} in the 503 body {text}"
        );
    }
    assert!(
        body["error"] == "temporarily_unavailable" || body["error"]["type"].is_string(),
        "{what}: the documented error shape: {body}"
    );
}

async fn send(r: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().await.expect("body");
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn token_req(app: &TestApp, web: &WebClient, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
    app.http
        .post(format!("{}/oauth/token", app.address))
        .basic_auth(&web.id, web.secret.as_deref())
        .form(form)
}

fn cc_req(app: &TestApp, machine: &(String, String)) -> reqwest::RequestBuilder {
    app.http
        .post(format!("{}/oauth/token", app.address))
        .basic_auth(&machine.0, Some(&machine.1))
        .form(&[("grant_type", "client_credentials")])
}

fn exchange_form(code: &(String, String)) -> [(&str, &str); 4] {
    [
        ("grant_type", "authorization_code"),
        ("code", &code.0),
        ("redirect_uri", crate::helpers::oauth::REDIRECT),
        ("code_verifier", &code.1),
    ]
}

/// Runs `op` until it answers 503 (each success fills the file further); returns how many
/// succeeded first. Panics on any other answer or when the file never fills.
async fn until_full<F, Fut>(what: &str, mut op: F) -> usize
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = (u16, Option<String>, Value, bool)>,
{
    for i in 0..200 {
        let (status, retry, body, succeeded) = op(i).await;
        if succeeded {
            continue;
        }
        unavailable(what, status, retry.as_deref(), &body);
        return i;
    }
    panic!("{what}: never answered 503 in 200 attempts with the file capped");
}

async fn r3_a_full_database_answers_503_commits_nothing_serves_reads_and_recovers(
    backend: Backend,
) {
    let Some((db, space)) = (match backend {
        Backend::Sqlite => TestDb::create(backend).map(|db| (db, Space::PageCap)),
        Backend::Postgres => crate::disk_full_pg::database().map(|(db, v)| (db, Space::Tmpfs(v))),
    }) else {
        return;
    };
    let mut settings = db.settings();
    settings.db_pool_size = POOL;
    let app = spawn_app_with(db, settings).await;
    let org = app.org(Plan::Pro);
    let admin = app
        .api_key(
            &org,
            KeySpec {
                scopes: "admin inference:read",
                limit: Some(100_000),
                ..Default::default()
            },
        )
        .key;
    let existing_key = app
        .api_key(
            &org,
            KeySpec {
                scopes: "inference:read",
                key_type: KeyType::Secret,
                ..Default::default()
            },
        )
        .key;
    let rs = app.resource_server();
    let machine = app.machine_client("inference:read");
    let web = app.web_client("inference:read");
    let existing = app.user_tokens(&web, "inference:read").await;
    let existing_at = existing["access_token"].as_str().expect("at").to_string();
    let existing_rt = existing["refresh_token"].as_str().expect("rt").to_string();
    // Codes to redeem while full; the manual clock keeps them fresh.
    let browser = app.user("full@example.com").await;
    let mut codes = Vec::new();
    for _ in 0..40 {
        codes.push(app.code(&browser, &web, "inference:read").await);
    }
    // Access tokens to revoke while full (each revocation adds a row to the revocation list).
    let mut to_revoke = Vec::new();
    for _ in 0..300 {
        let (s, _, t) = send(cc_req(&app, &machine)).await;
        assert_eq!(s, 200);
        to_revoke.push(t["access_token"].as_str().expect("at").to_string());
    }
    let keys_before = count(&app, "SELECT COUNT(*) AS n FROM api_keys");
    let audits_before = count(
        &app,
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'api_key.created'",
    );

    space.fill(&app);

    // Key creation: 201 until the file is full, then 503.
    let api = format!("{}/api/v1/api-keys", app.address);
    let created = until_full("key creation", |i| {
        let req = app.http.post(&api).bearer_auth(&admin).json(&json!({
            "name": format!("fill {i}"), "scopes": ["inference:read"], "type": "secret"
        }));
        async move {
            let (s, r, b) = send(req).await;
            (s, r, b, s == 201)
        }
    })
    .await;

    // Code redemption: a 503 leaves the code unconsumed.
    let mut redeemed = 0;
    let mut unredeemed = None;
    for code in &codes {
        let (s, r, b) = send(token_req(&app, &web, &exchange_form(code))).await;
        if s == 200 {
            redeemed += 1;
            continue;
        }
        unavailable("code redemption", s, r.as_deref(), &b);
        unredeemed = Some(code.clone());
        break;
    }
    let unredeemed = unredeemed.expect("a code redemption answered 503 with the file capped");

    // Refresh rotation: a 503 leaves the refresh token current.
    let mut rt = existing_rt.clone();
    let mut rotations = 0;
    loop {
        let (s, r, b) = send(token_req(
            &app,
            &web,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        ))
        .await;
        if s == 200 {
            rotations += 1;
            rt = b["refresh_token"].as_str().expect("rt").to_string();
            assert!(
                rotations < 200,
                "refresh never answered 503 with the file capped"
            );
            continue;
        }
        unavailable("refresh rotation", s, r.as_deref(), &b);
        break;
    }

    // Revocation of an access token: never a 200 without the commit.
    let mut still_active = None;
    let mut revoked = 0;
    for at in &to_revoke {
        let (s, r, b) = send(
            app.http
                .post(format!("{}/oauth/revoke", app.address))
                .basic_auth(&machine.0, Some(&machine.1))
                .form(&[("token", at.as_str())]),
        )
        .await;
        if s == 200 {
            revoked += 1;
            continue;
        }
        unavailable("access token revocation", s, r.as_deref(), &b);
        still_active = Some(at.clone());
        break;
    }
    let still_active = still_active.expect("a revocation answered 503 with the file capped");

    for at in &to_revoke[..revoked] {
        assert_eq!(
            app.introspect(&rs, at).await["active"],
            false,
            "a revocation answered 200 is committed"
        );
    }

    // Reads go on while full.
    assert_eq!(app.introspect(&rs, &existing_at).await["active"], true);
    assert_eq!(
        app.introspect(&rs, &rt).await["active"],
        true,
        "the RT whose rotation failed"
    );
    assert_eq!(
        app.introspect(&rs, &still_active).await["active"],
        true,
        "a revocation that answered 503 revoked nothing"
    );
    let v = app.verify(&rs, json!({"key": existing_key})).await;
    assert_eq!((v.status, v.body["code"].clone()), (200, json!("VALID")));
    let (s, _, b) = send(cc_req(&app, &machine)).await;
    assert_eq!(s, 200, "client_credentials writes nothing: {b}");
    let listed = answer(
        app.http
            .get(&api)
            .bearer_auth(&admin)
            .send()
            .await
            .expect("list"),
    )
    .await;
    assert_eq!(listed.status, 200, "listing keys reads only");

    // Nothing half-written: one key row and one audit record per 201, nothing for the 503.
    if backend == Backend::Sqlite {
        let integrity = crate::process::sqlite_integrity(&app.db().dir.path().join("tessera.db"));
        assert_eq!(integrity, "ok", "integrity_check and foreign_key_check");
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) AS n FROM api_keys"),
        keys_before + created as i64
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'api_key.created'"
        ),
        audits_before + created as i64
    );
    assert_eq!(
        listed.body["data"].as_array().map(Vec::len),
        Some((keys_before + created as i64) as usize)
    );

    // Space freed: everything that failed works, without a restart.
    space.free(&app);
    let k = app
        .api(
            reqwest::Method::POST,
            "/api/v1/api-keys",
            &admin,
            Some(json!({"name": "after", "scopes": ["inference:read"], "type": "secret"})),
        )
        .await;
    assert_eq!(k.status, 201, "{}", k.body);
    let (s, _, b) = send(token_req(&app, &web, &exchange_form(&unredeemed))).await;
    assert_eq!(
        s, 200,
        "the code whose redemption answered 503 was not consumed: {b}"
    );
    let (s, _, b) = send(token_req(
        &app,
        &web,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    ))
    .await;
    assert_eq!(
        s, 200,
        "the refresh token whose rotation answered 503 still rotates: {b}"
    );
    let (s, _, _) = send(
        app.http
            .post(format!("{}/oauth/revoke", app.address))
            .basic_auth(&machine.0, Some(&machine.1))
            .form(&[("token", still_active.as_str())]),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(app.introspect(&rs, &still_active).await["active"], false);
    eprintln!(
        "R3 {backend:?}: full after {created} keys, {redeemed} redemptions, {rotations} rotations, {revoked} revocations; every write after answered 503; recovered"
    );
}
