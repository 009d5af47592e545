//! Findings of a fresh user's trial of the device flow (docs/spec.md §9): a user code with
//! spaces is read, not counted as a failure; an oversized `/device` form is 413; a
//! client's waiting device codes are bounded.

use serde_json::Value;
use tessera::clients::{GrantType, NewClient};
use tessera::oauth::device::MAX_WAITING_PER_CLIENT;
use tessera::scope::ScopeSet;

use crate::helpers::oauth::json;
use crate::helpers::{Backend, TestApp, hidden, spawn_app};

crate::on_both_backends!(
    k5_user_codes_with_spaces_are_read_and_never_count_as_failures,
    j6_an_oversized_device_form_is_413,
    k4_device_codes_waiting_per_client_are_bounded,
);

fn cli_client(app: &TestApp) -> String {
    app.register(NewClient {
        name: "Example CLI".into(),
        public: true,
        grant_types: Some(vec![GrantType::DeviceCode]),
        scope: Some(ScopeSet::parse("openid").expect("scope")),
        ..Default::default()
    })
    .0
}

async fn start(app: &TestApp, client_id: &str) -> (u16, Value) {
    json(
        app.post_form(
            "/oauth/device_authorization",
            None,
            &format!("client_id={client_id}"),
        )
        .await,
    )
    .await
}

async fn k5_user_codes_with_spaces_are_read_and_never_count_as_failures(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = cli_client(&app);
    let b = app.user("spaces@example.com").await;
    // More tries than the throttle allows (5 failures a minute): none may count.
    for i in 0..8 {
        let (status, body) = start(&app, &client).await;
        assert_eq!(status, 200, "{body}");
        let shown = body["user_code"].as_str().expect("user_code").to_string();
        let bare = shown.replace('-', "");
        let (a, z) = bare.split_at(4);
        let typed = match i % 4 {
            0 => format!("  {shown}  "),
            1 => format!("{a} {z}"),
            2 => format!("\t{} {} \n", a.to_lowercase(), z.to_lowercase()),
            _ => format!("   {a}  -  {z}       "),
        };
        let (_, html) = app.page(&b, "/device").await;
        let r = app
            .post_page(
                &b,
                "/device",
                &[
                    ("csrf_token", hidden(&html, "csrf_token").as_str()),
                    ("user_code", &typed),
                ],
            )
            .await;
        let status = r.status().as_u16();
        let html = r.text().await.expect("html");
        assert_eq!(status, 200, "{typed:?}: {html}");
        assert!(
            html.contains("A device wants to access your account"),
            "{typed:?}"
        );
        assert!(
            html.contains(&shown),
            "{typed:?}: the code is shown normalised"
        );
    }
}

async fn j6_an_oversized_device_form_is_413(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("big@example.com").await;
    let (_, html) = app.page(&b, "/device").await;
    let big = format!(
        "csrf_token={}&user_code={}",
        hidden(&html, "csrf_token"),
        "B".repeat(2 * 1024 * 1024)
    );
    let r = b
        .post(format!("{}/device", app.address))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    // A small form still works afterwards.
    let (status, _) = app.page(&b, "/device").await;
    assert_eq!(status, 200);
}

async fn k4_device_codes_waiting_per_client_are_bounded(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = cli_client(&app);
    let other = cli_client(&app);
    {
        // One short of the bound, written directly (minting 1000 over HTTP is slow).
        use diesel::prelude::*;
        use tessera::db::schema::device_codes;
        let mut conn = app.state.pool.get().expect("conn");
        let now = app.state.clock.now();
        for i in 0..MAX_WAITING_PER_CLIENT - 1 {
            diesel::insert_into(device_codes::table)
                .values((
                    device_codes::device_code_hash.eq(format!("d{i}")),
                    device_codes::user_code_hash.eq(format!("u{i}")),
                    device_codes::client_id.eq(&client),
                    device_codes::scope.eq("openid"),
                    device_codes::resource.eq(""),
                    device_codes::status.eq("pending"),
                    device_codes::poll_interval.eq(5_i64),
                    device_codes::created_at.eq(now),
                    device_codes::expires_at.eq(now + 600),
                ))
                .execute(&mut conn)
                .expect("insert");
        }
    }
    let (status, body) = start(&app, &client).await;
    assert_eq!(status, 200, "{body}");
    let r = app
        .post_form(
            "/oauth/device_authorization",
            None,
            &format!("client_id={client}"),
        )
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "slow_down");
    // Another client is not affected, and expired codes do not count.
    let (status, _) = start(&app, &other).await;
    assert_eq!(status, 200);
    app.clock.advance(601);
    let (status, body) = start(&app, &client).await;
    assert_eq!(status, 200, "{body}");
}
