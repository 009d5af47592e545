//! The admin CLI (docs/spec.md §1) run as a user would: the real binary, JSON on stdout,
//! errors on stderr with a non-zero exit, against both databases.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};
use serde_json::Value;
use tessera::db::{DatabaseUrl, connect_direct};

use crate::helpers::{Backend, TestDb};

crate::on_both_backends!(
    org_and_user_create_print_json_and_the_first_user_is_an_admin,
    a_duplicate_email_fails_and_writes_nothing,
    d12_client_create_prints_the_secret_once_and_stores_only_its_hash,
    i1_i2_api_key_create_prints_the_key_once_and_stores_only_its_hash,
    keys_list_and_rotate_print_json,
);

fn tessera(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("--database-url")
        .arg(&db.url)
        .arg("--keys-dir")
        .arg(db.keys_dir())
        .args(args);
    cmd.env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run tessera");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("output")
}

/// Runs with the most verbose logging and checks nothing printed on stderr is a secret
/// (the caller checks stdout's secret against `h7_no_secret_in_logs`).
fn tessera_logged(db: &TestDb, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("--database-url")
        .arg(&db.url)
        .arg("--keys-dir")
        .arg(db.keys_dir())
        .args(args);
    cmd.env("RUST_LOG", "trace").output().expect("run")
}

/// H7: a secret printed on stdout never appears in the logs.
fn h7_no_secret_in_logs(out: &Output, secret: &str) {
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(!logs.contains(secret), "secret in logs");
    assert!(
        !logs.contains(&secret[..secret.len() - 6]),
        "secret prefix in logs"
    );
}

fn json_ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON object on stdout: {stdout}"
    );
    serde_json::from_str(stdout.trim()).expect("json")
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    v: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn query_strings(db: &TestDb, sql: &str) -> Vec<String> {
    let mut conn = connect_direct(&DatabaseUrl::parse(&db.url).expect("url")).expect("connect");
    diesel::sql_query(sql)
        .load::<Row>(&mut conn)
        .expect("query")
        .into_iter()
        .map(|r| r.v)
        .collect()
}

fn count(db: &TestDb, table: &str) -> i64 {
    let mut conn = connect_direct(&DatabaseUrl::parse(&db.url).expect("url")).expect("connect");
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<Count>(&mut conn)
        .expect("count")
        .n
}

fn migrated(backend: Backend) -> Option<TestDb> {
    let db = TestDb::create(backend)?;
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .expect("dir")
        .count();
    assert_eq!(
        json_ok(&tessera(&db, &["migrate"], None))["applied"],
        migrations
    );
    assert_eq!(json_ok(&tessera(&db, &["migrate"], None))["applied"], 0);
    Some(db)
}

