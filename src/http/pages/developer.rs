//! `/developer/clients` (register, edit, rotate the secret, delete), `/account/apps`
//! (authorized apps, revoke) and `/settings/audit` (admins). The pages call the same
//! operations as `/api/v1/clients`, acting as the signed-in user in their current
//! organization; every form carries a CSRF token bound to its purpose.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::settings::{ConfirmPage, Viewer, csrf_ok, field, forbidden_form, form_pairs, when};
use super::{error_page, page, see_other};
use crate::app::AppState;
use crate::clients::store::{self, ClientRow};
use crate::clients::{GrantType, NewClient};
use crate::error::AppError;
use crate::http::api::clients as ops;
use crate::http::api::{ApiError, ScopesInput};
use crate::http::with_db;
use crate::orgs::Role;

/// A failure from the shared operations: storage errors propagate, the rest is shown.
fn shown(e: ApiError) -> Result<(StatusCode, String), AppError> {
    match e.cause {
        Some(c) => Err(*c),
        None => Ok((e.status, e.message)),
    }
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

/// The values of the register/edit form, to fill it back in.
#[derive(Default)]
pub struct ClientForm {
    pub name: String,
    pub redirect_uris: String,
    pub public: bool,
    pub grant_types: Vec<Choice>,
    pub scopes: Vec<Choice>,
    pub logo_uri: String,
    pub client_uri: String,
}

fn grant_choices(checked: &[GrantType]) -> Vec<Choice> {
    [
        (
            GrantType::AuthorizationCode,
            "Authorization code (users sign in)",
        ),
        (GrantType::RefreshToken, "Refresh tokens"),
        (
            GrantType::ClientCredentials,
            "Client credentials (server to server)",
        ),
    ]
    .into_iter()
    .map(|(g, label)| Choice {
        value: g.as_str().into(),
        label: label.into(),
        checked: checked.contains(&g),
    })
    .collect()
}

fn scope_choices(state: &AppState, checked: &[String]) -> Vec<Choice> {
    state
        .settings
        .scopes
        .names()
        .map(|s| Choice {
            value: s.into(),
            label: state.settings.scopes.description(s).unwrap_or("").into(),
            checked: checked.iter().any(|c| c == s),
        })
        .collect()
}

impl ClientForm {
    fn blank(state: &AppState) -> Self {
        Self {
            grant_types: grant_choices(&[GrantType::AuthorizationCode, GrantType::RefreshToken]),
            scopes: scope_choices(state, &[]),
            ..Default::default()
        }
    }

    fn of(state: &AppState, row: &ClientRow) -> Self {
        Self {
            name: row.name.clone(),
            redirect_uris: row.redirect_uri_list().join("\n"),
            public: row.is_public,
            grant_types: grant_choices(&row.grant_type_list()),
            scopes: scope_choices(
                state,
                &row.scope.split(' ').map(str::to_string).collect::<Vec<_>>(),
            ),
            logo_uri: row.logo_uri.clone().unwrap_or_default(),
            client_uri: row.client_uri.clone().unwrap_or_default(),
        }
    }

    /// Reads a submitted form; `Err` carries the form back with a message.
    fn read(
        state: &AppState,
        pairs: &[(String, String)],
        viewer: &Viewer,
    ) -> (Self, Result<NewClient, String>) {
        let all = |name: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let grants: Vec<GrantType> = all("grant_type")
            .iter()
            .filter_map(|g| GrantType::parse(g))
            .collect();
        let scopes = all("scope");
        let form = Self {
            name: field(pairs, "name").unwrap_or("").to_string(),
            redirect_uris: field(pairs, "redirect_uris").unwrap_or("").to_string(),
            public: field(pairs, "type") == Some("public"),
            grant_types: grant_choices(&grants),
            scopes: scope_choices(state, &scopes),
            logo_uri: field(pairs, "logo_uri").unwrap_or("").to_string(),
            client_uri: field(pairs, "client_uri").unwrap_or("").to_string(),
        };
        let scope = match ScopesInput::List(scopes).parse() {
            Ok(s) if !s.is_empty() => Some(s),
            Ok(_) => return (form, Err("Pick at least one scope.".into())),
            Err(e) => return (form, Err(e.message)),
        };
        let new = NewClient {
            name: form.name.clone(),
            redirect_uris: form
                .redirect_uris
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            public: form.public,
            resource_server: false,
            grant_types: Some(grants),
            scope,
            org_id: Some(viewer.principal.org_id.clone()),
            logo_uri: Some(form.logo_uri.trim().to_string()).filter(|s| !s.is_empty()),
            client_uri: Some(form.client_uri.trim().to_string()).filter(|s| !s.is_empty()),
            created_by: viewer.principal.user_id.clone(),
        };
        (form, Ok(new))
    }
}

pub struct ClientLine {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub created: String,
}

#[derive(Template)]
#[template(path = "developer_clients.html")]
struct ClientsPage<'a> {
    email: &'a str,
    org_name: &'a str,
    clients: Vec<ClientLine>,
    form: ClientForm,
    csrf: String,
    error: Option<String>,
    /// Just registered: (client id, secret if confidential).
    created: Option<(String, Option<String>)>,
}

