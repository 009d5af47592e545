//! Secret scanning (docs/spec.md §10): `POST /api/v1/secret-scanning/verify` in GitHub's
//! partner format. The tests generate their own P-256 key, publish it in a key file like
//! GitHub's key endpoint, and sign the bodies they send.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use tessera::orgs::Plan;

use crate::helpers::api::{Answer, KeySpec, answer};
use crate::helpers::{Backend, TestApp, TestDb, spawn_app, spawn_app_with};

crate::on_both_backends!(
    i10_reports_must_carry_a_valid_signature_of_a_published_key,
    i11_a_leaked_live_key_is_revoked_at_once_and_audited_with_its_url,
    i11_a_bad_checksum_is_a_false_positive_without_the_database,
    a_mistyped_report_field_is_named,
);

/// A generated signing key and the key file that publishes it as `id`.
struct Signer {
    id: &'static str,
    key: EcdsaKeyPair,
}

impl Signer {
    fn new(id: &'static str) -> Self {
        Self {
            id,
            key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key"),
        }
    }

    fn pem(&self) -> String {
        let der = self.key.public_key().as_der().expect("der");
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_ref().to_vec()))
    }

    fn sign(&self, body: &[u8]) -> String {
        let sig = self.key.sign(&SystemRandom::new(), body).expect("sign");
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }
}

/// A server whose `--secret-scanning-keys` file publishes `signer` (current) and an older
/// key `old` (not current).
async fn app_with_keys(backend: Backend, signer: &Signer, old: &Signer) -> Option<TestApp> {
    let db = TestDb::create(backend)?;
    let path = db.dir.path().join("secret-scanning-keys.json");
    let file = json!({"public_keys": [
        {"key_identifier": old.id, "key": old.pem(), "is_current": false},
        {"key_identifier": signer.id, "key": signer.pem(), "is_current": true},
    ]});
    std::fs::write(&path, file.to_string()).expect("key file");
    let mut settings = db.settings();
    settings.secret_scanning =
        std::sync::Arc::new(tessera::secret_scanning::ScanKeys::load(&path).expect("keys load"));
    Some(spawn_app_with(db, settings).await)
}

/// Posts `body` with the given signature headers.
async fn report(app: &TestApp, body: &str, id: Option<&str>, sig: Option<&str>) -> Answer {
    let mut r = reqwest::Client::new()
        .post(format!("{}/api/v1/secret-scanning/verify", app.address))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(id) = id {
        r = r.header("Github-Public-Key-Identifier", id);
    }
    if let Some(sig) = sig {
        r = r.header("Github-Public-Key-Signature", sig);
    }
    answer(r.send().await.expect("request")).await
}

async fn signed(app: &TestApp, signer: &Signer, matches: Value) -> Answer {
    let body = matches.to_string();
    report(
        app,
        &body,
        Some(signer.id),
        Some(&signer.sign(body.as_bytes())),
    )
    .await
}

fn leak(token: &str, url: &str) -> Value {
    json!({"token": token, "type": "tessera_api_key", "url": url, "source": "content"})
}

