//! Registration surfaces of the real binary (docs/spec.md §1, §8): `tessera client create`
//! with `--resource-server --resource URI` and with `--jwks-file FILE`, and the
//! registration flags of `tessera serve` (`--registration`, `--open-registration-idle-days`,
//! `--client-metadata-allow-loopback`, `--extra-ca-certs`) read from the command line and
//! the environment, observed on a running server (docs/security.md G2, D13, K4, K6).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use serde_json::{Value, json};
use tessera::db::{DatabaseUrl, connect_direct};

use crate::cli::{count, fails_naming, json_ok, migrated, query_strings, tessera};
use crate::helpers::api::{Answer, answer};
use crate::helpers::oauth::{WebClient, json as json_of};
use crate::helpers::test_ca::TestCa;
use crate::helpers::{Backend, TestDb, spawn_app_with};
use crate::private_key_jwt::{ClientKey, claims, token};
use crate::resources::{MCP, TOOLS, aud};

crate::on_both_backends!(
    g2_client_create_registers_the_resources_of_a_resource_server,
    d13_client_create_with_a_jwks_file_makes_a_private_key_jwt_client,
    k4_k6_serve_takes_the_registration_flags_from_the_command_line_and_environment,
);

/// `tessera client create` with `args` after `--name NAME`.
fn client_create(db: &TestDb, name: &str, args: &[&str]) -> Output {
    let mut all = vec!["client", "create", "--name", name];
    all.extend_from_slice(args);
    tessera(db, &all, None)
}

