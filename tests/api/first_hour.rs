//! Issue 18, the first hour as a person meets it (docs/spec.md §6, §1): the 404 page and the
//! JSON 404 of the programs' paths, the favicon, authorization error pages that name the
//! OAuth error code, and the CLI's help and its `--keys-dir` message.

use std::process::Command;

use crate::helpers::oauth::{REDIRECT, pkce};
use crate::helpers::{Backend, spawn_app};

crate::on_both_backends!(
    not_found_is_a_page_for_browsers_and_json_for_programs,
    the_favicon_is_served_from_our_origin_and_linked_from_every_page,
    a3_authorization_error_pages_name_the_oauth_error_code,
);

async fn not_found_is_a_page_for_browsers_and_json_for_programs(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.browser();
    let r = b
        .get(format!("{}/no/such/page", app.address))
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    assert!(
        r.headers().contains_key("content-security-policy"),
        "the usual headers"
    );
    let html = r.text().await.expect("html");
    assert!(
        html.contains("Page not found") && html.contains(r#"href="/""#),
        "{html}"
    );
    assert!(!html.contains("error-code"), "no OAuth code on a plain 404");

    for path in ["/oauth/nope", "/.well-known/nope", "/no/such/page"] {
        let r = b
            .get(format!("{}{path}", app.address))
            .header("Accept", "application/json")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["error"], "not_found", "{path}");
    }
    // /oauth paths are JSON whatever the Accept header says.
    let r = b
        .get(format!("{}/oauth/nope", app.address))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    // /api/v1 keeps its own JSON error.
    let r = b
        .get(format!("{}/api/v1/nope", app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["error"]["message"].is_string(), "{body}");
}

async fn the_favicon_is_served_from_our_origin_and_linked_from_every_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.browser();
    let login = b
        .get(format!("{}/login", app.address))
        .send()
        .await
        .expect("get");
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(csp.contains("img-src 'self'"), "CSP unchanged: {csp}");
    let html = login.text().await.expect("html");
    assert!(
        html.contains(r#"<link rel="icon" href="/static/favicon.svg""#),
        "{html}"
    );
    for path in ["/static/favicon.svg", "/favicon.ico"] {
        let r = b
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "image/svg+xml", "{path}");
        let body = r.text().await.expect("svg");
        assert!(body.starts_with("<svg") && !body.contains("http://www.w3.org/1999/xlink"));
        assert!(!body.contains("href="), "nothing loaded from elsewhere");
    }
}

