//! Signing keys (docs/spec.md §4): PEM files in `keys/` named by kid (private material, 0600),
//! their lifecycle in the `signing_keys` table (public JWK, when signing starts).
//!
//! A key's state is derived from `sign_from` alone, so instances never disagree:
//! - *pending*: `now < sign_from`; published in the JWKS, not used for signing;
//! - *active*: the newest key with `sign_from <= now`; signs new tokens;
//! - *retired*: a newer key is active; still published until every token it can have
//!   signed has expired (successor's `sign_from` + access-token lifetime + leeway);
//! - *expired*: past that; dropped from the JWKS and pruned by the next rotation.
//!
//! Keys are parsed once when loaded; signing never re-reads or re-parses a key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::signing_keys;

mod lane;
mod material;

pub use lane::{ID_TOKEN_ALGS, KeyUse, Lane};
pub use material::SigningAlg;
use material::{Signer, generate_pkcs8, key_path, read_signer, valid_kid, write_key_file};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} is not a usable {alg} PKCS#8 key")]
    BadKey { path: String, alg: &'static str },
    #[error("key generation failed")]
    Generate,
    #[error("no signing key is active")]
    NoActiveKey,
    #[error("the active signing key {0} has no private key file on this instance")]
    PrivateKeyMissing(String),
    #[error(
        "the signing key {kid} signs now, but its private key file {kid}.pem is not in the keys directory {dir}: \
         point --keys-dir (TESSERA_KEYS_DIR) at the directory the other instances use, or copy the file there"
    )]
    NoPrivateKeyFile { kid: String, dir: String },
    #[error("signing failed")]
    Sign,
}

/// One signing key as loaded by an instance.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    /// What the key signs: access tokens, or ID tokens (docs/spec.md §9).
    pub purpose: KeyUse,
    pub created_at: Timestamp,
    pub sign_from: Timestamp,
    /// The published JWK: public members, `kid`, `alg`, `use: "sig"`.
    pub jwk: Value,
    /// Pre-encoded JOSE header of the tokens this key signs (`typ: at+jwt` for access
    /// tokens, `typ: JWT` for ID tokens).
    header_b64: String,
    /// `None` when this instance has no private key file for it (it can still publish it).
    signer: Option<Signer>,
    /// The public key, parsed once, for verifying tokens this key signed.
    pub decoding: Option<jsonwebtoken::DecodingKey>,
    pub jose_alg: jsonwebtoken::Algorithm,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("purpose", &self.purpose)
            .field("sign_from", &self.sign_from)
            .field("has_private_key", &self.signer.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Pending,
    Active,
    Retired,
    Expired,
}

/// The keys an instance knows, oldest `sign_from` first.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
}

impl KeySet {
    /// The newest key of `lane` that has started signing at `now`.
    fn active_index_in(&self, lane: Lane, now: Timestamp) -> Option<usize> {
        self.keys
            .iter()
            .rposition(|k| lane.contains(k) && k.sign_from <= now)
    }

    /// One fresh key of `alg`, held only in memory and signing from `now`: for the fuzz
    /// targets and property tests of the verifier, which have no database or keys directory.
    pub fn in_memory(alg: SigningAlg, now: Timestamp) -> Result<Self, KeyError> {
        let der = generate_pkcs8(alg)?;
        let signer = Signer::from_pkcs8(alg, &der).ok_or(KeyError::Generate)?;
        let kid = crate::crypto::random_base62(20);
        let row = KeyRow {
            public_jwk: published_jwk(&signer, &kid, alg).to_string(),
            kid,
            alg: alg.as_str().into(),
            created_at: now,
            sign_from: now,
            purpose: KeyUse::Access.as_str().into(),
        };
        let key = build_key(row, Some(signer)).ok_or(KeyError::Generate)?;
        Ok(Self {
            keys: vec![Arc::new(key)],
        })
    }

    /// Signs `claims` as a JWT with the key active at `now` (header `typ: at+jwt`,
    /// RFC 9068 §2.1). Errors: no active key, or this instance lacks its private file.
    pub fn sign_jwt<C: serde::Serialize>(
        &self,
        claims: &C,
        now: Timestamp,
    ) -> Result<String, KeyError> {
        self.sign_in(Lane::ACCESS, claims, now)
    }

