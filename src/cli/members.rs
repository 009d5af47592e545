//! `tessera org invite|invitations|revoke-invitation|remove-member` (docs/spec.md §1, §5),
//! flattened into `tessera org`.

use clap::Subcommand;

use super::RoleArg;

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Invite an email into an organization (docs/spec.md §5); prints {invitation_id,
    /// email, role, expires_at, invitation_url}. The person joins only by accepting
    Invite {
        /// The organization's id (org_...)
        org_id: String,
        /// The invitee's email address; only an account with this email can accept
        #[arg(long)]
        email: String,
        /// The role the invitee gets on accepting
        #[arg(long, value_enum, default_value = "member")]
        role: RoleArg,
    },
    /// List an organization's pending invitations; prints {"data": [...]}
    Invitations {
        /// The organization's id (org_...)
        org_id: String,
    },
    /// Revoke a pending invitation: its link stops working
    RevokeInvitation {
        /// The organization's id (org_...)
        org_id: String,
        /// The invitation's id (inv_...)
        invitation_id: String,
    },
    /// Remove a member (the last admin stays); with --revoke-keys, also revoke every key
    /// they created in the organization. Prints {"removed": USER_ID, "revoked_keys": [...]}
    RemoveMember {
        /// The organization's id (org_...)
        org_id: String,
        /// The member's user id (usr_...)
        user_id: String,
        /// Also revoke every key the member created in this organization
        #[arg(long)]
        revoke_keys: bool,
    },
}