async fn org_and_user_create_print_json_and_the_first_user_is_an_admin(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    let org = json_ok(&tessera(
        &db,
        &["org", "create", "--name", "Acme", "--plan", "pro"],
        None,
    ));
    let org_id = org["org_id"].as_str().expect("org_id");
    assert!(org_id.starts_with("org_"));

    let first = json_ok(&tessera(
        &db,
        &[
            "user",
            "create",
            "--email",
            "Ada@Example.com",
            "--password-stdin",
        ],
        Some("correct horse battery\nignored\n"),
    ));
    assert!(
        first["user_id"]
            .as_str()
            .expect("user_id")
            .starts_with("usr_")
    );
    let own_org = first["org_id"].as_str().expect("org_id");
    assert_ne!(own_org, org_id, "without --org a new organization is made");
    let roles = query_strings(
        &db,
        &format!("SELECT role AS v FROM memberships WHERE org_id = '{own_org}'"),
    );
    assert_eq!(roles, ["admin"]);
    let emails = query_strings(&db, "SELECT email AS v FROM users");
    assert_eq!(
        emails,
        ["ada@example.com"],
        "emails are stored in their normal form"
    );
    let hashes = query_strings(&db, "SELECT password_hash AS v FROM users");
    assert!(hashes[0].starts_with("$argon2id$") && !hashes[0].contains("correct horse"));

    let member = json_ok(&tessera(
        &db,
        &[
            "user",
            "create",
            "--email",
            "bob@example.com",
            "--password-stdin",
            "--org",
            org_id,
        ],
        Some("another long password\n"),
    ));
    assert_eq!(member["org_id"], org_id);
    let roles = query_strings(
        &db,
        &format!("SELECT role AS v FROM memberships WHERE org_id = '{org_id}'"),
    );
    assert_eq!(roles, ["member"]);

    // A password never comes from arguments, and a short one is refused.
    assert!(
        !tessera(
            &db,
            &["user", "create", "--email", "c@example.com"],
            Some("long enough pw\n")
        )
        .status
        .success()
    );
    let short = tessera(
        &db,
        &[
            "user",
            "create",
            "--email",
            "c@example.com",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("password"));
    let unknown = tessera(
        &db,
        &[
            "user",
            "create",
            "--email",
            "d@example.com",
            "--password-stdin",
            "--org",
            "org_nope",
        ],
        Some("long enough pw\n"),
    );
    assert!(!unknown.status.success());
    assert_eq!(count(&db, "users"), 2, "failed commands wrote nothing");
}

async fn a_duplicate_email_fails_and_writes_nothing(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    json_ok(&tessera(
        &db,
        &[
            "user",
            "create",
            "--email",
            "ada@example.com",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    ));
    let (users, orgs, audit) = (
        count(&db, "users"),
        count(&db, "organizations"),
        count(&db, "audit_events"),
    );
    let dup = tessera(
        &db,
        &[
            "user",
            "create",
            "--email",
            "ADA@example.com",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert!(!dup.status.success());
    assert!(dup.stdout.is_empty(), "nothing on stdout for an error");
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    assert_eq!(
        (
            count(&db, "users"),
            count(&db, "organizations"),
            count(&db, "audit_events")
        ),
        (users, orgs, audit)
    );
}

async fn d12_client_create_prints_the_secret_once_and_stores_only_its_hash(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    let c = json_ok(&tessera(
        &db,
        &[
            "client",
            "create",
            "--name",
            "App",
            "--redirect-uri",
            "https://app.example/cb",
            "--scope",
            "inference:read admin",
        ],
        None,
    ));
    let client_id = c["client_id"].as_str().expect("id");
    let secret = c["client_secret"].as_str().expect("secret");
    assert!(client_id.starts_with("cli_"));
    let logged = tessera_logged(
        &db,
        &[
            "client",
            "create",
            "--name",
            "Logged",
            "--redirect-uri",
            "https://app.example/cb",
        ],
    );
    let logged_secret = json_ok(&logged)["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    h7_no_secret_in_logs(&logged, &logged_secret);
    assert!(secret.len() >= 43 + 7, "≥256 bits of secret");
    let stored = query_strings(
        &db,
        &format!("SELECT secret_hash AS v FROM client_secrets WHERE client_id = '{client_id}'"),
    );
    assert_eq!(stored, [tessera::crypto::sha256_hex(secret)]);
    for table_dump in [
        query_strings(&db, "SELECT secret_hash AS v FROM client_secrets"),
        query_strings(
            &db,
            "SELECT name || redirect_uris || scope || grant_types AS v FROM clients",
        ),
    ] {
        assert!(
            table_dump.iter().all(|v| !v.contains(secret)),
            "plaintext secret stored"
        );
    }

    let public = json_ok(&tessera(
        &db,
        &[
            "client",
            "create",
            "--name",
            "SPA",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1/cb",
        ],
        None,
    ));
    assert!(public.get("client_secret").is_none());
    let rs = json_ok(&tessera(
        &db,
        &[
            "client",
            "create",
            "--name",
            "Inference API",
            "--resource-server",
            "--grant-types",
            "",
        ],
        None,
    ));
    assert!(rs["client_secret"].is_string());
    let cc = json_ok(&tessera(
        &db,
        &[
            "client",
            "create",
            "--name",
            "Batch",
            "--grant-types",
            "client_credentials",
            "--scope",
            "inference:write",
        ],
        None,
    ));
    assert!(cc["client_secret"].is_string());

    for bad in [
        vec![
            "client",
            "create",
            "--name",
            "X",
            "--redirect-uri",
            "http://x.example/cb",
        ],
        vec![
            "client",
            "create",
            "--name",
            "X",
            "--redirect-uri",
            "javascript:alert(1)",
        ],
        vec![
            "client",
            "create",
            "--name",
            "X",
            "--public",
            "--grant-types",
            "client_credentials",
        ],
        vec![
            "client",
            "create",
            "--name",
            "X",
            "--grant-types",
            "password",
            "--redirect-uri",
            "https://a.example/cb",
        ],
        vec![
            "client",
            "create",
            "--name",
            "X",
            "--redirect-uri",
            "https://a.example/cb",
            "--scope",
            "root",
        ],
        vec![
            "client",
            "create",
            "--name",
            "X",
            "--org",
            "org_missing",
            "--redirect-uri",
            "https://a.example/cb",
        ],
    ] {
        let out = tessera(&db, &bad, None);
        assert!(!out.status.success(), "{bad:?} succeeded");
        assert!(!out.stderr.is_empty());
    }
    assert_eq!(count(&db, "clients"), 5);
}

async fn i1_i2_api_key_create_prints_the_key_once_and_stores_only_its_hash(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    let org = json_ok(&tessera(&db, &["org", "create", "--name", "Acme"], None));
    let org_id = org["org_id"].as_str().expect("org");
    let k = json_ok(&tessera(
        &db,
        &[
            "api-key",
            "create",
            "--org",
            org_id,
            "--name",
            "ci",
            "--scope",
            "inference:read inference:write",
            "--scope",
            "analytics:read",
            "--expires-in-days",
            "30",
        ],
        None,
    ));
    let key = k["key"].as_str().expect("key");
    assert!(key.starts_with("tsr_sk_") && key.len() == 45);
    assert!(k["id"].as_str().expect("id").starts_with("key_"));
    assert_eq!(k["name"], "ci");
    assert_eq!(k["type"], "secret");
    assert_eq!(
        k["scopes"],
        serde_json::json!(["analytics:read", "inference:read", "inference:write"])
    );
    assert_eq!(k["last_six"], &key[key.len() - 6..]);
    assert_eq!(k["rate_limit_per_minute"], 100, "the free plan's default");
    let created =
        tessera::clock::parse_rfc3339(k["created_at"].as_str().expect("created")).expect("rfc3339");
    let expires =
        tessera::clock::parse_rfc3339(k["expires_at"].as_str().expect("expires")).expect("rfc3339");
    assert_eq!(expires - created, 30 * 86_400);
    assert_eq!(
        query_strings(&db, "SELECT key_hash AS v FROM api_keys"),
        [tessera::crypto::sha256_hex(key)]
    );
    let dump = query_strings(
        &db,
        "SELECT id || name || prefix || last_six || scope AS v FROM api_keys",
    );
    assert!(!dump[0].contains(key));
    let audit = query_strings(
        &db,
        "SELECT details AS v FROM audit_events WHERE action = 'api_key.created'",
    );
    assert_eq!(audit.len(), 1);
    assert!(!audit[0].contains(key), "the audit log has no key");

    assert!(
        tessera(&db, &["api-key", "check", key], None)
            .status
            .success()
    );
    let mut typo = key.to_string();
    typo.replace_range(10..11, if &key[10..11] == "a" { "b" } else { "a" });
    assert_eq!(
        tessera(&db, &["api-key", "check", &typo], None)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        tessera(
            &db,
            &["api-key", "check", key, "--key-prefix", "acme"],
            None
        )
        .status
        .code(),
        Some(1)
    );

    let p = json_ok(&tessera(
        &db,
        &[
            "api-key",
            "create",
            "--org",
            org_id,
            "--name",
            "web",
            "--scope",
            "inference:read",
            "--publishable",
            "--rate-limit-per-minute",
            "7",
            "--expires-at",
            "2099-01-01T00:00:00Z",
        ],
        None,
    ));
    assert!(p["key"].as_str().expect("key").starts_with("tsr_pk_"));
    assert_eq!(p["rate_limit_per_minute"], 7);
    assert_eq!(p["expires_at"], "2099-01-01T00:00:00Z");
    for bad in [
        vec![
            "api-key",
            "create",
            "--org",
            org_id,
            "--name",
            "w",
            "--scope",
            "inference:write",
            "--publishable",
        ],
        vec![
            "api-key", "create", "--org", org_id, "--name", "w", "--scope", "nope",
        ],
        vec![
            "api-key",
            "create",
            "--org",
            org_id,
            "--name",
            "w",
            "--scope",
            "admin",
            "--expires-in-days",
            "366",
        ],
        vec![
            "api-key",
            "create",
            "--org",
            org_id,
            "--name",
            "w",
            "--scope",
            "admin",
            "--expires-at",
            "2001-01-01T00:00:00Z",
        ],
        vec![
            "api-key",
            "create",
            "--org",
            "org_missing",
            "--name",
            "w",
            "--scope",
            "admin",
        ],
    ] {
        assert!(
            !tessera(&db, &bad, None).status.success(),
            "{bad:?} succeeded"
        );
    }
    assert_eq!(count(&db, "api_keys"), 2);
}

async fn keys_list_and_rotate_print_json(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    let empty = json_ok(&tessera(&db, &["keys", "list"], None));
    assert_eq!(empty["keys"], serde_json::json!([]));
    let r = json_ok(&tessera(
        &db,
        &["keys", "rotate", "--key-rotation-delay-seconds", "0"],
        None,
    ));
    let kid = r["kid"].as_str().expect("kid");
    assert_eq!(r["alg"], "ES256");
    assert_eq!(r["sign_from"], r["published_at"]);
    let list = json_ok(&tessera(&db, &["keys", "list"], None));
    assert_eq!(list["keys"][0]["kid"], kid);
    assert_eq!(list["keys"][0]["state"], "active");
    assert_eq!(list["keys"][0]["private_key_present"], true);
    let later = json_ok(&tessera(
        &db,
        &["keys", "rotate", "--signing-alg", "EdDSA"],
        None,
    ));
    assert_eq!(later["alg"], "EdDSA");
    let list = json_ok(&tessera(&db, &["keys", "list"], None));
    assert_eq!(list["keys"][1]["state"], "pending");
}

#[test]
fn help_explains_every_flag_and_its_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "TESSERA_DATABASE_URL",
        "TESSERA_KEYS_DIR",
        "TESSERA_CONFIG",
        "TESSERA_BIND",
        "TESSERA_ISSUER",
        "TESSERA_SIGNING_ALG",
        "TESSERA_REFRESH_GRACE_SECONDS",
        "TESSERA_CACHE_TTL_MS",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
    for sub in [
        "serve", "migrate", "org", "user", "client", "api-key", "keys",
    ] {
        assert!(help.contains(sub), "--help does not list {sub}");
    }
}

#[test]
fn an_invalid_setting_fails_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .args(["migrate", "--jwt-leeway-seconds", "120"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("jwt_leeway_seconds"));
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .env("TESSERA_ISSUER", "https://as.example/")
        .arg("migrate")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("issuer"));
    std::fs::write(dir.path().join("tessera.toml"), "code_ttl_seconds = 0\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("code_ttl_seconds"));
}

#[test]
fn api_key_check_needs_no_database() {
    let dir = tempfile::tempdir().expect("dir");
    let key = tessera::api_keys::format::generate("tsr", tessera::api_keys::KeyType::Secret);
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .args([
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "api-key",
            "check",
            key.expose(),
        ])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
        "no files created"
    );
}

#[test]
fn flags_win_over_environment_variables() {
    let key = tessera::api_keys::format::generate("acme", tessera::api_keys::KeyType::Secret);
    let run = |env_prefix: Option<&str>, flag: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.current_dir(std::env::temp_dir())
            .args(["api-key", "check", key.expose()]);
        if let Some(p) = env_prefix {
            cmd.env("TESSERA_KEY_PREFIX", p);
        }
        if let Some(p) = flag {
            cmd.args(["--key-prefix", p]);
        }
        cmd.status().expect("run").success()
    };
    assert!(!run(None, None), "default prefix is tsr");
    assert!(run(Some("acme"), None), "the environment applies");
    assert!(
        !run(Some("acme"), Some("tsr")),
        "the flag wins over the environment"
    );
    assert!(run(Some("tsr"), Some("acme")));
}

/// `tessera` with no subcommand serves with the defaults in the working directory:
/// creates data/tessera.db and keys/, prints the URL, and SIGTERM stops it with exit 0.
#[test]
fn serve_creates_its_files_prints_the_url_and_exits_0_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf8");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url")
        .to_string();
    let rest: Vec<String> = lines.by_ref().take(3).map(|l| l.expect("utf8")).collect();
    assert!(
        rest.iter().any(|l| l.contains("user create")),
        "says how to create the first account: {rest:?}"
    );
    let health = std::process::Command::new("curl")
        .args(["-fsS", &format!("{url}/healthz")])
        .output();
    if let Ok(out) = health {
        assert!(out.status.success(), "GET {url}/healthz failed");
    }
    assert!(dir.path().join("data/tessera.db").exists());
    let keys: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
        .expect("keys dir")
        .collect();
    assert_eq!(keys.len(), 1, "one generated key");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0), "SIGTERM drains and exits 0");
}
