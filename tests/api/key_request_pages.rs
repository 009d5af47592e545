//! Key requests on the pages and the CLI (docs/spec.md §10): a member of an organization
//! whose policy forbids creating keys asks on `/settings/key-requests`, an admin approves or
//! denies there (or with `tessera api-key request`), the requester gets the key once.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::orgs::Role;

use crate::helpers::api::KeySpec;
use crate::helpers::{Backend, TestApp, spawn_app};

crate::on_both_backends!(
    i8_members_ask_admins_approve_and_the_requester_sees_the_key_once,
    operators_list_approve_and_deny_key_requests_with_the_cli,
);

/// The CSRF token of the form posting to `action` on `html`.
fn token_for(html: &str, action: &str) -> String {
    let form = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form for {action} in {html}"));
    crate::helpers::hidden(&html[form..], "csrf_token")
}

/// The id of the request named `name` on `html`.
fn id_named(html: &str, name: &str) -> String {
    html.split("data-request-id=\"")
        .skip(1)
        .find(|row| {
            row.contains(&format!(
                "\">\n<td data-label=\"Name\"><strong>{name}</strong></td>"
            ))
        })
        .unwrap_or_else(|| panic!("no request {name} in {html}"))
        .split('"')
        .next()
        .expect("id")
        .to_string()
}

fn status_of(html: &str, id: &str) -> String {
    let row = &html[html
        .find(&format!("data-request-id=\"{id}\""))
        .expect("row")..];
    let marker = "<td class=\"status\" data-label=\"Status\">";
    let cell = &row[row.find(marker).expect("status") + marker.len()..];
    cell.split('<').next().expect("text").to_string()
}

