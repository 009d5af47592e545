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
    email: &'a str,
    org_name: &'a str,
    entries: Vec<AuditLine>,
}

/// `GET /settings/audit`: newest first (admins; members 403).
pub async fn audit_get(v: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let actor = v.actor.clone();
    let rows = match with_db(&state, move |conn| crate::audit::for_org(conn, &actor)).await {
        Ok(rows) => rows,
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
            actor: e.actor,
            action: e.action,
            target: format!("{} {}", e.target_type, e.target_id),
            details: e.details,
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        &AuditPage {
            email: &v.email,
            org_name: &v.org_name,
            entries,
        },
    ))
}