    /// Signs `claims` with the key of `lane` active at `now`, under that key's header.
    pub fn sign_in<C: serde::Serialize>(
        &self,
        lane: Lane,
        claims: &C,
        now: Timestamp,
    ) -> Result<String, KeyError> {
        let key = self.active_in(lane, now).ok_or(KeyError::NoActiveKey)?;
        let signer = key
            .signer
            .as_ref()
            .ok_or_else(|| KeyError::PrivateKeyMissing(key.kid.clone()))?;
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let mut token = String::with_capacity(key.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&key.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let sig = signer.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut token);
        Ok(token)
    }

    pub fn state(&self, index: usize, now: Timestamp, retention: i64) -> KeyState {
        let Some(k) = self.keys.get(index) else {
            return KeyState::Expired;
        };
        let lane = Lane::of(k);
        match self.active_index_in(lane, now) {
            _ if k.sign_from > now => KeyState::Pending,
            Some(a) if a == index => KeyState::Active,
            _ => {
                // The successor is the next key of the same lane that has started signing.
                let successor_from = self
                    .keys
                    .get(index + 1..)
                    .unwrap_or(&[])
                    .iter()
                    .filter(|s| lane.contains(s))
                    .map(|s| s.sign_from)
                    .find(|&t| t <= now)
                    .unwrap_or(now);
                if now < successor_from + retention {
                    KeyState::Retired
                } else {
                    KeyState::Expired
                }
            }
        }
    }

    /// The key that signs access tokens at `now`.
    pub fn active(&self, now: Timestamp) -> Option<&Arc<SigningKey>> {
        self.active_in(Lane::ACCESS, now)
    }

    /// The key of `lane` that signs at `now`.
    pub fn active_in(&self, lane: Lane, now: Timestamp) -> Option<&Arc<SigningKey>> {
        self.active_index_in(lane, now)
            .and_then(|i| self.keys.get(i))
    }

    /// Keys to publish at `now`: pending, active and retired ones.
    pub fn published(&self, now: Timestamp, retention: i64) -> Vec<&Arc<SigningKey>> {
        self.keys
            .iter()
            .enumerate()
            .filter(|(i, _)| self.state(*i, now, retention) != KeyState::Expired)
            .map(|(_, k)| k)
            .collect()
    }

    pub fn all(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }

    pub fn get(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// The keys of one instance, reloaded from the database and `keys/` when they change.
#[derive(Debug)]
pub struct Keystore {
    dir: PathBuf,
    retention: i64,
    set: RwLock<Arc<KeySet>>,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = signing_keys)]
struct KeyRow {
    kid: String,
    alg: String,
    public_jwk: String,
    created_at: i64,
    sign_from: i64,
    purpose: String,
}

fn build_key(row: KeyRow, signer: Option<Signer>) -> Option<SigningKey> {
    let alg = SigningAlg::parse(&row.alg)?;
    let purpose = KeyUse::parse(&row.purpose)?;
    let jwk: Value = serde_json::from_str(&row.public_jwk).ok()?;
    let header = json!({"alg": alg.as_str(), "typ": purpose.typ(), "kid": row.kid});
    let decoding = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(jwk.clone())
        .ok()
        .and_then(|j| jsonwebtoken::DecodingKey::from_jwk(&j).ok());
    let jose_alg = match alg {
        SigningAlg::ES256 => jsonwebtoken::Algorithm::ES256,
        SigningAlg::RS256 => jsonwebtoken::Algorithm::RS256,
        SigningAlg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
    };
    Some(SigningKey {
        decoding,
        jose_alg,
        header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
        kid: row.kid,
        alg,
        purpose,
        created_at: row.created_at,
        sign_from: row.sign_from,
        jwk,
        signer,
    })
}

/// The JWK published for a key: its public members, `kid`, `alg` and `use: "sig"`.
fn published_jwk(signer: &Signer, kid: &str, alg: SigningAlg) -> Value {
    let mut jwk = signer.public_jwk();
    if let Some(o) = jwk.as_object_mut() {
        o.insert("kid".into(), json!(kid));
        o.insert("alg".into(), json!(alg.as_str()));
        o.insert("use".into(), json!("sig"));
    }
    jwk
}

/// Creates a key: file first, then the row (a row never points at a missing file on the
/// instance that made it). Returns its kid.
pub fn create_key(
    conn: &mut DbConnection,
    dir: &Path,
    alg: SigningAlg,
    purpose: KeyUse,
    now: Timestamp,
    sign_from: Timestamp,
) -> Result<String, KeyError> {
    let der = generate_pkcs8(alg)?;
    let signer = Signer::from_pkcs8(alg, &der).ok_or(KeyError::Generate)?;
    let kid = crate::crypto::random_base62(20);
    let jwk = published_jwk(&signer, &kid, alg);
    write_key_file(dir, &kid, &der)?;
    diesel::insert_into(signing_keys::table)
        .values(KeyRow {
            kid: kid.clone(),
            alg: alg.as_str().into(),
            public_jwk: jwk.to_string(),
            created_at: now,
            sign_from,
            purpose: purpose.as_str().into(),
        })
        .execute(conn)?;
    Ok(kid)
}

/// Loads every key row and the private key files this instance has.
pub fn load_set(conn: &mut DbConnection, dir: &Path) -> Result<KeySet, KeyError> {
    let rows: Vec<KeyRow> = signing_keys::table
        .order((
            signing_keys::sign_from.asc(),
            signing_keys::created_at.asc(),
            signing_keys::purpose.asc(),
            signing_keys::kid.asc(),
        ))
        .load(conn)?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        if !valid_kid(&row.kid) {
            tracing::warn!(kid = %row.kid, "ignoring a signing key row with an unsafe kid");
            continue;
        }
        if KeyUse::parse(&row.purpose).is_none() {
            tracing::warn!(kid = %row.kid, purpose = %row.purpose, "ignoring a signing key with an unknown purpose");
            continue;
        }
        let Some(alg) = SigningAlg::parse(&row.alg) else {
            tracing::warn!(kid = %row.kid, alg = %row.alg, "ignoring a signing key with an unknown algorithm");
            continue;
        };
        let signer = read_signer(dir, &row.kid, alg)?;
        if let Some(key) = build_key(row, signer) {
            keys.push(Arc::new(key));
        }
    }
    Ok(KeySet { keys })
}

