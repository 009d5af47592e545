//! `/settings/*` pages (SPEC.md §6): API keys and organization members, acting through the
//! login session with CSRF-protected forms. They call the same rules as `/api/v1` (a
//! [`Principal`] built from the session), so the page and the API cannot drift apart.
//! No JavaScript is needed; the one-line copy button script is a same-origin file.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use diesel::prelude::*;

use super::{current_session, error_page, page, same_origin, see_other};
use crate::api_keys::KeyType;
use crate::api_keys::store::{self as key_store, CreatedApiKey};
use crate::app::AppState;
use crate::clock::{Timestamp, rfc3339};
use crate::db::DbConnection;
use crate::error::AppError;
use crate::http::api::keys::CreateKey;
use crate::http::api::{ApiError, Principal, ScopesInput, members};
use crate::http::with_db;
use crate::orgs::Role;
use crate::scope::ScopeSet;
use crate::sessions::{self, Session};

/// Who is looking at a settings page, in which organization.
pub struct Viewer {
    pub session: Session,
    pub email: String,
    pub principal: Principal,
    pub org_name: String,
    /// Every organization of the user: (id, name).
    pub orgs: Vec<(String, String)>,
}

/// The scopes a role may put on a key from the pages: admins any, members all but `admin`.
fn held_scopes(state: &AppState, role: Role) -> ScopeSet {
    let names = state
        .settings
        .scopes
        .names()
        .filter(|s| role == Role::Admin || *s != crate::http::api::MANAGEMENT_SCOPE)
        .collect::<Vec<_>>();
    ScopeSet::parse_many(names).unwrap_or_default()
}

/// The user's organizations with names, oldest membership first.
fn orgs_of(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<(String, String, String)>> {
    use crate::db::schema::{memberships, organizations};
    memberships::table
        .inner_join(organizations::table)
        .filter(memberships::user_id.eq(user_id))
        .order(memberships::created_at.asc())
        .select((organizations::id, organizations::name, memberships::role))
        .load(conn)
}

/// Loads the viewer; `Err(redirect)` when nobody is signed in.
pub(crate) async fn viewer(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<Result<Viewer, HttpResponse>, AppError> {
    let Some(session) = current_session(req, state).await? else {
        let back = format!("/login?return_to={}", urlencode(req.path()));
        return Ok(Err(see_other(&back)));
    };
    let st = state.clone();
    let found = with_db(state, move |conn| -> Result<_, AppError> {
        let email = crate::users::store::find(conn, &session.user_id)?
            .map(|u| u.email)
            .unwrap_or_default();
        let orgs = orgs_of(conn, &session.user_id)?;
        Ok((session, email, orgs))
    })
    .await?;
    let (session, email, orgs) = found;
    // The session's organization if the user still belongs to it, else the first one.
    let current = orgs
        .iter()
        .find(|(id, _, _)| Some(id) == session.org_id.as_ref())
        .or(orgs.first())
        .cloned();
    let Some((org_id, org_name, role)) = current else {
        return Ok(Err(error_page(
            StatusCode::FORBIDDEN,
            "No organization",
            "Your account does not belong to any organization yet. Ask an admin to add you.",
        )));
    };
    let role = Role::parse(&role).unwrap_or(Role::Member);
    let principal = Principal {
        org_id,
        user_id: Some(session.user_id.clone()),
        role,
        scopes: held_scopes(&st, role),
        actor: format!("user:{}", session.user_id),
        rate: None,
    };
    Ok(Ok(Viewer {
        session,
        email,
        principal,
        org_name,
        orgs: orgs.into_iter().map(|(id, name, _)| (id, name)).collect(),
    }))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Parses a form body into pairs, keeping repeated names (checkbox groups).
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub(crate) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The CSRF check of every settings form: same origin and a token for `purpose`.
pub(crate) fn csrf_ok(
    req: &HttpRequest,
    state: &AppState,
    viewer: &Viewer,
    purpose: &str,
    pairs: &[(String, String)],
) -> bool {
    same_origin(req, state)
        && viewer
            .session
            .csrf_ok(purpose, field(pairs, "csrf_token").unwrap_or(""))
}

pub(crate) fn forbidden_form() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form is no longer valid. Go back, reload the page and try again.",
    )
}

/// A time as pages show it: `2026-11-25 06:48:29 UTC`.
pub(crate) fn when(t: Timestamp) -> String {
    rfc3339(t)
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_string()
        + " UTC"
}

pub struct KeyLine {
    pub id: String,
    pub name: String,
    pub key_type: String,
    pub last_six: String,
    pub scopes: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
}

pub struct ScopeChoice {
    pub name: String,
    pub description: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "settings_api_keys.html")]