/// An organization whose admin signed up through the pages and whose members may not
/// create keys, with a member `mia` signed in to it. Returns (admin browser, member
/// browser, org id).
async fn strict_org(app: &TestApp) -> (reqwest::Client, reqwest::Client, String) {
    let boss = app.user("boss@example.com").await;
    let org = app.org_of("boss@example.com");
    let cli_admin = app.api_key(&org, KeySpec::default());
    let r = app
        .api(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}"),
            &cli_admin.key,
            Some(json!({"members_can_create_keys": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mia = app.user("mia@example.com").await;
    {
        let mut conn = app.state.pool.get().expect("conn");
        let user = tessera::users::store::find_by_email(&mut conn, "mia@example.com")
            .expect("query")
            .expect("user");
        tessera::orgs::store::add_member(&mut conn, &org, &user.id, Role::Member, app.clock.now())
            .expect("member");
    }
    let r = app
        .submit(
            &mia,
            "/settings/api-keys",
            "/settings/org",
            &[
                ("org_id", org.as_str()),
                ("return_to", "/settings/api-keys"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "switched to the strict organization");
    (boss, mia, org)
}

async fn ask(app: &TestApp, b: &reqwest::Client, name: &str) -> (u16, String) {
    // One second apart, so that "newest first" is well defined.
    app.clock.advance(1);
    let r = app
        .submit(
            b,
            "/settings/key-requests",
            "/settings/key-requests",
            &[
                ("name", name),
                ("scope", "inference:read"),
                ("reason", "CI needs to call the inference API"),
                ("expires_in_days", "30"),
            ],
        )
        .await;
    (r.status().as_u16(), r.text().await.expect("html"))
}

async fn i8_members_ask_admins_approve_and_the_requester_sees_the_key_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (boss, mia, _org) = strict_org(&app).await;

    // The member's key page sends them to key requests instead of the create form.
    let (_, html) = app.page(&mia, "/settings/api-keys").await;
    assert!(html.contains(r#"id="ask-instead""#), "{html}");
    assert!(!html.contains(r#"id="create-key""#));
    let (status, html) = ask(&app, &mia, "ci bot").await;
    assert_eq!(status, 201, "{html}");
    assert!(html.contains("was sent to the organization"), "{html}");
    let id = id_named(&html, "ci bot");
    assert_eq!(status_of(&html, &id), "pending");
    assert!(!html.contains("class=\"approve"), "members do not decide");
    // A bad form names the field and keeps what was typed.
    let r = app
        .submit(
            &mia,
            "/settings/key-requests",
            "/settings/key-requests",
            &[
                ("name", "no reason"),
                ("scope", "inference:read"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.expect("html");
    assert!(html.contains("reason must be"), "{html}");
    assert!(html.contains(r#"value="no reason""#));

    // The admins see a notice on their key page, and the request with its buttons.
    let (_, html) = app.page(&boss, "/settings/api-keys").await;
    assert!(
        html.contains("1 key request waits for your decision."),
        "{html}"
    );
    assert!(html.contains(r#"id="create-key""#), "admins still create");
    let (_, html) = app.page(&boss, "/settings/key-requests").await;
    assert!(html.contains("CI needs to call the inference API"));
    // Who asked, by email, never a raw user id.
    assert!(
        html.contains(r#"<td data-label="Asked by">mia@example.com</td>"#),
        "{html}"
    );
    assert!(
        !html.contains(r#"data-label="Asked by"><code>usr_"#),
        "{html}"
    );
    let approve = format!("/settings/key-requests/{id}/approve");
    let token = token_for(&html, &approve);
    // The member cannot use the admin's token (bound to the session) nor decide.
    let r = app
        .post_page(&mia, &approve, &[("csrf_token", token.as_str())])
        .await;
    assert_eq!(r.status(), 403, "H1: another session's token");
    let r = app
        .post_page(&boss, &approve, &[("csrf_token", token.as_str())])
        .await;
    assert_eq!(r.status(), 303);
    let r = app
        .post_page(&boss, &approve, &[("csrf_token", token.as_str())])
        .await;
    assert_eq!(r.status(), 409, "decided once");

    // The requester claims the key: shown once, it works; a second claim is 410.
    let (_, html) = app.page(&mia, "/settings/key-requests").await;
    assert_eq!(status_of(&html, &id), "approved");
    let claim = format!("/settings/key-requests/{id}/claim");
    let token = token_for(&html, &claim);
    let r = app
        .post_page(&mia, &claim, &[("csrf_token", token.as_str())])
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.expect("html");
    let start = html.find("tsr_sk_").expect("key shown");
    let key: String = html[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let rs = app.resource_server();
    let v = app.verify(&rs, json!({"key": key})).await;
    assert_eq!(v.body["code"], "VALID", "{}", v.body);
    assert_eq!(v.body["scopes"], json!(["inference:read"]));
    let r = app
        .post_page(&mia, &claim, &[("csrf_token", token.as_str())])
        .await;
    assert_eq!(r.status(), 410);
    let (_, html) = app.page(&mia, "/settings/key-requests").await;
    assert_eq!(status_of(&html, &id), "claimed");
    assert!(!html.contains(&key), "never shown again");

    // Denied: no claim button, and a claim is refused.
    let (_, html) = ask(&app, &mia, "second").await;
    let denied = id_named(&html, "second");
    let (_, html) = app.page(&boss, "/settings/key-requests").await;
    let deny = format!("/settings/key-requests/{denied}/deny");
    let r = app
        .post_page(
            &boss,
            &deny,
            &[("csrf_token", token_for(&html, &deny).as_str())],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (_, html) = app.page(&mia, "/settings/key-requests").await;
    assert_eq!(status_of(&html, &denied), "denied");
    assert!(!html.contains(&format!("/settings/key-requests/{denied}/claim")));
    let (_, html) = app.page(&boss, "/settings/api-keys").await;
    assert!(!html.contains("wait"), "no pending requests left: {html}");
}

fn cli(app: &TestApp, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--database-url")
        .arg(&app.db().url)
        .arg("--keys-dir")
        .arg(app.db().keys_dir())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tessera");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

async fn operators_list_approve_and_deny_key_requests_with_the_cli(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_boss, mia, org) = strict_org(&app).await;
    let (_, html) = ask(&app, &mia, "first").await;
    let first = id_named(&html, "first");
    let (_, html) = ask(&app, &mia, "second").await;
    let second = id_named(&html, "second");
    assert_ne!(first, second);

    let list = cli(&app, &["api-key", "request", "list", "--org", &org]);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "newest first");
    let r = cli(&app, &["api-key", "request", "approve", &first]);
    assert_eq!(r["status"], "approved");
    assert_eq!(r["decided_by"], "cli");
    let r = cli(&app, &["api-key", "request", "deny", &second]);
    assert_eq!(r["status"], "denied");
    // Decided once; an unknown id is named.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--database-url")
        .arg(&app.db().url)
        .args(["api-key", "request", "deny", &first])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no longer pending"));
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--database-url")
        .arg(&app.db().url)
        .args(["api-key", "request", "approve", "kreq_nope"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kreq_nope"));
    // The page shows what the operator decided; the member claims the approved key.
    let (_, html) = app.page(&mia, "/settings/key-requests").await;
    assert_eq!(status_of(&html, &first), "approved");
    assert_eq!(status_of(&html, &second), "denied");
}
