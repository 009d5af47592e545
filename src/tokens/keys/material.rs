//! Key material: the algorithms, parsing and signing with a private key, and the PEM
//! files in the keys directory (0600, named by kid). The lifecycle (states, rotation,
//! the JWKS) is in the parent module.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::KeyError;

/// The JWS algorithm of a signing key (RFC 7518 §3): ES256 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
pub enum SigningAlg {
    #[value(name = "ES256")]
    ES256,
    #[value(name = "RS256")]
    RS256,
    #[value(name = "EdDSA")]
    EdDSA,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            "EdDSA" => Some(Self::EdDSA),
            _ => None,
        }
    }
}

pub(super) enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl Signer {
    pub(super) fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Option<Self> {
        match alg {
            SigningAlg::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .ok()
                .map(Self::Ecdsa),
            SigningAlg::EdDSA => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .ok()
                .map(Self::Ed25519),
            SigningAlg::RS256 => RsaKeyPair::from_pkcs8(der).ok().map(Self::Rsa),
        }
    }

    /// The public half as JWK members (RFC 7517/7518/8037), without kid/alg/use.
    pub(super) fn public_jwk(&self) -> Value {
        match self {
            Self::Ecdsa(k) => {
                // Uncompressed point: 0x04 || x (32) || y (32).
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256",
                       "x": URL_SAFE_NO_PAD.encode(p.get(1..33).unwrap_or(&[])),
                       "y": URL_SAFE_NO_PAD.encode(p.get(33..65).unwrap_or(&[]))})
            }
            Self::Ed25519(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(k.public_key().as_ref())})
            }
            Self::Rsa(k) => {
                let p = k.public_key();
                json!({"kty": "RSA",
                       "n": URL_SAFE_NO_PAD.encode(p.modulus().big_endian_without_leading_zero()),
                       "e": URL_SAFE_NO_PAD.encode(p.exponent().big_endian_without_leading_zero())})
            }
        }
    }

    pub(super) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match self {
            Self::Ecdsa(k) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Self::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Self::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }
}

pub(super) fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

/// A kid is base62 only, so it is always a safe file name.
pub(super) fn valid_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= 64 && kid.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub(super) fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    match alg {
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Generate),
        SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Generate),
        SigningAlg::RS256 => {
            let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| KeyError::Generate)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                kp.as_der().map_err(|_| KeyError::Generate)?;
            Ok(der.as_ref().to_vec())
        }
    }
}

/// Writes a new private key file readable by the owner only, atomically (temp + rename),
/// so a crash never leaves a half-written key behind.
pub(super) fn write_key_file(dir: &Path, kid: &str, der: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| KeyError::Io { path, source }
    };
    // docs/spec.md §1: a keys directory tessera creates is its owner's only (0700).
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(dir))?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()));
    let final_path = key_path(dir, kid);
    let tmp = dir.join(format!(".{kid}.pem.tmp"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(pem.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &final_path).map_err(io(&final_path))?;
    Ok(())
}

pub(super) fn read_signer(
    dir: &Path,
    kid: &str,
    alg: SigningAlg,
) -> Result<Option<Signer>, KeyError> {
    let path = key_path(dir, kid);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let bad = || KeyError::BadKey {
        path: path.display().to_string(),
        alg: alg.as_str(),
    };
    let parsed = pem::parse(text).map_err(|_| bad())?;
    Signer::from_pkcs8(alg, parsed.contents())
        .map(Some)
        .ok_or_else(bad)
}
