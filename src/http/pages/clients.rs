//! `/developer/clients` (docs/spec.md §6): register, edit, rotate the secret, delete. The
//! pages call `clients::ops`, the same operations as `/api/v1/clients`, acting as the
//! signed-in user in their current organization.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::signed_in::{CsrfForm, Fields, SignedIn};
use super::{ConfirmPage, error_page, page, see_other, when};
use crate::app::AppState;
use crate::clients::ops;
use crate::clients::store::ClientRow;
use crate::clients::{GrantType, NewClient};
use crate::error::{AppError, OpError};
use crate::http::errors::shown;
use crate::http::with_db;
use crate::orgs::Role;
use crate::scope::{MANAGEMENT_SCOPE, ScopesInput};
use crate::shown_once::Shown;

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
        (
            GrantType::DeviceCode,
            "Device flow (CLIs and devices, RFC 8628)",
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

/// The catalogue scopes the viewer may give a client (members: all but `admin`,
/// docs/spec.md §5), plus any the client already has, so that none is dropped unseen.
/// `admin` comes last, with its warning (docs/spec.md §6).
fn scope_choices(state: &AppState, role: Role, checked: &[String]) -> Vec<Choice> {
    let mut choices: Vec<Choice> = state
        .settings
        .scopes
        .names()
        .filter(|s| role == Role::Admin || *s != MANAGEMENT_SCOPE || checked.iter().any(|c| c == s))
        .map(|s| Choice {
            value: s.into(),
            label: state.settings.scopes.description(s).unwrap_or("").into(),
            checked: checked.iter().any(|c| c == s),
        })
        .collect();
    choices.sort_by_key(|c| c.value == MANAGEMENT_SCOPE);
    choices
}

impl ClientForm {
    fn blank(state: &AppState, role: Role) -> Self {
        Self {
            grant_types: grant_choices(&[GrantType::AuthorizationCode, GrantType::RefreshToken]),
            scopes: scope_choices(state, role, &[]),
            ..Default::default()
        }
    }

    fn of(state: &AppState, row: &ClientRow, role: Role) -> Self {
        Self {
            name: row.name.clone(),
            redirect_uris: row.redirect_uri_list().join("\n"),
            public: row.is_public,
            grant_types: grant_choices(&row.grant_type_list()),
            scopes: scope_choices(
                state,
                role,
                &row.scope.split(' ').map(str::to_string).collect::<Vec<_>>(),
            ),
            logo_uri: row.logo_uri.clone().unwrap_or_default(),
            client_uri: row.client_uri.clone().unwrap_or_default(),
        }
    }

    /// Reads a submitted form; `Err` carries the form back with a message.
    fn read(state: &AppState, f: &Fields, v: &SignedIn) -> (Self, Result<NewClient, String>) {
        let grants: Vec<GrantType> = f
            .all("grant_type")
            .iter()
            .filter_map(|g| GrantType::parse(g))
            .collect();
        let scopes = f.all("scope");
        let form = Self {
            name: f.get("name").unwrap_or("").to_string(),
            redirect_uris: f.get("redirect_uris").unwrap_or("").to_string(),
            public: f.get("type") == Some("public"),
            grant_types: grant_choices(&grants),
            scopes: scope_choices(state, v.actor.role, &scopes),
            logo_uri: f.get("logo_uri").unwrap_or("").to_string(),
            client_uri: f.get("client_uri").unwrap_or("").to_string(),
        };
        let scope = match ScopesInput::List(scopes).parse() {
            Ok(s) if !s.is_empty() => Some(s),
            Ok(_) => return (form, Err("Pick at least one scope.".into())),
            Err(e) => return (form, Err(e.to_string())),
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
            org_id: Some(v.actor.org_id.clone()),
            logo_uri: Some(form.logo_uri.trim().to_string()).filter(|s| !s.is_empty()),
            client_uri: Some(form.client_uri.trim().to_string()).filter(|s| !s.is_empty()),
            created_by: v.actor.user_id.clone(),
            resources: None,
            post_logout_redirect_uris: None,
            id_token_signed_response_alg: None,
            jwks: None,
            jwks_uri: None,
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
    nav: super::layout::Nav,
    org_name: &'a str,
    clients: Vec<ClientLine>,
    form: ClientForm,
    csrf: String,
    error: Option<String>,
    /// Just registered: (client id, secret if confidential).
    created: Option<(String, Option<String>)>,
    /// The one-time page was opened again (a reload): the secret is not shown again.
    already_shown: bool,
}

async fn render_list(
    state: &web::Data<AppState>,
    v: &SignedIn,
    status: StatusCode,
    form: ClientForm,
    error: Option<String>,
    created: Option<(String, Option<String>)>,
    already_shown: bool,
) -> Result<HttpResponse, AppError> {
    let actor = v.actor.clone();
    let rows = with_db(state, move |conn| ops::list(conn, &actor))
        .await
        .map_err(OpError::into_app)?;
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
            name: r.display_name().to_string(),
            id: r.id,
        })
        .collect();
    Ok(page(
        status,
        &ClientsPage {
            nav: v.nav("/developer/clients"),
            org_name: &v.org_name,
            clients,
            form,
            csrf: v.csrf("/developer/clients"),
            error,
            created,
            already_shown,
        },
    ))
}

/// `GET /developer/clients`, and `?shown=SLOT` after a registration: the new client's id
/// and secret from its one-time slot (docs/spec.md §6; `shown_once`), or, on a reload, a
/// note that the secret was already shown.
pub async fn clients_get(
    req: HttpRequest,
    v: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (created, already_shown) = match super::query_param(&req, "shown") {
        None => (None, false),
        Some(slot) => match state
            .shown_once
            .take(&v.session.id_hash, &slot, state.clock.now())
        {
            Some(Shown::Client { client_id, secret }) => (Some((client_id, secret)), false),
            _ => (None, true),
        },
    };
    let form = ClientForm::blank(&state, v.actor.role);
    render_list(
        &state,
        &v,
        StatusCode::OK,
        form,
        None,
        created,
        already_shown,
    )
    .await
}

/// `POST /developer/clients`: registers a client and answers 303 to its one-time page
/// (post/redirect/get: a reload never registers a second client).
pub async fn clients_post(
    v: SignedIn,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (form, new) = ClientForm::read(&state, &f, &v);
    let new = match new {
        Ok(n) => n,
        Err(m) => {
            let status = StatusCode::BAD_REQUEST;
            return render_list(&state, &v, status, form, Some(m), None, false).await;
        }
    };
    let st = state.clone();
    let p = v.actor.clone();
    match with_db(&state, move |conn| ops::create(conn, &st.ctx(), &p, new)).await {
        Ok((row, secret)) => {
            let once = Shown::Client {
                client_id: row.id,
                secret,
            };
            let slot = state
                .shown_once
                .put(&v.session.id_hash, state.clock.now(), once);
            Ok(see_other(&format!("/developer/clients?shown={slot}")))
        }
        Err(e) => {
            let (status, m) = shown(e)?;
            render_list(&state, &v, status, form, Some(m), None, false).await
        }
    }
}

#[derive(Template)]
#[template(path = "developer_client.html")]
struct ClientPage<'a> {
    nav: super::layout::Nav,
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
    v: &SignedIn,
    id: &str,
) -> Result<Option<ClientRow>, AppError> {
    let actor = v.actor.clone();
    let id = id.to_string();
    match with_db(state, move |conn| ops::get(conn, &actor, &id)).await {
        Ok(row) => Ok(Some(row)),
        Err(OpError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into_app()),
    }
}

