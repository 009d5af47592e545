//! Membership operations (docs/spec.md §5): any member lists; admins add existing users
//! by email, change roles and remove members. An organization always keeps one admin.
//! `/api/v1/orgs/{id}/members`, `/settings/members` and the CLI call these.

use serde::Deserialize;
use serde_json::json;

use super::store::{self, Member};
use super::{Actor, Role};
use crate::app::Ctx;
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;

/// `{email, role}`: who to add, as what (member by default).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub email: String,
    #[serde(default = "member")]
    #[schema(default = "member")]
    pub role: Role,
}

fn member() -> Role {
    Role::Member
}

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

/// Adds an existing user (admins). 404 for an unknown email, 409 for a member already.
pub fn add(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    input: &AddMember,
) -> Result<Member, OpError> {
    actor.require_admin()?;
    let email = crate::users::normalize_email(&input.email)
        .map_err(|_| OpError::invalid("email is not a valid address."))?;
    let user = crate::users::store::find_by_email(conn, &email)?.ok_or(OpError::NotFound(
        "user with that email (they must sign up first)",
    ))?;
    write_tx(conn, |conn| -> Result<(), OpError> {
        if store::role_of(conn, &actor.org_id, &user.id)?.is_some() {
            return Err(OpError::Conflict("That user is already a member."));
        }
        store::add_member(conn, &actor.org_id, &user.id, input.role, ctx.now)?;
        actor.audit(
            conn,
            "member.added",
            ("user", &user.id),
            json!({"email": user.email, "role": input.role}),
            ctx.now,
        )?;
        Ok(())
    })?;
    Ok(Member {
        user_id: user.id,
        email: user.email,
        role: input.role.as_str().to_string(),
    })
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

/// Removes a member (admins); the last admin cannot be removed (409).
pub fn remove(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    user_id: &str,
) -> Result<(), OpError> {
    actor.require_admin()?;
    write_tx(conn, |conn| {
        let Some(current) = store::role_of(conn, &actor.org_id, user_id)? else {
            return Err(OpError::NotFound("member"));
        };
        if current == Role::Admin && store::admin_count(conn, &actor.org_id)? <= 1 {
            return Err(OpError::Conflict(
                "An organization must keep at least one admin.",
            ));
        }
        store::remove_member(conn, &actor.org_id, user_id)?;
        actor.audit(
            conn,
            "member.removed",
            ("user", user_id),
            json!({"role": current}),
            ctx.now,
        )?;
        Ok(())
    })
}
