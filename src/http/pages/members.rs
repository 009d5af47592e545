//! `/settings/members` (docs/spec.md §5, §6), the members part of the organization's
//! settings: members and pending invitations; admins invite by email (the link is shown
//! once), revoke invitations, change roles and remove members (optionally revoking their
//! keys). Calls `orgs::members` and `orgs::invitations`, the same operations as
//! `/api/v1/orgs/{id}/members` and `/api/v1/orgs/{id}/invitations`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::page;
use super::signed_in::{CsrfForm, SignedIn};
use crate::app::AppState;
use crate::error::{AppError, OpError};
use crate::http::errors::shown;
use crate::http::with_db;
use crate::orgs::invitations::{self, Invite};
use crate::orgs::members;
use crate::orgs::{Actor, Role};

pub struct MemberLine {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub is_admin: bool,
    pub csrf_role: String,
    pub csrf_remove: String,
}

pub struct InvitationLine {
    pub id: String,
    pub email: String,
    pub role: String,
    pub expires_at: String,
    pub csrf_revoke: String,
}

/// The link of an invitation just made: shown once.
pub struct NewLink {
    pub email: String,
    pub url: String,
}

#[derive(Template)]
#[template(path = "settings_members.html")]
struct MembersPage<'a> {
    nav: super::layout::Nav,
    org_name: &'a str,
    is_admin: bool,
    csrf_add: String,
    members: Vec<MemberLine>,
    invitations: Vec<InvitationLine>,
    new_link: Option<NewLink>,
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
    render_with(state, v, status, error, notice, None).await
}

async fn render_with(
    state: &web::Data<AppState>,
    v: &SignedIn,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
    new_link: Option<NewLink>,
) -> Result<HttpResponse, AppError> {
    let actor = v.actor.clone();
    let st = state.clone();
    let (rows, pending) = with_db(state, move |conn| {
        let ctx = st.ctx();
        Ok::<_, OpError>((
            members::list(conn, &actor)?,
            invitations::list(conn, &ctx, &actor)?,
        ))
    })
    .await
    .map_err(OpError::into_app)?;
    let invitations = pending
        .into_iter()
        .map(|i| InvitationLine {
            csrf_revoke: v.csrf(&format!(
                "/settings/members/invitations/{}/revoke",
                i.invitation_id
            )),
            id: i.invitation_id,
            email: i.email,
            role: i.role.as_str().to_string(),
            expires_at: crate::clock::parse_rfc3339(&i.expires_at)
                .map(super::when)
                .unwrap_or(i.expires_at),
        })
        .collect();
    let members = rows
        .into_iter()
        .map(|m| MemberLine {
            csrf_role: v.csrf(&format!("/settings/members/{}/role", m.user_id)),
            csrf_remove: v.csrf(&format!("/settings/members/{}/remove", m.user_id)),
            is_admin: m.role == Role::Admin.as_str(),
            user_id: m.user_id,
            email: m.email,
            role: m.role,
        })
        .collect();
    Ok(page(
        status,
        &MembersPage {
            nav: v.nav("/settings/members"),
            org_name: &v.org_name,
            is_admin: v.actor.is_admin(),
            csrf_add: v.csrf("/settings/members"),
            members,
            invitations,
            new_link,
            error,
            notice,
        },
    ))
}

/// `GET /settings/members`
pub async fn members_get(
    v: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    render(&state, &v, StatusCode::OK, None, None).await
}

/// Runs one member operation and re-renders the page with its outcome.
async fn change(
    state: &web::Data<AppState>,
    v: &SignedIn,
    done: &str,
    f: impl FnOnce(&mut crate::db::DbConnection, &crate::app::Ctx<'_>, &Actor) -> Result<(), OpError>
    + Send
    + 'static,
) -> Result<HttpResponse, AppError> {
    match v
        .run(state, Ok(()), move |conn, ctx, actor, ()| {
            f(conn, ctx, actor)
        })
        .await
    {
        Ok(()) => render(state, v, StatusCode::OK, None, Some(done.to_string())).await,
        Err(e) => {
            let (status, m) = shown(e)?;
            render(state, v, status, Some(m), None).await
        }
    }
}

/// `POST /settings/members` `email`, `role`: invites (admins); the link is shown once.
pub async fn members_post(
    v: SignedIn,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(role) = Role::parse(f.get("role").unwrap_or("member")) else {
        return render(
            &state,
            &v,
            StatusCode::BAD_REQUEST,
            Some("Pick a role.".into()),
            None,
        )
        .await;
    };
    let input = Invite {
        email: f.get("email").unwrap_or("").to_string(),
        role,
    };
    match v
        .run(&state, Ok(input), |conn, ctx, actor, input| {
            invitations::invite(conn, ctx, actor, &input)
        })
        .await
    {
        Ok(invited) => {
            let link = NewLink {
                email: invited.invitation.email.clone(),
                url: invitations::link(&state.issuer, &invited.token),
            };
            let notice = Some(format!("Invited {}.", invited.invitation.email));
            render_with(&state, &v, StatusCode::CREATED, None, notice, Some(link)).await
        }
        Err(e) => {
            let (status, m) = shown(e)?;
            render(&state, &v, status, Some(m), None).await
        }
    }
}

/// `POST /settings/members/invitations/{invitation_id}/revoke` (admins).
pub async fn invitation_revoke_post(
    v: SignedIn,
    path: web::Path<String>,
    _form: CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    change(
        &state,
        &v,
        "Invitation revoked.",
        move |conn, ctx, actor| invitations::revoke(conn, ctx, actor, &id),
    )
    .await
}

/// `POST /settings/members/{user_id}/role` (admins).
pub async fn role_post(
    v: SignedIn,
    path: web::Path<String>,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let user_id = path.into_inner();
    let Some(role) = f.get("role").and_then(Role::parse) else {
        return render(
            &state,
            &v,
            StatusCode::BAD_REQUEST,
            Some("Pick a role.".into()),
            None,
        )
        .await;
    };
    change(&state, &v, "Role changed.", move |conn, ctx, actor| {
        members::change_role(conn, ctx, actor, &user_id, role)
    })
    .await
}

/// `POST /settings/members/{user_id}/remove` (admins), with the checkbox `revoke_keys`:
/// also revoke every key the person created in the organization.
pub async fn remove_post(
    v: SignedIn,
    path: web::Path<String>,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let user_id = path.into_inner();
    let revoke_keys = f.get("revoke_keys").is_some();
    let done = if revoke_keys {
        "Member removed; their keys are revoked."
    } else {
        "Member removed."
    };
    change(&state, &v, done, move |conn, ctx, actor| {
        members::remove(conn, ctx, actor, &user_id, revoke_keys).map(|_| ())
    })
    .await
}