async fn a3_authorization_error_pages_name_the_oauth_error_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("inference:read");
    let (_, challenge) = pkce();
    let b = app.user("dev@example.com").await;
    let base = [
        ("response_type", "code"),
        ("scope", "inference:read"),
        ("state", "s"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("client_id", "cli_unknown"), ("redirect_uri", REDIRECT)],
            "invalid_client",
        ),
        (
            &[
                ("client_id", client.id.as_str()),
                ("redirect_uri", "https://evil.example/cb"),
            ],
            "invalid_redirect_uri",
        ),
        (&[("redirect_uri", REDIRECT)], "invalid_request"),
        (
            &[
                ("client_id", client.id.as_str()),
                ("client_id", client.id.as_str()),
                ("redirect_uri", REDIRECT),
            ],
            "invalid_request",
        ),
    ];
    for (params, code) in cases {
        let mut all = base.to_vec();
        all.extend_from_slice(params);
        let r = app.authorize_get(&b, &all).await;
        assert_eq!(r.status(), 400, "{params:?}");
        assert!(r.headers().get("location").is_none(), "never redirected");
        let html = r.text().await.expect("html");
        assert!(
            html.contains(&format!(r#"<code id="error-code">{code}</code>"#)),
            "{params:?} shows {code}: {html}"
        );
    }
}

fn tessera(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(std::env::temp_dir())
        .env_remove("TESSERA_KEYS_DIR")
        .env_remove("TESSERA_DATABASE_URL")
        .args(args)
        .output()
        .expect("run tessera")
}

/// `--help` lists the ~30 settings once, under `tessera --help` (and `serve --help`), not
/// under every admin command, and every admin command's flags are described.
#[test]
fn help_lists_the_settings_once_and_describes_admin_flags() {
    let top = tessera(&["--help"]);
    let top = String::from_utf8_lossy(&top.stdout).to_string();
    assert!(
        top.contains("--database-url") && top.contains("--log-format"),
        "{top}"
    );
    for cmd in [
        &["org", "create", "--help"][..],
        &["api-key", "create", "--help"],
        &["client", "create", "--help"],
    ] {
        let out = tessera(cmd);
        assert!(out.status.success(), "{cmd:?}");
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            !help.contains("--jwks-max-age-seconds"),
            "{cmd:?} repeats settings: {help}"
        );
        assert!(
            help.contains("tessera --help"),
            "{cmd:?} points to them: {help}"
        );
        assert!(help.contains("--name <NAME>"), "{help}");
        // The description follows the flag, on its line or the next.
        let options = help.split("Options:").nth(1).expect("options");
        let after = options.split("--name <NAME>").nth(1).expect("flag");
        let description = after
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .expect("text");
        assert!(!description.starts_with('-'), "--name is described: {help}");
    }
    let serve = tessera(&["serve", "--help"]);
    let serve = String::from_utf8_lossy(&serve.stdout).to_string();
    assert!(serve.contains("--database-url"), "{serve}");
    // Still accepted after any subcommand.
    let out = tessera(&["api-key", "check", "nope", "--key-prefix", "acme"]);
    assert_eq!(out.status.code(), Some(1), "a verdict, not a usage error");
}

#[test]
fn keys_dir_pointing_at_a_file_says_so() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("keys.pem");
    std::fs::write(&file, "not a directory").expect("write");
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let path = file.to_str().expect("utf-8");
    let out = tessera(&["--database-url", &db, "--keys-dir", path, "keys", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a file, not a directory") && err.contains(path),
        "{err}"
    );
    assert!(err.contains("keys_dir"), "names the setting: {err}");
}