/// docs/spec.md §8: `--resource-server --resource URI` (repeatable) registers the URIs,
/// listed by `client list` and usable as `resource=` (the token's `aud`); a malformed or
/// taken URI, or `--resource` without `--resource-server`, fails with a message naming the
/// problem, a non-zero exit and no client.
async fn g2_client_create_registers_the_resources_of_a_resource_server(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    let rs = json_ok(&client_create(
        &db,
        "MCP server",
        &[
            "--resource-server",
            "--grant-types",
            "",
            "--resource",
            TOOLS,
            "--resource",
            MCP,
        ],
    ));
    let rs_id = rs["client_id"].as_str().expect("id").to_string();
    let rs_secret = rs["client_secret"].as_str().expect("secret").to_string();
    let listed = json_ok(&tessera(&db, &["client", "list"], None));
    let row = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|c| c["client_id"] == rs_id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(row["resource_server"], true);
    assert_eq!(row["resources"], json!([MCP, TOOLS]));
    assert_eq!(
        query_strings(
            &db,
            &format!(
                "SELECT uri AS v FROM client_resources WHERE client_id = '{rs_id}' ORDER BY uri"
            )
        ),
        [MCP, TOOLS]
    );

    for (args, why) in [
        (
            vec!["--resource-server", "--resource", "/relative"],
            "\"/relative\" must be an absolute URI",
        ),
        (
            vec![
                "--resource-server",
                "--resource",
                "https://mcp.example.com/mcp#frag",
            ],
            "must not have a fragment",
        ),
        (
            vec![
                "--resource-server",
                "--resource",
                "https://new.example.com/",
                "--resource",
                MCP,
            ],
            "already belongs to another resource server",
        ),
        // clap: a resource belongs to a resource server.
        (
            vec![
                "--redirect-uri",
                "https://app.example/cb",
                "--resource",
                MCP,
            ],
            "--resource-server",
        ),
    ] {
        let out = client_create(&db, "Bad", &args);
        fails_naming(&out, why);
        if !why.starts_with("--") {
            fails_naming(&out, "resources");
        }
    }
    assert_eq!(count(&db, "clients"), 1, "no refused client was stored");
    assert_eq!(count(&db, "client_resources"), 2);

    // A server on that database: `resource=` names a registered resource, the token is
    // for it, and the resource server made by the CLI sees it.
    let settings = db.settings();
    let app = spawn_app_with(db, settings).await;
    let (id, secret) = app.machine_client("inference:read");
    let machine = WebClient {
        id,
        secret: Some(secret),
    };
    let (status, tokens) = json_of(
        app.token(
            &machine,
            &[("grant_type", "client_credentials"), ("resource", MCP)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(aud(&tokens), json!(MCP));
    let seen = app
        .introspect(
            &(rs_id, rs_secret),
            tokens["access_token"].as_str().expect("at"),
        )
        .await;
    assert_eq!((&seen["active"], &seen["aud"]), (&json!(true), &json!(MCP)));
}

/// docs/spec.md §8, D13: `--jwks-file` registers the file's public keys; the client gets no
/// secret and authenticates at `/oauth/token` with an assertion signed by either key. A
/// set with a private member, a file that is not JSON and a missing file are refused,
/// naming the problem, with no client made.
async fn d13_client_create_with_a_jwks_file_makes_a_private_key_jwt_client(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    let es = ClientKey::new("ES256");
    let ed = ClientKey::new("EdDSA");
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8").to_string()
    };
    let good = write(
        "jwks.json",
        &json!({"keys": [es.jwk(), ed.jwk()]}).to_string(),
    );
    let machine = [
        "--grant-types",
        "client_credentials",
        "--scope",
        "inference:read",
        "--jwks-file",
    ];
    fn with_file<'a>(machine: &[&'a str], file: &'a str) -> Vec<&'a str> {
        [machine, &[file]].concat()
    }

    let mut private = es.jwk();
    private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    let private = write("private.json", &json!({"keys": [private]}).to_string());
    let not_json = write("not.json", "{\"keys\": [");
    let missing = dir.path().join("absent.json");
    let missing = missing.to_str().expect("utf-8");
    for (file, what) in [
        (private.as_str(), "has the private member \"d\""),
        (not_json.as_str(), "not JSON"),
        (missing, missing),
    ] {
        let out = client_create(&db, "Bad", &with_file(&machine, file));
        fails_naming(&out, what);
        fails_naming(
            &out,
            if file == private {
                "jwks"
            } else {
                "--jwks-file"
            },
        );
    }
    // clap: a public client has no keys.
    let mut public = with_file(&machine, &good);
    public.push("--public");
    fails_naming(&client_create(&db, "Bad", &public), "--public");
    assert_eq!(count(&db, "clients"), 0, "no refused client was stored");

    let made = json_ok(&client_create(
        &db,
        "Signed job",
        &with_file(&machine, &good),
    ));
    let id = made["client_id"].as_str().expect("id").to_string();
    assert!(made.get("client_secret").is_none(), "{made}");
    let listed = json_ok(&tessera(&db, &["client", "list"], None));
    let row = &listed["data"][0];
    assert_eq!(row["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(row["jwks"], json!({"keys": [es.jwk(), ed.jwk()]}));

    let settings = db.settings();
    let app = spawn_app_with(db, settings).await;
    for key in [&es, &ed] {
        let (status, body) = token(&app, &key.sign(&claims(&app, &id)), None).await;
        assert_eq!(status, 200, "{}: {body}", key.alg);
        assert_eq!(body["token_type"], "Bearer");
    }
    // A key the file did not hold is refused like any wrong credential.
    let stranger = ClientKey::new("ES256");
    let (status, body) = token(&app, &stranger.sign(&claims(&app, &id)), None).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
}

/// A `tessera serve` process on `db`, its URL and its log (stderr) being collected.
struct Served {
    child: Child,
    url: String,
    log: std::thread::JoinHandle<String>,
}

fn serve(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("--database-url")
        .arg(&db.url)
        .arg("--keys-dir")
        .arg(db.keys_dir())
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "1"])
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn tessera serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).expect("utf-8 log");
        text
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let Some(Ok(first)) = lines.next() else {
        drop(child.kill());
        let status = child.wait();
        panic!(
            "serve printed no URL ({status:?}): {}",
            log.join().expect("log")
        );
    };
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();
    // The rest of the banner is drained so the process never blocks on stdout.
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, url, log }
}

