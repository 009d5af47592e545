//! Invitations (docs/spec.md §5): an admin invites an email with a role; the person joins
//! only by accepting, signed in as an account with that email. The link
//! (`<issuer>/invitations/{token}`) lives [`LIFETIME_SECONDS`] (7 days) and is single use:
//! accepting, declining and revoking are conditional updates whose row count decides a race
//! (docs/architecture.md §6). The token is stored as SHA-256 only.
//!
//! Who may answer (docs/security.md I12): the account whose email is the invited one.
//! Through the link (which proves the person received it) that is enough; from the list on
//! `/invitations` (no token) the account must also be older than the invitation, because
//! addresses are not verified: someone who signs up with an invited address afterwards
//! must hold the link.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::store::{self, Member};
use super::{Actor, Role};
use crate::app::Ctx;
use crate::clock::{Timestamp, rfc3339};
use crate::db::schema::{invitations, organizations};
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;
use crate::users::store::User;

/// How long an invitation link works: 7 days (docs/spec.md §5).
pub const LIFETIME_SECONDS: i64 = 7 * 86_400;

/// `{email, role}`: who to invite, as what (member by default).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub email: String,
    #[serde(default = "member")]
    #[schema(default = "member")]
    pub role: Role,
}

fn member() -> Role {
    Role::Member
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = invitations)]
pub struct InvitationRow {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub role: Role,
    pub token_hash: String,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub accepted_by: Option<String>,
    pub declined_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl InvitationRow {
    fn pending(&self, now: Timestamp) -> bool {
        self.accepted_at.is_none()
            && self.declined_at.is_none()
            && self.revoked_at.is_none()
            && self.expires_at > now
    }
}

/// A pending invitation as `GET /api/v1/orgs/{id}/invitations` shows it (times RFC 3339).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub invitation_id: String,
    pub email: String,
    pub role: Role,
    /// `key:<id>`, `user:<id>` or `cli`.
    pub invited_by: String,
    pub created_at: String,
    pub expires_at: String,
}

impl From<&InvitationRow> for Invitation {
    fn from(r: &InvitationRow) -> Self {
        Self {
            invitation_id: r.id.clone(),
            email: r.email.clone(),
            role: r.role,
            invited_by: r.invited_by.clone(),
            created_at: rfc3339(r.created_at),
            expires_at: rfc3339(r.expires_at),
        }
    }
}

/// A new invitation and the token of its link (exists only here).
#[derive(Debug, Clone)]
pub struct Invited {
    pub invitation: Invitation,
    pub token: String,
}

impl Invited {
    /// The `201` body: `{invitation_id, email, role, expires_at, invitation_url}`.
    pub fn answer(&self, issuer: &str) -> InvitationCreated {
        InvitationCreated {
            invitation_id: self.invitation.invitation_id.clone(),
            email: self.invitation.email.clone(),
            role: self.invitation.role,
            expires_at: self.invitation.expires_at.clone(),
            invitation_url: link(issuer, &self.token),
        }
    }
}

/// The `201` answer to an invitation (docs/spec.md §5).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvitationCreated {
    pub invitation_id: String,
    pub email: String,
    pub role: Role,
    /// RFC 3339.
    pub expires_at: String,
    /// `<issuer>/invitations/{token}`: single use, 7 days.
    pub invitation_url: String,
}

/// `<issuer>/invitations/{token}`.
pub fn link(issuer: &str, token: &str) -> String {
    format!("{}/invitations/{token}", issuer.trim_end_matches('/'))
}

/// Why an invitation could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// Accepted, declined, revoked or expired already (410).
    #[error(
        "This invitation is no longer valid: it was accepted, declined or revoked, or it expired."
    )]
    Gone,
    /// The signed-in account is not the invited one (403); carries the invited email.
    #[error("This invitation is for {0}. Sign in with that address to answer it.")]
    OtherAccount(String),
    #[error(transparent)]
    Op(#[from] OpError),
}

impl From<crate::error::AppError> for AnswerError {
    fn from(e: crate::error::AppError) -> Self {
        Self::Op(OpError::App(e))
    }
}

impl From<diesel::result::Error> for AnswerError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Op(e.into())
    }
}

