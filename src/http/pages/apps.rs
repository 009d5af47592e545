//! `/account/apps` (docs/spec.md §6): the apps the user has authorized, and withdrawing
//! consent (`consent::decision::withdraw`). Needs a session, not an organization.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::signed_in::CsrfForm;
use super::{current_session, page, see_other, when};
use crate::app::AppState;
use crate::consent::decision;
use crate::error::AppError;
use crate::http::with_db;

pub struct AppLine {
    pub client_id: String,
    pub name: String,
    pub client_uri: String,
    /// Unverified: the host of a metadata-document client id, or "" (self-registered).
    pub unverified: Option<String>,
    pub scopes: String,
    pub granted: String,
    pub revoke_path: String,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "account_apps.html")]
struct AppsPage {
    nav: super::layout::Nav,
    apps: Vec<AppLine>,
}

/// `GET /account/apps`: what the user has authorized.
pub async fn apps_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = current_session(&req, &state).await? else {
        return Ok(see_other("/login?return_to=%2Faccount%2Fapps"));
    };
    let user = session.user_id.clone();
    let apps = with_db(&state, move |conn| decision::apps(conn, &user)).await?;
    let nav = super::layout::nav_for(&state, &session, "/account").await?;
    let apps = apps
        .into_iter()
        .map(|a| AppLine {
            // A metadata document client's id is a URL: the path carries it
            // percent-encoded (the route decodes it, docs/spec.md §8).
            revoke_path: format!(
                "/account/apps/{}/revoke",
                url::form_urlencoded::byte_serialize(a.client_id.as_bytes()).collect::<String>()
            ),
            csrf: String::new(),
            name: if a.client_name.is_empty() {
                a.client_id.clone()
            } else {
                a.client_name
            },
            unverified: a.unverified.then(|| {
                crate::clients::metadata_document::host_of(&a.client_id).unwrap_or_default()
            }),
            client_id: a.client_id,
            client_uri: a.client_uri.unwrap_or_default(),
            scopes: a.scope,
            granted: when(a.updated_at),
        })
        .map(|mut line: AppLine| {
            line.csrf = session.csrf_token(&line.revoke_path);
            line
        })
        .collect();
    Ok(page(StatusCode::OK, &AppsPage { nav, apps }))
}

/// `POST /account/apps/{client_id}/revoke`: removes the consent and kills every token of
/// it from the next request on.
pub async fn app_revoke_post(
    req: HttpRequest,
    path: web::Path<String>,
    _form: CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = current_session(&req, &state).await? else {
        return Ok(super::signed_in::forbidden_form());
    };
    let client_id = path.into_inner();
    let st = state.clone();
    let user = session.user_id.clone();
    with_db(&state, move |conn| {
        decision::withdraw(conn, &st.ctx(), &user, &client_id)
    })
    .await?;
    Ok(see_other("/account/apps"))
}