impl Served {
    /// SIGTERM, exit 0, and the whole log.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        let log = self.log.join().expect("log");
        assert_eq!(exit.code(), Some(0), "SIGTERM exits 0: {log}");
        log
    }

    /// `POST /oauth/register` without a credential.
    async fn register(&self, metadata: Value) -> Answer {
        answer(
            reqwest::Client::new()
                .post(format!("{}/oauth/register", self.url))
                .json(&metadata)
                .send()
                .await
                .expect("register"),
        )
        .await
    }
}

fn execute(db: &TestDb, sql: &str) -> usize {
    let mut conn = connect_direct(&DatabaseUrl::parse(&db.url).expect("url")).expect("connect");
    diesel::sql_query(sql).execute(&mut conn).expect(sql)
}

fn exists(db: &TestDb, client_id: &str) -> bool {
    !query_strings(
        db,
        &format!("SELECT id AS v FROM clients WHERE id = '{client_id}'"),
    )
    .is_empty()
}

const LOOPBACK_WARNING: &str = "--client-metadata-allow-loopback is set";

fn public_client() -> Value {
    json!({"client_name": "MCP client", "redirect_uris": ["http://localhost/cb"],
           "token_endpoint_auth_method": "none"})
}

/// A `private_key_jwt` client whose keys are at a loopback `http` URL: registrable only
/// with `--client-metadata-allow-loopback` (docs/spec.md §8, K6). Nothing is fetched at
/// registration.
fn loopback_jwks_uri_client() -> Value {
    json!({"client_name": "Local agent", "redirect_uris": ["https://agent.example/cb"],
           "token_endpoint_auth_method": "private_key_jwt",
           "jwks_uri": "http://127.0.0.1:9/jwks.json"})
}

