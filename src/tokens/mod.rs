//! Tokens: signing keys and JWKS ([`keys`]), access-token claims ([`jwt`]).

pub mod cache;
pub mod jwt;
pub mod keys;
pub mod verify;
