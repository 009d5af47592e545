//! The journal of acknowledged writes (docs/security.md §2, "nothing lost"): every 2xx that
//! changed security state is appended as one JSON line and fsync'd before the load counts
//! it acknowledged; an `Attempt` line is written before each request that may change an
//! existing fact, so a write cut off by a crash (committed, never answered) is known to be
//! undecided. After a restart, [`Checker::check`] reads the file back and checks every fact.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::helpers::now;
use crate::process::{REDIRECT, World};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// About to send a request that may change `subject` (a chain, key id or client id).
    Attempt {
        subject: String,
        kind: String,
    },
    KeyCreated {
        id: String,
        key: String,
    },
    KeyRevoked {
        id: String,
    },
    /// A code redeemed: the first tokens of a chain (one grant).
    Exchanged {
        chain: String,
        code: String,
        verifier: String,
        access: String,
        refresh: String,
        exp: i64,
    },
    /// A refresh token rotated: `old` is spent, `refresh` is current.
    Refreshed {
        chain: String,
        access: String,
        refresh: String,
        exp: i64,
    },
    /// `/oauth/revoke` of the chain's current refresh token answered 200.
    ChainRevoked {
        chain: String,
    },
    CcToken {
        access: String,
        exp: i64,
    },
    /// A client's current secret (its first, or a rotation's).
    Secret {
        client: String,
        secret: String,
    },
}

impl Fact {
    fn subject(&self) -> Option<&str> {
        match self {
            Self::Attempt { .. } | Self::CcToken { .. } | Self::KeyCreated { .. } => None,
            Self::KeyRevoked { id } => Some(id),
            Self::Exchanged { chain, .. }
            | Self::Refreshed { chain, .. }
            | Self::ChainRevoked { chain } => Some(chain),
            Self::Secret { client, .. } => Some(client),
        }
    }
}

/// The append-only journal file.
pub struct Journal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Journal {
    pub fn create(dir: &Path) -> Self {
        let path = dir.join("journal.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("journal");
        Self {
            path,
            file: Mutex::new(file),
        }
    }

    /// Appends `fact` and fsyncs: when this returns, the fact is acknowledged.
    pub fn record(&self, fact: &Fact) {
        let mut line = serde_json::to_string(fact).expect("json");
        line.push('\n');
        let mut file = self.file.lock().expect("journal lock");
        file.write_all(line.as_bytes()).expect("journal write");
        file.sync_data().expect("journal fsync");
    }

    pub fn attempt(&self, subject: &str, kind: &str) {
        self.record(&Fact::Attempt {
            subject: subject.into(),
            kind: kind.into(),
        });
    }

    pub fn read(&self) -> Vec<Fact> {
        std::fs::read_to_string(&self.path)
            .expect("journal")
            .lines()
            .map(|l| serde_json::from_str(l).expect("journal line"))
            .collect()
    }
}

/// What the journal says is revoked for good: API keys (the key strings), and tokens of
/// revoked chains together with rotated-away refresh tokens (R2: never "valid" or "active"
/// again, outage or not).
pub struct Revoked {
    pub keys: Vec<String>,
    pub tokens: Vec<String>,
}

impl Journal {
    pub fn revoked(&self) -> Revoked {
        let s = fold(self.read());
        let keys = s
            .keys
            .iter()
            .filter(|(id, _)| s.revoked_keys.contains(id))
            .map(|(_, key)| key.clone())
            .collect();
        let mut tokens = Vec::new();
        for c in s.chains.values() {
            if c.revoked {
                tokens.extend(c.access.iter().map(|(at, _)| at.clone()));
                tokens.extend(c.refresh.iter().cloned());
            } else if let Some((_, rotated)) = c.refresh.split_last() {
                tokens.extend(rotated.iter().cloned());
            }
        }
        Revoked { keys, tokens }
    }
}

#[derive(Default)]
struct Chain {
    code: Option<(String, String)>,
    /// (access token, exp), oldest first.
    access: Vec<(String, i64)>,
    /// Refresh tokens, oldest first: all but the last were rotated by an acknowledged refresh.
    refresh: Vec<String>,
    revoked: bool,
}

/// What the journal says, folded.
#[derive(Default)]
struct State {
    /// Subjects whose last attempt has no acknowledgement: the kind of that attempt.
    pending: HashMap<String, String>,
    keys: Vec<(String, String)>,
    revoked_keys: HashSet<String>,
    chains: HashMap<String, Chain>,
    cc: Vec<(String, i64)>,
    secrets: HashMap<String, Vec<String>>,
}

fn fold(facts: Vec<Fact>) -> State {
    let mut s = State::default();
    for fact in facts {
        if let Some(subject) = fact.subject() {
            s.pending.remove(subject);
        }
        match fact {
            Fact::Attempt { subject, kind } => {
                s.pending.insert(subject, kind);
            }
            Fact::KeyCreated { id, key } => s.keys.push((id, key)),
            Fact::KeyRevoked { id } => {
                s.revoked_keys.insert(id);
            }
            Fact::Exchanged {
                chain,
                code,
                verifier,
                access,
                refresh,
                exp,
            } => {
                let c = s.chains.entry(chain).or_default();
                c.code = Some((code, verifier));
                c.access.push((access, exp));
                c.refresh.push(refresh);
            }
            Fact::Refreshed {
                chain,
                access,
                refresh,
                exp,
            } => {
                let c = s.chains.entry(chain).or_default();
                c.access.push((access, exp));
                c.refresh.push(refresh);
            }
            Fact::ChainRevoked { chain } => s.chains.entry(chain).or_default().revoked = true,
            Fact::CcToken { access, exp } => s.cc.push((access, exp)),
            Fact::Secret { client, secret } => s.secrets.entry(client).or_default().push(secret),
        }
    }
    s
}

/// How many facts one check looked at.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checked {
    pub keys: usize,
    pub access_tokens: usize,
    pub refresh_tokens: usize,
    pub codes_replayed: usize,
    pub reuses: usize,
    pub secrets: usize,
}