/// Invites `email` into the actor's organization as `role` (admins). A pending invitation
/// for the same email is replaced (its link stops working). 409 when the email is a
/// member already. The answer is the same whether or not the email has an account.
pub fn invite(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    input: &Invite,
) -> Result<Invited, OpError> {
    actor.require_admin()?;
    let email = crate::users::normalize_email(&input.email)
        .map_err(|_| OpError::invalid("email is not a valid address."))?;
    let token = crate::crypto::random_token();
    let row = InvitationRow {
        id: crate::crypto::new_id("inv_"),
        org_id: actor.org_id.clone(),
        email: email.clone(),
        role: input.role,
        token_hash: crate::crypto::sha256_hex(&token),
        invited_by: actor.label.clone(),
        created_at: ctx.now,
        expires_at: ctx.now + LIFETIME_SECONDS,
        accepted_at: None,
        accepted_by: None,
        declined_at: None,
        revoked_at: None,
    };
    write_tx(conn, |conn| -> Result<(), OpError> {
        let member = store::members(conn, &actor.org_id)?
            .into_iter()
            .any(|m: Member| m.email == email);
        if member {
            return Err(OpError::Conflict("That email is already a member."));
        }
        for old in pending_in_org(conn, &actor.org_id, ctx.now)? {
            if old.email == email && close(conn, &old.id, Closing::Revoke, ctx.now)? {
                actor.audit(
                    conn,
                    "invitation.revoked",
                    ("invitation", &old.id),
                    json!({"email": old.email, "replaced_by": row.id}),
                    ctx.now,
                )?;
            }
        }
        diesel::insert_into(invitations::table)
            .values(&row)
            .execute(conn)?;
        actor.audit(
            conn,
            "invitation.created",
            ("invitation", &row.id),
            json!({"email": row.email, "role": row.role, "expires_at": rfc3339(row.expires_at)}),
            ctx.now,
        )?;
        Ok(())
    })?;
    Ok(Invited {
        invitation: Invitation::from(&row),
        token,
    })
}

/// The organization's pending invitations, newest first (any member may see them, as
/// they see the members).
pub fn list(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
) -> Result<Vec<Invitation>, OpError> {
    Ok(pending_in_org(conn, &actor.org_id, ctx.now)?
        .iter()
        .map(Invitation::from)
        .collect())
}

/// Revokes a pending invitation (admins): its link stops working. 404 for one that is not
/// pending in the actor's organization.
pub fn revoke(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: &str,
) -> Result<(), OpError> {
    actor.require_admin()?;
    write_tx(conn, |conn| {
        let row = find(conn, id)?
            .filter(|r| r.org_id == actor.org_id && r.pending(ctx.now))
            .ok_or(OpError::NotFound("invitation"))?;
        if !close(conn, &row.id, Closing::Revoke, ctx.now)? {
            return Err(OpError::NotFound("invitation"));
        }
        actor.audit(
            conn,
            "invitation.revoked",
            ("invitation", &row.id),
            json!({"email": row.email}),
            ctx.now,
        )?;
        Ok(())
    })
}

/// A pending invitation as its invitee sees it.
#[derive(Debug, Clone)]
pub struct Offer {
    pub id: String,
    pub org_id: String,
    pub org_name: String,
    pub role: Role,
    pub email: String,
    pub expires_at: Timestamp,
}

/// The invitation of a link's token, whatever its state (`None`: no such token).
pub fn by_token(
    conn: &mut DbConnection,
    token: &str,
) -> QueryResult<Option<(InvitationRow, String)>> {
    invitations::table
        .inner_join(organizations::table)
        .filter(invitations::token_hash.eq(crate::crypto::sha256_hex(token)))
        .select((InvitationRow::as_select(), organizations::name))
        .first(conn)
        .optional()
}

/// The offer behind a link, for `user`: 404 for an unknown token, [`AnswerError::Gone`]
/// once it is not pending, [`AnswerError::OtherAccount`] for another email.
pub fn offer_by_token(
    conn: &mut DbConnection,
    now: Timestamp,
    user: &User,
    token: &str,
) -> Result<Offer, AnswerError> {
    let (row, org_name) = by_token(conn, token)?.ok_or(OpError::NotFound("invitation"))?;
    offer_for(row, org_name, now, user, true)
}

fn offer_for(
    row: InvitationRow,
    org_name: String,
    now: Timestamp,
    user: &User,
    with_link: bool,
) -> Result<Offer, AnswerError> {
    if !row.pending(now) {
        return Err(AnswerError::Gone);
    }
    // Without the link, the account must have existed when the invitation was made.
    if row.email != user.email || (!with_link && user.created_at > row.created_at) {
        return Err(AnswerError::OtherAccount(row.email));
    }
    Ok(Offer {
        id: row.id,
        org_id: row.org_id,
        org_name,
        role: row.role,
        email: row.email,
        expires_at: row.expires_at,
    })
}

/// The pending invitations `user` may answer from `/invitations` (their email, made after
/// their account), oldest first.
pub fn offers_for(conn: &mut DbConnection, now: Timestamp, user: &User) -> QueryResult<Vec<Offer>> {
    let rows: Vec<(InvitationRow, String)> = invitations::table
        .inner_join(organizations::table)
        .filter(invitations::email.eq(&user.email))
        .filter(invitations::created_at.ge(user.created_at))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::declined_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(now))
        .order((invitations::created_at.asc(), invitations::id.asc()))
        .select((InvitationRow::as_select(), organizations::name))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(row, name)| offer_for(row, name, now, user, false).ok())
        .collect())
}

