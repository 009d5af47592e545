//! Push of revocations between instances (docs/spec.md §12; docs/security.md I5, G5): with
//! PostgreSQL, a revocation on one instance reaches another instance's caches by
//! `LISTEN`/`NOTIFY`, long before its next change poll.

use std::time::{Duration, Instant};

use reqwest::Method;
use tessera::orgs::Plan;

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app_with};

crate::on_both_backends!(r5_a_revocation_is_pushed_to_the_other_instance);

/// Both instances trust their caches for two minutes and poll for changes once a minute
/// (the first poll runs at start), so within this test only a push can tell the second
/// instance of a revocation.
async fn instances_that_rarely_poll(backend: Backend) -> Option<(TestApp, TestApp)> {
    let db = TestDb::create(backend)?;
    let mut settings = db.settings();
    settings.cache_ttl_ms = 120_000;
    settings.change_poll_interval_ms = 60_000;
    let app = spawn_app_with(db, settings).await;
    let second = app.second_instance().await;
    Some((app, second))
}

/// How long until `second` refuses the API key `key` (401 on `/api/v1`), asking every
/// 5 ms for at most `bound`; `None` if it never did.
async fn key_refused(second: &TestApp, key: &str, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < bound {
        let a = second.api(Method::GET, "/api/v1/api-keys", key, None).await;
        if a.status == 401 {
            return Some(started.elapsed());
        }
        assert_eq!(a.status, 200);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// How long until `second` introspects `token` as inactive for `rs`, like [`key_refused`].
async fn token_refused(
    second: &TestApp,
    rs: &(String, String),
    token: &str,
    bound: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < bound {
        if second.introspect(rs, token).await["active"] == false {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

async fn r5_a_revocation_is_pushed_to_the_other_instance(backend: Backend) {
    let Some((app, second)) = instances_that_rarely_poll(backend).await else {
        return;
    };
    // An API key, cached on the second instance.
    let org = app.org(Plan::Free);
    let admin = app.api_key(&org, KeySpec::default());
    // Asked every 5 ms below: a budget that this cannot spend.
    let victim = app.api_key(
        &org,
        KeySpec {
            limit: Some(1_000_000),
            ..Default::default()
        },
    );
    assert_eq!(
        second
            .api(Method::GET, "/api/v1/api-keys", &victim.key, None)
            .await
            .status,
        200
    );
    // An access token, cached as live by the second instance's introspection.
    let rs = app.resource_server();
    let (token, machine) = crate::introspect::cc_token(&app).await;
    assert_eq!(second.introspect(&rs, &token).await["active"], true);

    let path = format!("/api/v1/api-keys/{}", victim.id);
    assert_eq!(
        app.api(Method::DELETE, &path, &admin.key, None)
            .await
            .status,
        204
    );
    let revoked = app
        .post_form(
            "/oauth/revoke",
            Some((&machine.0, &machine.1)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(revoked.status(), 200);
    match backend {
        Backend::Postgres => {
            let bound = Duration::from_secs(10);
            let key = key_refused(&second, &victim.key, bound).await;
            let token = token_refused(&second, &rs, &token, bound).await;
            let (Some(key), Some(token)) = (key, token) else {
                panic!(
                    "R5: pushed revocations reach the other instance (key {key:?}, token {token:?})"
                );
            };
            eprintln!("pushed to the second instance after {key:?} (key), {token:?} (token)");
        }
        // SQLite has no push: the second instance learns at its next poll (a minute away
        // here), so within seconds it still answers from its cache. This is the control
        // that shows the PostgreSQL case is the push's doing.
        Backend::Sqlite => {
            let bound = Duration::from_millis(1500);
            assert_eq!(key_refused(&second, &victim.key, bound).await, None);
            assert_eq!(token_refused(&second, &rs, &token, bound).await, None);
        }
    }
}
