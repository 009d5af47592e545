//! tessera: an OAuth 2.0 authorization server and API-key platform.

pub mod api_keys;
pub mod app;
pub mod audit;
pub mod banner;
pub mod change_feed;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod commands;
pub mod config;
pub mod consent;
pub mod crypto;
pub mod db;
pub mod error;
pub mod fetch;
pub mod gateway;
pub mod http;
pub mod introspection;
pub mod janitor;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod orgs;
pub mod scope;
pub mod secret_scanning;
pub mod sessions;
pub mod shown_once;
pub mod startup;
pub mod telemetry;
pub mod throttle;
pub mod tokens;
pub mod usage;
pub mod users;

/// Selects aws-lc-rs as jsonwebtoken's crypto backend and as the process's rustls
/// provider (reqwest, which `fetch` uses, asks rustls for the process default whenever a
/// client is built). Call once at start-up, before any JWT is encoded or decoded and any
/// HTTP client is built; later calls are no-ops.
pub fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