async fn render_list(
    state: &web::Data<AppState>,
    v: &Viewer,
    status: StatusCode,
    form: ClientForm,
    error: Option<String>,
    created: Option<(String, Option<String>)>,
) -> Result<HttpResponse, AppError> {
    let org = v.principal.org_id.clone();
    let rows = with_db(state, move |conn| {
        store::list(conn, &org).map_err(AppError::from)
    })
    .await?;
    let clients = rows
        .into_iter()
        .map(|r| ClientLine {
            kind: if r.is_resource_server {
                "resource server"
            } else if r.is_public {
                "public"
            } else {
                "confidential"
            },
            created: when(r.created_at),
            id: r.id,
            name: r.name,
        })
        .collect();
    Ok(page(
        status,
        &ClientsPage {
            email: &v.email,
            org_name: &v.org_name,
            clients,
            form,
            csrf: v.session.csrf_token("client-create"),
            error,
            created,
        },
    ))
}

/// `GET /developer/clients`
pub async fn clients_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let v = signed_in!(req, state);
    render_list(
        &state,
        &v,
        StatusCode::OK,
        ClientForm::blank(&state),
        None,
        None,
    )
    .await
}

/// `POST /developer/clients`: registers a client; its secret is shown on this answer only.
pub async fn clients_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let v = signed_in!(req, state);
    let pairs = form_pairs(&body);
    if !csrf_ok(&req, &state, &v, "client-create", &pairs) {
        return Ok(forbidden_form());
    }
    let (form, new) = ClientForm::read(&state, &pairs, &v);
    let new = match new {
        Ok(n) => n,
        Err(m) => {
            return render_list(&state, &v, StatusCode::BAD_REQUEST, form, Some(m), None).await;
        }
    };
    let st = state.clone();
    let p = v.principal.clone();
    match with_db(&state, move |conn| ops::create(conn, &st, &p, new)).await {
        Ok((row, secret)) => {
            render_list(
                &state,
                &v,
                StatusCode::CREATED,
                ClientForm::blank(&state),
                None,
                Some((row.id, secret)),
            )
            .await
        }
        Err(e) => {
            let (status, m) = shown(e)?;
            render_list(&state, &v, status, form, Some(m), None).await
        }
    }
}

#[derive(Template)]
#[template(path = "developer_client.html")]
struct ClientPage<'a> {
    email: &'a str,
    org_name: &'a str,
    client_id: &'a str,
    form: ClientForm,
    csrf_update: String,
    csrf_secret: String,
    is_admin: bool,
    error: Option<String>,
    notice: Option<String>,
    /// Just rotated: (new secret, when the old ones stop).
    rotated: Option<(String, String)>,
}

async fn load_client(
    state: &web::Data<AppState>,
    v: &Viewer,
    id: &str,
) -> Result<Option<ClientRow>, AppError> {
    let org = v.principal.org_id.clone();
    let id = id.to_string();
    with_db(state, move |conn| {
        store::find_in_org(conn, &org, &id).map_err(AppError::from)
    })
    .await
}