/// Starts `tessera serve` in `dir` (stderr into `log`); returns the child and the banner.
fn serve_in(dir: &std::path::Path, log: &std::path::Path) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir)
        .args(["--bind", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .env_remove("TESSERA_KEYS_DIR")
        .env_remove("TESSERA_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // Up to the line about accounts, and the next one (the command, when there is none).
    let mut banner = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        let about_accounts = line.contains("account");
        banner.push(line);
        if about_accounts {
            if banner.last().is_some_and(|l| l.contains("no account")) {
                banner.extend(lines.next().and_then(Result::ok));
            }
            break;
        }
    }
    (child, banner.join("\n"))
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The banner tells the truth about accounts (issue 18), and a gateway with routes but no
/// audience is warned about at start (every access token would be refused silently).
#[test]
fn the_banner_tells_whether_an_account_exists_and_a_gateway_without_audience_is_warned_about() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("tessera.toml"),
        "[gateway]\n[[gateway.routes]]\npath = \"/v1/*\"\nscopes = [\"inference:read\"]\n",
    )
    .expect("toml");
    let log = dir.path().join("serve.log");
    let (child, banner) = serve_in(dir.path(), &log);
    assert!(
        banner.contains("no account yet") && banner.contains("user create"),
        "{banner}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("no audience") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    stop(child);
    assert!(
        text.contains("WARN") && text.contains("[gateway] has routes but no audience"),
        "{text}"
    );

    let mut create = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .args([
            "user",
            "create",
            "--email",
            "first@example.com",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("user create");
    {
        use std::io::Write;
        let mut stdin = create.stdin.take().expect("stdin");
        stdin.write_all(b"a-long-password\n").expect("write");
    }
    assert!(create.wait().expect("wait").success());
    let (child, banner) = serve_in(dir.path(), &log);
    stop(child);
    assert!(
        banner.contains("1 account; sign in at http://127.0.0.1:"),
        "{banner}"
    );
    assert!(
        !banner.contains("user create") && !banner.contains("first"),
        "{banner}"
    );
}

/// The page's width beyond the window's (0: nothing overflows).
async fn overflow(c: &fantoccini::Client) -> i64 {
    c.execute(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        vec![],
    )
    .await
    .expect("script")
    .as_i64()
    .expect("number")
}

/// In Chromium: the key's one-time page survives no reload (the browser's own refresh
/// shows "already shown" and makes no second key), and the pages this issue touched (the
/// one-time page, the 404 page, an authorization error page) fit 1280 px and 390 px without
/// horizontal scrolling. Screenshots go to `$TESSERA_SCREENSHOTS` when it is set.
#[actix_web::test]
async fn br_one_time_key_page_reload_and_error_pages_at_1280_and_390_px() {
    use crate::helpers::browser;
    use fantoccini::Locator;
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(br) = browser::start().await else {
        return;
    };
    let c = &br.client;
    let shoot = |name: String| async move {
        if let Some(dir) = std::env::var_os("TESSERA_SCREENSHOTS") {
            let png = c.screenshot().await.expect("screenshot");
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png)
                .expect("write screenshot");
        }
    };
    browser::signup(c, &app.address, "first@example.com").await;
    c.goto(&format!("{}/settings/api-keys", app.address))
        .await
        .expect("goto");
    c.wait()
        .for_element(Locator::Id("key-name"))
        .await
        .expect("create form")
        .send_keys("first key")
        .await
        .expect("type");
    c.find(Locator::Css("input[name=scope][value='inference:read']"))
        .await
        .expect("checkbox")
        .click()
        .await
        .expect("tick");
    c.find(Locator::Id("create"))
        .await
        .expect("create")
        .click()
        .await
        .expect("submit");
    c.wait()
        .for_element(Locator::Id("new-key-value"))
        .await
        .expect("the new key is shown");
    let url = c.current_url().await.expect("url");
    assert!(
        url.query().is_some_and(|q| q.starts_with("shown=")),
        "{url}"
    );
    for width in [1280u32, 390] {
        c.set_window_size(width, 900).await.expect("size");
        assert_eq!(overflow(c).await, 0, "the new-key page at {width} px");
    }
    shoot("first-hour-new-key-390".into()).await;
    c.refresh().await.expect("reload");
    c.wait()
        .for_element(Locator::Id("already-shown"))
        .await
        .expect("a reload says the key was already shown");
    assert!(
        c.find(Locator::Id("new-key-value")).await.is_err(),
        "no key on reload"
    );
    let org = app.org_of("first@example.com");
    let keys = {
        let mut conn = app.state.pool.get().expect("conn");
        tessera::api_keys::store::list(&mut conn, &org).expect("keys")
    };
    assert_eq!(keys.len(), 1, "the reload made no second key");

    let (_, challenge) = pkce();
    let bad_client = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", "cli_unknown"),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .expect("query");
    let pages = [
        ("already-shown", "/settings/api-keys?shown=used".to_string()),
        ("not-found", "/no/such/page".to_string()),
        ("authorize-error", format!("/oauth/authorize?{bad_client}")),
    ];
    for width in [1280u32, 390] {
        c.set_window_size(width, 900).await.expect("size");
        for (name, path) in &pages {
            c.goto(&format!("{}{path}", app.address))
                .await
                .expect("goto");
            assert_eq!(overflow(c).await, 0, "{name} at {width} px");
            shoot(format!("first-hour-{name}-{width}")).await;
        }
    }
    let code = c
        .find(Locator::Id("error-code"))
        .await
        .expect("the code is on the page")
        .text()
        .await
        .expect("text");
    assert_eq!(code, "invalid_client");
}
