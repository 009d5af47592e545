//! `/settings/members` (docs/spec.md §6): list; admins add by email, change roles and
//! remove. Calls `orgs::members`, the same operations as `/api/v1/orgs/{id}/members`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::page;
use super::signed_in::{CsrfForm, SignedIn};
use crate::app::AppState;
use crate::error::{AppError, OpError};
use crate::http::errors::shown;
use crate::http::with_db;
use crate::orgs::members::{self, AddMember};
use crate::orgs::{Actor, Role};

pub struct MemberLine {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub is_admin: bool,
    pub csrf_role: String,
    pub csrf_remove: String,
}

#[derive(Template)]
#[template(path = "settings_members.html")]
struct MembersPage<'a> {
    email: &'a str,
    org_name: &'a str,
    is_admin: bool,
    csrf_add: String,
    members: Vec<MemberLine>,
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
    let rows = with_db(state, move |conn| members::list(conn, &actor))
        .await
        .map_err(OpError::into_app)?;
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
            email: &v.email,
            org_name: &v.org_name,
            is_admin: v.actor.is_admin(),
            csrf_add: v.csrf("/settings/members"),
            members,
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
    let st = state.clone();
    let actor = v.actor.clone();
    match with_db(state, move |conn| f(conn, &st.ctx(), &actor)).await {
        Ok(()) => render(state, v, StatusCode::OK, None, Some(done.to_string())).await,
        Err(e) => {
            let (status, m) = shown(e)?;
            render(state, v, status, Some(m), None).await
        }
    }
}

/// `POST /settings/members`: adds an existing user by email (admins).
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
    let input = AddMember {
        email: f.get("email").unwrap_or("").to_string(),
        role,
    };
    change(&state, &v, "Member added.", move |conn, ctx, actor| {
        members::add(conn, ctx, actor, &input).map(|_| ())
    })
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

/// `POST /settings/members/{user_id}/remove` (admins).
pub async fn remove_post(
    v: SignedIn,
    path: web::Path<String>,
    _form: CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let user_id = path.into_inner();
    change(&state, &v, "Member removed.", move |conn, ctx, actor| {
        members::remove(conn, ctx, actor, &user_id)
    })
    .await
}
