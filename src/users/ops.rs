//! The operator's user operations (docs/spec.md §1, `tessera user list` and `tessera user
//! set-password`). An organization's member list is `orgs::members::list`, shared with
//! `/api/v1/orgs/{id}/members`; these span every organization, so only the CLI calls them.

use serde_json::json;

use crate::app::Ctx;
use crate::clock::rfc3339;
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;
use crate::orgs::Role;

/// One membership of a listed user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Membership {
    pub org_id: String,
    pub role: Role,
}

/// A user as `tessera user list` prints it (never the password hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserSummary {
    pub user_id: String,
    pub email: String,
    pub created_at: String,
    pub password_changed_at: String,
    pub orgs: Vec<Membership>,
}

/// Every user with their memberships, oldest first.
pub fn list_all(conn: &mut DbConnection) -> Result<Vec<UserSummary>, OpError> {
    let users = super::store::list_all(conn)?;
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        let orgs = crate::orgs::store::memberships_of(conn, &u.id)?
            .into_iter()
            .map(|(org_id, _name, role)| Membership { org_id, role })
            .collect();
        out.push(UserSummary {
            user_id: u.id,
            email: u.email,
            created_at: rfc3339(u.created_at),
            password_changed_at: rfc3339(u.password_changed_at),
            orgs,
        });
    }
    Ok(out)
}

/// What a password reset did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PasswordSet {
    pub user_id: String,
    /// Login sessions ended: the person signs in again everywhere with the new password.
    pub sessions_ended: usize,
    /// Grants of apps the person authorized, revoked with their refresh and access tokens.
    pub grants_revoked: usize,
}

/// Sets the password of the account with this (normalized) email to `password_hash` (an
/// argon2id hash; hash before calling, outside the transaction), ends every login
/// session of it and revokes every grant of it (the apps' refresh and access tokens). Audited as done by the CLI in each of the user's organizations.
pub fn set_password(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    email: &str,
    password_hash: &str,
) -> Result<PasswordSet, OpError> {
    write_tx(conn, |conn| -> Result<_, OpError> {
        let user = super::store::find_by_email(conn, email)?.ok_or(OpError::NotFound("user"))?;
        super::store::set_password(conn, &user.id, password_hash, ctx.now)?;
        let sessions_ended = crate::sessions::delete_for_user(conn, &user.id)?;
        let grants_revoked = crate::oauth::codes::revoke_grants_of_user(conn, &user.id, ctx.now)?;
        let orgs = crate::orgs::store::orgs_of(conn, &user.id)?;
        let details = json!({"sessions_ended": sessions_ended, "grants_revoked": grants_revoked});
        let org_ids: Vec<Option<&str>> = if orgs.is_empty() {
            vec![None]
        } else {
            orgs.iter().map(|o| Some(o.as_str())).collect()
        };
        for org_id in org_ids {
            crate::audit::record(
                conn,
                &crate::audit::Event {
                    org_id,
                    actor: "cli",
                    action: "user.password_reset",
                    target_type: "user",
                    target_id: &user.id,
                    details: details.clone(),
                },
                ctx.now,
            )?;
        }
        Ok(PasswordSet {
            user_id: user.id,
            sessions_ended,
            grants_revoked,
        })
    })
    .inspect(|_| ctx.tokens_changed())
}

/// What a signed-in password change did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PasswordChanged {
    /// Login sessions of other devices ended; the one the change was made from stays.
    pub other_sessions_ended: usize,
    /// Grants of apps the person authorized, revoked with their refresh and access tokens
    /// (the consents stay: each app asks the person to sign in again, not to consent).
    pub grants_revoked: usize,
}

/// A signed-in user changes their own password (docs/spec.md §6, `/account`): the caller
/// checked the current password and hashed the new one (argon2id, outside the
/// transaction). Ends every other login session of the user, keeps `keep_session` (the
/// SHA-256 id hash of the session making the change), revokes every grant of the user
/// (refresh and access tokens of the apps they authorized; docs/security.md E7), and
/// records `user.password_changed`
/// in each of the user's organizations (never the password or its hash).
pub fn change_password(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    user_id: &str,
    keep_session: &str,
    password_hash: &str,
) -> Result<PasswordChanged, OpError> {
    write_tx(conn, |conn| -> Result<_, OpError> {
        let updated = super::store::set_password(conn, user_id, password_hash, ctx.now)?;
        if updated == 0 {
            return Err(OpError::NotFound("user"));
        }
        let ended = crate::sessions::delete_others(conn, user_id, keep_session)?;
        let grants_revoked = crate::oauth::codes::revoke_grants_of_user(conn, user_id, ctx.now)?;
        let details = json!({"other_sessions_ended": ended, "grants_revoked": grants_revoked});
        let actor = format!("user:{user_id}");
        let orgs = crate::orgs::store::orgs_of(conn, user_id)?;
        let org_ids: Vec<Option<&str>> = if orgs.is_empty() {
            vec![None]
        } else {
            orgs.iter().map(|o| Some(o.as_str())).collect()
        };
        for org_id in org_ids {
            crate::audit::record(
                conn,
                &crate::audit::Event {
                    org_id,
                    actor: &actor,
                    action: "user.password_changed",
                    target_type: "user",
                    target_id: user_id,
                    details: details.clone(),
                },
                ctx.now,
            )?;
        }
        Ok(PasswordChanged {
            other_sessions_ended: ended,
            grants_revoked,
        })
    })
    .inspect(|_| ctx.tokens_changed())
}