fn no_such_client() -> HttpResponse {
    error_page(StatusCode::NOT_FOUND, "Not found", "No such client.")
}

#[allow(clippy::too_many_arguments)]
fn render_client(
    v: &Viewer,
    id: &str,
    status: StatusCode,
    form: ClientForm,
    error: Option<String>,
    notice: Option<String>,
    rotated: Option<(String, String)>,
) -> HttpResponse {
    page(
        status,
        &ClientPage {
            email: &v.email,
            org_name: &v.org_name,
            client_id: id,
            form,
            csrf_update: v.session.csrf_token(&format!("client-update:{id}")),
            csrf_secret: v.session.csrf_token(&format!("client-secret:{id}")),
            is_admin: v.principal.role == Role::Admin,
            error,
            notice,
            rotated,
        },
    )
}

/// `GET /developer/clients/{id}`
pub async fn client_get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let v = signed_in!(req, state);
    let id = path.into_inner();
    let Some(row) = load_client(&state, &v, &id).await? else {
        return Ok(no_such_client());
    };
    Ok(render_client(
        &v,
        &id,
        StatusCode::OK,
        ClientForm::of(&state, &row),
        None,
        None,
        None,
    ))
}

/// `POST /developer/clients/{id}`: saves the edit form.
pub async fn client_post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let v = signed_in!(req, state);
    let id = path.into_inner();
    let pairs = form_pairs(&body);
    if !csrf_ok(&req, &state, &v, &format!("client-update:{id}"), &pairs) {
        return Ok(forbidden_form());
    }
    let Some(current) = load_client(&state, &v, &id).await? else {
        return Ok(no_such_client());
    };
    let (mut form, new) = ClientForm::read(&state, &pairs, &v);
    form.public = current.is_public;
    let new = match new {
        Ok(n) => n,
        Err(m) => {
            return Ok(render_client(
                &v,
                &id,
                StatusCode::BAD_REQUEST,
                form,
                Some(m),
                None,
                None,
            ));
        }
    };
    let st = state.clone();
    let p = v.principal.clone();
    let cid = id.clone();
    match with_db(&state, move |conn| ops::update(conn, &st, &p, &cid, new)).await {
        Ok(row) => Ok(render_client(
            &v,
            &id,
            StatusCode::OK,
            ClientForm::of(&state, &row),
            None,
            Some("Saved.".into()),
            None,
        )),
        Err(e) => {
            let (status, m) = shown(e)?;
            Ok(render_client(&v, &id, status, form, Some(m), None, None))
        }
    }
}

/// `POST /developer/clients/{id}/secret`: a new secret, shown once; the old one works for
/// the chosen overlap.
pub async fn secret_post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let v = signed_in!(req, state);
    let id = path.into_inner();
    let pairs = form_pairs(&body);
    if !csrf_ok(&req, &state, &v, &format!("client-secret:{id}"), &pairs) {
        return Ok(forbidden_form());
    }
    let Some(row) = load_client(&state, &v, &id).await? else {
        return Ok(no_such_client());
    };
    let overlap: i64 = field(&pairs, "overlap")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let st = state.clone();
    let p = v.principal.clone();
    let cid = id.clone();
    let result = with_db(&state, move |conn| {
        ops::rotate_secret(conn, &st, &p, &cid, overlap)
    })
    .await;
    let form = ClientForm::of(&state, &row);
    match result {
        Ok((secret, old_end)) => {
            ops::after_client_change(&state, &id);
            let mut resp = render_client(
                &v,
                &id,
                StatusCode::CREATED,
                form,
                None,
                None,
                Some((secret, when(old_end))),
            );
            resp.headers_mut().insert(
                actix_web::http::header::CACHE_CONTROL,
                actix_web::http::header::HeaderValue::from_static("no-store"),
            );
            Ok(resp)
        }
        Err(e) => {
            let (status, m) = shown(e)?;
            Ok(render_client(&v, &id, status, form, Some(m), None, None))
        }
    }
}

