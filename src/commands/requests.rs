//! `tessera api-key request list|approve|deny` (docs/spec.md §1, §10): the operator's view
//! of key requests, through the same operations as the pages and `/api/v1/key-requests`
//! (`api_keys::requests::list`, `decide`), acting as an admin of the request's
//! organization.

use serde_json::Value;

use super::{CommandError, connect, data, naming, org_actor};
use crate::api_keys::requests;
use crate::app::Ctx;
use crate::cli::KeyRequestCommand;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::orgs::Actor;

/// Runs one `api-key request` subcommand; prints the list (`{"data": [...]}`) or the
/// decided request (the fields of `GET /api/v1/key-requests`).
pub fn run(settings: &Settings, cmd: KeyRequestCommand) -> Result<Value, CommandError> {
    let ctx = Ctx::offline(settings, SystemClock.now());
    let conn = &mut connect(settings)?;
    let (id, approve) = match cmd {
        KeyRequestCommand::List { org } => {
            let actor = org_actor(conn, &org)?;
            return data(requests::list(conn, &actor)?);
        }
        KeyRequestCommand::Approve { request_id } => (request_id, true),
        KeyRequestCommand::Deny { request_id } => (request_id, false),
    };
    let org = requests::org_of(conn, &id)?
        .ok_or_else(|| CommandError::NotFound(format!("key request {id}")))?;
    let decided =
        requests::decide(conn, &ctx, &Actor::cli(&org), &id, approve).map_err(naming(&id))?;
    serde_json::to_value(decided).map_err(|e| CommandError::Usage(e.to_string()))
}
