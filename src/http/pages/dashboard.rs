//! `GET /` for a signed-in person (docs/spec.md §6): the current organization at a glance —
//! its keys, OAuth clients and the last 24 hours' requests, with what waits for them
//! (invitations, key requests). Reads through the same operations as the section pages
//! (`api_keys::ops::rows`, `clients::ops::list`, `usage::chart::last_24_hours`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::layout::{Nav, nav_for};
use super::{ago, current_session, page, see_other};
use crate::app::AppState;
use crate::error::{AppError, OpError};
use crate::http::with_db;
use crate::orgs::Actor;

/// At most this many keys, clients and busiest keys are listed on each tile.
const TILE_ROWS: usize = 5;

pub struct KeyTile {
    pub name: String,
    /// `tsr_sk_…abc123`: the prefix and the last six characters, as the key list shows it.
    pub shown: String,
    pub last_used: String,
}

pub struct ClientTile {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
}

/// The organization's side of the dashboard; `None` for a user in no organization.
pub struct Summary {
    pub plan: String,
    pub is_admin: bool,
    /// Whether this viewer may create keys (admins, or members when the policy lets them);
    /// otherwise the dashboard's primary action is a key request (docs/spec.md §10).
    pub may_create_keys: bool,
    pub key_count: usize,
    pub keys: Vec<KeyTile>,
    pub client_count: usize,
    pub clients: Vec<ClientTile>,
    /// Requests in the last 24 hours, all keys.
    pub requests_24h: i64,
    /// The busiest keys of the last 24 hours: (name, requests), most first.
    pub busiest: Vec<(String, i64)>,
    pub member_count: usize,
    /// Key requests waiting for an admin (0 for members).
    pub pending_requests: i64,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    summary: Option<Summary>,
    /// Invitations waiting for this user.
    invitations: usize,
}

fn summary(
    conn: &mut crate::db::DbConnection,
    actor: &Actor,
    now: crate::clock::Timestamp,
    key_prefix: &str,
) -> Result<Summary, OpError> {
    let org = crate::orgs::policy::get(conn, actor, &actor.org_id)?;
    let mut rows = crate::api_keys::ops::rows(conn, actor)?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let per_key = crate::usage::chart::last_24_hours(conn, actor, now)?;
    let mut busiest: Vec<(String, i64)> = rows
        .iter()
        .filter_map(|r| per_key.get(&r.id).map(|n| (r.name.clone(), *n)))
        .filter(|(_, n)| *n > 0)
        .collect();
    busiest.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    busiest.truncate(TILE_ROWS);
    let clients = crate::clients::ops::list(conn, actor)?;
    let member_count = crate::orgs::store::members(conn, &actor.org_id)?.len();
    let pending_requests = if actor.is_admin() {
        crate::api_keys::requests::pending_count(conn, &actor.org_id)?
    } else {
        0
    };
    Ok(Summary {
        plan: org.plan,
        is_admin: actor.is_admin(),
        may_create_keys: actor.is_admin() || org.members_can_create_keys,
        key_count: rows.len(),
        requests_24h: per_key.values().sum(),
        busiest,
        keys: rows
            .iter()
            .take(TILE_ROWS)
            .map(|r| KeyTile {
                name: r.name.clone(),
                shown: format!(
                    "{key_prefix}_{}_…{}",
                    if r.key_type.as_str() == "publishable" {
                        "pk"
                    } else {
                        "sk"
                    },
                    r.last_six
                ),
                last_used: r
                    .last_used_at
                    .map(|t| format!("last used {}", ago(t, now)))
                    .unwrap_or_else(|| "never used".into()),
            })
            .collect(),
        client_count: clients.len(),
        clients: clients
            .iter()
            .take(TILE_ROWS)
            .map(|c| ClientTile {
                id: c.id.clone(),
                name: c.display_name().to_string(),
                kind: if c.is_resource_server {
                    "resource server"
                } else if c.is_public {
                    "public"
                } else {
                    "confidential"
                },
            })
            .collect(),
        member_count,
        pending_requests,
    })
}

/// `GET /`: the dashboard; without a session, the login page (303).
pub async fn home_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = current_session(&req, &state).await? else {
        return Ok(see_other("/login"));
    };
    let nav = nav_for(&state, &session, "/").await?;
    let invitations = super::invitations::pending_count(&state, session.user_id.clone()).await?;
    let summary = match nav.role {
        None => None,
        Some(role) => {
            let actor = Actor {
                org_id: nav.org_id.clone(),
                user_id: Some(session.user_id.clone()),
                role,
                label: format!("user:{}", session.user_id),
            };
            let now = state.clock.now();
            let prefix = state.settings.key_prefix.clone();
            Some(
                with_db(&state, move |conn| summary(conn, &actor, now, &prefix))
                    .await
                    .map_err(OpError::into_app)?,
            )
        }
    };
    Ok(page(
        StatusCode::OK,
        &HomePage {
            nav,
            summary,
            invitations,
        },
    ))
}
