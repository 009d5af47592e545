//! `/settings/audit` (docs/spec.md §6): the organization's audit log (admins).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::signed_in::SignedIn;
use super::{error_page, page, when_exact};
use crate::app::AppState;
use crate::error::AppError;
use crate::http::errors::shown;
use crate::http::with_db;

pub struct AuditLine {
    /// When, as `2026-11-25` and `06:48:29 UTC` (the cell breaks only between them).
    pub day: String,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The record's details as (field, value) pairs, in the record's order.
    pub details: Vec<(String, String)>,
}

/// An audit record's `details` (a JSON object) as a person reads it: one (field, value)
/// per member (in the order serde_json keeps), strings without quotes, lists of strings joined with ", " (an empty list: "none"), anything else
/// as JSON. Something that is not an object is one pair with an empty field.
fn pairs(details: &str) -> Vec<(String, String)> {
    use serde_json::Value;
    match serde_json::from_str::<Value>(details) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let shown = match v {
                    Value::String(s) => s,
                    Value::Array(items) if items.is_empty() => "none".to_string(),
                    Value::Array(items) if items.iter().all(Value::is_string) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => other.to_string(),
                };
                (k, shown)
            })
            .collect(),
        _ if details.trim().is_empty() => Vec::new(),
        _ => vec![(String::new(), details.to_string())],
    }
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
            day: super::day(e.created_at),
            time: when_exact(e.created_at)
                .split_once(' ')
                .map(|(_, t)| t.to_string())
                .unwrap_or_default(),
            actor: readable(&e.actor, &people),
            action: e.action,
            target: if e.target_type == "user" {
                readable(&format!("user:{}", e.target_id), &people)
            } else {
                format!("{} {}", e.target_type, e.target_id)
            },
            details: pairs(&e.details),
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

#[cfg(test)]
mod tests {
    use super::pairs;

    #[test]
    fn details_read_as_fields_and_values() {
        let mut p = pairs(r#"{"email":"a@b.c","n":2,"ok":true,"resources":[],"scopes":["x","y"]}"#);
        p.sort();
        let want = [
            ("email", "a@b.c"),
            ("n", "2"),
            ("ok", "true"),
            ("resources", "none"),
            ("scopes", "x, y"),
        ];
        assert_eq!(
            p,
            want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
        );
        assert!(pairs("").is_empty());
        assert_eq!(pairs("not json"), vec![(String::new(), "not json".into())]);
    }
}
