//! R10: the single-use and counted things under concurrency, repeated. Each repetition
//! fires 20–50 requests at once at one code (C2), one refresh token (E6) or one key's
//! rate limit (I6) and checks that the outcome is exactly-once, every time. 5 repetitions
//! in `cargo test`, 50 with `TESSERA_FAULT_FULL=1` (`bash .ci/faults`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use serde_json::json;
use tessera::api_keys::store::Expiry;
use tessera::db::schema::{grants, refresh_tokens};
use tessera::orgs::Plan;

use crate::helpers::api::KeySpec;
use crate::helpers::oauth::json;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app_with};
use crate::on_both_backends;
use tessera::clock::Clock as _;

on_both_backends!(
    r10_c2_parallel_redemptions_of_one_code_yield_exactly_one_token_every_time,
    r10_e6_parallel_refreshes_of_one_token_rotate_it_exactly_once_every_time,
    r10_i6_a_limit_of_n_admits_exactly_n_of_a_parallel_burst_every_time,
);

/// Repetitions of each race: 50 in the full run (`TESSERA_FAULT_FULL=1`), 5 in `cargo test`.
pub fn repetitions() -> usize {
    if std::env::var("TESSERA_FAULT_FULL").is_ok_and(|v| v == "1") {
        50
    } else {
        5
    }
}

/// A server with enough workers and connections that requests really overlap.
async fn racing_app(backend: Backend) -> Option<TestApp> {
    let db = TestDb::create(backend)?;
    let mut settings = db.settings();
    settings.workers = 4;
    settings.db_pool_size = 10;
    Some(spawn_app_with(db, settings).await)
}

/// Every test here must finish well inside this, whatever the repetition count.
const BOUND: Duration = Duration::from_secs(300);

async fn r10_c2_parallel_redemptions_of_one_code_yield_exactly_one_token_every_time(
    backend: Backend,
) {
    let Some(app) = racing_app(backend).await else {
        return;
    };
    let start = Instant::now();
    let rs = app.resource_server();
    let client = app.web_client("inference:read");
    let b = app.user("ada@example.com").await;
    const PARALLEL: usize = 30;
    for rep in 0..repetitions() {
        let (code, verifier) = app.code(&b, &client, "inference:read").await;
        let answers = futures_util::future::join_all(
            (0..PARALLEL)
                .map(|_| async { json(app.exchange(&client, &code, &verifier).await).await }),
        )
        .await;
        let winners: Vec<_> = answers.iter().filter(|(s, _)| *s == 200).collect();
        let losers = answers
            .iter()
            .filter(|(s, body)| *s == 400 && body["error"] == "invalid_grant")
            .count();
        assert_eq!(
            (winners.len(), losers),
            (1, PARALLEL - 1),
            "C2 repetition {rep}: exactly one 200, the rest 400 invalid_grant: {answers:?}"
        );
        // The losers are replays of a used code, so the first use's tokens are revoked (C1):
        // the winner's access and refresh tokens are inactive once the race is over.
        let (_, won) = winners[0];
        for token in ["access_token", "refresh_token"] {
            let t = won[token].as_str().expect("token");
            assert_eq!(
                app.introspect(&rs, t).await,
                json!({"active": false}),
                "C1 repetition {rep}: the {token} of a raced code dies with its grant"
            );
        }
    }
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
}