/// `GET /developer/clients/{id}/delete`: the confirmation step (admins).
pub async fn delete_get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let v = signed_in!(req, state);
    let id = path.into_inner();
    let Some(row) = load_client(&state, &v, &id).await? else {
        return Ok(no_such_client());
    };
    if v.principal.role != Role::Admin {
        return Ok(error_page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "Only organization admins can delete clients.",
        ));
    }
    let message = format!(
        "\u{201c}{}\u{201d} and every token, code and consent of it will stop working immediately. This cannot be undone.",
        row.name
    );
    Ok(page(
        StatusCode::OK,
        &ConfirmPage {
            heading: "Delete this client?",
            message: &message,
            action: &format!("/developer/clients/{id}/delete"),
            button: "Delete client",
            cancel: &format!("/developer/clients/{id}"),
            csrf_token: &v.session.csrf_token(&format!("client-delete:{id}")),
        },
    ))
}

/// `POST /developer/clients/{id}/delete`
pub async fn delete_post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let v = signed_in!(req, state);
    let id = path.into_inner();
    let pairs = form_pairs(&body);
    if !csrf_ok(&req, &state, &v, &format!("client-delete:{id}"), &pairs) {
        return Ok(forbidden_form());
    }
    let st = state.clone();
    let p = v.principal.clone();
    let cid = id.clone();
    match with_db(&state, move |conn| ops::delete(conn, &st, &p, &cid)).await {
        Ok(()) => {
            ops::after_client_change(&state, &id);
            Ok(see_other("/developer/clients"))
        }
        Err(e) => {
            let (status, m) = shown(e)?;
            Ok(error_page(status, "Cannot delete", &m))
        }
    }
}

pub struct AppLine {
    pub client_id: String,
    pub name: String,
    pub client_uri: String,
    pub scopes: String,
    pub granted: String,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "account_apps.html")]
struct AppsPage<'a> {
    email: &'a str,
    apps: Vec<AppLine>,
}

/// `GET /account/apps`: what the user has authorized.
pub async fn apps_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = super::current_session(&req, &state).await? else {
        return Ok(see_other("/login?return_to=%2Faccount%2Fapps"));
    };
    let user = session.user_id.clone();
    let (email, apps) = with_db(&state, move |conn| -> Result<_, AppError> {
        let email = crate::users::store::find(conn, &user)?
            .map(|u| u.email)
            .unwrap_or_default();
        Ok((email, crate::consent::apps_of(conn, &user)?))
    })
    .await?;
    let apps = apps
        .into_iter()
        .map(|a| AppLine {
            csrf: session.csrf_token(&format!("app-revoke:{}", a.client_id)),
            client_id: a.client_id,
            name: a.client_name,
            client_uri: a.client_uri.unwrap_or_default(),
            scopes: a.scope,
            granted: when(a.updated_at),
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        &AppsPage {
            email: &email,
            apps,
        },
    ))
}

/// `POST /account/apps/{client_id}/revoke`: removes the consent and kills every token of
/// it from the next request on.
pub async fn app_revoke_post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = super::current_session(&req, &state).await? else {
        return Ok(forbidden_form());
    };
    let client_id = path.into_inner();
    let pairs = form_pairs(&body);
    if !super::same_origin(&req, &state)
        || !session.csrf_ok(
            &format!("app-revoke:{client_id}"),
            field(&pairs, "csrf_token").unwrap_or(""),
        )
    {
        return Ok(forbidden_form());
    }
    let now = state.clock.now();
    let user = session.user_id.clone();
    with_db(&state, move |conn| {
        crate::db::write_tx(conn, |conn| {
            crate::consent::revoke(conn, &user, &client_id, now)
        })
        .map_err(AppError::from)
    })
    .await?;
    state.live_tokens.bump();
    Ok(see_other("/account/apps"))
}

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

/// `GET /settings/audit`: the organization's audit log, newest first (admins; members 403).
pub async fn audit_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let v = signed_in!(req, state);
    if v.principal.role != Role::Admin {
        return Ok(error_page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "Only organization admins can read the audit log.",
        ));
    }
    let org = v.principal.org_id.clone();
    let rows = with_db(&state, move |conn| {
        crate::audit::list_for_org(conn, &org, 500).map_err(AppError::from)
    })
    .await?;
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