fn no_such_client() -> HttpResponse {
    error_page(StatusCode::NOT_FOUND, "Not found", "No such client.")
}

#[allow(clippy::too_many_arguments)]
fn render_client(
    v: &SignedIn,
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
            nav: v.nav("/developer/clients"),
            org_name: &v.org_name,
            client_id: id,
            form,
            csrf_update: v.csrf(&format!("/developer/clients/{id}")),
            csrf_secret: v.csrf(&format!("/developer/clients/{id}/secret")),
            is_admin: v.actor.is_admin(),
            error,
            notice,
            rotated,
        },
    )
}

/// `GET /developer/clients/{id}`, and `?shown=SLOT` after a secret rotation: the new secret
/// from its one-time slot (docs/spec.md §6; `shown_once`), or, on a reload, a note that it
/// was already shown.
pub async fn client_get(
    req: HttpRequest,
    v: SignedIn,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let Some(row) = load_client(&state, &v, &id).await? else {
        return Ok(no_such_client());
    };
    let (rotated, notice) = match super::query_param(&req, "shown") {
        None => (None, None),
        Some(slot) => match state
            .shown_once
            .take(&v.session.id_hash, &slot, state.clock.now())
        {
            Some(Shown::ClientSecret {
                client_id,
                secret,
                old_until,
            }) if client_id == id => (Some((secret, old_until)), None),
            _ => (
                None,
                Some(
                    "The new secret was already shown, and is never shown again. If you did not \
                     copy it, rotate the secret again."
                        .to_string(),
                ),
            ),
        },
    };
    let form = ClientForm::of(&state, &row, v.actor.role);
    Ok(render_client(
        &v,
        &id,
        StatusCode::OK,
        form,
        None,
        notice,
        rotated,
    ))
}

