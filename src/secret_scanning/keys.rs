//! The public keys secret-scanning reports are signed with (docs/spec.md §10): the file
//! named by `--secret-scanning-keys`, in the JSON of GitHub's key endpoint
//! (`https://api.github.com/meta/public_keys/secret_scanning`):
//! `{"public_keys": [{"key_identifier", "key", "is_current"}]}`, each `key` a PEM
//! `PUBLIC KEY` (X.509 SubjectPublicKeyInfo of an ECDSA P-256 key).
//!
//! A report carries `Github-Public-Key-Identifier` and `Github-Public-Key-Signature` (base64
//! of an ASN.1 DER ECDSA P-256 SHA-256 signature over the raw body). As GitHub documents,
//! the signature is checked with the key whose identifier matches, current or not (GitHub
//! keeps signing with a key for a while after publishing its successor); an identifier the
//! file does not list makes us read the file again (the operator may have fetched the new
//! keys), at most once per [`RELOAD_EVERY`], and is refused when still unknown.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use base64::Engine as _;
use serde::Deserialize;

/// Shortest time between two reads of the key file caused by unknown identifiers.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct KeyFile {
    public_keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    key_identifier: String,
    key: String,
    #[serde(default)]
    is_current: bool,
}

/// One published key, parsed once.
struct ScanKey {
    id: String,
    key: ParsedPublicKey,
    is_current: bool,
}

/// Why a report's signature was refused (each is a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("secret scanning is not configured on this server (--secret-scanning-keys).")]
    NotConfigured,
    #[error("Github-Public-Key-Identifier and Github-Public-Key-Signature are required.")]
    Missing,
    #[error("Github-Public-Key-Identifier names no known key.")]
    UnknownKey,
    #[error("Github-Public-Key-Signature does not verify.")]
    BadSignature,
}

/// The configured keys (none: every report is refused with 401).
pub struct ScanKeys {
    path: Option<PathBuf>,
    keys: RwLock<Arc<Vec<ScanKey>>>,
    last_reload: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for ScanKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<(String, bool)> = self
            .snapshot()
            .iter()
            .map(|k| (k.id.clone(), k.is_current))
            .collect();
        f.debug_struct("ScanKeys")
            .field("path", &self.path)
            .field("keys", &ids)
            .finish()
    }
}

/// Parses the key file's text; the message names what is wrong (never a key's bytes).
fn parse(text: &str) -> Result<Vec<ScanKey>, String> {
    let file: KeyFile = serde_json::from_str(text)
        .map_err(|e| format!("not the JSON of GitHub's key endpoint: {e}"))?;
    file.public_keys
        .into_iter()
        .map(|e| {
            let pem = pem::parse(e.key.as_bytes())
                .map_err(|_| format!("key {:?}: not a PEM block", e.key_identifier))?;
            if pem.tag() != "PUBLIC KEY" {
                return Err(format!(
                    "key {:?}: a PEM PUBLIC KEY is expected, not {}",
                    e.key_identifier,
                    pem.tag()
                ));
            }
            let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, pem.contents())
                .map_err(|_| format!("key {:?}: not an ECDSA P-256 key", e.key_identifier))?;
            Ok(ScanKey {
                id: e.key_identifier,
                key,
                is_current: e.is_current,
            })
        })
        .collect()
}

fn read(path: &Path) -> Result<Vec<ScanKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text)
}

impl ScanKeys {
    /// No keys configured.
    pub fn none() -> Self {
        Self {
            path: None,
            keys: RwLock::new(Arc::new(Vec::new())),
            last_reload: Mutex::new(None),
        }
    }

    /// Reads and parses `path`; an error names the problem (start-up refuses to run).
    pub fn load(path: &Path) -> Result<Self, String> {
        Ok(Self {
            path: Some(path.to_path_buf()),
            keys: RwLock::new(Arc::new(read(path)?)),
            last_reload: Mutex::new(None),
        })
    }

    /// Whether a key file is configured.
    pub fn configured(&self) -> bool {
        self.path.is_some()
    }