impl Checked {
    pub fn add(&mut self, o: Checked) {
        self.keys += o.keys;
        self.access_tokens += o.access_tokens;
        self.refresh_tokens += o.refresh_tokens;
        self.codes_replayed += o.codes_replayed;
        self.reuses += o.reuses;
        self.secrets += o.secrets;
    }
}

/// Checks the journal against a running server. Replaying a code or reusing a rotated
/// refresh token revokes its grant, so each is done once; the checker remembers the chains
/// it revoked, and later checks expect them to stay revoked.
#[derive(Default)]
pub struct Checker {
    killed: HashSet<String>,
    seen_dead: HashSet<String>,
    stale_seen: HashSet<String>,
}

/// A token is checked as active only with this much lifetime left.
const EXPIRY_MARGIN: i64 = 30;

/// At most this many older stale secrets of one client are asked about in one check.
const STALE_PER_CHECK: usize = 10;

/// Asks a running server about tokens, keys and secrets.
pub struct Probe<'a> {
    /// One client per resource server, each from its own loopback address (127.0.0.2, ...).
    http: Vec<reqwest::Client>,
    next: std::cell::Cell<usize>,
    pub address: &'a str,
    pub world: &'a World,
}

/// `n` HTTP clients, the i-th sending from loopback address 127.0.0.(2 + i): one per
/// resource server, so each has an address of its own for the throttles.
pub fn loopback_clients(n: usize) -> Vec<reqwest::Client> {
    (0..n)
        .map(|i| {
            let ip = std::net::Ipv4Addr::new(127, 0, 0, 2 + i as u8);
            // Idle connections are dropped well before the server's 5 s keep-alive ends
            // them: reusing one at the moment the server closes it fails the request
            // before it is sent (seen once in R2, where answers take 2 s).
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::V4(ip))
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("client")
        })
        .collect()
}

impl<'a> Probe<'a> {
    pub fn new(address: &'a str, world: &'a World) -> Self {
        Self {
            http: loopback_clients(world.rs.len()),
            next: std::cell::Cell::new(0),
            address,
            world,
        }
    }

