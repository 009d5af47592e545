//! Headless Chromium: `/settings/usage` renders real counts as an SVG chart with its data
//! table (docs/spec.md §10), and the settings pages fit a 1280 px and a 390 px wide window
//! without horizontal scrolling. Screenshots go to `$TESSERA_SCREENSHOTS` when it is set.

use fantoccini::Locator;
use reqwest::Method;

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, browser, spawn_app};

#[actix_web::test]
async fn br_the_usage_page_charts_real_counts_and_settings_pages_fit_1280_and_390_px() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(br) = browser::start().await else {
        return;
    };
    let c = &br.client;
    browser::signup(c, &app.address, "ada@example.com").await;
    let org = app.org_of("ada@example.com");
    let mut keys = Vec::new();
    for (i, name) in [
        "deploy bot",
        "nightly job",
        "a key with a rather long name for testing",
    ]
    .into_iter()
    .enumerate()
    {
        let k = app.api_key(
            &org,
            KeySpec {
                name,
                ..Default::default()
            },
        );
        for _ in 0..(i + 1) * 2 {
            let r = app.api(Method::GET, "/api/v1/api-keys", &k.key, None).await;
            assert_eq!(r.status, 200);
        }
        keys.push(k);
    }
    {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::usage::store::flush(&mut conn, &app.state.api_keys.hourly).expect("flush");
    }

    for width in [1280u32, 390] {
        browser::set_width(c, width).await;
        for range in ["24h", "7d", "30d"] {
            c.goto(&format!("{}/settings/usage?range={range}", app.address))
                .await
                .expect("goto");
            let svg = c.find(Locator::Id("usage-chart")).await.expect("chart");
            assert_eq!(
                svg.attr("role").await.expect("attr").as_deref(),
                Some("img")
            );
            let (_, _, w, h) = svg.rectangle().await.expect("size");
            assert!(w > 200.0 && h > 60.0, "the chart is drawn: {w}x{h}");
            let bars = c
                .find_all(Locator::Css("#usage-chart rect"))
                .await
                .expect("bars");
            assert_eq!(bars.len(), 3, "one bar piece per key in the one bucket");
            let total = c
                .find(Locator::Css("#usage-table tfoot td:last-child"))
                .await
                .expect("total cell")
                .text()
                .await
                .expect("text");
            assert_eq!(total, "12", "2 + 4 + 6 requests");
            let caption = c
                .find(Locator::Css("#usage-table caption"))
                .await
                .expect("caption")
                .text()
                .await
                .expect("text");
            assert!(caption.starts_with("Requests per"), "{caption}");
            assert!(
                browser::overflow(c).await <= 0,
                "usage {range} overflows at {width} px"
            );
            browser::shoot(c, &format!("usage-{range}-{width}")).await;
        }
        for (path, name) in [
            ("/settings/api-keys", "api-keys"),
            ("/settings/organization", "organization"),
            ("/settings/key-requests", "key-requests"),
        ] {
            c.goto(&format!("{}{path}", app.address))
                .await
                .expect("goto");
            assert!(
                browser::overflow(c).await <= 0,
                "{path} overflows at {width} px"
            );
            browser::shoot(c, &format!("{name}-{width}")).await;
            // The key list (its Age and Requests columns) further down the page.
            if name == "api-keys" {
                c.execute("document.getElementById('keys').scrollIntoView();", vec![])
                    .await
                    .expect("scroll");
                browser::shoot(c, &format!("{name}-list-{width}")).await;
            }
        }
        // The key list shows the last 24 hours' requests (6 for the third key).
        c.goto(&format!("{}/settings/api-keys", app.address))
            .await
            .expect("goto");
        let cell = c
            .find(Locator::Css(&format!(
                "tr[data-key-id='{}'] .requests-24h",
                keys[2].id
            )))
            .await
            .expect("requests cell")
            .text()
            .await
            .expect("text");
        assert_eq!(cell, "6");
    }
}
