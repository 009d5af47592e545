//! Membership operations (docs/spec.md §5): any member lists; admins change roles and
//! remove members (and, on request, revoke the keys they made). People join by accepting
//! an invitation (`orgs::invitations`), never by being added. An organization always
//! keeps one admin. `/api/v1/orgs/{id}/members`, `/settings/members` and the CLI call these.

use serde_json::json;

use super::store::{self, Member};
use super::{Actor, Role};
use crate::app::Ctx;
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;

/// 404 unless `org_id` is the actor's own organization (another's is indistinguishable
/// from none).
pub fn own_org(actor: &Actor, org_id: &str) -> Result<(), OpError> {
    if actor.org_id == org_id {
        Ok(())
    } else {
        Err(OpError::NotFound("organization"))
    }
}

/// The organization's members, oldest first.
pub fn list(conn: &mut DbConnection, actor: &Actor) -> Result<Vec<Member>, OpError> {
    Ok(store::members(conn, &actor.org_id)?)
}

/// Changes a member's role (admins); the last admin cannot be demoted (409).
pub fn change_role(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    user_id: &str,
    role: Role,
) -> Result<(), OpError> {
    actor.require_admin()?;
    write_tx(conn, |conn| {
        let Some(current) = store::role_of(conn, &actor.org_id, user_id)? else {
            return Err(OpError::NotFound("member"));
        };
        if current == Role::Admin
            && role != Role::Admin
            && store::admin_count(conn, &actor.org_id)? <= 1
        {
            return Err(OpError::Conflict(
                "An organization must keep at least one admin.",
            ));
        }
        store::set_role(conn, &actor.org_id, user_id, role)?;
        actor.audit(
            conn,
            "member.role_changed",
            ("user", user_id),
            json!({"from": current, "to": role}),
            ctx.now,
        )?;
        Ok(())
    })
}

/// Removes a member (admins); the last admin cannot be removed (409). With `revoke_keys`,
/// every live key that person created in the organization is revoked in the same
/// transaction (each audited as `api_key.revoked`, so other instances drop it at their next
/// change poll; this one at once). Returns the ids of the revoked keys.
pub fn remove(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    user_id: &str,
    revoke_keys: bool,
) -> Result<Vec<String>, OpError> {
    actor.require_admin()?;
    let revoked = write_tx(conn, |conn| -> Result<Vec<String>, OpError> {
        let Some(current) = store::role_of(conn, &actor.org_id, user_id)? else {
            return Err(OpError::NotFound("member"));
        };
        if current == Role::Admin && store::admin_count(conn, &actor.org_id)? <= 1 {
            return Err(OpError::Conflict(
                "An organization must keep at least one admin.",
            ));
        }
        store::remove_member(conn, &actor.org_id, user_id)?;
        let mut revoked = Vec::new();
        if revoke_keys {
            for id in crate::api_keys::store::live_ids_created_by(conn, &actor.org_id, user_id)? {
                if crate::api_keys::store::revoke(conn, &actor.org_id, &id, &actor.label, ctx.now)?
                {
                    revoked.push(id);
                }
            }
        }
        actor.audit(
            conn,
            "member.removed",
            ("user", user_id),
            json!({"role": current, "revoked_keys": revoked}),
            ctx.now,
        )?;
        Ok(revoked)
    })?;
    for id in &revoked {
        ctx.key_revoked(id);
    }
    Ok(revoked)
}

/// Parses the query of `DELETE /api/v1/orgs/{id}/members/{user_id}`: only `revoke_keys`,
/// at most once, `true` or `false` (absent: false). Anything else is a 400 naming it.
pub fn parse_remove_query(
    params: impl IntoIterator<Item = (String, String)>,
) -> Result<bool, OpError> {
    let mut revoke = None;
    for (k, v) in params {
        if k != "revoke_keys" {
            return Err(OpError::invalid(format!(
                "Unknown parameter {k:?}: removing a member takes revoke_keys."
            )));
        }
        if revoke.is_some() {
            return Err(OpError::invalid("The parameter revoke_keys is repeated."));
        }
        revoke = Some(match v.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(OpError::invalid("revoke_keys must be true or false.")),
        });
    }
    Ok(revoke.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::parse_remove_query;

    fn q(pairs: &[(&str, &str)]) -> Result<bool, String> {
        parse_remove_query(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn revoke_keys_is_true_false_or_absent_and_named_when_wrong() {
        assert_eq!(q(&[]), Ok(false));
        assert_eq!(q(&[("revoke_keys", "true")]), Ok(true));
        assert_eq!(q(&[("revoke_keys", "false")]), Ok(false));
        assert!(
            q(&[("revoke_keys", "yes")])
                .unwrap_err()
                .contains("revoke_keys")
        );
        assert!(
            q(&[("revoke_keys", "true"), ("revoke_keys", "true")])
                .unwrap_err()
                .contains("repeated")
        );
        assert!(
            q(&[("revoke", "true")])
                .unwrap_err()
                .contains("revoke_keys")
        );
    }
}