struct KeysPage<'a> {
    email: &'a str,
    org_name: &'a str,
    orgs: &'a [(String, String)],
    org_id: &'a str,
    is_admin: bool,
    csrf_create: String,
    csrf_org: String,
    keys: Vec<KeyLine>,
    scopes: Vec<ScopeChoice>,
    created: Option<CreatedApiKey>,
    error: Option<String>,
    name: String,
}

async fn render_keys(
    state: &web::Data<AppState>,
    viewer: &Viewer,
    status: StatusCode,
    created: Option<CreatedApiKey>,
    error: Option<String>,
    name: String,
    checked: &[String],
) -> Result<HttpResponse, AppError> {
    let org = viewer.principal.org_id.clone();
    let rows = with_db(state, move |conn| {
        key_store::list(conn, &org).map_err(AppError::from)
    })
    .await?;
    let keys = rows
        .into_iter()
        .map(|r| KeyLine {
            id: r.id,
            name: r.name,
            key_type: r.key_type,
            last_six: r.last_six,
            scopes: r.scope,
            created: when(r.created_at),
            expires: r.expires_at.map(when).unwrap_or_else(|| "never".into()),
            last_used: r.last_used_at.map(when).unwrap_or_else(|| "never".into()),
        })
        .collect();
    let scopes = viewer
        .principal
        .scopes
        .iter()
        .map(|s| ScopeChoice {
            name: s.as_str().to_string(),
            description: state
                .settings
                .scopes
                .description(s.as_str())
                .unwrap_or("")
                .to_string(),
            checked: checked.iter().any(|c| c == s.as_str()),
        })
        .collect();
    Ok(page(
        status,
        &KeysPage {
            email: &viewer.email,
            org_name: &viewer.org_name,
            orgs: &viewer.orgs,
            org_id: &viewer.principal.org_id,
            is_admin: viewer.principal.role == Role::Admin,
            csrf_create: viewer.session.csrf_token("api-keys"),
            csrf_org: viewer.session.csrf_token("org"),
            keys,
            scopes,
            created,
            error,
            name,
        },
    ))
}

/// `GET /settings/api-keys`
pub async fn api_keys_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let viewer = signed_in!(req, state);
    render_keys(
        &state,
        &viewer,
        StatusCode::OK,
        None,
        None,
        String::new(),
        &[],
    )
    .await
}

/// Reads the create form: name, type, expiration (preset days, a custom date, or never),
/// permissions.
fn create_request(pairs: &[(String, String)]) -> Result<CreateKey, ApiError> {
    let scopes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let key_type = match field(pairs, "type").unwrap_or("secret") {
        "publishable" => KeyType::Publishable,
        "secret" => KeyType::Secret,
        _ => return Err(ApiError::invalid("Choose secret or publishable.")),
    };
    let (expires_in_days, expires_at) = match field(pairs, "expiration").unwrap_or("30") {
        "never" => (None, None),
        "custom" => {
            let date = field(pairs, "expires_on")
                .ok_or_else(|| ApiError::invalid("Pick the expiration date."))?;
            // The key stops at the start of that day, UTC.
            (None, Some(format!("{date}T00:00:00Z")))
        }
        d => (
            Some(
                d.parse::<i64>()
                    .map_err(|_| ApiError::invalid("Pick an expiration."))?,
            ),
            None,
        ),
    };
    let rate_limit_per_minute = match field(pairs, "rate_limit_per_minute") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::invalid("The rate limit must be a whole number."))?,
        ),
    };
    Ok(CreateKey {
        name: field(pairs, "name").unwrap_or("").to_string(),
        scopes: ScopesInput::List(scopes),
        key_type,
        expires_in_days,
        expires_at,
        rate_limit_per_minute,
    })
}