/// Deletes the rows and files of expired keys. Returns their kids.
pub fn prune_expired(
    conn: &mut DbConnection,
    dir: &Path,
    set: &KeySet,
    now: Timestamp,
    retention: i64,
) -> Result<Vec<String>, KeyError> {
    let mut pruned = Vec::new();
    for (i, k) in set.all().iter().enumerate() {
        if set.state(i, now, retention) == KeyState::Expired {
            diesel::delete(signing_keys::table.find(&k.kid)).execute(conn)?;
            match std::fs::remove_file(key_path(dir, &k.kid)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(KeyError::Io {
                        path: key_path(dir, &k.kid).display().to_string(),
                        source,
                    });
                }
            }
            pruned.push(k.kid.clone());
        }
    }
    Ok(pruned)
}

impl Keystore {
    /// Loads the keys; when none can sign (first start), creates one that signs at once.
    /// Refuses ([`KeyError::NoPrivateKeyFile`]) when the key that signs now has no private
    /// key file in `dir` (docs/spec.md §7).
    pub fn open(
        conn: &mut DbConnection,
        dir: &Path,
        alg: SigningAlg,
        retention: i64,
        now: Timestamp,
    ) -> Result<Self, KeyError> {
        let mut set = load_set(conn, dir)?;
        let lanes = std::iter::once((Lane::ACCESS, alg, KeyUse::Access)).chain(
            ID_TOKEN_ALGS
                .iter()
                .map(|&a| (Lane::id_token(a), a, KeyUse::IdToken)),
        );
        for (lane, alg, purpose) in lanes.clone() {
            if set.active_in(lane, now).is_none() {
                let kid = create_key(conn, dir, alg, purpose, now, now)?;
                tracing::info!(%kid, alg = alg.as_str(), purpose = purpose.as_str(), dir = %dir.display(), "generated the first signing key");
                set = load_set(conn, dir)?;
            }
        }
        // docs/spec.md §7: an instance that could not sign refuses to start, rather than
        // answering its first token request with a 500.
        for (lane, ..) in lanes {
            if let Some(key) = set.active_in(lane, now)
                && key.signer.is_none()
            {
                return Err(KeyError::NoPrivateKeyFile {
                    kid: key.kid.clone(),
                    dir: dir.display().to_string(),
                });
            }
        }
        for key in set.all().iter().filter(|k| k.sign_from > now) {
            if key.signer.is_none() {
                tracing::warn!(kid = %key.kid, dir = %dir.display(), sign_from = key.sign_from,
                    "a pending signing key has no private key file in the keys directory; this instance cannot sign once it becomes active");
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            retention,
            set: RwLock::new(Arc::new(set)),
        })
    }