    fn snapshot(&self) -> Arc<Vec<ScanKey>> {
        match self.keys.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reads the file again if the last read is older than [`RELOAD_EVERY`]; a file that
    /// no longer parses keeps the keys we have (and is logged).
    fn reload(&self) {
        let Some(path) = &self.path else { return };
        {
            let mut last = match self.last_reload.lock() {
                Ok(l) => l,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < RELOAD_EVERY) {
                return;
            }
            *last = Some(now);
        }
        match read(path) {
            Ok(keys) => {
                let mut slot = match self.keys.write() {
                    Ok(s) => s,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *slot = Arc::new(keys);
            }
            Err(message) => {
                tracing::warn!("secret scanning: the key file could not be re-read: {message}")
            }
        }
    }

    /// Checks a report: `identifier` and `signature` are the two `Github-Public-Key-*`
    /// headers (absent: [`SignatureError::Missing`]), `body` the raw request body.
    pub fn verify(
        &self,
        identifier: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        if !self.configured() {
            return Err(SignatureError::NotConfigured);
        }
        let (Some(identifier), Some(signature)) = (identifier, signature) else {
            return Err(SignatureError::Missing);
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| SignatureError::BadSignature)?;
        let find = |keys: &Arc<Vec<ScanKey>>| {
            keys.iter()
                .find(|k| k.id == identifier)
                .map(|k| k.key.verify_sig(body, &signature).is_ok())
        };
        let verdict = match find(&self.snapshot()) {
            Some(v) => Some(v),
            None => {
                self.reload();
                find(&self.snapshot())
            }
        };
        match verdict {
            Some(true) => Ok(()),
            Some(false) => Err(SignatureError::BadSignature),
            None => Err(SignatureError::UnknownKey),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn pair() -> (EcdsaKeyPair, String) {
        let k = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("a P-256 key");
        let der = k.public_key().as_der().expect("its DER form");
        let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_ref().to_vec()));
        (k, pem)
    }

    fn sign(k: &EcdsaKeyPair, body: &[u8]) -> String {
        let sig = k.sign(&SystemRandom::new(), body).expect("a signature");
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }

    #[test]
    fn signatures_verify_with_the_named_key_only() {
        let (old, old_pem) = pair();
        let (new, new_pem) = pair();
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("keys.json");
        let file = serde_json::json!({"public_keys": [
            {"key_identifier": "old", "key": old_pem, "is_current": false},
            {"key_identifier": "new", "key": new_pem, "is_current": true},
        ]});
        std::fs::write(&path, file.to_string()).expect("the key file");
        let keys = ScanKeys::load(&path).expect("the keys load");
        let body = br#"[{"token":"x","type":"t","url":"u","source":"content"}]"#;
        assert_eq!(
            keys.verify(Some("new"), Some(&sign(&new, body)), body),
            Ok(())
        );
        // A key that is no longer current still verifies what it signed.
        assert_eq!(
            keys.verify(Some("old"), Some(&sign(&old, body)), body),
            Ok(())
        );
        assert_eq!(
            keys.verify(Some("old"), Some(&sign(&new, body)), body),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            keys.verify(Some("new"), Some(&sign(&new, body)), b"[]"),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            keys.verify(Some("new"), Some("not base64!"), body),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            keys.verify(Some("other"), Some(&sign(&new, body)), body),
            Err(SignatureError::UnknownKey)
        );
        assert_eq!(
            keys.verify(None, Some("x"), body),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            ScanKeys::none().verify(Some("new"), Some(&sign(&new, body)), body),
            Err(SignatureError::NotConfigured)
        );
    }

    #[test]
    fn an_unknown_identifier_rereads_the_file() {
        let (a, a_pem) = pair();
        let (b, b_pem) = pair();
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("keys.json");
        let write = |entries: serde_json::Value| {
            std::fs::write(
                &path,
                serde_json::json!({"public_keys": entries}).to_string(),
            )
            .expect("the key file")
        };
        write(serde_json::json!([{"key_identifier": "a", "key": a_pem, "is_current": true}]));
        let keys = ScanKeys::load(&path).expect("the keys load");
        write(serde_json::json!([
            {"key_identifier": "a", "key": a_pem, "is_current": false},
            {"key_identifier": "b", "key": b_pem, "is_current": true},
        ]));
        let body = b"[]";
        assert_eq!(keys.verify(Some("b"), Some(&sign(&b, body)), body), Ok(()));
        assert_eq!(keys.verify(Some("a"), Some(&sign(&a, body)), body), Ok(()));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        for (text, says) in [
            ("{}", "JSON"),
            (
                r#"{"public_keys": [{"key_identifier": "k", "key": "nope"}]}"#,
                "PEM",
            ),
            (
                r#"{"public_keys": [{"key_identifier": "k", "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}]}"#,
                "P-256",
            ),
        ] {
            let e = parse(text).err().expect("an error");
            assert!(e.contains(says), "{e}");
        }
    }
}