/// `POST /settings/api-keys`: creates a key and shows it once, on this answer only.
pub async fn api_keys_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let viewer = signed_in!(req, state);
    let pairs = form_pairs(&body);
    if !csrf_ok(&req, &state, &viewer, "api-keys", &pairs) {
        return Ok(forbidden_form());
    }
    let name = field(&pairs, "name").unwrap_or("").to_string();
    let checked: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let input = match create_request(&pairs) {
        Ok(i) => i,
        Err(e) => {
            return render_keys(
                &state,
                &viewer,
                e.status,
                None,
                Some(e.message),
                name,
                &checked,
            )
            .await;
        }
    };
    let st = state.clone();
    let principal = viewer.principal.clone();
    let result = with_db(&state, move |conn| {
        crate::http::api::keys::create_for(conn, &st, &principal, &input)
    })
    .await;
    match result {
        Ok(created) => {
            render_keys(
                &state,
                &viewer,
                StatusCode::CREATED,
                Some(created),
                None,
                String::new(),
                &[],
            )
            .await
        }
        Err(e) if e.cause.is_some() => Err(e
            .cause
            .map(|c| *c)
            .unwrap_or(AppError::Internal("create".into()))),
        Err(e) => {
            render_keys(
                &state,
                &viewer,
                e.status,
                None,
                Some(e.message),
                name,
                &checked,
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub(crate) struct ConfirmPage<'a> {
    pub heading: &'a str,
    pub message: &'a str,
    pub action: &'a str,
    pub button: &'a str,
    pub cancel: &'a str,
    pub csrf_token: &'a str,
}

/// `GET /settings/api-keys/{id}/revoke`: the confirmation step (admins).
pub async fn revoke_get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let viewer = signed_in!(req, state);
    let id = path.into_inner();
    let org = viewer.principal.org_id.clone();
    let key_id = id.clone();
    let Some(key) = with_db(&state, move |conn| {
        key_store::find_in_org(conn, &org, &key_id).map_err(AppError::from)
    })
    .await?
    else {
        return Ok(error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "No such API key.",
        ));
    };
    if viewer.principal.role != Role::Admin {
        return Ok(error_page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "Only organization admins can revoke keys.",
        ));
    }
    let message = format!(
        "The key \u{201c}{}\u{201d} (ending {}) will stop working immediately, everywhere. This cannot be undone.",
        key.name, key.last_six
    );
    Ok(page(
        StatusCode::OK,
        &ConfirmPage {
            heading: "Revoke this API key?",
            message: &message,
            action: &format!("/settings/api-keys/{id}/revoke"),
            button: "Revoke key",
            cancel: "/settings/api-keys",
            csrf_token: &viewer.session.csrf_token(&format!("revoke:{id}")),
        },
    ))
}

/// `POST /settings/api-keys/{id}/revoke`
pub async fn revoke_post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let viewer = signed_in!(req, state);
    let id = path.into_inner();
    let pairs = form_pairs(&body);
    if !csrf_ok(&req, &state, &viewer, &format!("revoke:{id}"), &pairs) {
        return Ok(forbidden_form());
    }
    if viewer.principal.role != Role::Admin {
        return Ok(error_page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "Only organization admins can revoke keys.",
        ));
    }
    let p = viewer.principal.clone();
    let now = state.clock.now();
    let key_id = id.clone();
    let revoked = with_db(&state, move |conn| {
        crate::db::write_tx(conn, |conn| {
            key_store::revoke(conn, &p.org_id, &key_id, &p.actor, now)
        })
        .map_err(AppError::from)
    })
    .await?;
    if !revoked {
        return Ok(error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "No such API key.",
        ));
    }
    state.api_keys.revoked(&id);
    Ok(see_other("/settings/api-keys"))
}

/// `POST /settings/org`: switches the session's current organization.
pub async fn org_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let viewer = signed_in!(req, state);
    let pairs = form_pairs(&body);
    if !csrf_ok(&req, &state, &viewer, "org", &pairs) {
        return Ok(forbidden_form());
    }
    let wanted = field(&pairs, "org_id").unwrap_or("").to_string();
    if !viewer.orgs.iter().any(|(id, _)| *id == wanted) {
        return Ok(error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "No such organization.",
        ));
    }
    let id_hash = viewer.session.id_hash.clone();
    with_db(&state, move |conn| {
        sessions::set_org(conn, &id_hash, &wanted).map_err(AppError::from)
    })
    .await?;
    let back = sessions::safe_return_to(field(&pairs, "return_to"));
    Ok(see_other(&back))
}

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

