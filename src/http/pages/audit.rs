//! `/settings/audit` (docs/spec.md §6): the organization's audit log (admins).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::signed_in::SignedIn;
use super::{error_page, page, when};
use crate::app::AppState;
use crate::error::AppError;
use crate::http::errors::shown;
use crate::http::with_db;

pub struct AuditLine {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "settings_audit.html")]
struct AuditPage<'a> {
    nav: super::layout::Nav,
    org_name: &'a str,
    entries: Vec<AuditLine>,
}

/// An actor label as a person reads it: `user:<id>` of a member is their email (a former
/// member keeps the id); `key:<id>`, `cli` and the rest are shown as they are.
fn readable(label: &str, people: &[crate::orgs::store::Member]) -> String {
    label
        .strip_prefix("user:")
        .and_then(|id| people.iter().find(|m| m.user_id == id))
        .map_or_else(|| label.to_string(), |m| m.email.clone())
}

/// `GET /settings/audit`: newest first (admins; members 403).
pub async fn audit_get(v: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let actor = v.actor.clone();
    let found = with_db(&state, move |conn| -> Result<_, crate::error::OpError> {
        let rows = crate::audit::for_org(conn, &actor)?;
        let people = crate::orgs::store::members(conn, &actor.org_id)?;
        Ok((rows, people))
    })
    .await;
    let (rows, people) = match found {
        Ok(found) => found,
        Err(e) => {
            let (status, _) = shown(e)?;
            return Ok(error_page(
                status,
                "Admins only",
                "Only organization admins can read the audit log.",
            ));
        }
    };
    let entries = rows
        .into_iter()
        .map(|e| AuditLine {
            when: when(e.created_at),
            actor: readable(&e.actor, &people),
            action: e.action,
            target: if e.target_type == "user" {
                readable(&format!("user:{}", e.target_id), &people)
            } else {
                format!("{} {}", e.target_type, e.target_id)
            },
            details: e.details,
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        &AuditPage {
            nav: v.nav("/settings/audit"),
            org_name: &v.org_name,
            entries,
        },
    ))
}