    /// The next (client, resource server) pair, round robin.
    fn caller(&self) -> (&reqwest::Client, &(String, String)) {
        let i = self.next.get();
        self.next.set((i + 1) % self.http.len());
        (&self.http[i], &self.world.rs[i])
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends `req`; a 429 (K2: a resource server asking about many inactive tokens, as a
    /// check of revoked ones does, is slowed down) is waited out as its `Retry-After` says
    /// and asked again, a few times: the question's answer is what the check needs.
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let mut req = req;
        for _ in 0..5 {
            let again = req.try_clone();
            let r = req
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("the restarted server answers");
            let status = r.status().as_u16();
            let wait = r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let text = r.text().await.expect("body");
            match (status, wait, again) {
                (429, Some(secs), Some(next)) => {
                    tokio::time::sleep(Duration::from_secs(secs.clamp(1, 65))).await;
                    req = next;
                }
                _ => return (status, serde_json::from_str(&text).unwrap_or(Value::Null)),
            }
        }
        panic!("still 429 after five waits of its Retry-After");
    }

    pub async fn active(&self, token: &str) -> bool {
        let (http, (rs_id, rs_secret)) = self.caller();
        let (status, body) = self
            .send(
                http.post(self.url("/oauth/introspect"))
                    .basic_auth(rs_id, Some(rs_secret))
                    .form(&[("token", token)]),
            )
            .await;
        assert_eq!(status, 200, "introspection: {body}");
        body["active"] == Value::Bool(true)
    }

    pub async fn verify(&self, key: &str) -> String {
        let (http, (rs_id, rs_secret)) = self.caller();
        let (status, body) = self
            .send(
                http.post(self.url("/api/v1/keys/verify"))
                    .basic_auth(rs_id, Some(rs_secret))
                    .json(&serde_json::json!({ "key": key })),
            )
            .await;
        assert_eq!(status, 200, "verify: {body}");
        body["code"].as_str().unwrap_or_default().to_string()
    }

    pub async fn token(&self, basic: (&str, &str), form: &[(&str, &str)]) -> (u16, Value) {
        self.send(
            self.caller()
                .0
                .post(self.url("/oauth/token"))
                .basic_auth(basic.0, Some(basic.1))
                .form(form),
        )
        .await
    }
}

impl Checker {
    /// Checks every fact of `journal`; returns the violations (empty when nothing was lost)
    /// and what was checked.
    pub async fn check(&mut self, probe: &Probe<'_>, journal: &Journal) -> (Vec<String>, Checked) {
        let s = fold(journal.read());
        let mut bad = Vec::new();
        let mut n = Checked::default();
        let now = now();

        // Keys: created keys verify VALID unless revoked; revoked keys stay revoked.
        for (id, key) in &s.keys {
            let code = probe.verify(key).await;
            n.keys += 1;
            let ok = if s.revoked_keys.contains(id) {
                code == "REVOKED"
            } else if s.pending.contains_key(id) {
                code == "VALID" || code == "REVOKED"
            } else {
                code == "VALID"
            };
            if !ok {
                let revoked = s.revoked_keys.contains(id);
                bad.push(format!("key {id} (revoked: {revoked}) verifies {code}"));
            }
        }

        // client_credentials tokens stay active until they expire.
        for (at, exp) in &s.cc {
            if *exp > now + EXPIRY_MARGIN {
                n.access_tokens += 1;
                if !probe.active(at).await {
                    bad.push(format!("client_credentials token (exp {exp}) inactive"));
                }
            }
        }

        // Secrets: a rotated-away secret stops at once; the current one works.
        for (client, secrets) in &s.secrets {
            let last = secrets.len() - 1;
            // Failed client authentications are throttled (docs/security.md K2: 20 a minute
            // per client and address, 200 per address), so a check asks about at most
            // `STALE_PER_CHECK` older stale secrets per client besides the newest five:
            // those not asked about before, spread evenly over the rotation history. Later
            // checks (R1 runs one per kill) cover the rest.
            let unseen: Vec<usize> = (0..last.saturating_sub(5))
                .filter(|&i| !self.stale_seen.contains(&secrets[i]))
                .collect();
            let step = unseen.len().div_ceil(STALE_PER_CHECK).max(1);
            let sampled: HashSet<usize> = unseen.iter().copied().step_by(step).collect();
            for (i, secret) in secrets.iter().enumerate() {
                let current = i == last;
                if current && s.pending.contains_key(client) {
                    continue;
                }
                if !current && i + 5 < last {
                    if !sampled.contains(&i) {
                        continue;
                    }
                    self.stale_seen.insert(secret.clone());
                }
                n.secrets += 1;
                let (status, body) = probe
                    .token((client, secret), &[("grant_type", "client_credentials")])
                    .await;
                let expected = if current { 200 } else { 401 };
                if status != expected {
                    bad.push(format!(
                        "client {client}: secret #{i} of {} answers {status} {body}",
                        secrets.len()
                    ));
                }
            }
        }

        // Chains: tokens of a live grant are active, rotated refresh tokens are not, a
        // revoked grant stays revoked.
        let mut names: Vec<&String> = s.chains.keys().collect();
        names.sort();
        for name in &names {
            let c = &s.chains[*name];
            let pending = s.pending.get(*name).map(String::as_str);
            let dead = c.revoked || self.killed.contains(*name);
            // A grant seen revoked by an earlier check: its newest tokens stand for the
            // rest (the throttle of inactive introspections bounds how many a check asks).
            let skip = if dead && self.seen_dead.contains(*name) {
                c.access.len().saturating_sub(1)
            } else {
                0
            };
            for (at, exp) in c.access.iter().skip(skip) {
                if *exp <= now + EXPIRY_MARGIN || (!dead && pending == Some("revoke")) {
                    continue;
                }
                n.access_tokens += 1;
                let active = probe.active(at).await;
                if active == dead {
                    bad.push(format!(
                        "chain {name}: access token active={active}, revoked={dead}"
                    ));
                }
            }
            let skip = if skip > 0 {
                c.refresh.len().saturating_sub(1)
            } else {
                0
            };
            for (i, rt) in c.refresh.iter().enumerate().skip(skip) {
                let current = i + 1 == c.refresh.len();
                if current && !dead && pending.is_some() {
                    continue;
                }
                n.refresh_tokens += 1;
                let active = probe.active(rt).await;
                let expected = current && !dead;
                if active != expected {
                    bad.push(format!(
                        "chain {name}: refresh token #{i} of {} active={active}, expected {expected}",
                        c.refresh.len()
                    ));
                }
            }
            if dead {
                self.seen_dead.insert((*name).clone());
            }
        }

        // Destructive, once per chain: a rotated refresh token takes the reuse path (400
        // invalid_grant, the grant revoked); a consumed code stays consumed (400
        // invalid_grant, the grant revoked).
        let web = (probe.world.web.0.as_str(), probe.world.web.1.as_str());
        for name in names {
            let c = &s.chains[name];
            if self.killed.contains(name) {
                continue;
            }
            let mut tried = false;
            if c.refresh.len() >= 2 {
                n.reuses += 1;
                tried = true;
                let (status, body) = probe
                    .token(
                        web,
                        &[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", &c.refresh[0]),
                        ],
                    )
                    .await;
                if status != 400 || body["error"] != "invalid_grant" {
                    bad.push(format!(
                        "chain {name}: reuse of a rotated refresh token answered {status} {body}"
                    ));
                }
            }
            if let Some((code, verifier)) = &c.code {
                n.codes_replayed += 1;
                tried = true;
                let (status, body) = probe
                    .token(
                        web,
                        &[
                            ("grant_type", "authorization_code"),
                            ("code", code),
                            ("redirect_uri", REDIRECT),
                            ("code_verifier", verifier),
                        ],
                    )
                    .await;
                if status != 400 || body["error"] != "invalid_grant" {
                    bad.push(format!(
                        "chain {name}: a consumed code answered {status} {body}"
                    ));
                }
            }
            if tried {
                self.killed.insert(name.clone());
                if let Some(rt) = c.refresh.last()
                    && probe.active(rt).await
                {
                    bad.push(format!(
                        "chain {name}: still active after reuse or replay revoked the grant"
                    ));
                }
                if let Some((at, _)) = c.access.last()
                    && probe.active(at).await
                {
                    bad.push(format!(
                        "chain {name}: access token active after the grant was revoked"
                    ));
                }
            }
        }
        (bad, n)
    }
}
