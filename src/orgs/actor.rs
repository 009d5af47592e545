//! [`Actor`]: who performs an operation, in which organization, with which role. Built by
//! the transports (a bearer credential on `/api/v1`, a login session on the pages, a
//! registration access token, the CLI); the operations check the role, never the
//! transport, so a rule cannot differ between the API and the pages.

use diesel::QueryResult;

use super::Role;
use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::error::OpError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub org_id: String,
    /// `None`: a key made with the CLI, a registration access token, or the CLI itself.
    pub user_id: Option<String>,
    pub role: Role,
    /// `key:<id>`, `user:<id>`, `registration:<client id>` or `cli`, for the audit log.
    pub label: String,
}

impl Actor {
    /// The CLI acting as an admin of `org_id`.
    pub fn cli(org_id: &str) -> Self {
        Self {
            org_id: org_id.to_string(),
            user_id: None,
            role: Role::Admin,
            label: "cli".into(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// 403 unless the actor is an admin of its organization.
    pub fn require_admin(&self) -> Result<(), OpError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(OpError::Forbidden("Only organization admins may do this."))
        }
    }

    /// Records what this actor did, inside the caller's transaction.
    pub fn audit(
        &self,
        conn: &mut DbConnection,
        action: &str,
        target: (&str, &str),
        details: serde_json::Value,
        now: Timestamp,
    ) -> QueryResult<()> {
        crate::audit::record(
            conn,
            &crate::audit::Event {
                org_id: Some(&self.org_id),
                actor: &self.label,
                action,
                target_type: target.0,
                target_id: target.1,
                details,
            },
            now,
        )
    }
}
