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
    concurrent_migrations_on_a_fresh_database_all_succeed,
    serve_refuses_to_start_without_the_private_key_that_signs_now,
    operators_list_and_repair_orgs_and_users_without_sql,
    operators_list_rotate_and_delete_clients_without_sql,
    operators_list_and_revoke_api_keys_without_sql,
);

pub(crate) fn tessera(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
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

pub(crate) fn json_ok(out: &Output) -> Value {
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

pub(crate) fn query_strings(db: &TestDb, sql: &str) -> Vec<String> {
    let mut conn = connect_direct(&DatabaseUrl::parse(&db.url).expect("url")).expect("connect");
    diesel::sql_query(sql)
        .load::<Row>(&mut conn)
        .expect("query")
        .into_iter()
        .map(|r| r.v)
        .collect()
}

pub(crate) fn count(db: &TestDb, table: &str) -> i64 {
    let mut conn = connect_direct(&DatabaseUrl::parse(&db.url).expect("url")).expect("connect");
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<Count>(&mut conn)
        .expect("count")
        .n
}

pub(crate) fn migrated(backend: Backend) -> Option<TestDb> {
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
    assert_eq!(empty["data"], serde_json::json!([]));
    let r = json_ok(&tessera(
        &db,
        &["keys", "rotate", "--key-rotation-delay-seconds", "0"],
        None,
    ));
    let kid = r["kid"].as_str().expect("kid");
    assert_eq!(r["alg"], "ES256");
    assert_eq!(r["sign_from"], r["published_at"]);
    let list = json_ok(&tessera(&db, &["keys", "list"], None));
    assert_eq!(list["data"][0]["kid"], kid);
    assert_eq!(list["data"][0]["state"], "active");
    assert_eq!(list["data"][0]["private_key_present"], true);
    let later = json_ok(&tessera(
        &db,
        &["keys", "rotate", "--signing-alg", "EdDSA"],
        None,
    ));
    assert_eq!(later["alg"], "EdDSA");
    let list = json_ok(&tessera(&db, &["keys", "list"], None));
    let access: Vec<&serde_json::Value> = list["data"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["use"] == "access")
        .collect();
    assert_eq!(access[1]["state"], "pending");
    // docs/spec.md §9: the ID-token keys (RS256, ES256, EdDSA) rotate on the same staging.
    assert_eq!(later["id_token_keys"].as_array().expect("id keys").len(), 3);
    assert_eq!(list["data"].as_array().expect("keys").len(), 8);
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
    // The access-token key and one ID-token key per algorithm (RS256, ES256, EdDSA:
    // docs/spec.md §9).
    assert_eq!(
        keys.len(),
        4,
        "generated keys: access + three ID-token lanes"
    );
    // Issue 11 §16 (docs/spec.md §1): everything it created is its owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p).expect("exists").permissions().mode() & 0o777
        };
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        assert_eq!(mode(&dir.path().join("keys")), 0o700);
        let key = keys[0].as_ref().expect("entry").path();
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        for file in ["tessera.db", "tessera.db-wal", "tessera.db-shm"] {
            assert_eq!(mode(&dir.path().join("data").join(file)), 0o600, "{file}");
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0), "SIGTERM drains and exits 0");
}

/// A failed command: non-zero exit, nothing on stdout, and a message on stderr that names
/// `what`.
pub(crate) fn fails_naming(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a failure naming {what}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "nothing on stdout: {stderr}"
    );
    assert!(stderr.contains(what), "stderr names {what}: {stderr}");
}

fn audit_actions(db: &TestDb, target_id: &str) -> Vec<String> {
    query_strings(
        db,
        &format!(
            "SELECT action || ' by ' || actor AS v FROM audit_events WHERE target_id = '{target_id}' ORDER BY seq"
        ),
    )
}

/// Issue 11 §9 (docs/spec.md §7): instances starting together on one empty database all
/// start. Four `tessera migrate` processes at once: every one succeeds, and the migrations
/// were applied exactly once.
async fn concurrent_migrations_on_a_fresh_database_all_succeed(backend: Backend) {
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .expect("dir")
        .count();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(["--database-url", &db.url, "migrate"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut applied: Vec<u64> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("wait");
            json_ok(&out)["applied"].as_u64().expect("applied")
        })
        .collect();
    applied.sort_unstable();
    assert_eq!(applied, [0, 0, 0, migrations as u64]);
    assert_eq!(json_ok(&tessera(&db, &["migrate"], None))["applied"], 0);
}

