//! OpenID Connect (docs/spec.md §9): ID tokens ([`id_token`]) and the claims about a
//! person that the granted scopes release, shared by ID tokens and userinfo ([`claims`]).

pub mod claims;
pub mod id_token;
pub mod logout;
pub mod prompt;

/// The scope that makes an OAuth request an OpenID Connect one (OpenID Connect Core §3.1.2.1).
pub const OPENID: &str = "openid";
