//! docs/security.md H7: secrets never reach the logs. The real binary serves with `RUST_LOG=trace`
//! while a full flow runs against it; afterwards no issued code, token, secret or password
//! appears anywhere in what it logged. And docs/spec.md §7: at the default level, an access
//! line per request and a warning per refused authentication or throttled request.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::helpers::hidden;
use crate::helpers::oauth::{REDIRECT, pkce, query_param};

fn cli(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    if let Some(s) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("json")
}

#[actix_web::test]
async fn h7_a_full_flow_under_trace_logging_logs_no_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let log_path = dir.path().join("server.log");
    let password = "trace-test-password-42";
    // Admin commands refuse a database that does not exist yet (docs/spec.md §1).
    let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("migrate")
        .current_dir(dir.path())
        .output()
        .expect("migrate");
    assert!(migrate.status.success(), "migrate: {migrate:?}");
    cli(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            "ada@example.com",
            "--password-stdin",
        ],
        Some(&format!("{password}\n")),
    );
    let web = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Web",
            "--redirect-uri",
            REDIRECT,
        ],
        None,
    );
    let machine = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Batch",
            "--grant-types",
            "client_credentials",
        ],
        None,
    );
    let mut server = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("serve");
    let first = BufReader::new(server.stdout.take().expect("stdout"))
        .lines()
        .next()
        .expect("line")
        .expect("utf8");
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url")
        .to_string();

    let mut secrets: Vec<String> = vec![password.to_string()];
    let b = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = b
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let r = b
        .post(format!("{base}/login"))
        .form(&[
            ("email", "ada@example.com"),
            ("password", password),
            ("csrf_token", &hidden(&page, "csrf_token")),
            ("return_to", "/"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("tessera_session="))
        .expect("cookie");
    secrets.push(
        session
            .split(';')
            .next()
            .expect("pair")
            .trim_start_matches("tessera_session=")
            .to_string(),
    );

    let (verifier, challenge) = pkce();
    let web_id = web["client_id"].as_str().expect("id");
    let web_secret = web["client_secret"].as_str().expect("secret");
    secrets.extend([verifier.clone(), web_secret.to_string()]);
    let q = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", web_id),
        ("redirect_uri", REDIRECT),
        ("scope", "inference:read"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ])
    .expect("query");
    let html = b
        .get(format!("{base}/oauth/authorize?{q}"))
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("html");
    let r = b
        .post(format!("{base}/oauth/authorize"))
        .form(&[
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
            ("decision", "approve".into()),
        ])
        .send()
        .await
        .expect("consent");
    let code = query_param(r.headers()["location"].to_str().expect("ascii"), "code").expect("code");
    secrets.push(code.clone());
    let token_form = |body: String, id: &str, secret: &str| {
        let b = b.clone();
        let url = format!("{base}/oauth/token");
        let (id, secret) = (id.to_string(), secret.to_string());
        async move {
            let r = b
                .post(url)
                .basic_auth(id, Some(secret))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("token");
            r.json::<serde_json::Value>().await.expect("json")
        }
    };
    let body = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ])
    .expect("form");
    let t = token_form(body, web_id, web_secret).await;
    let rt = t["refresh_token"].as_str().expect("rt").to_string();
    secrets.extend([
        t["access_token"].as_str().expect("at").to_string(),
        rt.clone(),
    ]);
    let t2 = token_form(
        format!("grant_type=refresh_token&refresh_token={rt}"),
        web_id,
        web_secret,
    )
    .await;
    secrets.extend([
        t2["access_token"].as_str().expect("at").to_string(),
        t2["refresh_token"].as_str().expect("rt").to_string(),
    ]);
    // A replayed code and a failed client authentication are logged too: still no secret.
    token_form(format!("grant_type=authorization_code&code={code}&code_verifier={verifier}&redirect_uri={REDIRECT}"), web_id, web_secret).await;
    token_form(
        "grant_type=client_credentials".into(),
        web_id,
        "tsr_cs_wrong-guess-value",
    )
    .await;
    let m_id = machine["client_id"].as_str().expect("id");
    let m_secret = machine["client_secret"].as_str().expect("secret");
    let cc = token_form("grant_type=client_credentials".into(), m_id, m_secret).await;
    secrets.extend([
        m_secret.to_string(),
        cc["access_token"].as_str().expect("at").to_string(),
    ]);

    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let logs = std::fs::read_to_string(&log_path).expect("logs");
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logging was on"
    );
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "a secret ({}…) appears in the logs",
            &s[..6.min(s.len())]
        );
    }
    // Nor do JWT payloads or signatures (each part of a token, split at the dots).
    for part in secrets
        .iter()
        .flat_map(|s| s.split('.'))
        .filter(|p| p.len() > 20)
    {
        assert!(!logs.contains(part));
    }
}