/// Issue 11 §17 (docs/spec.md §7): the key that signs now has no private file in
/// `--keys-dir` → `serve` refuses to start, naming the kid and the directory, instead of
/// answering its first token request with a 500.
async fn serve_refuses_to_start_without_the_private_key_that_signs_now(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    let rotated = json_ok(&tessera(
        &db,
        &["keys", "rotate", "--key-rotation-delay-seconds", "0"],
        None,
    ));
    let kid = rotated["kid"].as_str().expect("kid");
    let elsewhere = db.dir.path().join("other-keys");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--database-url")
        .arg(&db.url)
        .arg("--keys-dir")
        .arg(&elsewhere)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started without the private key of {kid}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    assert_eq!(status.code(), Some(1));
    fails_naming(&out, kid);
    fails_naming(&out, &elsewhere.display().to_string());
    // With the directory that holds the key, the same database serves.
    let mut ok = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--database-url")
        .arg(&db.url)
        .arg("--keys-dir")
        .arg(db.keys_dir())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(ok.stdout.take().expect("stdout")),
        &mut first,
    )
    .expect("banner");
    assert!(first.contains("listening"), "{first}");
    ok.kill().expect("kill");
    ok.wait().expect("wait");
}

/// Issue 11 §16 (docs/spec.md §1): admin commands refuse a SQLite file that does not
/// exist, naming the path, and create nothing (no file, no directory).
#[test]
fn admin_commands_refuse_a_database_that_does_not_exist() {
    let dir = tempfile::tempdir().expect("dir");
    let typo = dir.path().join("dtaa").join("tessera.db");
    let url = format!("sqlite://{}", typo.display());
    let key = tessera::api_keys::format::generate("tsr", tessera::api_keys::KeyType::Secret);
    let commands: &[&[&str]] = &[
        &["org", "create", "--name", "Acme"],
        &["org", "list"],
        &["org", "update", "org_x", "--plan", "pro"],
        &[
            "user",
            "create",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        &["user", "list"],
        &[
            "user",
            "set-password",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        &["client", "create", "--name", "RS", "--resource-server"],
        &["client", "list"],
        &["client", "rotate-secret", "cli_x"],
        &["client", "delete", "cli_x"],
        &[
            "api-key",
            "create",
            "--org",
            "org_x",
            "--name",
            "k",
            "--scope",
            "inference:read",
        ],
        &["api-key", "list", "--org", "org_x"],
        &["api-key", "revoke", "key_x"],
        &["keys", "list"],
        &["keys", "rotate"],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .current_dir(dir.path())
            .args(["--database-url", &url, "--keys-dir", "keys"])
            .args(*args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"a long enough password\n")
            .expect("stdin");
        let out = child.wait_with_output().expect("run");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        fails_naming(&out, &typo.display().to_string());
        assert!(
            std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
            "{args:?} created something"
        );
    }
    // `api-key check` needs no database at all.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["--database-url", &url, "api-key", "check", key.expose()])
        .output()
        .expect("run");
    assert!(out.status.success());
}

/// Issue 11 §16 (docs/spec.md §1): `migrate` creates the database and its directories
/// owner-only (0700 directories, 0600 file), so other local users cannot read it.
#[cfg(unix)]
#[test]
fn migrate_creates_the_database_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .args([
            "--database-url",
            "sqlite://state/data/tessera.db",
            "migrate",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("state"), 0o700);
    assert_eq!(mode("state/data"), 0o700);
    assert_eq!(mode("state/data/tessera.db"), 0o600);
}

/// Issue 11 §20 (docs/spec.md §1): `api-key check` prints its verdict as one JSON object on
/// stdout (never the key), and exits 0 for a valid key, 1 otherwise.
#[test]
fn api_key_check_prints_a_verdict() {
    let check = |key: &str, extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .current_dir(std::env::temp_dir())
            .args(["api-key", "check", key])
            .args(extra)
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!stdout.contains(key), "the key is never printed");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
        let verdict: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        (out.status.code(), verdict)
    };
    let secret = tessera::api_keys::format::generate("tsr", tessera::api_keys::KeyType::Secret);
    assert_eq!(
        check(secret.expose(), &[]),
        (
            Some(0),
            serde_json::json!({"valid": true, "type": "secret", "prefix": "tsr"})
        )
    );
    let public =
        tessera::api_keys::format::generate("acme", tessera::api_keys::KeyType::Publishable);
    assert_eq!(
        check(public.expose(), &["--key-prefix", "acme"]),
        (
            Some(0),
            serde_json::json!({"valid": true, "type": "publishable", "prefix": "acme"})
        )
    );
    let s = secret.expose();
    let last = if s.ends_with('a') { 'b' } else { 'a' };
    let typo = format!("{}{last}", &s[..s.len() - 1]);
    assert_eq!(
        check(&typo, &[]),
        (
            Some(1),
            serde_json::json!({"valid": false, "reason": "checksum mismatch: a typo, or not a key tessera made"})
        )
    );
    assert_eq!(
        check(&s[..s.len() - 1], &[]),
        (
            Some(1),
            serde_json::json!({"valid": false, "reason": "malformed: expected 32 random and 6 checksum characters (0-9A-Za-z) after the prefix"})
        )
    );
    assert_eq!(
        check("ghp_0123456789abcdef", &[]),
        (
            Some(1),
            serde_json::json!({"valid": false, "reason": "not a tsr key (expected prefix tsr_sk_ or tsr_pk_)"})
        )
    );
}

