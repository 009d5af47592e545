//! Signing-key rotation (docs/spec.md §4): publish first, sign after the delay, keep retired
//! keys published until every token they signed has expired.

use jsonwebtoken::Algorithm;
use tessera::cli::KeysCommand;
use tessera::clock::Clock;
use tessera::tokens::jwt::{AccessTokenRequest, issue_access_token};

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with};
use crate::well_known::verify_with_served_jwks;

crate::on_both_backends!(
    f6_rotation_publishes_before_signing_and_keeps_retired_keys_until_expiry,
    a_restart_keeps_the_same_keys,
);

/// The published access-token keys (the ID-token keys beside them, docs/spec.md §9, are
/// left out: `tests/api/oidc.rs` follows their rotation).
async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let list = tessera::commands::keys(&app.state.settings, KeysCommand::List, app.clock.now())
        .expect("list");
    let id_token_kids: Vec<&str> = list["data"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["use"] == "id_token")
        .map(|k| k["kid"].as_str().expect("kid"))
        .collect();
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .filter(|k| !id_token_kids.contains(&k.as_str()))
        .collect()
}

async fn sign(app: &TestApp) -> String {
    let req = AccessTokenRequest {
        issuer: &app.state.issuer,
        audience: std::slice::from_ref(&app.state.audience),
        subject: "usr_x",
        client_id: "cli_x",
        scope: "inference:read",
        lifetime: app.state.settings.access_token_ttl_seconds,
        grant_id: None,
    };
    issue_access_token(&app.state.keys, &req, app.clock.now())
        .expect("sign")
        .0
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

async fn f6_rotation_publishes_before_signing_and_keeps_retired_keys_until_expiry(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let old = published_kids(&app).await;
    assert_eq!(old.len(), 1);
    let token_from_old_key = sign(&app).await;
    assert_eq!(kid_of(&token_from_old_key), old[0]);

    // The same code path as `tessera keys rotate`, against the running server's database.
    let out = tessera::commands::keys(&app.state.settings, KeysCommand::Rotate, app.clock.now())
        .expect("rotate");
    let new_kid = out["kid"].as_str().expect("kid").to_string();

    // Published at once, not yet signing.
    let kids = published_kids(&app).await;
    assert!(
        kids.contains(&old[0]) && kids.contains(&new_kid),
        "{kids:?}"
    );
    assert_eq!(
        kid_of(&sign(&app).await),
        old[0],
        "signing waits for the delay"
    );

    // After the delay (3600 s) the new key signs; the old one is still published.
    app.clock.advance(3600);
    published_kids(&app).await; // the JWKS request reloads the key set
    let token_from_new_key = sign(&app).await;
    assert_eq!(kid_of(&token_from_new_key), new_kid);
    assert_eq!(
        published_kids(&app).await.len(),
        2,
        "the retired key stays published"
    );

    // Until every token it signed has expired (access-token lifetime + leeway).
    let retention = app.state.settings.key_retention_seconds();
    app.clock.advance(retention - 1);
    assert_eq!(published_kids(&app).await.len(), 2);
    app.clock.advance(1);
    assert_eq!(published_kids(&app).await, vec![new_kid.clone()]);

    // Tokens from the new key verify independently against the served set.
    verify_with_served_jwks(&app, &sign(&app).await, Algorithm::ES256).await;

    // `keys list` reports the states; the next rotation prunes the expired key.
    let list = tessera::commands::keys(&app.state.settings, KeysCommand::List, app.clock.now())
        .expect("list");
    let states: Vec<&str> = list["data"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["use"] == "access")
        .map(|k| k["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, ["expired", "active"]);
    let again = tessera::commands::keys(&app.state.settings, KeysCommand::Rotate, app.clock.now())
        .expect("rotate");
    let pruned = again["pruned"].as_array().expect("pruned");
    assert!(pruned.contains(&serde_json::json!(old[0])), "{pruned:?}");
    assert_eq!(
        pruned.len(),
        4,
        "the old access key and the three old ID-token keys"
    );
    assert!(
        !app.db().keys_dir().join(format!("{}.pem", old[0])).exists(),
        "the expired key file is deleted"
    );
}

async fn a_restart_keeps_the_same_keys(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let before = published_kids(&app).await;
    let key_file = app.db().keys_dir().join(format!("{}.pem", before[0]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key files are private to their owner");
    }
    let db = app.stop().await;
    let settings = db.settings();
    let again = spawn_app_with(db, settings).await;
    assert_eq!(
        published_kids(&again).await,
        before,
        "no key regenerated on restart"
    );
}
