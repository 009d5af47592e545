//! `/settings/key-requests` (docs/spec.md §10): when the organization's policy forbids
//! members to create keys, they ask here; admins approve or deny pending requests; the
//! requester claims the key of an approved request once and sees it once. Calls
//! `api_keys::requests`, the same operations as `/api/v1/key-requests` and the CLI.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::keys::ScopeChoice;
use super::signed_in::{CsrfForm, Fields, SignedIn};
use super::{error_page, page, see_other};
use crate::api_keys::ops::grantable;
use crate::api_keys::requests::{self, ClaimError, NewKeyRequest};
use crate::api_keys::store::CreatedApiKey;
use crate::app::AppState;
use crate::error::{AppError, OpError};
use crate::http::errors::shown;
use crate::http::with_db;
use crate::scope::ScopesInput;

/// The page's path.
pub const PATH: &str = "/settings/key-requests";

/// One request as the page lists it, with the CSRF tokens of its buttons.
pub struct RequestLine {
    pub id: String,
    pub status: String,
    pub name: String,
    pub scopes: String,
    pub reason: String,
    pub expires: String,
    pub requested_by: String,
    pub mine: bool,
    pub created: String,
    pub csrf_approve: String,
    pub csrf_deny: String,
    pub csrf_claim: String,
}

#[derive(Template)]
#[template(path = "settings_key_requests.html")]
struct RequestsPage<'a> {
    nav: super::layout::Nav,
    org_name: &'a str,
    is_admin: bool,
    csrf_create: String,
    requests: Vec<RequestLine>,
    scopes: Vec<ScopeChoice>,
    created: Option<CreatedApiKey>,
    notice: Option<String>,
    error: Option<String>,
    name: String,
    reason: String,
}

/// What the form showed, to fill it back in after an error.
#[derive(Default)]
struct Filled {
    name: String,
    reason: String,
    checked: Vec<String>,
}

struct Shown {
    status: StatusCode,
    created: Option<CreatedApiKey>,
    notice: Option<String>,
    error: Option<String>,
}

async fn render(
    state: &web::Data<AppState>,
    v: &SignedIn,
    shown_now: Shown,
    filled: Filled,
) -> Result<HttpResponse, AppError> {
    let actor = v.actor.clone();
    let (list, people) = with_db(state, move |conn| -> Result<_, OpError> {
        let list = requests::list(conn, &actor)?;
        let people = crate::orgs::store::members(conn, &actor.org_id)?;
        Ok((list, people))
    })
    .await
    .map_err(OpError::into_app)?;
    let me = v.actor.user_id.clone().unwrap_or_default();
    let requests = list
        .into_iter()
        .map(|r| {
            let path = |what: &str| v.csrf(&format!("{PATH}/{}/{what}", r.id));
            RequestLine {
                csrf_approve: path("approve"),
                csrf_deny: path("deny"),
                csrf_claim: path("claim"),
                mine: r.requested_by == me,
                status: r.status,
                name: r.name,
                scopes: r.scopes.join(" "),
                reason: r.reason,
                expires: r.expires_in_days.map_or_else(
                    || "never".to_string(),
                    |d| format!("{d} days after approval"),
                ),
                // Who asked, by email (a former member keeps the id).
                requested_by: people
                    .iter()
                    .find(|m| m.user_id == r.requested_by)
                    .map_or(r.requested_by, |m| m.email.clone()),
                created: crate::clock::parse_rfc3339(&r.created_at)
                    .map(super::when)
                    .unwrap_or(r.created_at),
                id: r.id,
            }
        })
        .collect();
    let catalogue = &state.settings.scopes;
    let mut scopes: Vec<ScopeChoice> = grantable(catalogue, v.actor.role)
        .into_iter()
        .map(|s| ScopeChoice {
            name: s.to_string(),
            description: catalogue.description(s).unwrap_or("").to_string(),
            checked: filled.checked.iter().any(|c| c == s),
        })
        .collect();
    // `admin` last, with its warning (docs/spec.md §6).
    scopes.sort_by_key(|s| s.name == "admin");
    Ok(page(
        shown_now.status,
        &RequestsPage {
            nav: v.nav("/settings/key-requests"),
            org_name: &v.org_name,
            is_admin: v.actor.is_admin(),
            csrf_create: v.csrf(PATH),
            requests,
            scopes,
            created: shown_now.created,
            notice: shown_now.notice,
            error: shown_now.error,
            name: filled.name,
            reason: filled.reason,
        },
    ))
}