/// `POST /developer/clients/{id}`: saves the edit form.
pub async fn client_post(
    v: SignedIn,
    path: web::Path<String>,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let Some(current) = load_client(&state, &v, &id).await? else {
        return Ok(no_such_client());
    };
    let (mut form, new) = ClientForm::read(&state, &f, &v);
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
    let p = v.actor.clone();
    let cid = id.clone();
    match with_db(&state, move |conn| {
        ops::update(conn, &st.ctx(), &p, &cid, new)
    })
    .await
    {
        Ok(row) => Ok(render_client(
            &v,
            &id,
            StatusCode::OK,
            ClientForm::of(&state, &row, v.actor.role),
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
    v: SignedIn,
    path: web::Path<String>,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let Some(row) = load_client(&state, &v, &id).await? else {
        return Ok(no_such_client());
    };
    let overlap: i64 = f.get("overlap").and_then(|o| o.parse().ok()).unwrap_or(0);
    let st = state.clone();
    let p = v.actor.clone();
    let cid = id.clone();
    let result = with_db(&state, move |conn| {
        ops::rotate_secret(conn, &st.ctx(), &p, &cid, overlap)
    })
    .await;
    let form = ClientForm::of(&state, &row, v.actor.role);
    match result {
        Ok((secret, old_end)) => {
            let once = Shown::ClientSecret {
                client_id: id.clone(),
                secret,
                old_until: when(old_end),
            };
            let slot = state
                .shown_once
                .put(&v.session.id_hash, state.clock.now(), once);
            Ok(see_other(&format!("/developer/clients/{id}?shown={slot}")))
        }
        Err(e) => {
            let (status, m) = shown(e)?;
            Ok(render_client(&v, &id, status, form, Some(m), None, None))
        }
    }
}

/// `GET /developer/clients/{id}/delete`: the confirmation step (admins).
pub async fn delete_get(
    v: SignedIn,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let Some(row) = load_client(&state, &v, &id).await? else {
        return Ok(no_such_client());
    };
    if !v.actor.is_admin() {
        return Ok(error_page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "Only organization admins can delete clients.",
        ));
    }
    let message = format!(
        "\u{201c}{}\u{201d} and every token, code and consent of it will stop working immediately. This cannot be undone.",
        row.display_name()
    );
    Ok(page(
        StatusCode::OK,
        &ConfirmPage {
            nav: Some(v.nav("/developer/clients")),
            heading: "Delete this client?",
            message: &message,
            action: &format!("/developer/clients/{id}/delete"),
            button: "Delete client",
            cancel: &format!("/developer/clients/{id}"),
            csrf_token: &v.csrf(&format!("/developer/clients/{id}/delete")),
        },
    ))
}

/// `POST /developer/clients/{id}/delete`
pub async fn delete_post(
    v: SignedIn,
    path: web::Path<String>,
    _form: CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let st = state.clone();
    let p = v.actor.clone();
    let cid = id.clone();
    match with_db(&state, move |conn| ops::delete(conn, &st.ctx(), &p, &cid)).await {
        Ok(()) => Ok(see_other("/developer/clients")),
        Err(e) => {
            let (status, m) = shown(e)?;
            Ok(error_page(status, "Cannot delete", &m))
        }
    }
}