async fn i10_reports_must_carry_a_valid_signature_of_a_published_key(backend: Backend) {
    let (signer, old, stranger) = (Signer::new("k2"), Signer::new("k1"), Signer::new("k9"));
    let Some(app) = app_with_keys(backend, &signer, &old).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let key = app.api_key(&org, KeySpec::default());
    let body = json!([leak(&key.key, "https://github.com/o/r/blob/x/a.env#L1")]).to_string();
    let good = signer.sign(body.as_bytes());

    for (id, sig, why) in [
        (None, None, "no signature"),
        (Some("k2"), None, "no signature header"),
        (None, Some(good.as_str()), "no identifier"),
        (
            Some("k2"),
            Some("bm90IGEgc2lnbmF0dXJl"),
            "garbage signature",
        ),
        (
            Some("k1"),
            Some(good.as_str()),
            "signed by another key than named",
        ),
        (Some("k9"), Some(good.as_str()), "unknown identifier"),
    ] {
        let r = report(&app, &body, id, sig).await;
        assert_eq!(r.status, 401, "{why}: {}", r.body);
    }
    let stranger_sig = stranger.sign(body.as_bytes());
    let r = report(&app, &body, Some("k9"), Some(&stranger_sig)).await;
    assert_eq!(r.status, 401, "a key the file does not publish");
    // The signature covers the raw body: one changed byte is refused.
    let tampered = body.replace("a.env", "b.env");
    let r = report(&app, &tampered, Some("k2"), Some(&good)).await;
    assert_eq!(r.status, 401, "tampered body");
    // Nothing of the above touched the key.
    let r = app
        .api(Method::GET, "/api/v1/api-keys", &key.key, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A key that is no longer current still verifies what it signed (GitHub rotates).
    let r = report(&app, "[]", Some("k1"), Some(&old.sign(b"[]"))).await;
    assert_eq!((r.status, r.body.clone()), (200, json!([])));
    // A well-signed but malformed body is a 400, not a 5xx.
    let bad = r#"[{"type": "x"}]"#;
    let r = report(&app, bad, Some("k2"), Some(&signer.sign(bad.as_bytes()))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.to_string().contains("token"), "{}", r.body);
    let long = json!([leak(&key.key, &"u".repeat(3000))]);
    let r = signed(&app, &signer, long).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.to_string().contains("url"), "{}", r.body);

    // Without a key file every report is refused.
    let plain = spawn_app(backend).await.expect("backend available");
    let r = report(&plain, "[]", Some("k2"), Some(&signer.sign(b"[]"))).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

async fn i11_a_leaked_live_key_is_revoked_at_once_and_audited_with_its_url(backend: Backend) {
    let (signer, old) = (Signer::new("k2"), Signer::new("k1"));
    let Some(app) = app_with_keys(backend, &signer, &old).await else {
        return;
    };
    let browser = app.user("ada@example.com").await;
    let org = app.org_of("ada@example.com");
    let admin = app.api_key(&org, KeySpec::default());
    let leaked = app.api_key(&org, KeySpec::default());
    // Used once, so the key is cached as good on this instance.
    let r = app
        .api(Method::GET, "/api/v1/api-keys", &leaked.key, None)
        .await;
    assert_eq!(r.status, 200);
    // An organization that keeps its leaked keys alive.
    let lenient = app.org(Plan::Pro);
    let lenient_admin = app.api_key(&lenient, KeySpec::default());
    let r = app
        .api(
            Method::PATCH,
            &format!("/api/v1/orgs/{lenient}"),
            &lenient_admin.key,
            Some(json!({"revoke_leaked_keys": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let kept = app.api_key(&lenient, KeySpec::default());
    // Well formed, valid checksum, never issued.
    let unknown = tessera::api_keys::format::generate("tsr", tessera::api_keys::KeyType::Secret);

    let url = "https://github.com/octo/repo/blob/abc/config.env#L3";
    let r = signed(
        &app,
        &signer,
        json!([
            leak(&leaked.key, url),
            leak(unknown.expose(), "https://gist.github.com/x"),
            leak(&kept.key, "https://github.com/octo/other#L1"),
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!([
            {"token_raw": leaked.key, "token_type": "tessera_api_key", "label": "true_positive"},
            {"token_raw": unknown.expose(), "token_type": "tessera_api_key", "label": "false_positive"},
            {"token_raw": kept.key, "token_type": "tessera_api_key", "label": "true_positive"},
        ])
    );
    // Revoked from the next request on, though it was cached.
    let r = app
        .api(Method::GET, "/api/v1/api-keys", &leaked.key, None)
        .await;
    assert_eq!(r.status, 401, "the leaked key is revoked: {}", r.body);
    let r = app
        .api(Method::GET, "/api/v1/api-keys", &admin.key, None)
        .await;
    assert_eq!(r.status, 200, "other keys go on");
    let r = app
        .api(Method::GET, "/api/v1/api-keys", &kept.key, None)
        .await;
    assert_eq!(r.status, 200, "revoke_leaked_keys=false keeps the key");

    let mut conn = app.state.pool.get().expect("conn");
    let log = tessera::audit::list_for_org(&mut conn, &org, 50).expect("audit");
    let leak_entry = log
        .iter()
        .find(|e| e.action == "api_key.leaked" && e.target_id == leaked.id)
        .expect("api_key.leaked recorded");
    assert_eq!(leak_entry.actor, "secret_scanning");
    let details: Value = serde_json::from_str(&leak_entry.details).expect("json");
    assert_eq!(details["url"], url);
    assert_eq!(details["source"], "content");
    assert_eq!(details["revoked"], true);
    assert!(
        !leak_entry.details.contains(&leaked.key),
        "never the key itself"
    );
    assert!(
        log.iter()
            .any(|e| e.action == "api_key.revoked" && e.target_id == leaked.id),
        "the revocation is audited too (and reaches other instances through the poll)"
    );
    let log = tessera::audit::list_for_org(&mut conn, &lenient, 50).expect("audit");
    let kept_entry = log
        .iter()
        .find(|e| e.action == "api_key.leaked" && e.target_id == kept.id)
        .expect("recorded even when not revoked");
    assert!(kept_entry.details.contains("\"revoked\":false"));
    drop(conn);

    // The organization's admins see the report on their key page.
    let (status, html) = app.page(&browser, "/settings/api-keys").await;
    assert_eq!(status, 200);
    let banner = &html[html
        .find(r#"<section class="leaks" id="leaks""#)
        .expect("banner")..];
    assert!(banner.contains(url), "{banner}");
    assert!(banner.contains("revoked at once"), "{banner}");
    assert!(banner.contains(&leaked.last_six), "{banner}");

    // Reported again: still a true positive (it is ours), nothing more to revoke.
    let r = signed(&app, &signer, json!([leak(&leaked.key, url)])).await;
    assert_eq!(r.body[0]["label"], "true_positive");

    // A publishable key is public by design: recorded, never revoked (else anyone could
    // copy one into a public repository to have it killed).
    let public = app.api_key(
        &org,
        KeySpec {
            scopes: "inference:read",
            key_type: tessera::api_keys::KeyType::Publishable,
            ..Default::default()
        },
    );
    let r = signed(&app, &signer, json!([leak(&public.key, url)])).await;
    assert_eq!(r.body[0]["label"], "true_positive");
    let rs = app.resource_server();
    let v = app.verify(&rs, json!({"key": public.key})).await;
    assert_eq!(v.body["code"], "VALID", "{}", v.body);
}

async fn i11_a_bad_checksum_is_a_false_positive_without_the_database(backend: Backend) {
    let (signer, old) = (Signer::new("k2"), Signer::new("k1"));
    let Some(app) = app_with_keys(backend, &signer, &old).await else {
        return;
    };
    let org = app.org(Plan::Free);
    let key = app.api_key(&org, KeySpec::default());
    let mut typo = key.key.clone();
    let last = typo.pop().expect("char");
    typo.push(if last == 'a' { 'b' } else { 'a' });
    let matches = json!([
        leak(&typo, "https://github.com/o/r#L1"),
        leak("ghp_notours", "https://github.com/o/r#L2"),
    ]);
    // Every pooled connection is taken: any lookup would wait and fail with 503.
    let held: Vec<_> = (0..app.state.settings.db_pool_size)
        .map(|_| app.state.pool.get().expect("conn"))
        .collect();
    let started = std::time::Instant::now();
    let r = signed(&app, &signer, matches).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(started.elapsed() < std::time::Duration::from_millis(1500));
    assert_eq!(r.body[0]["label"], "false_positive");
    assert_eq!(r.body[1]["label"], "false_positive");
    drop(held);
    // The real key, one character off, was not touched.
    let r = app
        .api(Method::GET, "/api/v1/api-keys", &key.key, None)
        .await;
    assert_eq!(r.status, 200);
}

async fn a_mistyped_report_field_is_named(backend: Backend) {
    let (signer, old) = (Signer::new("k2"), Signer::new("k1"));
    let Some(app) = app_with_keys(backend, &signer, &old).await else {
        return;
    };
    for (body, field) in [
        (json!([{"token": 5, "type": "x"}]), "[0].token"),
        (
            json!([leak("tsr_sk_x", "u"), {"token": "t", "type": ["x"]}]),
            "[1].type",
        ),
        (json!([{"token": "t", "type": "x", "url": 7}]), "[0].url"),
        (json!({"token": "t"}), "The body"),
    ] {
        let r = signed(&app, &signer, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let m = r.body["error"]["message"].as_str().expect("message");
        assert!(m.contains(field), "{body}: {m}");
    }
}

/// docs/spec.md §7, §10 on the real binary: a revocation by secret scanning is logged
/// (key id, organization, source; never the key), and a key file that cannot be re-read is
/// a warning that says why.
#[actix_web::test]
async fn a_revocation_by_secret_scanning_is_logged_without_the_key() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("dir");
    let bin = env!("CARGO_BIN_EXE_tessera");
    let run = |args: &[&str]| -> Value {
        let out = Command::new(bin)
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("run");
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    run(&["migrate"]);
    let org = run(&["org", "create", "--name", "Acme"])["org_id"]
        .as_str()
        .expect("org")
        .to_string();
    let key = run(&[
        "api-key",
        "create",
        "--org",
        &org,
        "--name",
        "ci",
        "--scope",
        "inference:read",
    ]);
    let (plain, key_id) = (
        key["key"].as_str().expect("key").to_string(),
        key["id"].as_str().expect("id").to_string(),
    );
    let signer = Signer::new("k2");
    let keys_file = dir.path().join("scan-keys.json");
    let file =
        json!({"public_keys": [{"key_identifier": "k2", "key": signer.pem(), "is_current": true}]});
    std::fs::write(&keys_file, file.to_string()).expect("key file");
    let log = dir.path().join("server.log");
    let mut server = Command::new(bin)
        .current_dir(dir.path())
        .args(["--bind", "127.0.0.1:0", "--secret-scanning-keys"])
        .arg(&keys_file)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
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
    let post = |body: String, id: &'static str, sig: String| {
        let url = format!("{base}/api/v1/secret-scanning/verify");
        async move {
            reqwest::Client::new()
                .post(url)
                .header("Content-Type", "application/json")
                .header("Github-Public-Key-Identifier", id)
                .header("Github-Public-Key-Signature", sig)
                .body(body)
                .send()
                .await
                .expect("report")
                .status()
                .as_u16()
        }
    };
    let body = json!([leak(&plain, "https://github.com/o/r/blob/x/.env#L1")]).to_string();
    assert_eq!(
        post(body.clone(), "k2", signer.sign(body.as_bytes())).await,
        200
    );
    // The file breaks; an unknown identifier makes the server read it again.
    std::fs::write(&keys_file, "not json").expect("break");
    assert_eq!(post("[]".into(), "k9", signer.sign(b"[]")).await, 401);
    // Logs reach stderr through a background writer: wait for the last line before the kill.
    let reread = "secret scanning: the key file could not be re-read: not the JSON";
    for _ in 0..100 {
        if std::fs::read_to_string(&log).is_ok_and(|t| t.contains(reread)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    let line = text
        .lines()
        .find(|l| l.contains("secret scanning: a leaked key was revoked"))
        .unwrap_or_else(|| panic!("no revocation line in {text}"));
    assert!(line.contains("WARN"), "{line}");
    for want in [key_id.as_str(), org.as_str(), "source=\"content\""] {
        assert!(line.contains(want), "{want} in {line}");
    }
    assert!(!text.contains(&plain), "the key never reaches the log");
    assert!(text.contains(reread), "{text}");
}