/// Every listing and repair command explains itself in `--help`.
#[test]
fn every_listing_and_repair_command_has_help() {
    for (args, says) in [
        (&["org", "list"][..], "List every organization"),
        (
            &["org", "update"],
            "Rename an organization or change its plan",
        ),
        (&["user", "list"], "List users"),
        (&["user", "set-password"], "end all their login sessions"),
        (&["client", "list"], "never a secret"),
        (&["client", "rotate-secret"], "--expire-old-in-seconds"),
        (
            &["client", "delete"],
            "every code, grant and token of it stops working",
        ),
        (&["api-key", "list"], "never the key itself"),
        (
            &["api-key", "revoke"],
            "refused everywhere from the next request on",
        ),
        (&["api-key", "check"], "\"valid\": false"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .arg("--help")
            .output()
            .expect("run");
        assert!(out.status.success(), "{args:?} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains(says),
            "{args:?} --help lacks {says:?}: {help}"
        );
    }
}

async fn operators_list_and_repair_orgs_and_users_without_sql(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    assert_eq!(
        json_ok(&tessera(&db, &["org", "list"], None)),
        serde_json::json!({"data": []})
    );
    let ada = json_ok(&tessera(
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
    let org_id = ada["org_id"].as_str().expect("org").to_string();
    let ada_id = ada["user_id"].as_str().expect("user").to_string();
    let bob = json_ok(&tessera(
        &db,
        &[
            "user",
            "create",
            "--email",
            "bob@example.com",
            "--password-stdin",
            "--org",
            &org_id,
        ],
        Some("another long password\n"),
    ));
    let bob_id = bob["user_id"].as_str().expect("user").to_string();

    let orgs = json_ok(&tessera(&db, &["org", "list"], None));
    let listed = &orgs["data"].as_array().expect("data")[..];
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], org_id.as_str());
    assert_eq!(listed[0]["name"], "ada@example.com's organization");
    assert_eq!(listed[0]["plan"], "free");

    let updated = json_ok(&tessera(
        &db,
        &["org", "update", &org_id, "--name", "Acme", "--plan", "pro"],
        None,
    ));
    assert_eq!(updated["id"], org_id.as_str());
    assert_eq!(updated["name"], "Acme");
    assert_eq!(updated["plan"], "pro");
    let renamed = json_ok(&tessera(
        &db,
        &["org", "update", &org_id, "--name", "Acme Ltd"],
        None,
    ));
    assert_eq!(
        (renamed["name"].as_str(), renamed["plan"].as_str()),
        (Some("Acme Ltd"), Some("pro"))
    );
    assert_eq!(
        audit_actions(&db, &org_id),
        [
            "org.created by cli",
            "org.updated by cli",
            "org.updated by cli"
        ]
    );
    fails_naming(
        &tessera(&db, &["org", "update", "org_nope", "--plan", "pro"], None),
        "org_nope",
    );
    fails_naming(
        &tessera(&db, &["org", "update", &org_id, "--name", " "], None),
        "name",
    );
    let neither = tessera(&db, &["org", "update", &org_id], None);
    assert_eq!(
        neither.status.code(),
        Some(2),
        "clap refuses an update of nothing"
    );

    // user list: everyone with their organizations, or one organization's members.
    let users = json_ok(&tessera(&db, &["user", "list"], None));
    let users = users["data"].as_array().expect("data");
    assert_eq!(users.len(), 2);
    let user = |id: &str| {
        users
            .iter()
            .find(|u| u["user_id"] == id)
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    assert_eq!(user(&ada_id)["email"], "ada@example.com");
    assert_eq!(
        user(&ada_id)["orgs"],
        serde_json::json!([{"org_id": org_id, "role": "admin"}])
    );
    assert_eq!(user(&bob_id)["email"], "bob@example.com");
    assert_eq!(
        user(&bob_id)["orgs"],
        serde_json::json!([{"org_id": org_id, "role": "member"}])
    );
    for u in users {
        let text = u.to_string();
        assert!(
            !text.contains("argon2") && !text.contains("password_hash"),
            "{text}"
        );
    }
    let mut members = json_ok(&tessera(&db, &["user", "list", "--org", &org_id], None));
    members["data"]
        .as_array_mut()
        .expect("data")
        .sort_by_key(|m| m["email"].to_string());
    assert_eq!(
        members,
        serde_json::json!({"data": [
            {"user_id": ada_id, "email": "ada@example.com", "role": "admin"},
            {"user_id": bob_id, "email": "bob@example.com", "role": "member"},
        ]})
    );
    fails_naming(
        &tessera(&db, &["user", "list", "--org", "org_nope"], None),
        "org_nope",
    );

    // set-password: the new password works, the old one not, every session of bob ends.
    {
        let mut conn = connect_direct(&DatabaseUrl::parse(&db.url).expect("url")).expect("connect");
        let now = crate::helpers::now();
        tessera::sessions::create(&mut conn, &bob_id, Some(&org_id), now).expect("session");
        tessera::sessions::create(&mut conn, &bob_id, None, now).expect("session");
        tessera::sessions::create(&mut conn, &ada_id, None, now).expect("session");
    }
    let reset = json_ok(&tessera(
        &db,
        &[
            "user",
            "set-password",
            "--email",
            "Bob@Example.com",
            "--password-stdin",
        ],
        Some("a brand new password\nignored\n"),
    ));
    assert_eq!(
        reset,
        serde_json::json!({"user_id": bob_id, "sessions_ended": 2, "grants_revoked": 0})
    );
    let sessions = query_strings(&db, "SELECT user_id AS v FROM sessions");
    assert_eq!(sessions, [ada_id.as_str()], "only bob's sessions ended");
    let hash = query_strings(
        &db,
        &format!("SELECT password_hash AS v FROM users WHERE id = '{bob_id}'"),
    );
    assert!(tessera::users::verify_password(
        "a brand new password",
        &hash[0]
    ));
    assert!(!tessera::users::verify_password(
        "another long password",
        &hash[0]
    ));
    assert_eq!(
        audit_actions(&db, &bob_id),
        ["member.added by cli", "user.password_reset by cli"]
    );
    fails_naming(
        &tessera(
            &db,
            &[
                "user",
                "set-password",
                "--email",
                "nobody@example.com",
                "--password-stdin",
            ],
            Some("a brand new password\n"),
        ),
        "nobody@example.com",
    );
    fails_naming(
        &tessera(
            &db,
            &[
                "user",
                "set-password",
                "--email",
                "bob@example.com",
                "--password-stdin",
            ],
            Some("short\n"),
        ),
        "password",
    );
    let refused = tessera(
        &db,
        &["user", "set-password", "--email", "bob@example.com"],
        Some("a brand new password\n"),
    );
    assert_eq!(
        refused.status.code(),
        Some(2),
        "never a password from arguments"
    );
    let hash_after = query_strings(
        &db,
        &format!("SELECT password_hash AS v FROM users WHERE id = '{bob_id}'"),
    );
    assert_eq!(hash_after, hash, "refused resets changed nothing");
}

async fn operators_list_rotate_and_delete_clients_without_sql(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    let ada = json_ok(&tessera(
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
    let org_id = ada["org_id"].as_str().expect("org").to_string();
    let rs = json_ok(&tessera(
        &db,
        &[
            "client",
            "create",
            "--name",
            "Inference API",
            "--resource-server",
        ],
        None,
    ));
    let rs_id = rs["client_id"].as_str().expect("id").to_string();
    let rs_secret = rs["client_secret"].as_str().expect("secret").to_string();
    let app = json_ok(&tessera(
        &db,
        &[
            "client",
            "create",
            "--name",
            "App",
            "--org",
            &org_id,
            "--redirect-uri",
            "https://app.example/cb",
        ],
        None,
    ));
    let app_id = app["client_id"].as_str().expect("id").to_string();
    let app_secret = app["client_secret"].as_str().expect("secret").to_string();
    let public = json_ok(&tessera(
        &db,
        &[
            "client",
            "create",
            "--name",
            "SPA",
            "--public",
            "--org",
            &org_id,
            "--redirect-uri",
            "https://spa.example/cb",
        ],
        None,
    ));
    let public_id = public["client_id"].as_str().expect("id").to_string();

    let all = json_ok(&tessera(&db, &["client", "list"], None));
    let text = all.to_string();
    assert!(
        !text.contains(&rs_secret) && !text.contains(&app_secret),
        "never a secret"
    );
    let all = all["data"].as_array().expect("data");
    let mut ids: Vec<&str> = all
        .iter()
        .map(|c| c["client_id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    let mut expected = [public_id.as_str(), app_id.as_str(), rs_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let listed = |id: &str| {
        all.iter()
            .find(|c| c["client_id"] == id)
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    assert_eq!(listed(&rs_id)["org_id"], Value::Null);
    assert_eq!(listed(&rs_id)["client_name"], "Inference API");
    assert_eq!(listed(&rs_id)["resource_server"], true);
    assert_eq!(listed(&app_id)["org_id"], org_id.as_str());
    assert_eq!(
        listed(&app_id)["redirect_uris"],
        serde_json::json!(["https://app.example/cb"])
    );
    assert_eq!(
        listed(&app_id)["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(listed(&public_id)["token_endpoint_auth_method"], "none");
    let mine = json_ok(&tessera(&db, &["client", "list", "--org", &org_id], None));
    let mut mine: Vec<&str> = mine["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["client_id"].as_str().expect("id"))
        .collect();
    mine.sort_unstable();
    let mut expected = [public_id.as_str(), app_id.as_str()];
    expected.sort_unstable();
    assert_eq!(mine, expected, "only the organization's clients");
    fails_naming(
        &tessera(&db, &["client", "list", "--org", "org_nope"], None),
        "org_nope",
    );

    // rotate-secret, an organization's client and a platform client: both secrets work
    // during the overlap; with none, only the new one.
    let rotated = json_ok(&tessera(
        &db,
        &[
            "client",
            "rotate-secret",
            &app_id,
            "--expire-old-in-seconds",
            "3600",
        ],
        None,
    ));
    assert_eq!(rotated["client_id"], app_id.as_str());
    let new_secret = rotated["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let old_end =
        tessera::clock::parse_rfc3339(rotated["old_secret_expires_at"].as_str().expect("time"))
            .expect("rfc3339");
    assert!((old_end - crate::helpers::now() - 3600).abs() <= 5);
    let rs_rotated = json_ok(&tessera(&db, &["client", "rotate-secret", &rs_id], None));
    let rs_new = rs_rotated["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    {
        let mut conn = connect_direct(&DatabaseUrl::parse(&db.url).expect("url")).expect("connect");
        let now = crate::helpers::now();
        let works = |conn: &mut _, id: &str, s: &str, at: i64| {
            tessera::clients::store::secret_matches(conn, id, s, at).expect("query")
        };
        assert!(works(&mut conn, &app_id, &new_secret, now));
        // Bounds from the printed expiry, not from a clock read after the commands ran.
        assert!(works(&mut conn, &app_id, &app_secret, old_end - 1));
        assert!(!works(&mut conn, &app_id, &app_secret, old_end + 1));
        assert!(works(&mut conn, &rs_id, &rs_new, now));
        assert!(!works(&mut conn, &rs_id, &rs_secret, now + 1));
    }
    fails_naming(
        &tessera(&db, &["client", "rotate-secret", &public_id], None),
        "public client",
    );
    fails_naming(
        &tessera(
            &db,
            &[
                "client",
                "rotate-secret",
                &app_id,
                "--expire-old-in-seconds",
                "99999999",
            ],
            None,
        ),
        "expire_old_in_seconds",
    );
    fails_naming(
        &tessera(&db, &["client", "rotate-secret", "cli_nope"], None),
        "cli_nope",
    );

    // delete: gone from the list; again, or unknown → an error naming it.
    assert_eq!(
        json_ok(&tessera(&db, &["client", "delete", &app_id], None)),
        serde_json::json!({"client_id": app_id, "deleted": true})
    );
    assert_eq!(
        json_ok(&tessera(&db, &["client", "delete", &rs_id], None)),
        serde_json::json!({"client_id": rs_id, "deleted": true})
    );
    fails_naming(&tessera(&db, &["client", "delete", &app_id], None), &app_id);
    let left = json_ok(&tessera(&db, &["client", "list"], None));
    assert_eq!(left["data"].as_array().expect("data").len(), 1);
    assert_eq!(
        count(&db, &format!("client_secrets WHERE client_id = '{app_id}'")),
        0
    );
    assert_eq!(
        audit_actions(&db, &app_id),
        [
            "client.created by cli",
            "client.secret_rotated by cli",
            "client.deleted by cli"
        ]
    );
    assert_eq!(
        audit_actions(&db, &rs_id),
        [
            "client.created by cli",
            "client.secret_rotated by cli",
            "client.deleted by cli"
        ]
    );
}

async fn operators_list_and_revoke_api_keys_without_sql(backend: Backend) {
    let Some(db) = migrated(backend) else { return };
    let org = json_ok(&tessera(
        &db,
        &["org", "create", "--name", "Acme", "--plan", "pro"],
        None,
    ));
    let org_id = org["org_id"].as_str().expect("org").to_string();
    let other = json_ok(&tessera(&db, &["org", "create", "--name", "Other"], None));
    let other_id = other["org_id"].as_str().expect("org").to_string();
    let create = |org: &str, name: &str| {
        json_ok(&tessera(
            &db,
            &[
                "api-key",
                "create",
                "--org",
                org,
                "--name",
                name,
                "--scope",
                "inference:read",
            ],
            None,
        ))
    };
    let first = create(&org_id, "first");
    let second = create(&org_id, "second");
    let foreign = create(&other_id, "foreign");
    let listed = json_ok(&tessera(&db, &["api-key", "list", "--org", &org_id], None));
    let text = listed.to_string();
    for k in [&first, &second] {
        assert!(
            !text.contains(k["key"].as_str().expect("key")),
            "never the key"
        );
    }
    let data = listed["data"].as_array().expect("data");
    assert_eq!(data.len(), 2, "only the organization's keys");
    let listed = data
        .iter()
        .find(|k| k["id"] == first["id"])
        .expect("first listed");
    assert!(data.iter().any(|k| k["id"] == second["id"]));
    assert_eq!(listed["name"], "first");
    assert_eq!(listed["type"], "secret");
    assert_eq!(listed["scopes"], serde_json::json!(["inference:read"]));
    assert_eq!(listed["last_six"], first["last_six"]);
    assert_eq!(
        listed["rate_limit_per_minute"], 1000,
        "the pro plan's default"
    );
    assert_eq!(listed["last_used_at"], Value::Null);
    assert!(listed.get("key").is_none());

    let first_id = first["id"].as_str().expect("id").to_string();
    assert_eq!(
        json_ok(&tessera(&db, &["api-key", "revoke", &first_id], None)),
        serde_json::json!({"id": first_id, "revoked": true})
    );
    let listed = json_ok(&tessera(&db, &["api-key", "list", "--org", &org_id], None));
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|k| k["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [second["id"].as_str().expect("id")]);
    assert_eq!(
        count(
            &db,
            &format!("api_keys WHERE id = '{first_id}' AND revoked_at IS NOT NULL")
        ),
        1
    );
    assert_eq!(
        audit_actions(&db, &first_id),
        ["api_key.created by cli", "api_key.revoked by cli"]
    );
    fails_naming(
        &tessera(&db, &["api-key", "revoke", &first_id], None),
        &first_id,
    );
    fails_naming(
        &tessera(&db, &["api-key", "revoke", "key_nope"], None),
        "key_nope",
    );
    fails_naming(
        &tessera(&db, &["api-key", "list", "--org", "org_nope"], None),
        "org_nope",
    );
    // Another organization's key is revoked in its own organization.
    let foreign_id = foreign["id"].as_str().expect("id").to_string();
    json_ok(&tessera(&db, &["api-key", "revoke", &foreign_id], None));
    let org_of = query_strings(
        &db,
        &format!(
            "SELECT org_id AS v FROM audit_events WHERE target_id = '{foreign_id}' AND action = 'api_key.revoked'"
        ),
    );
    assert_eq!(org_of, [other_id]);
}
