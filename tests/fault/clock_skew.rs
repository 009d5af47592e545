//! R11: two instances on one database, B's clock 90 s ahead of A's. Codes have no leeway
//! (docs/security.md §2): each is judged by the clock of the instance that redeems it. Access
//! tokens are judged with `--jwt-leeway-seconds` (30 s) on both `exp` and `iat`: no
//! instance accepts one past `exp` + leeway by its own clock, and a token from an instance
//! further ahead than the leeway is refused until the other's clock catches up (fail closed).

use serde_json::json;
use tessera::clock::{Clock as _, ManualClock};

use crate::helpers::oauth::json;
use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(r11_an_instance_90_s_ahead_honours_lifetimes_and_the_leeway_only,);

const SKEW: i64 = 90;

async fn r11_an_instance_90_s_ahead_honours_lifetimes_and_the_leeway_only(backend: Backend) {
    let Some(a) = spawn_app(backend).await else {
        return;
    };
    let b_clock = ManualClock::new(a.clock.now() + SKEW);
    let b = a.second_instance_with_clock(b_clock.clone()).await;
    let set = |t: i64| {
        a.clock.set(t);
        b_clock.set(t + SKEW);
    };
    let rs = a.resource_server();
    let client = a.web_client("inference:read");
    let leeway = a.state.settings.jwt_leeway_seconds;
    let ttl = a.state.settings.access_token_ttl_seconds;
    assert_eq!(
        (leeway, a.state.settings.code_ttl_seconds),
        (30, 60),
        "defaults"
    );

    // A code from A (60 s) is already expired by B's clock: no leeway for codes.
    let browser = a.user("ada@example.com").await;
    let (code, verifier) = a.code(&browser, &client, "inference:read").await;
    let (status, err) = json(b.exchange(&client, &code, &verifier).await).await;
    assert_eq!(
        (
            status,
            err["error"].as_str(),
            err["error_description"].as_str()
        ),
        (400, Some("invalid_grant"), Some("The code has expired.")),
        "R11: B judges A's code by its own clock"
    );

    // An access token from A: B accepts it until exp + leeway by B's clock, never later.
    let t0 = a.clock.now();
    let t = a.user_tokens(&client, "inference:read").await;
    let at = t["access_token"].as_str().expect("at").to_string();
    let exp = t0 + ttl;
    assert_eq!(b.introspect(&rs, &at).await["active"], true);
    set(exp + leeway - SKEW - 1);
    assert_eq!(b.introspect(&rs, &at).await["active"], true);
    set(exp + leeway - SKEW);
    assert_eq!(
        b.introspect(&rs, &at).await,
        json!({"active": false}),
        "R11: nothing valid past exp + leeway on B's clock"
    );
    set(exp + leeway - 1);
    assert_eq!(a.introspect(&rs, &at).await["active"], true, "A, behind");
    set(exp + leeway);
    assert_eq!(
        a.introspect(&rs, &at).await,
        json!({"active": false}),
        "R11: nothing valid past exp + leeway on A's clock"
    );

    // A token from B, 90 s ahead: its iat lies 90 s in A's future, beyond the 30 s leeway,
    // so A refuses it until A's clock is within the leeway of B's.
    let (id, secret) = a.machine_client("inference:read");
    let r = b
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status(), 200);
    let from_b = r.json::<serde_json::Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("at")
        .to_string();
    assert_eq!(b.introspect(&rs, &from_b).await["active"], true);
    assert_eq!(
        a.introspect(&rs, &from_b).await,
        json!({"active": false}),
        "R11: iat beyond the leeway in A's future"
    );
    let now = a.clock.now();
    set(now + SKEW - leeway - 1);
    assert_eq!(a.introspect(&rs, &from_b).await, json!({"active": false}));
    set(now + SKEW - leeway);
    assert_eq!(
        a.introspect(&rs, &from_b).await["active"],
        true,
        "R11: accepted once iat is within the leeway"
    );
}