/// Starts the real binary in `dir` with the default log level (no `RUST_LOG`), its stderr
/// in `log` (a file: not a terminal); returns the child and its base URL.
fn serve_default_logging(
    dir: &std::path::Path,
    log: &std::path::Path,
) -> (std::process::Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir)
        .args(["--bind", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("serve");
    let first = BufReader::new(server.stdout.take().expect("stdout"))
        .lines()
        .next()
        .expect("line")
        .expect("utf8");
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url")
        .to_string();
    (server, base)
}

/// docs/spec.md §7: at the default level every request has an `info` access line (route
/// pattern, status, latency in ms rounded to a tenth; no query string or path value), every
/// refused authentication (login, client authentication, bearer, verify caller) and every
/// throttled request a `warn` line; no ANSI colours when stderr is not a terminal.
#[actix_web::test]
async fn access_lines_at_info_and_refusals_at_warn_without_colours_off_a_terminal() {
    let dir = tempfile::tempdir().expect("dir");
    let log_path = dir.path().join("server.log");
    let (mut server, base) = serve_default_logging(dir.path(), &log_path);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let secret_query = "token=tsr_sk_QueryStringSecret0000000000";
    let r = http
        .get(format!("{base}/healthz?{secret_query}"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{base}/oauth/register/client-id-in-the-path"))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 401, "bearer missing");
    let r = http
        .post(format!("{base}/oauth/token"))
        .basic_auth("no-such-client", Some("wrong-secret-value"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 401, "client authentication");
    let r = http
        .get(format!("{base}/api/v1/api-keys"))
        .bearer_auth("tsr_sk_NotAKeyNotAKeyNotAKeyNotAKey000000")
        .send()
        .await
        .expect("api");
    assert_eq!(r.status(), 401, "bearer");
    let r = http
        .post(format!("{base}/api/v1/keys/verify"))
        .basic_auth("no-such-server", Some("wrong-secret-value"))
        .json(&serde_json::json!({"key": "tsr_sk_x"}))
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), 401, "verify caller");
    // Failed logins until the throttle answers 429.
    let b = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = b
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let token = hidden(&page, "csrf_token");
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let r = b
            .post(format!("{base}/login"))
            .form(&[
                ("email", "nobody@example.com"),
                ("password", "wrong-password-value"),
                ("csrf_token", token.as_str()),
            ])
            .send()
            .await
            .expect("login");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 403).count(), 10);
    assert_eq!(statuses.last(), Some(&429));

    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let logs = std::fs::read_to_string(&log_path).expect("logs");
    assert!(
        !logs.contains('\u{1b}'),
        "no ANSI escapes off a terminal:\n{logs}"
    );
    assert!(
        !logs.contains("DEBUG") && !logs.contains("TRACE"),
        "default level is info"
    );
    for leaked in [
        "QueryStringSecret",
        "client-id-in-the-path",
        "wrong-secret-value",
        "NotAKey",
        "nobody@example.com",
        "wrong-password-value",
        token.as_str(),
    ] {
        assert!(!logs.contains(leaked), "{leaked} in the logs:\n{logs}");
    }
    let lines: Vec<&str> = logs.lines().collect();
    let find = |level: &str, route: &str, status: u16, message: &str| -> Vec<&str> {
        lines
            .iter()
            .copied()
            .filter(|l| {
                l.contains(level)
                    && l.contains(message)
                    && l.contains(&format!("route=\"{route}\" "))
                    && l.contains(&format!("status={status}"))
            })
            .collect()
    };
    let access = find(" INFO ", "/healthz", 200, "request");
    assert_eq!(access.len(), 1, "{logs}");
    assert!(access[0].contains(r#"method="GET""#), "{}", access[0]);
    let latency = access[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("latency_ms="))
        .expect("latency_ms");
    let value: f64 = latency.parse().expect("a number");
    assert!(value >= 0.0, "{latency}");
    assert!(
        latency.split('.').nth(1).is_none_or(|d| d.len() <= 1),
        "rounded to a tenth: {latency}"
    );
    for (route, status) in [
        ("/oauth/register/{client_id}", 401),
        ("/oauth/token", 401),
        ("/api/v1/api-keys", 401),
        ("/api/v1/keys/verify", 401),
        ("/login", 403),
        ("/login", 429),
    ] {
        assert!(
            !find(" INFO ", route, status, "request").is_empty(),
            "access line for {route} {status}:\n{logs}"
        );
        let message = if status == 429 {
            "throttled"
        } else {
            "authentication failed"
        };
        let warned = find(" WARN ", route, status, message);
        assert!(
            !warned.is_empty(),
            "warn line for {route} {status}:\n{logs}"
        );
        assert!(warned[0].contains(r#"peer="127.0.0.1""#), "{}", warned[0]);
    }
    assert_eq!(
        find(" WARN ", "/login", 403, "authentication failed").len(),
        10
    );
}
