//! panva's openid-client (an OpenID-certified relying party, node) against the real
//! server (docs/spec.md §9): discovery, the code flow with PKCE, `nonce` and `state`,
//! ID-token validation (signature against the JWKS, `iss`, `aud`, `exp`, `nonce`, `azp`,
//! `at_hash`) and userinfo. The script is `tests/openid-client/rp.mjs`, its packages come
//! from the committed lockfile (`npm ci` there; `.ci/run` does it). This test drives the
//! login and consent pages as the browser would. Without node or the installed packages
//! it prints SKIPPED (a failure with `TESSERA_REQUIRE_ALL=1`).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::helpers::oauth::{REDIRECT, query_param};
use crate::helpers::postgres::unavailable;
use crate::helpers::{Backend, hidden, spawn_app};

crate::on_both_backends!(openid_client_completes_discovery_the_code_flow_and_userinfo,);

fn rp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openid-client")
}

/// The node binary and the installed packages, or why not.
fn node_ready() -> Result<(), String> {
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("node is not installed".into()),
    }
    if !rp_dir().join("node_modules/openid-client").is_dir() {
        return Err(format!(
            "run `npm ci` in {} (the committed package-lock.json)",
            rp_dir().display()
        ));
    }
    Ok(())
}

async fn openid_client_completes_discovery_the_code_flow_and_userinfo(backend: Backend) {
    if let Err(why) = node_ready() {
        unavailable("openid-client (node)", &why);
        return;
    }
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client("openid email profile inference:read");
    let secret = client.secret.clone().expect("confidential");
    let b = app.user("rp@example.com").await;

    let mut child = Command::new("node")
        .arg("rp.mjs")
        .args([
            app.address.as_str(),
            &client.id,
            &secret,
            REDIRECT,
            "openid email inference:read",
        ])
        .current_dir(rp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let read =
        tokio::task::spawn_blocking(move || stdout.read_line(&mut line).map(|_| (stdout, line)))
            .await
            .expect("join");
    let (mut stdout, line) = read.expect("read");
    if line.is_empty() {
        let out = child.wait_with_output().expect("wait");
        panic!(
            "openid-client stopped: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let first: Value = serde_json::from_str(&line).expect("json line");
    let auth_url = first["authorization_url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(
        auth_url.starts_with(&format!("{}/oauth/authorize?", app.address)),
        "{auth_url}"
    );
    assert!(auth_url.contains("nonce="), "{auth_url}");

    // The pages: consent, approve, the redirect back.
    let r = b.get(&auth_url).send().await.expect("authorize");
    assert_eq!(r.status(), 200, "the consent page");
    let html = r.text().await.expect("html");
    let approve = b
        .post(format!("{}/oauth/authorize", app.address))
        .form(&[
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
            ("decision", "approve".into()),
        ])
        .send()
        .await
        .expect("consent");
    assert_eq!(approve.status(), 303);
    let callback = approve.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(query_param(&callback, "code").is_some(), "{callback}");

    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{callback}").expect("write");
    drop(stdin);
    let result = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        stdout.read_line(&mut rest).map(|_| rest)
    })
    .await
    .expect("join")
    .expect("read");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "openid-client refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_str(&result).expect("json");
    let claims = &done["claims"];
    assert!(
        claims["sub"].as_str().expect("sub").starts_with("usr_"),
        "{done}"
    );
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["iss"], app.address.as_str());
    assert_eq!(claims["email"], "rp@example.com");
    assert_eq!(done["userinfo"]["sub"], claims["sub"]);
    assert_eq!(done["userinfo"]["email"], "rp@example.com");
}
