//! `tessera org invite|invitations|revoke-invitation|remove-member` (docs/spec.md §1, §5):
//! the operator's side of invitations and removals, through the same operations as
//! `/api/v1/orgs/{id}/members` and the pages (`orgs::invitations`, `orgs::members::remove`),
//! acting as an admin of the organization.

use serde_json::{Value, json};

use super::{CommandError, data, naming, org_actor};
use crate::app::Ctx;
use crate::cli::RoleArg;
use crate::cli::members::MemberCommand;
use crate::clock::Timestamp;
use crate::config::Settings;
use crate::db::DbConnection;
use crate::orgs::Role;
use crate::orgs::invitations::{self, Invite};

/// The issuer links are made under: `--issuer`, else the server's default for `--bind`.
fn issuer(settings: &Settings) -> String {
    settings
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.bind))
}

/// Runs one of the four subcommands.
pub fn run(
    settings: &Settings,
    conn: &mut DbConnection,
    now: Timestamp,
    cmd: MemberCommand,
) -> Result<Value, CommandError> {
    let ctx = Ctx::offline(settings, now);
    match cmd {
        MemberCommand::Invite {
            org_id,
            email,
            role,
        } => {
            let actor = org_actor(conn, &org_id)?;
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Member => Role::Member,
            };
            let invited = invitations::invite(conn, &ctx, &actor, &Invite { email, role })?;
            serde_json::to_value(invited.answer(&issuer(settings)))
                .map_err(|e| CommandError::Usage(e.to_string()))
        }
        MemberCommand::Invitations { org_id } => {
            let actor = org_actor(conn, &org_id)?;
            data(invitations::list(conn, &ctx, &actor)?)
        }
        MemberCommand::RevokeInvitation {
            org_id,
            invitation_id,
        } => {
            let actor = org_actor(conn, &org_id)?;
            invitations::revoke(conn, &ctx, &actor, &invitation_id)
                .map_err(naming(&invitation_id))?;
            Ok(json!({"revoked": invitation_id}))
        }
        MemberCommand::RemoveMember {
            org_id,
            user_id,
            revoke_keys,
        } => {
            let actor = org_actor(conn, &org_id)?;
            let revoked = crate::orgs::members::remove(conn, &ctx, &actor, &user_id, revoke_keys)
                .map_err(naming(&user_id))?;
            Ok(json!({"removed": user_id, "revoked_keys": revoked}))
        }
    }
}
