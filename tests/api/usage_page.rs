//! `/settings/usage`, its CSV and the key list's last-24-hours column (docs/spec.md §10),
//! fed by real bearer calls counted by the server.

use reqwest::Method;
use tessera::clock::Clock;
use tessera::orgs::Plan;

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, TestApp, spawn_app};

crate::on_both_backends!(
    the_usage_page_charts_and_tabulates_requests_per_key_and_offers_csv,
    i8_the_usage_page_shows_only_the_own_organization,
);

/// `n` bearer calls with `key`.
async fn calls(app: &TestApp, key: &str, n: usize) {
    for _ in 0..n {
        let r = app.api(Method::GET, "/api/v1/api-keys", key, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

/// Writes the server's pending counts now (the server does so about once a second too).
fn flush(app: &TestApp) {
    let mut conn = app.state.pool.get().expect("conn");
    tessera::usage::store::flush(&mut conn, &app.state.api_keys.hourly).expect("flush");
}

/// The text of the table cell row `row_label` × the column at `col` (0 = row header).
fn cell(html: &str, row_label: &str, col: usize) -> String {
    let table = &html[html.find("<table id=\"usage-table\"").expect("table")..];
    let row_start = table
        .find(&format!(">{row_label}</time></th>"))
        .unwrap_or_else(|| panic!("no row {row_label}"));
    let row = &table[row_start..table[row_start..].find("</tr>").expect("row end") + row_start];
    // Each count cell carries its column's name as `data-label` (stacked cards, §6).
    row.split("<td class=\"num\"")
        .nth(col)
        .unwrap_or_else(|| panic!("no column {col} in {row}"))
        .split_once('>')
        .map_or("", |(_, rest)| rest)
        .split('<')
        .next()
        .expect("text")
        .to_string()
}

async fn the_usage_page_charts_and_tabulates_requests_per_key_and_offers_csv(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("ada@example.com").await;
    let org = app.org_of("ada@example.com");
    let deploy = app.api_key(
        &org,
        KeySpec {
            name: "deploy bot",
            ..Default::default()
        },
    );
    let nightly = app.api_key(
        &org,
        KeySpec {
            name: "nightly <job>",
            ..Default::default()
        },
    );
    let now = app.clock.now();
    // Two days ago: the deploy bot, twice; now: the nightly job three times, deploy once.
    app.clock.set(now - 2 * 86_400);
    calls(&app, &deploy.key, 2).await;
    app.clock.set(now);
    calls(&app, &nightly.key, 3).await;
    calls(&app, &deploy.key, 1).await;
    flush(&app);

    let (status, html) = app.page(&b, "/settings/usage?range=7d").await;
    assert_eq!(status, 200, "{html}");
    // The chart: an SVG image with a title and description, bars for both keys.
    assert!(html.contains(r#"<svg id="usage-chart" role="img" aria-labelledby="usage-chart-title usage-chart-desc""#), "{html}");
    assert!(html.contains(
        r#"<title id="usage-chart-title">Requests per day and key, last 7 days</title>"#
    ));
    assert!(
        html.contains("<desc id=\"usage-chart-desc\">6 requests in the last 7 days"),
        "{html}"
    );
    assert_eq!(
        html.matches("<rect x=").count(),
        3,
        "three stacked pieces: {html}"
    );
    assert!(
        html.contains("<title>") && html.contains("nightly &#60;job&#62;: 3"),
        "escaped names in the legend: {html}"
    );
    assert!(!html.contains("nightly <job>"), "H5: names are text");
    // The same numbers in a table with a caption, keys by total (nightly 3, deploy 3: by id).
    assert!(html.contains("<caption>Requests per day and key, last 7 days (UTC)</caption>"));
    let day = |t: i64| tessera::clock::rfc3339(t)[5..10].to_string();
    let first = if nightly.id < deploy.id {
        &nightly.id
    } else {
        &deploy.id
    };
    let col = |k: &tessera::api_keys::store::CreatedApiKey| if &k.id == first { 1 } else { 2 };
    assert_eq!(cell(&html, &day(now - 2 * 86_400), col(&deploy)), "2");
    assert_eq!(cell(&html, &day(now - 2 * 86_400), col(&nightly)), "0");
    assert_eq!(cell(&html, &day(now), col(&nightly)), "3");
    assert_eq!(cell(&html, &day(now), 3), "4", "the total column");
    assert!(html.contains(r#"<a href="/settings/usage.csv?range=7d" id="csv" download>"#));

    // 24 hours, per hour: only today's four requests.
    let (_, html) = app.page(&b, "/settings/usage?range=24h").await;
    assert!(
        html.contains("Requests per hour and key, last 24 hours"),
        "{html}"
    );
    assert!(html.contains("4 requests in the last 24 hours"), "{html}");
    let hour = tessera::clock::rfc3339(now)[11..13].to_string() + ":00";
    assert_eq!(cell(&html, &hour, 3), "4");
    let (_, html) = app.page(&b, "/settings/usage?range=30d").await;
    assert!(html.contains("6 requests in the last 30 days"), "{html}");

    // The CSV: one line per bucket, key and code.
    let r = b
        .get(format!("{}/settings/usage.csv?range=7d", app.address))
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .contains("usage-7d.csv")
    );
    let csv = r.text().await.expect("text");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("start,key_id,key_name,code,count"));
    let two_days_ago =
        tessera::clock::rfc3339(now - 2 * 86_400 - (now - 2 * 86_400).rem_euclid(86_400));
    assert!(
        csv.contains(&format!("{two_days_ago},{},deploy bot,VALID,2", deploy.id)),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");

    // A bad range is a 400 naming it; signed out is the login page.
    let (status, html) = app.page(&b, "/settings/usage?range=1y").await;
    assert_eq!(status, 400);
    assert!(html.contains("range"), "{html}");
    let (status, _) = app.page(&app.browser(), "/settings/usage").await;
    assert_eq!(status, 303);

    // The key list: each key's requests in the last 24 hours.
    let (_, html) = app.page(&b, "/settings/api-keys").await;
    assert!(
        html.contains(r#"<th class="num">Requests <span class="nowrap">(24 h)</span></th>"#),
        "{html}"
    );
    let row_of = |id: &str| {
        let start = html.find(&format!("data-key-id=\"{id}\"")).expect("row");
        let end = html[start..].find("</tr>").expect("end") + start;
        html[start..end].to_string()
    };
    assert!(
        row_of(&nightly.id)
            .contains(r#"<td class="num requests-24h" data-label="Requests (24 h)">3</td>"#)
    );
    assert!(
        row_of(&deploy.id)
            .contains(r#"<td class="num requests-24h" data-label="Requests (24 h)">1</td>"#)
    );
}

async fn i8_the_usage_page_shows_only_the_own_organization(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.user("ada@example.com").await;
    let other = app.org(Plan::Pro);
    let theirs = app.api_key(
        &other,
        KeySpec {
            name: "their secret project",
            ..Default::default()
        },
    );
    calls(&app, &theirs.key, 2).await;
    flush(&app);
    let (status, html) = app.page(&b, "/settings/usage?range=24h").await;
    assert_eq!(status, 200);
    assert!(html.contains("No requests in the last 24 hours."), "{html}");
    assert!(!html.contains("their secret project"));
    let r = b
        .get(format!("{}/settings/usage.csv?range=24h", app.address))
        .send()
        .await
        .expect("csv");
    let csv = r.text().await.expect("text");
    assert_eq!(csv, "start,key_id,key_name,code,count\r\n");
}