async fn render_members(
    state: &web::Data<AppState>,
    viewer: &Viewer,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Result<HttpResponse, AppError> {
    let org = viewer.principal.org_id.clone();
    let rows = with_db(state, move |conn| {
        crate::orgs::store::members(conn, &org).map_err(AppError::from)
    })
    .await?;
    let members = rows
        .into_iter()
        .map(|m| MemberLine {
            csrf_role: viewer
                .session
                .csrf_token(&format!("member-role:{}", m.user_id)),
            csrf_remove: viewer
                .session
                .csrf_token(&format!("member-remove:{}", m.user_id)),
            is_admin: m.role == "admin",
            user_id: m.user_id,
            email: m.email,
            role: m.role,
        })
        .collect();
    Ok(page(
        status,
        &MembersPage {
            email: &viewer.email,
            org_name: &viewer.org_name,
            is_admin: viewer.principal.role == Role::Admin,
            csrf_add: viewer.session.csrf_token("member-add"),
            members,
            error,
            notice,
        },
    ))
}

/// `GET /settings/members`
pub async fn members_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let viewer = signed_in!(req, state);
    render_members(&state, &viewer, StatusCode::OK, None, None).await
}

/// Runs one member change and re-renders the page with its outcome.
async fn member_change(
    state: &web::Data<AppState>,
    viewer: &Viewer,
    done: &str,
    f: impl FnOnce(&mut DbConnection, &Principal, Timestamp) -> Result<(), ApiError> + Send + 'static,
) -> Result<HttpResponse, AppError> {
    let p = viewer.principal.clone();
    let now = state.clock.now();
    match with_db(state, move |conn| f(conn, &p, now)).await {
        Ok(()) => render_members(state, viewer, StatusCode::OK, None, Some(done.to_string())).await,
        Err(e) if e.cause.is_some() => Err(e
            .cause
            .map(|c| *c)
            .unwrap_or(AppError::Internal("member".into()))),
        Err(e) => render_members(state, viewer, e.status, Some(e.message), None).await,
    }
}

/// `POST /settings/members`: adds an existing user by email (admins).
pub async fn members_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let viewer = signed_in!(req, state);
    let pairs = form_pairs(&body);
    if !csrf_ok(&req, &state, &viewer, "member-add", &pairs) {
        return Ok(forbidden_form());
    }
    let input = members::AddMember {
        email: field(&pairs, "email").unwrap_or("").to_string(),
        role: Role::parse(field(&pairs, "role").unwrap_or("member")).unwrap_or(Role::Member),
    };
    member_change(&state, &viewer, "Member added.", move |conn, p, now| {
        members::add(conn, p, &input, now).map(|_| ())
    })
    .await
}

/// `POST /settings/members/{user_id}/role` and `.../remove` (admins).
pub async fn member_action_post(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let viewer = signed_in!(req, state);
    let (user_id, action) = path.into_inner();
    let pairs = form_pairs(&body);
    match action.as_str() {
        "role" => {
            if !csrf_ok(
                &req,
                &state,
                &viewer,
                &format!("member-role:{user_id}"),
                &pairs,
            ) {
                return Ok(forbidden_form());
            }
            let Some(role) = field(&pairs, "role").and_then(Role::parse) else {
                return render_members(
                    &state,
                    &viewer,
                    StatusCode::BAD_REQUEST,
                    Some("Pick a role.".into()),
                    None,
                )
                .await;
            };
            member_change(&state, &viewer, "Role changed.", move |conn, p, now| {
                members::change_role(conn, p, &user_id, role, now)
            })
            .await
        }
        "remove" => {
            if !csrf_ok(
                &req,
                &state,
                &viewer,
                &format!("member-remove:{user_id}"),
                &pairs,
            ) {
                return Ok(forbidden_form());
            }
            member_change(&state, &viewer, "Member removed.", move |conn, p, now| {
                members::remove(conn, p, &user_id, now)
            })
            .await
        }
        _ => Ok(error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "No such page.",
        )),
    }
}