fn plain(status: StatusCode) -> Shown {
    Shown {
        status,
        created: None,
        notice: None,
        error: None,
    }
}

/// `GET /settings/key-requests`: admins see the organization's requests, members their own.
pub async fn key_requests_get(
    v: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    render(&state, &v, plain(StatusCode::OK), Filled::default()).await
}

/// Reads the request form: name, permissions (`scope`, repeated), reason, expiry in days
/// (empty or `never`: no expiry).
fn new_request(f: &Fields) -> Result<NewKeyRequest, OpError> {
    let expires_in_days =
        match f.get("expires_in_days") {
            None | Some("never") => None,
            Some(d) => Some(d.trim().parse::<i64>().map_err(|_| {
                OpError::invalid("expires_in_days must be a whole number of days.")
            })?),
        };
    Ok(NewKeyRequest {
        name: f.get("name").unwrap_or("").to_string(),
        scopes: ScopesInput::List(f.all("scope")),
        reason: f.get("reason").unwrap_or("").to_string(),
        expires_in_days,
    })
}

/// `POST /settings/key-requests`: asks the admins for a key (201 with a notice).
pub async fn key_requests_post(
    v: SignedIn,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let filled = Filled {
        name: f.get("name").unwrap_or("").to_string(),
        reason: f.get("reason").unwrap_or("").to_string(),
        checked: f.all("scope"),
    };
    let result = v
        .run(&state, new_request(&f), |conn, ctx, actor, input| {
            requests::create(conn, ctx, actor, &input)
        })
        .await;
    match result {
        Ok(made) => {
            let notice = format!(
                "Your request for \u{201c}{}\u{201d} was sent to the organization's admins.",
                made.name
            );
            let shown_now = Shown {
                notice: Some(notice),
                ..plain(StatusCode::CREATED)
            };
            render(&state, &v, shown_now, Filled::default()).await
        }
        Err(e) => {
            let (status, m) = shown(e)?;
            let shown_now = Shown {
                error: Some(m),
                ..plain(status)
            };
            render(&state, &v, shown_now, filled).await
        }
    }
}

async fn decide(
    v: SignedIn,
    id: String,
    approve: bool,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    match v
        .run(&state, Ok(id), move |conn, ctx, actor, id| {
            requests::decide(conn, ctx, actor, &id, approve)
        })
        .await
    {
        Ok(_) => Ok(see_other(PATH)),
        Err(e) => {
            let (status, m) = shown(e)?;
            Ok(error_page(status, "Not decided", &m))
        }
    }
}

/// `POST /settings/key-requests/{id}/approve` (admins): 303 back to the list.
pub async fn approve_post(
    v: SignedIn,
    path: web::Path<String>,
    _form: CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide(v, path.into_inner(), true, state).await
}

/// `POST /settings/key-requests/{id}/deny` (admins): 303 back to the list.
pub async fn deny_post(
    v: SignedIn,
    path: web::Path<String>,
    _form: CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide(v, path.into_inner(), false, state).await
}

/// `POST /settings/key-requests/{id}/claim` (the requester): 201 with the key shown once;
/// a second claim is 410.
pub async fn claim_post(
    v: SignedIn,
    path: web::Path<String>,
    _form: CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let st = state.clone();
    let actor = v.actor.clone();
    let claimed = with_db(&state, move |conn| {
        requests::claim(conn, &st.ctx(), &actor, &id)
    })
    .await;
    match claimed {
        Ok(created) => {
            let shown_now = Shown {
                created: Some(created),
                ..plain(StatusCode::CREATED)
            };
            render(&state, &v, shown_now, Filled::default()).await
        }
        Err(ClaimError::Gone) => Ok(error_page(
            StatusCode::GONE,
            "Already claimed",
            "The key of this request was already claimed; it is shown only once.",
        )),
        Err(ClaimError::Op(e)) => {
            let (status, m) = shown(e)?;
            Ok(error_page(status, "Not claimed", &m))
        }
    }
}
