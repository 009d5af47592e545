//! Headless Chromium through chromedriver (Debian's `chromium` + `chromium-driver`),
//! driven with fantoccini. Missing: a loud skip, or a failure with TESSERA_REQUIRE_ALL=1.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::postgres::unavailable;

pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

/// Starts chromedriver and a headless Chromium session; `None` (announced) when missing.
pub async fn start() -> Option<Browser> {
    let Some(driver_bin) = find(&["chromedriver"]) else {
        unavailable("chromedriver", "apt-get install chromium-driver");
        return None;
    };
    let Some(chromium) = find(&["chromium", "chromium-browser"]) else {
        unavailable("Chromium", "apt-get install chromium");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let driver = Command::new(driver_bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().expect("profile dir");
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let caps = match caps {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    };
    let url = format!("http://127.0.0.1:{port}");
    let mut last_error = String::new();
    for _ in 0..100 {
        let connector = fantoccini::ClientBuilder::rustls()
            .expect("connector")
            .capabilities(caps.clone())
            .connect(&url)
            .await;
        match connector {
            Ok(client) => {
                return Some(Browser {
                    client,
                    driver,
                    _profile: profile,
                });
            }
            Err(e) => {
                last_error = e.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("chromedriver did not start a session: {last_error}");
}

/// Fills and submits a credentials form (signup or login) on the current page.
pub async fn submit_credentials(c: &fantoccini::Client, email: &str, password: &str, button: &str) {
    use fantoccini::Locator;
    c.find(Locator::Css("input[name=email]"))
        .await
        .expect("email field")
        .send_keys(email)
        .await
        .expect("type");
    c.find(Locator::Css("input[name=password]"))
        .await
        .expect("password field")
        .send_keys(password)
        .await
        .expect("type");
    c.find(Locator::Id(button))
        .await
        .expect("submit button")
        .click()
        .await
        .expect("submit");
}

/// Opens `/signup` and creates an account (signed in afterwards).
pub async fn signup(c: &fantoccini::Client, address: &str, email: &str) {
    c.goto(&format!("{address}/signup")).await.expect("goto");
    submit_credentials(c, email, super::oauth::PASSWORD, "signup").await;
}
