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

/// Opens `/signup` and creates an account, and waits for the signed-in page it lands on:
/// a `goto` while the form's POST is still on its way cancels it, and the session cookie
/// with it (a flake under load).
pub async fn signup(c: &fantoccini::Client, address: &str, email: &str) {
    c.goto(&format!("{address}/signup")).await.expect("goto");
    submit_credentials(c, email, super::oauth::PASSWORD, "signup").await;
    signed_in(c).await;
}

/// Waits until the page shows the signed-in frame (its sign-out button).
async fn signed_in(c: &fantoccini::Client) {
    c.wait()
        .at_most(std::time::Duration::from_secs(30))
        .for_element(fantoccini::Locator::Id("sign-out"))
        .await
        .expect("signed in: the signed-in frame");
}

/// How far the page reaches beyond the window's width, in CSS pixels (0 or less: nothing
/// scrolls sideways): `document.documentElement.scrollWidth - clientWidth`.
pub async fn overflow(c: &fantoccini::Client) -> i64 {
    c.execute(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        vec![],
    )
    .await
    .expect("script")
    .as_i64()
    .expect("number")
}

/// The visible buttons and button-styled links (primary actions first among them) that are
/// cut off on the left or right of the window: their text, empty when all are in view.
/// Those inside a closed `<details>` (but its `<summary>`) are not rendered and not counted
/// (Chromium still lays them out, so their boxes are skipped here); those inside a
/// `.table-scroll` box scroll with it.
pub async fn actions_out_of_view(c: &fantoccini::Client) -> Vec<String> {
    let found = c
        .execute(
            r#"var w = document.documentElement.clientWidth, out = [];
document.querySelectorAll("button, a.button, input[type=submit], summary").forEach(function (e) {
  var r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) { return; }
  if (e.closest(".table-scroll")) { return; }
  var shut = e.closest("details:not([open])");
  if (shut && e.parentElement !== shut) { return; }
  if (r.left < -0.5 || r.right > w + 0.5) { out.push((e.textContent || e.value || e.id).trim() + " [" + Math.round(r.left) + ".." + Math.round(r.right) + " of " + w + "]"); }
});
return out;"#,
            vec![],
        )
        .await
        .expect("script");
    serde_json::from_value(found).expect("strings")
}

/// The folder screenshots go to: `$TESSERA_SCREENSHOTS_DIR`, else `screenshots/` in the
/// cargo target directory (next to `tmp/`), created when missing.
pub fn screenshots_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("TESSERA_SCREENSHOTS_DIR")
        .or_else(|| std::env::var_os("TESSERA_SCREENSHOTS"))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("target dir")
                .join("screenshots")
        });
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

/// Writes a screenshot of the whole page (the window is made as tall as the page, up to
/// 4,000 px, then put back) to `<screenshots_dir>/<name>.png`.
pub async fn shoot(c: &fantoccini::Client, name: &str) {
    let (width, height) = {
        let size = c.get_window_size().await.expect("window size");
        (size.0 as u32, size.1 as u32)
    };
    let page_height = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .expect("script")
        .as_u64()
        .unwrap_or(u64::from(height));
    let tall = u32::try_from(page_height)
        .unwrap_or(4000)
        .clamp(height, 4000);
    if tall > height {
        c.set_window_size(width, tall + 100).await.expect("resize");
    }
    let png = c.screenshot().await.expect("screenshot");
    if tall > height {
        c.set_window_size(width, height).await.expect("resize back");
    }
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

async fn inner_width(c: &fantoccini::Client) -> u64 {
    c.execute("return window.innerWidth;", vec![])
        .await
        .expect("script")
        .as_u64()
        .expect("number")
}

/// Makes the page's viewport `width` CSS pixels wide (the window 900 tall), allowing for
/// any window frame, and checks the page sees that width.
pub async fn set_width(c: &fantoccini::Client, width: u32) {
    c.set_window_size(width, 900).await.expect("window size");
    let seen = inner_width(c).await;
    if seen != u64::from(width) {
        let frame = u32::try_from(u64::from(width).abs_diff(seen)).expect("small");
        let outer = if seen < u64::from(width) {
            width + frame
        } else {
            width - frame
        };
        c.set_window_size(outer, 900).await.expect("window size");
    }
    assert_eq!(
        inner_width(c).await,
        u64::from(width),
        "the viewport is {width} px wide"
    );
}

/// Fails when the page shown scrolls sideways or cuts off an action at the current width;
/// then saves its screenshot as `<name>-<width>.png`.
pub async fn check_fits(c: &fantoccini::Client, name: &str, width: u32) {
    let over = overflow(c).await;
    let cut = actions_out_of_view(c).await;
    shoot(c, &format!("{name}-{width}")).await;
    assert!(
        over <= 0,
        "{name} scrolls sideways by {over} px at {width} px"
    );
    assert!(cut.is_empty(), "{name} at {width} px cuts off: {cut:?}");
}

/// Opens `/login` and signs in (an account made before, with the tests' password).
pub async fn login(c: &fantoccini::Client, address: &str, email: &str) {
    c.goto(&format!("{address}/login")).await.expect("goto");
    submit_credentials(c, email, super::oauth::PASSWORD, "login").await;
    signed_in(c).await;
}