/// How `user` answers: through the link's token, or by id from `/invitations`.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    Token(&'a str),
    Id(&'a str),
}

/// Accepts (`accept: true`) or declines an invitation as `user`, once: of any number of
/// answers at the same time exactly one counts, and the others are [`AnswerError::Gone`].
/// Accepting makes `user` a member with the invited role (409 when they are one already;
/// the invitation then stays pending). Audited as `invitation.accepted` (with
/// `member.added`) or `invitation.declined`.
pub fn answer(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    user: &User,
    via: Via<'_>,
    accept: bool,
) -> Result<Offer, AnswerError> {
    write_tx(conn, |conn| {
        let offer = match via {
            Via::Token(t) => offer_by_token(conn, ctx.now, user, t)?,
            Via::Id(id) => {
                let (row, name) = invitations::table
                    .inner_join(organizations::table)
                    .filter(invitations::id.eq(id))
                    .select((InvitationRow::as_select(), organizations::name))
                    .first(conn)
                    .optional()?
                    .ok_or(OpError::NotFound("invitation"))?;
                offer_for(row, name, ctx.now, user, false)?
            }
        };
        let how = if accept {
            Closing::Accept(&user.id)
        } else {
            Closing::Decline
        };
        if !close(conn, &offer.id, how, ctx.now)? {
            return Err(AnswerError::Gone);
        }
        let actor = Actor {
            org_id: offer.org_id.clone(),
            user_id: Some(user.id.clone()),
            role: offer.role,
            label: format!("user:{}", user.id),
        };
        if accept {
            if store::role_of(conn, &offer.org_id, &user.id)?.is_some() {
                return Err(
                    OpError::Conflict("You are already a member of this organization.").into(),
                );
            }
            store::add_member(conn, &offer.org_id, &user.id, offer.role, ctx.now)?;
            actor.audit(
                conn,
                "invitation.accepted",
                ("invitation", &offer.id),
                json!({"email": offer.email, "role": offer.role}),
                ctx.now,
            )?;
            actor.audit(
                conn,
                "member.added",
                ("user", &user.id),
                json!({"email": offer.email, "role": offer.role, "invitation": offer.id}),
                ctx.now,
            )?;
        } else {
            actor.audit(
                conn,
                "invitation.declined",
                ("invitation", &offer.id),
                json!({"email": offer.email}),
                ctx.now,
            )?;
        }
        Ok(offer)
    })
}

/// Whether a pending invitation's link may be used to sign up (`--signup invite`,
/// docs/spec.md §7): its email, when the token names a pending invitation.
pub fn signup_email(
    conn: &mut DbConnection,
    now: Timestamp,
    token: &str,
) -> QueryResult<Option<String>> {
    Ok(by_token(conn, token)?
        .filter(|(row, _)| row.pending(now))
        .map(|(row, _)| row.email))
}

/// The token of a return path `/invitations/{token}`, if it is one.
pub fn token_in_path(path: &str) -> Option<&str> {
    path.strip_prefix("/invitations/").filter(|t| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<InvitationRow>> {
    invitations::table
        .find(id)
        .select(InvitationRow::as_select())
        .first(conn)
        .optional()
}

fn pending_in_org(
    conn: &mut DbConnection,
    org_id: &str,
    now: Timestamp,
) -> QueryResult<Vec<InvitationRow>> {
    invitations::table
        .filter(invitations::org_id.eq(org_id))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::declined_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(now))
        .order((invitations::created_at.desc(), invitations::id.desc()))
        .select(InvitationRow::as_select())
        .load(conn)
}

enum Closing<'a> {
    Accept(&'a str),
    Decline,
    Revoke,
}

/// Closes a pending invitation; false when it was not pending any more (the race's loser).
fn close(conn: &mut DbConnection, id: &str, how: Closing<'_>, now: Timestamp) -> QueryResult<bool> {
    let target = invitations::table
        .find(id)
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::declined_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(now));
    let n = match how {
        Closing::Accept(user) => diesel::update(target)
            .set((
                invitations::accepted_at.eq(now),
                invitations::accepted_by.eq(user),
            ))
            .execute(conn)?,
        Closing::Decline => diesel::update(target)
            .set(invitations::declined_at.eq(now))
            .execute(conn)?,
        Closing::Revoke => diesel::update(target)
            .set(invitations::revoked_at.eq(now))
            .execute(conn)?,
    };
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_path_names_an_invitation_token_only_when_it_is_one() {
        assert_eq!(token_in_path("/invitations/abc_D-9"), Some("abc_D-9"));
        assert_eq!(token_in_path("/invitations/"), None);
        assert_eq!(token_in_path("/invitations/a/b"), None);
        assert_eq!(token_in_path("/settings"), None);
    }

    #[test]
    fn the_link_is_under_the_issuer() {
        assert_eq!(
            link("https://id.example/", "t"),
            "https://id.example/invitations/t"
        );
    }
}
