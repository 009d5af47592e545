//! `/api/v1/orgs/{id}/members` (SPEC.md §5): any member lists; admins add existing users
//! by email, change roles and remove members. An organization always keeps one admin.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Principal, authenticate, json_body, json_response};
use crate::app::AppState;
use crate::db::DbConnection;
use crate::http::with_db;
use crate::orgs::{Role, store};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub email: String,
    #[serde(default = "member")]
    pub role: Role,
}

fn member() -> Role {
    Role::Member
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: Role,
}

fn own_org(p: &Principal, org_id: &str) -> Result<(), ApiError> {
    if p.org_id == org_id {
        Ok(())
    } else {
        Err(ApiError::not_found("organization"))
    }
}

fn audit(
    conn: &mut DbConnection,
    p: &Principal,
    action: &str,
    user_id: &str,
    details: serde_json::Value,
    now: i64,
) -> Result<(), ApiError> {
    p.audit(conn, action, ("user", user_id), details, now)
}

/// Adds an existing user (shared with the pages).
pub fn add(
    conn: &mut DbConnection,
    p: &Principal,
    input: &AddMember,
    now: i64,
) -> Result<store::Member, ApiError> {
    p.require_admin()?;
    let email = crate::users::normalize_email(&input.email)
        .map_err(|_| ApiError::invalid("email is not a valid address."))?;
    let user = crate::users::store::find_by_email(conn, &email)?
        .ok_or_else(|| ApiError::not_found("user with that email (they must sign up first)"))?;
    crate::db::write_tx(conn, |conn| {
        if store::role_of(conn, &p.org_id, &user.id)?.is_some() {
            return Err(ApiError::conflict("That user is already a member."));
        }
        store::add_member(conn, &p.org_id, &user.id, input.role, now)?;
        audit(
            conn,
            p,
            "member.added",
            &user.id,
            json!({"email": user.email, "role": input.role}),
            now,
        )
    })?;
    Ok(store::Member {
        user_id: user.id,
        email: user.email,
        role: input.role.as_str().to_string(),
    })
}

/// Changes a member's role (shared with the pages).
pub fn change_role(
    conn: &mut DbConnection,
    p: &Principal,
    user_id: &str,
    role: Role,
    now: i64,
) -> Result<(), ApiError> {
    p.require_admin()?;
    crate::db::write_tx(conn, |conn| {
        let Some(current) = store::role_of(conn, &p.org_id, user_id)? else {
            return Err(ApiError::not_found("member"));
        };
        if current == Role::Admin
            && role != Role::Admin
            && store::admin_count(conn, &p.org_id)? <= 1
        {
            return Err(ApiError::conflict(
                "An organization must keep at least one admin.",
            ));
        }
        store::set_role(conn, &p.org_id, user_id, role)?;
        audit(
            conn,
            p,
            "member.role_changed",
            user_id,
            json!({"from": current, "to": role}),
            now,
        )
    })
}

/// Removes a member (shared with the pages).
pub fn remove(
    conn: &mut DbConnection,
    p: &Principal,
    user_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    p.require_admin()?;
    crate::db::write_tx(conn, |conn| {
        let Some(current) = store::role_of(conn, &p.org_id, user_id)? else {
            return Err(ApiError::not_found("member"));
        };
        if current == Role::Admin && store::admin_count(conn, &p.org_id)? <= 1 {
            return Err(ApiError::conflict(
                "An organization must keep at least one admin.",
            ));
        }
        store::remove_member(conn, &p.org_id, user_id)?;
        audit(
            conn,
            p,
            "member.removed",
            user_id,
            json!({"role": current}),
            now,
        )
    })
}

/// `GET /api/v1/orgs/{id}/members`
pub async fn list_get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let org_id = path.into_inner();
    let data = with_db(&state, move |conn| -> Result<_, ApiError> {
        own_org(&p, &org_id)?;
        Ok(store::members(conn, &org_id)?)
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    Ok(json_response(StatusCode::OK, rate, json!({ "data": data })))
}

/// `POST /api/v1/orgs/{id}/members` `{email, role}`
pub async fn add_post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let org_id = path.into_inner();
    let input: AddMember = json_body(&req, &body).map_err(|e| e.with_rate(rate))?;
    let st = state.clone();
    let added = with_db(&state, move |conn| {
        own_org(&p, &org_id)?;
        add(conn, &p, &input, st.clock.now())
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    Ok(json_response(StatusCode::CREATED, rate, added))
}

/// `PATCH /api/v1/orgs/{id}/members/{user_id}` `{role}`
pub async fn role_patch(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let (org_id, user_id) = path.into_inner();
    let input: ChangeRole = json_body(&req, &body).map_err(|e| e.with_rate(rate))?;
    let role = input.role;
    let st = state.clone();
    let uid = user_id.clone();
    with_db(&state, move |conn| {
        own_org(&p, &org_id)?;
        change_role(conn, &p, &uid, role, st.clock.now())
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    Ok(json_response(
        StatusCode::OK,
        rate,
        json!({"user_id": user_id, "role": role}),
    ))
}

/// `DELETE /api/v1/orgs/{id}/members/{user_id}`
pub async fn delete(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state).await?;
    let rate = p.rate;
    let (org_id, user_id) = path.into_inner();
    let st = state.clone();
    with_db(&state, move |conn| {
        own_org(&p, &org_id)?;
        remove(conn, &p, &user_id, st.clock.now())
    })
    .await
    .map_err(|e| e.with_rate(rate))?;
    Ok(super::no_content(rate))
}
