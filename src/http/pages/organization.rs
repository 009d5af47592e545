//! `/settings/organization` (docs/spec.md §10): the organization's name and policies; admins
//! change them. Calls `orgs::policy`, the same operations as `GET/PATCH /api/v1/orgs/{id}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::page;
use super::signed_in::{CsrfForm, SignedIn};
use crate::app::AppState;
use crate::error::{AppError, OpError};
use crate::http::errors::shown;
use crate::http::with_db;
use crate::orgs::policy::{self, OrgPatch, OrgSettings};

#[derive(Template)]
#[template(path = "settings_organization.html")]
struct OrganizationPage<'a> {
    nav: super::layout::Nav,
    org_name: &'a str,
    is_admin: bool,
    csrf: String,
    org: OrgSettings,
    /// How many members and pending invitations the organization has.
    members: usize,
    invitations: usize,
    error: Option<String>,
    notice: Option<String>,
}

async fn render(
    state: &web::Data<AppState>,
    v: &SignedIn,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Result<HttpResponse, AppError> {
    let actor = v.actor.clone();
    let org_id = v.actor.org_id.clone();
    let st = state.clone();
    let (org, members, invitations) = with_db(state, move |conn| -> Result<_, OpError> {
        let org = policy::get(conn, &actor, &org_id)?;
        let members = crate::orgs::store::members(conn, &org_id)?.len();
        let invitations = crate::orgs::invitations::list(conn, &st.ctx(), &actor)?.len();
        Ok((org, members, invitations))
    })
    .await
    .map_err(OpError::into_app)?;
    Ok(page(
        status,
        &OrganizationPage {
            nav: v.nav("/settings/organization"),
            org_name: &org.name.clone(),
            is_admin: v.actor.is_admin(),
            csrf: v.csrf("/settings/organization"),
            org,
            members,
            invitations,
            error,
            notice,
        },
    ))
}

/// `GET /settings/organization`
pub async fn organization_get(
    v: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    render(&state, &v, StatusCode::OK, None, None).await
}

/// `POST /settings/organization` (admins): `name`, `max_key_lifetime_days` (empty: no
/// cap), checkboxes `members_can_create_keys` and `revoke_leaked_keys`.
pub async fn organization_post(
    v: SignedIn,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let lifetime = match f.get("max_key_lifetime_days") {
        None => None,
        Some(d) => match d.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                let m = "max_key_lifetime_days must be a whole number of days, or empty.";
                return render(&state, &v, StatusCode::BAD_REQUEST, Some(m.into()), None).await;
            }
        },
    };
    let patch = OrgPatch {
        name: f.get("name").map(str::to_string),
        max_key_lifetime_days: Some(lifetime),
        members_can_create_keys: Some(f.get("members_can_create_keys").is_some()),
        revoke_leaked_keys: Some(f.get("revoke_leaked_keys").is_some()),
        rate_limit_per_minute: None,
    };
    let st = state.clone();
    let actor = v.actor.clone();
    let org_id = v.actor.org_id.clone();
    match with_db(&state, move |conn| {
        policy::update(conn, &st.ctx(), &actor, &org_id, &patch)
    })
    .await
    {
        Ok(_) => render(&state, &v, StatusCode::OK, None, Some("Saved.".into())).await,
        Err(e) => {
            let (status, m) = shown(e)?;
            render(&state, &v, status, Some(m), None).await
        }
    }
}
