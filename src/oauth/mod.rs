//! The OAuth 2.0 protocol service behind `/oauth/*`: strict parameter parsing ([`form`]),
//! client authentication ([`client_auth`]) and the token endpoint ([`token`]).
//!
//! oxide-auth is meant to be the protocol core of the authorization-code flow. The
//! client-credentials grant does not go through it: its flow binds every client to a
//! redirect URI (`Registrar::bound_redirect`), which client-credentials-only clients do not
//! have, and it turns a refused scope into `Ignore` instead of RFC 6749's `invalid_scope`.
//! What remains of that grant is a few lines, written here.

pub mod authorize;
pub mod client_assertion;
pub mod client_auth;
pub mod codes;
pub mod device;
pub mod form;
pub mod refresh;
pub mod resource;
pub mod revocation;
pub mod token;
