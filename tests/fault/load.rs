//! Mixed load against a `tessera serve` process, journaling every acknowledged write:
//! code flow (through the login and consent pages), refresh rotation, revocation,
//! `client_credentials`, API key creation and revocation and client secret rotation over
//! `/api/v1`, one worker each (two for the code flow). A worker stops at the first request
//! the server does not answer (it was killed or is shutting down) or when told to; an
//! answer that is neither the expected success nor a connection failure is a violation.
//!
//! With [`Load::through_outages`] (R2: the database stopped or frozen, the server alive) a
//! worker instead treats the documented outage answer, 503, as "undecided": it drops what
//! it was doing (the `Attempt` line already marks the write undecided, as a kill would) and
//! starts anew; then any other 5xx, any answer slower than [`OUTAGE_ANSWER_BOUND`] and any
//! request the server does not answer is a violation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::now;
use crate::journal::{Fact, Journal};
use crate::process::{PASSWORD, REDIRECT, World};

/// Longest any answer may take while the database is stopped or frozen: the 2 s
/// `--db-timeout-ms` deadline plus scheduling slack on a loaded 2-core machine
/// (docs/security.md R2).
pub const OUTAGE_ANSWER_BOUND: Duration = Duration::from_millis(3500);

pub struct Load {
    pub address: String,
    pub world: World,
    pub journal: Arc<Journal>,
    pub stop: Arc<AtomicBool>,
    /// Names chains uniquely across runs.
    pub run: u32,
    /// R2 mode: 503 means "undecided, start anew"; see the module documentation.
    outages: bool,
    /// Numbers chains uniquely within a run (a worker restarted after a 503 goes on).
    chains: AtomicU32,
    /// Answers counted in R2 mode: all, 503s, and the slowest (ms).
    pub answers: AtomicU64,
    pub unavailable: AtomicU64,
    pub slowest_ms: AtomicU64,
}

/// Why a worker stopped early: the server went away (expected), it answered 503 in R2 mode
/// (start anew), or it answered wrongly.
enum Halt {
    Gone,
    Unavailable,
    Wrong(String),
}

type Step<T> = Result<T, Halt>;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

fn s(v: &Value, name: &str) -> Step<String> {
    v[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Halt::Wrong(format!("no {name} in {v}")))
}

fn exp_of(v: &Value) -> i64 {
    now() + v["expires_in"].as_i64().unwrap_or(0)
}