    /// Picks up keys added by `keys rotate` (here or on another instance). Cheap when
    /// nothing changed: one small query, no file reads.
    pub fn reload(&self, conn: &mut DbConnection) -> Result<(), KeyError> {
        let rows: Vec<(String, i64)> = signing_keys::table
            .order((
                signing_keys::sign_from.asc(),
                signing_keys::created_at.asc(),
                signing_keys::purpose.asc(),
                signing_keys::kid.asc(),
            ))
            .select((signing_keys::kid, signing_keys::sign_from))
            .load(conn)?;
        let unchanged = {
            let cur = self.snapshot();
            cur.keys.len() == rows.len()
                && cur.keys.iter().zip(&rows).all(|(k, (kid, from))| {
                    &k.kid == kid && k.sign_from == *from && k.signer.is_some()
                })
        };
        if unchanged {
            return Ok(());
        }
        let fresh = load_set(conn, &self.dir)?;
        if let Ok(mut guard) = self.set.write() {
            *guard = Arc::new(fresh);
        }
        tracing::debug!("signing keys reloaded");
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(g) => Arc::clone(&g),
            // A writer panicked mid-swap; the Arc inside is still a complete set.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn retention(&self) -> i64 {
        self.retention
    }

    /// The JWKS document (RFC 7517 §5): public members only.
    pub fn jwks(&self, now: Timestamp) -> Value {
        let set = self.snapshot();
        let keys: Vec<&Value> = set
            .published(now, self.retention)
            .into_iter()
            .map(|k| &k.jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// True when a key can sign at `now` on this instance.
    pub fn can_sign(&self, now: Timestamp) -> bool {
        self.snapshot()
            .active(now)
            .is_some_and(|k| k.signer.is_some())
    }

    /// Signs `claims` as a JWT with the active key (header `typ: at+jwt`, RFC 9068 §2.1).
    pub fn sign_jwt<C: serde::Serialize>(
        &self,
        claims: &C,
        now: Timestamp,
    ) -> Result<String, KeyError> {
        self.snapshot().sign_jwt(claims, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, sign_from: i64) -> Arc<SigningKey> {
        Arc::new(SigningKey {
            kid: kid.into(),
            alg: SigningAlg::ES256,
            purpose: KeyUse::Access,
            created_at: 0,
            sign_from,
            jwk: json!({}),
            header_b64: String::new(),
            signer: None,
            decoding: None,
            jose_alg: jsonwebtoken::Algorithm::ES256,
        })
    }

    #[test]
    fn key_states_follow_sign_from_and_retention() {
        let set = KeySet {
            keys: vec![key("a", 0), key("b", 100)],
        };
        let retention = 50;
        assert_eq!(set.state(0, 10, retention), KeyState::Active);
        assert_eq!(set.state(1, 10, retention), KeyState::Pending);
        assert_eq!(
            set.published(10, retention).len(),
            2,
            "pending keys are published at once"
        );
        assert_eq!(set.active(99).map(|k| k.kid.as_str()), Some("a"));
        assert_eq!(set.active(100).map(|k| k.kid.as_str()), Some("b"));
        assert_eq!(set.state(0, 149, retention), KeyState::Retired);
        assert_eq!(set.state(0, 150, retention), KeyState::Expired);
        assert_eq!(set.published(150, retention).len(), 1);
    }

    #[test]
    fn kids_are_safe_file_names() {
        assert!(valid_kid("abcDEF123"));
        assert!(!valid_kid("../../x"));
        assert!(!valid_kid("a b"));
        assert!(!valid_kid(""));
    }

    #[test]
    fn every_algorithm_generates_signs_and_publishes_public_members_only() {
        for alg in [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256] {
            let der = generate_pkcs8(alg).expect("generate");
            let signer = Signer::from_pkcs8(alg, &der).expect("parse");
            let jwk = signer.public_jwk();
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(jwk.get(private).is_none(), "{alg:?} leaks {private}");
            }
            assert!(!signer.sign(b"message").expect("sign").is_empty());
        }
    }
}
