//! The integration suite: one binary, the real server on port 0 over HTTP, each test with
//! its own database, keys and server. Every backend-dependent test runs on SQLite and on a
//! throwaway PostgreSQL cluster (see helpers::postgres).

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a failed test"
)]

mod helpers;

mod account_pages;
mod accounts;
mod api_keys;
mod authorize;
mod bad_input;
mod browser;
mod browser_invitations;
mod browser_logout;
mod browser_pages;
mod browser_usage;
mod challenges;
mod change_feed;
mod checklist;
mod cli;
mod cli_registration;
mod client_metadata;
mod client_metadata_browser;
mod client_metadata_limits;
mod clients;
mod cors;
mod device;
mod device_limits;
mod first_hour;
mod fuzz_smoke;
mod gateway;
mod gateway_envoy;
mod grants;
mod introspect;
mod invitations;
mod issuance_cache;
mod jwks_uri;
mod key_hygiene;
mod key_request_pages;
mod key_requests;
mod keys;
mod limits;
mod logs;
mod malformed;
mod mcp;
mod mcp_registration;
mod oauth2_client;
mod oidc;
mod oidc_authorize;
mod oidc_logout;
mod oidc_offline;
mod open_registration;
mod openid_client;
mod openidconnect_crate;
mod ops;
mod org_policy;
mod platform_trial;
mod private_key_jwt;
mod private_key_jwt_rules;
mod redis_limits;
mod resource_grants;
mod resource_server;
mod resources;
mod secret_scanning;
mod settings_pages;
mod starvation;
mod storage;
mod token;
mod usage;
mod usage_page;
mod well_known;
