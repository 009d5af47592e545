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

/// The write of a code redemption or refresh rotation: [`token::commit_refusals`]' rules (protocol
/// refusals commit, failures roll back) as an owned job, run by SQLite's group-commit writer
/// when there is one (`db::group_commit`, docs/architecture.md §6.1: committed together
/// with concurrent grants, answered only after the `COMMIT`), else by `write_tx` on `conn`.
/// The tokens are signed by the caller after it returns: no signing inside the write lock.
fn commit_grant<T, F>(
    group: Option<&crate::db::group_commit::GroupCommit>,
    conn: &mut crate::db::DbConnection,
    f: F,
) -> Result<T, crate::error::OAuthError>
where
    F: FnOnce(&mut crate::db::DbConnection) -> Result<T, token::Refusal> + Send + 'static,
    T: Send + 'static,
{
    crate::db::group_commit::write(group, conn, move |conn| match f(conn) {
        Ok(value) => Ok(Ok(value)),
        Err(token::Refusal::Refuse(e)) => Ok(Err(e)),
        Err(token::Refusal::Abort(e)) => Err(e),
    })?
}
