//! Invitations on `/api/v1` (docs/spec.md §5): `POST /api/v1/orgs/{id}/members` invites,
//! `GET /api/v1/orgs/{id}/invitations` lists the pending ones, `DELETE
//! /api/v1/orgs/{id}/invitations/{invitation_id}` revokes one. Extract, call
//! `orgs::invitations`, answer. Accepting and declining happen on the pages, signed in.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::openapi::{BearerErrors, Conflict, InvalidRequest, TooLarge};
use super::{ApiError, ApiJson, Principal, json_response, no_content};
use crate::app::AppState;
use crate::orgs::invitations::{self, Invitation, InvitationCreated, Invite};
use crate::orgs::members;

/// The 200 body of `GET /api/v1/orgs/{org_id}/invitations`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct InvitationList {
    pub data: Vec<Invitation>,
}

/// `POST /api/v1/orgs/{id}/members` `{email, role}`: invites (admins). The person joins
/// only when they accept, signed in with that email; the answer is the same whether or not
/// the email has an account.
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/members",
    operation_id = "inviteMember",
    tag = "members",
    summary = "Invite an email (admins): a single-use link valid for 7 days",
    security(("bearer" = [])),
    params(("org_id" = String, Path, description = "The caller's organization")),
    request_body = Invite,
    responses(
        (status = 201, description = "Invited", body = InvitationCreated),
        InvalidRequest, BearerErrors, Conflict, TooLarge
    )
)]
pub async fn invite_post(
    p: Principal,
    path: web::Path<String>,
    ApiJson(input): ApiJson<Invite>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let invited = p
        .run(&state, move |conn, ctx, actor| {
            members::own_org(actor, &org_id)?;
            invitations::invite(conn, ctx, actor, &input)
        })
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        None,
        invited.answer(&state.issuer),
    ))
}

/// `GET /api/v1/orgs/{id}/invitations`: the pending invitations (any member).
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/invitations",
    operation_id = "listInvitations",
    tag = "members",
    summary = "List pending invitations",
    security(("bearer" = [])),
    params(("org_id" = String, Path, description = "The caller's organization")),
    responses(
        (status = 200, description = "The pending invitations, newest first", body = InvitationList),
        InvalidRequest, BearerErrors
    )
)]
pub async fn list_get(
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let data = p
        .run(&state, move |conn, ctx, actor| {
            members::own_org(actor, &org_id)?;
            invitations::list(conn, ctx, actor)
        })
        .await?;
    Ok(json_response(StatusCode::OK, None, InvitationList { data }))
}

/// `DELETE /api/v1/orgs/{id}/invitations/{invitation_id}`: revokes a pending invitation
/// (admins); its link stops working.
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/invitations/{invitation_id}",
    operation_id = "revokeInvitation",
    tag = "members",
    summary = "Revoke a pending invitation (admins)",
    security(("bearer" = [])),
    params(
        ("org_id" = String, Path, description = "The caller's organization"),
        ("invitation_id" = String, Path, description = "The invitation")
    ),
    responses(
        (status = 204, description = "Revoked"),
        InvalidRequest, BearerErrors
    )
)]
pub async fn delete(
    p: Principal,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, id) = path.into_inner();
    p.run(&state, move |conn, ctx, actor| {
        members::own_org(actor, &org_id)?;
        invitations::revoke(conn, ctx, actor, &id)
    })
    .await?;
    Ok(no_content(None))
}