/// docs/spec.md §8 through the binary: `TESSERA_REGISTRATION=open` opens registration
/// (201 without a credential) while a loopback `jwks_uri` stays refused (K6) and nothing is
/// logged about loopback; then `--registration open --open-registration-idle-days 7
/// --client-metadata-allow-loopback --extra-ca-certs CA` accepts the loopback `jwks_uri`,
/// logs the warning at start, and the janitor deletes an openly registered client idle for
/// 8 days but keeps one idle for 6 (K4; the default 30 would keep both).
async fn k4_k6_serve_takes_the_registration_flags_from_the_command_line_and_environment(
    backend: Backend,
) {
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let Some(ca) = TestCa::or_skip() else { return };
    // This test's own HTTP client needs the TLS provider (no in-process server installs it).
    tessera::install_crypto_provider();

    let server = serve(&db, &[], &[("TESSERA_REGISTRATION", "open")]);
    let a = server.register(public_client()).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = server.register(loopback_jwks_uri_client()).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["error"], "invalid_client_metadata");
    let d = a.body["error_description"].as_str().expect("description");
    assert!(d.contains("jwks_uri"), "{d}");
    let log = server.stop();
    assert!(!log.contains(LOOPBACK_WARNING), "{log}");

    let ca_pem = ca.ca_pem.to_str().expect("utf-8");
    let server = serve(
        &db,
        &[
            "--registration",
            "open",
            "--open-registration-idle-days",
            "7",
            "--client-metadata-allow-loopback",
            "--extra-ca-certs",
            ca_pem,
            "--cleanup-interval-seconds",
            "1",
        ],
        &[],
    );
    let a = server.register(loopback_jwks_uri_client()).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["jwks_uri"], "http://127.0.0.1:9/jwks.json");
    let loopback = a.body["client_id"].as_str().expect("id").to_string();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let a = server.register(public_client()).await;
        assert_eq!(a.status, 201, "{}", a.body);
        ids.push(a.body["client_id"].as_str().expect("id").to_string());
    }
    let (idle_8, idle_6) = (&ids[0], &ids[1]);
    const DAY: i64 = 86_400;
    for (id, days) in [(idle_8, 8), (idle_6, 6)] {
        let n = execute(
            &db,
            &format!(
                "UPDATE open_registrations SET created_at = created_at - {} \
                 WHERE client_id = '{id}'",
                days * DAY
            ),
        );
        assert_eq!(n, 1);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while exists(&db, idle_8) {
        assert!(
            Instant::now() < deadline,
            "the janitor did not delete the client idle for 8 days"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(exists(&db, idle_6), "6 idle days are within 7");
    assert!(exists(&db, &loopback));
    assert_eq!(
        query_strings(
            &db,
            &format!(
                "SELECT action || ' by ' || actor AS v FROM audit_events \
                 WHERE target_id = '{idle_8}' ORDER BY seq"
            ),
        ),
        [
            "client.created by open-registration",
            "client.deleted by janitor"
        ]
    );
    let log = server.stop();
    assert_eq!(
        log.matches(LOOPBACK_WARNING).count(),
        1,
        "warned once at start: {log}"
    );
}

/// Runs `tessera ARGS` in an empty directory with `env`, expecting it to stop by itself
/// within 20 s (a server that started anyway is killed and fails the test).
fn run_briefly(args: &[&str], env: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            drop(child.kill());
            panic!("tessera {args:?} did not stop: it started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().expect("output"), dir)
}

/// K6: `serve --extra-ca-certs FILE` with a file that is missing, holds no certificate or
/// a broken one refuses to start (exit 2), naming the setting and the file, before it
/// creates a database.
#[test]
fn k6_serve_refuses_a_bad_extra_ca_certs_file_naming_it() {
    let files = tempfile::tempdir().expect("dir");
    let path = |name: &str, text: Option<&str>| {
        let p = files.path().join(name);
        if let Some(t) = text {
            std::fs::write(&p, t).expect("write");
        }
        p.to_str().expect("utf-8").to_string()
    };
    let cases = [
        (path("missing.pem", None), "cannot read"),
        (
            path("empty.pem", Some("not a certificate\n")),
            "holds no PEM CERTIFICATE block",
        ),
        (
            path(
                "broken.pem",
                Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
            ),
            "certificate 1 is unusable",
        ),
    ];
    for (file, why) in &cases {
        for (args, env) in [
            (
                vec!["serve", "--bind", "127.0.0.1:0", "--extra-ca-certs", file],
                vec![],
            ),
            (
                vec!["serve", "--bind", "127.0.0.1:0"],
                vec![("TESSERA_EXTRA_CA_CERTS", file.as_str())],
            ),
        ] {
            let (out, dir) = run_briefly(&args, &env);
            assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}");
            fails_naming(&out, "extra_ca_certs");
            fails_naming(&out, file);
            fails_naming(&out, why);
            assert!(!dir.path().join("data").exists(), "no database was made");
        }
    }
}

/// `--open-registration-idle-days` is a positive number of days: 0 or a negative number
/// (flag or `TESSERA_OPEN_REGISTRATION_IDLE_DAYS`) fails naming the setting, a non-number
/// is a usage error naming the flag; `--registration` takes only its two modes.
#[test]
fn open_registration_flags_refuse_bad_values_at_start() {
    for (args, env, what) in [
        (
            vec!["--open-registration-idle-days", "0"],
            vec![],
            "`open_registration_idle_days`: must be positive, got 0",
        ),
        (
            vec![],
            vec![("TESSERA_OPEN_REGISTRATION_IDLE_DAYS", "-3")],
            "`open_registration_idle_days`: must be positive, got -3",
        ),
        (
            vec!["--open-registration-idle-days", "seven"],
            vec![],
            "invalid value 'seven' for '--open-registration-idle-days <OPEN_REGISTRATION_IDLE_DAYS>'",
        ),
        (
            vec!["--registration", "sometimes"],
            vec![],
            "[possible values: authenticated, open]",
        ),
        (
            vec!["--client-metadata-allow-loopback=maybe"],
            vec![],
            "invalid value 'maybe' for '--client-metadata-allow-loopback",
        ),
    ] {
        let mut argv = vec!["serve", "--bind", "127.0.0.1:0"];
        argv.extend(args.iter().copied());
        let (out, dir) = run_briefly(&argv, &env);
        assert_eq!(out.status.code(), Some(2), "{argv:?} {env:?}");
        fails_naming(&out, what);
        assert!(!dir.path().join("data").exists(), "no database was made");
    }
}
