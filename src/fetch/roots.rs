//! The roots of trust of the guarded fetcher's TLS: the system's certificates (the
//! platform's store, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set, as with OpenSSL) and the
//! CA certificates of `--extra-ca-certs` (docs/spec.md §8): a private PKI that serves
//! `jwks_uri`s or client documents, or a TLS-inspecting egress proxy.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The certificates of `--extra-ca-certs`, parsed and checked once at start. Empty when
/// the setting is not given.
#[derive(Clone, Debug, Default)]
pub struct ExtraRoots(Arc<Vec<CertificateDer<'static>>>);

impl ExtraRoots {
    /// Reads a PEM file of one or more `CERTIFICATE` blocks. Errors (for the settings
    /// error that names `extra_ca_certs`): the file cannot be read, a block is not valid
    /// PEM, there is no certificate, or one is not usable as a trust anchor.
    pub fn load(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read {shown}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{shown} is not a PEM file of certificates: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{shown} holds no PEM CERTIFICATE block"));
        }
        let mut store = rustls::RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            store
                .add(cert.clone())
                .map_err(|e| format!("{shown}: certificate {} is unusable: {e}", i + 1))?;
        }
        Ok(Self(Arc::new(certs)))
    }

    /// How many certificates were loaded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The rustls configuration: aws-lc-rs, the system's root certificates plus `extra`,
/// HTTP/1.1. `None` only if the provider offers no TLS version (then every fetch fails
/// with `FetchError::Connect`).
pub(super) fn tls_config(extra: &ExtraRoots) -> Option<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (system, _ignored) = roots.add_parsable_certificates(found.certs);
    let (added, _) = roots.add_parsable_certificates(extra.0.iter().cloned());
    if system + added == 0 {
        // Loopback http still works; https fails certificate verification (Connect).
        tracing::warn!("no root certificate loaded: https fetches of client documents will fail");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_or_unreadable_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").expect("write");
        let e = ExtraRoots::load(&empty).expect_err("empty");
        assert!(
            e.contains("no PEM CERTIFICATE block") && e.contains("empty.pem"),
            "{e}"
        );
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = ExtraRoots::load(&broken).expect_err("broken");
        assert!(e.contains("broken.pem"), "{e}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = ExtraRoots::load(&garbage).expect_err("garbage");
        assert!(e.contains("certificate 1 is unusable"), "{e}");
        let e = ExtraRoots::load(&dir.path().join("missing.pem")).expect_err("missing");
        assert!(e.starts_with("cannot read"), "{e}");
    }
}