/// The value of hidden input `name`.
fn hidden(html: &str, name: &str) -> Step<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .ok_or_else(|| Halt::Wrong(format!("no hidden {name}")))?
        + marker.len();
    let end = html[start..]
        .find('"')
        .ok_or_else(|| Halt::Wrong("unterminated".into()))?
        + start;
    Ok(html[start..end]
        .replace("&#43;", "+")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/"))
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let full = if url.starts_with('/') {
        format!("http://x{url}")
    } else {
        url.to_string()
    };
    url::Url::parse(&full)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Load {
    /// A load that stops at the first request the server does not answer (R1, R6).
    pub fn new(address: &str, world: &World, journal: &Arc<Journal>, run: u32) -> Self {
        Self {
            address: address.to_string(),
            world: world.clone(),
            journal: Arc::clone(journal),
            stop: Arc::new(AtomicBool::new(false)),
            run,
            outages: false,
            chains: AtomicU32::new(0),
            answers: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            slowest_ms: AtomicU64::new(0),
        }
    }

    /// A load that goes on through database outages until `stop` (R2): 503 is the only
    /// allowed failure, within [`OUTAGE_ANSWER_BOUND`].
    pub fn through_outages(address: &str, world: &World, journal: &Arc<Journal>, run: u32) -> Self {
        Self {
            outages: true,
            ..Self::new(address, world, journal, run)
        }
    }

    /// Sends. A transport error means the server is gone (R2 mode: a violation, the server
    /// must stay up). R2 mode: 503 halts with [`Halt::Unavailable`], another 5xx or a slow
    /// answer is a violation.
    async fn send(&self, req: reqwest::RequestBuilder) -> Step<(u16, String, Option<String>)> {
        let start = Instant::now();
        let described = req
            .try_clone()
            .and_then(|r| r.build().ok())
            .map(|r| format!("{} {}", r.method(), r.url().path()))
            .unwrap_or_default();
        let gone = |e: reqwest::Error| {
            if self.outages {
                Halt::Wrong(format!(
                    "{described}: no answer after {:?}: {e}",
                    start.elapsed()
                ))
            } else {
                Halt::Gone
            }
        };
        let r = req.send().await.map_err(gone)?;
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = r.text().await.map_err(gone)?;
        if self.outages {
            let took = start.elapsed();
            self.answers.fetch_add(1, Ordering::Relaxed);
            self.slowest_ms
                .fetch_max(took.as_millis() as u64, Ordering::Relaxed);
            if took > OUTAGE_ANSWER_BOUND {
                return Err(Halt::Wrong(format!(
                    "{described}: answered {status} after {took:?}"
                )));
            }
            if status == 503 {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
                return Err(Halt::Unavailable);
            }
            if status >= 500 {
                return Err(Halt::Wrong(format!("{described}: {status} {text}")));
            }
        }
        Ok((status, text, location))
    }

    /// Expects `status`; parses the JSON body.
    async fn expect_json(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
        status: u16,
    ) -> Step<Value> {
        let (got, text, _) = self.send(req).await?;
        if got != status {
            return Err(Halt::Wrong(format!("{what}: {got} {text}")));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| Halt::Wrong(format!("{what}: not JSON: {text}")))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Runs every worker until the server goes away or `stop` is set; the violations.
    pub async fn run(self: Arc<Self>) -> Vec<String> {
        let workers = vec![
            tokio::spawn(Arc::clone(&self).worker(0)),
            tokio::spawn(Arc::clone(&self).worker(1)),
            tokio::spawn(Arc::clone(&self).worker(2)),
            tokio::spawn(Arc::clone(&self).worker(3)),
            tokio::spawn(Arc::clone(&self).worker(4)),
        ];
        let mut wrong = Vec::new();
        for w in workers {
            if let Err(Halt::Wrong(why)) = w.await.expect("worker") {
                wrong.push(why);
            }
        }
        wrong
    }

    /// Runs worker `n`; in R2 mode it starts anew after each 503 until `stop`.
    async fn worker(self: Arc<Self>, n: usize) -> Step<()> {
        let http = client();
        loop {
            let done = match n {
                0 | 1 => self.code_flow(&http, n).await,
                2 => self.client_credentials(&http).await,
                3 => self.keys(&http).await,
                _ => self.secret_rotation(&http).await,
            };
            match done {
                Err(Halt::Unavailable) if !self.stopped() => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(Halt::Unavailable) => return Ok(()),
                other => return other,
            }
        }
    }

    async fn login(&self, b: &reqwest::Client) -> Step<()> {
        let (status, page, _) = self.send(b.get(self.url("/login"))).await?;
        if (300..400).contains(&status) {
            // Already signed in (a worker starting anew after a 503 keeps its cookies).
            return Ok(());
        }
        let csrf = hidden(&page, "csrf_token")?;
        let (status, text, _) = self
            .send(b.post(self.url("/login")).form(&[
                ("email", self.world.email.as_str()),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("return_to", "/"),
            ]))
            .await?;
        if status != 303 {
            return Err(Halt::Wrong(format!("login: {status} {text}")));
        }
        Ok(())
    }

    /// authorize → (consent) → a code; returns (code, verifier).
    async fn code(&self, b: &reqwest::Client) -> Step<(String, String)> {
        let verifier = tessera::crypto::random_base62(64);
        let challenge = tessera::oauth::codes::s256(&verifier);
        let q = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", &self.world.web.0),
            ("redirect_uri", REDIRECT),
            ("scope", "inference:read"),
            ("state", "xyz"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .expect("query");
        let (status, html, location) = self
            .send(b.get(self.url(&format!("/oauth/authorize?{q}"))))
            .await?;
        let location = match status {
            302 => location,
            200 => {
                let (status, text, location) = self
                    .send(b.post(self.url("/oauth/authorize")).form(&[
                        ("request", hidden(&html, "request")?),
                        ("csrf_token", hidden(&html, "csrf_token")?),
                        ("decision", "approve".into()),
                    ]))
                    .await?;
                if status != 303 {
                    return Err(Halt::Wrong(format!("consent: {status} {text}")));
                }
                location
            }
            _ => return Err(Halt::Wrong(format!("authorize: {status} {html}"))),
        };
        let code = location
            .as_deref()
            .and_then(|l| query_param(l, "code"))
            .ok_or_else(|| Halt::Wrong(format!("no code in {location:?}")))?;
        Ok((code, verifier))
    }

    fn web_token(&self, http: &reqwest::Client, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        http.post(self.url("/oauth/token"))
            .basic_auth(&self.world.web.0, Some(&self.world.web.1))
            .form(form)
    }

    /// Code → tokens → two rotations; every third chain is revoked at the end.
    async fn code_flow(&self, http: &reqwest::Client, w: usize) -> Step<()> {
        self.login(http).await?;
        let mut i = 0;
        while !self.stopped() {
            i += 1;
            let n = self.chains.fetch_add(1, Ordering::Relaxed);
            let chain = format!("{}-{w}-{n}", self.run);
            let (code, verifier) = self.code(http).await?;
            self.journal.attempt(&chain, "exchange");
            let t = self
                .expect_json(
                    "exchange",
                    self.web_token(
                        http,
                        &[
                            ("grant_type", "authorization_code"),
                            ("code", &code),
                            ("redirect_uri", REDIRECT),
                            ("code_verifier", &verifier),
                        ],
                    ),
                    200,
                )
                .await?;
            let mut rt = s(&t, "refresh_token")?;
            self.journal.record(&Fact::Exchanged {
                chain: chain.clone(),
                code,
                verifier,
                access: s(&t, "access_token")?,
                refresh: rt.clone(),
                exp: exp_of(&t),
            });
            for _ in 0..2 {
                if self.stopped() {
                    return Ok(());
                }
                self.journal.attempt(&chain, "refresh");
                let t = self
                    .expect_json(
                        "refresh",
                        self.web_token(
                            http,
                            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                        ),
                        200,
                    )
                    .await?;
                rt = s(&t, "refresh_token")?;
                self.journal.record(&Fact::Refreshed {
                    chain: chain.clone(),
                    access: s(&t, "access_token")?,
                    refresh: rt.clone(),
                    exp: exp_of(&t),
                });
            }
            if i % 3 == 0 {
                self.journal.attempt(&chain, "revoke");
                self.expect_json(
                    "revoke",
                    http.post(self.url("/oauth/revoke"))
                        .basic_auth(&self.world.web.0, Some(&self.world.web.1))
                        .form(&[("token", rt.as_str())]),
                    200,
                )
                .await?;
                self.journal.record(&Fact::ChainRevoked { chain });
            }
        }
        Ok(())
    }

    async fn client_credentials(&self, http: &reqwest::Client) -> Step<()> {
        while !self.stopped() {
            let t = self
                .expect_json(
                    "client_credentials",
                    http.post(self.url("/oauth/token"))
                        .basic_auth(&self.world.machine.0, Some(&self.world.machine.1))
                        .form(&[("grant_type", "client_credentials")]),
                    200,
                )
                .await?;
            self.journal.record(&Fact::CcToken {
                access: s(&t, "access_token")?,
                exp: exp_of(&t),
            });
        }
        Ok(())
    }

    /// Creates keys; revokes every other one.
    async fn keys(&self, http: &reqwest::Client) -> Step<()> {
        let mut i = 0;
        while !self.stopped() {
            i += 1;
            let k = self
                .expect_json(
                    "key create",
                    http.post(self.url("/api/v1/api-keys"))
                        .bearer_auth(&self.world.admin_key)
                        .json(
                            &json!({"name": format!("k{i}"), "scopes": ["inference:read"],
                                  "type": "secret", "expires_in_days": null}),
                        ),
                    201,
                )
                .await?;
            let id = s(&k, "id")?;
            self.journal.record(&Fact::KeyCreated {
                id: id.clone(),
                key: s(&k, "key")?,
            });
            if i % 2 == 0 {
                self.journal.attempt(&id, "revoke");
                self.expect_json(
                    "key revoke",
                    http.delete(self.url(&format!("/api/v1/api-keys/{id}")))
                        .bearer_auth(&self.world.admin_key),
                    204,
                )
                .await?;
                self.journal.record(&Fact::KeyRevoked { id });
            }
        }
        Ok(())
    }

    /// Rotates the rotating client's secret (the old one stops at once), then uses it.
    async fn secret_rotation(&self, http: &reqwest::Client) -> Step<()> {
        let client = self.world.rotating.0.clone();
        while !self.stopped() {
            self.journal.attempt(&client, "rotate");
            let r = self
                .expect_json(
                    "secret rotation",
                    http.post(self.url(&format!("/api/v1/clients/{client}/secret")))
                        .bearer_auth(&self.world.admin_key)
                        .json(&json!({})),
                    201,
                )
                .await?;
            let secret = s(&r, "client_secret")?;
            self.journal.record(&Fact::Secret {
                client: client.clone(),
                secret: secret.clone(),
            });
            let t = self
                .expect_json(
                    "client_credentials with the new secret",
                    http.post(self.url("/oauth/token"))
                        .basic_auth(&client, Some(&secret))
                        .form(&[("grant_type", "client_credentials")]),
                    200,
                )
                .await?;
            self.journal.record(&Fact::CcToken {
                access: s(&t, "access_token")?,
                exp: exp_of(&t),
            });
        }
        Ok(())
    }
}
