//! docs/security.md H7: secrets never reach the logs. The real binary serves with `RUST_LOG=trace`
//! while a full flow runs against it; afterwards no issued code, token, secret or password
//! appears anywhere in what it logged.

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