async fn r10_e6_parallel_refreshes_of_one_token_rotate_it_exactly_once_every_time(
    backend: Backend,
) {
    let Some(app) = racing_app(backend).await else {
        return;
    };
    let start = Instant::now();
    let rs = app.resource_server();
    let client = app.web_client("inference:read");
    let grace = app.state.settings.refresh_grace_seconds;
    const PARALLEL: usize = 30;
    for rep in 0..repetitions() {
        let t = app.user_tokens(&client, "inference:read").await;
        let rt = t["refresh_token"].as_str().expect("rt").to_string();
        let hash = tessera::crypto::sha256_hex(&rt);
        let answers = futures_util::future::join_all(
            (0..PARALLEL).map(|_| async { json(app.refresh(&client, &rt).await).await }),
        )
        .await;
        // docs/security.md §4 policy 2: every use inside the grace window succeeds, each
        // with its own new token; exactly one of them rotated the presented token.
        let mut issued = HashSet::new();
        for (status, body) in &answers {
            assert_eq!(
                *status, 200,
                "E6 repetition {rep}: a retry inside the grace window succeeds: {body}"
            );
            assert!(
                issued.insert(tessera::crypto::sha256_hex(
                    body["refresh_token"].as_str().expect("rt")
                )),
                "E6 repetition {rep}: each use gets its own token"
            );
        }
        let mut conn = app.state.pool.get().expect("conn");
        let (grant_id, rotated_at, replaced_by): (String, Option<i64>, Option<String>) =
            refresh_tokens::table
                .find(&hash)
                .select((
                    refresh_tokens::grant_id,
                    refresh_tokens::rotated_at,
                    refresh_tokens::replaced_by,
                ))
                .first(&mut conn)
                .expect("row");
        assert_eq!(rotated_at, Some(app.clock.now()), "rotated once, now");
        let successor = replaced_by.expect("the winner is recorded");
        assert!(
            issued.contains(&successor),
            "E6 repetition {rep}: the recorded successor is one of the issued tokens"
        );
        let children: Vec<String> = refresh_tokens::table
            .filter(refresh_tokens::grant_id.eq(&grant_id))
            .filter(refresh_tokens::generation.eq(1))
            .select(refresh_tokens::token_hash)
            .load(&mut conn)
            .expect("children");
        assert_eq!(
            children.into_iter().collect::<HashSet<_>>(),
            issued,
            "E6 repetition {rep}: one stored token per 200, no more"
        );
        let revoked: Option<i64> = grants::table
            .find(&grant_id)
            .select(grants::revoked_at)
            .first(&mut conn)
            .expect("grant");
        assert_eq!(revoked, None, "the grant survives retries in the window");
        drop(conn);
        // Past the window, the same token is reuse (E2): invalid_grant, grant revoked.
        app.clock.advance(grace + 1);
        let (status, body) = json(app.refresh(&client, &rt).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let any_child = answers[0].1["refresh_token"].as_str().expect("rt");
        assert_eq!(
            app.introspect(&rs, any_child).await,
            json!({"active": false}),
            "E2 repetition {rep}: reuse after the window revokes the family"
        );
    }
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
}

async fn r10_i6_a_limit_of_n_admits_exactly_n_of_a_parallel_burst_every_time(backend: Backend) {
    let Some(app) = racing_app(backend).await else {
        return;
    };
    let start = Instant::now();
    let rs = app.resource_server();
    let org = app.org(Plan::Free);
    const LIMIT: i64 = 15;
    const PARALLEL: usize = 45;
    // The manual clock stays inside one window for the whole burst.
    app.at_minute_start(1);
    for rep in 0..repetitions() {
        let key = app.api_key(
            &org,
            KeySpec {
                limit: Some(LIMIT),
                expiry: Expiry::Never,
                ..Default::default()
            },
        );
        // Half verify calls, half bearer calls to /api/v1: both count against one budget.
        let verify = (0..PARALLEL / 2).map(|_| {
            let key = key.key.clone();
            let app = &app;
            let rs = &rs;
            async move {
                let a = app.verify(rs, json!({"key": key})).await;
                assert_eq!(a.status, 200, "verify always answers 200");
                match a.body["code"].as_str() {
                    Some("VALID") => true,
                    Some("RATE_LIMITED") => false,
                    other => panic!("unexpected verdict {other:?}"),
                }
            }
        });
        let bearer = (PARALLEL / 2..PARALLEL).map(|_| {
            let key = key.key.clone();
            let app = &app;
            async move {
                let a = app
                    .api(reqwest::Method::GET, "/api/v1/api-keys", &key, None)
                    .await;
                match a.status {
                    200 => true,
                    429 => {
                        assert_eq!(a.header_i64("retry-after"), 59);
                        false
                    }
                    other => panic!("unexpected status {other}: {:?}", a.body),
                }
            }
        });
        let (v, b) = futures_util::future::join(
            futures_util::future::join_all(verify),
            futures_util::future::join_all(bearer),
        )
        .await;
        let admitted = v.iter().chain(&b).filter(|ok| **ok).count();
        assert_eq!(
            admitted, LIMIT as usize,
            "I6 repetition {rep}: a limit of {LIMIT} admits exactly {LIMIT} of {PARALLEL}"
        );
        let a = app.verify(&rs, json!({"key": key.key})).await;
        assert_eq!(a.body["code"], "RATE_LIMITED");
        assert_eq!(a.header_i64("x-ratelimit-remaining"), 0);
    }
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
}
