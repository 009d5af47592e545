//! `/settings/api-keys` (docs/spec.md §6): list, create (shown once), revoke with a
//! confirmation step, and the organization picker. Calls `api_keys::ops`, the same
//! operations as `/api/v1/api-keys`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::layout::Nav;
use super::signed_in::{CsrfForm, Fields, SignedIn};
use super::{ConfirmPage, error_page, page, see_other, when};
use crate::api_keys::KeyType;
use crate::api_keys::ops::{self, CreateKey};
use crate::api_keys::store::CreatedApiKey;
use crate::app::AppState;
use crate::error::{AppError, OpError};
use crate::http::errors::shown;
use crate::http::with_db;
use crate::scope::ScopesInput;
use crate::shown_once::Shown;

pub struct KeyLine {
    pub id: String,
    pub name: String,
    pub key_type: String,
    pub last_six: String,
    pub scopes: String,
    /// The day it was made (UTC).
    pub created: String,
    /// The day it stops working, or "never"; `expires_exact` to the minute ("" for never).
    pub expires: String,
    pub expires_exact: String,
    /// When last used: the day and the time (`10:28 UTC`), empty when never.
    pub last_used: (String, String),
    /// Whole days since creation (docs/spec.md §10).
    pub age_days: i64,
    /// Older than `api_keys::ROTATE_AFTER_DAYS`: marked for rotation.
    pub rotate: bool,
    /// Requests in the last 24 hours (docs/spec.md §10).
    pub requests_24h: i64,
}

/// A leak report on the admins' banner (docs/spec.md §10 secret scanning).
pub struct LeakLine {
    pub when: String,
    pub name: String,
    pub last_six: String,
    pub url: String,
    pub source: String,
    pub revoked: bool,
}

pub struct ScopeChoice {
    pub name: String,
    pub description: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "settings_api_keys.html")]
struct KeysPage<'a> {
    nav: Nav,
    org_name: &'a str,
    is_admin: bool,
    csrf_create: String,
    keys: Vec<KeyLine>,
    leaks: Vec<LeakLine>,
    /// False when the policy sends members to key requests (docs/spec.md §10).
    may_create: bool,
    /// Pending key requests (shown to admins).
    pending_requests: i64,
    scopes: Vec<ScopeChoice>,
    created: Option<CreatedApiKey>,
    /// The one-time page was opened again (a reload): the key is not shown a second time.
    already_shown: bool,
    error: Option<String>,
    name: String,
    /// Open the create disclosure (asked for, an error to show, or no key yet).
    open_create: bool,
    /// `--key-prefix`: how keys begin (`{prefix}_sk_…`).
    key_prefix: &'a str,
}

/// What the form showed, to fill it back in after an error.
#[derive(Default)]
struct Filled {
    name: String,
    checked: Vec<String>,
    /// The create form is asked for (`?create`, the dashboard's button): its disclosure opens.
    open: bool,
}

async fn render(
    state: &web::Data<AppState>,
    v: &SignedIn,
    status: StatusCode,
    once: Once,
    error: Option<String>,
    filled: Filled,
) -> Result<HttpResponse, AppError> {
    let already_shown = matches!(once, Once::AlreadyShown);
    let created = match once {
        Once::Key(k) => Some(k),
        Once::Nothing | Once::AlreadyShown => None,
    };
    let actor = v.actor.clone();
    let now = state.clock.now();
    let (rows, recent, leaks, may_create, pending_requests) =
        with_db(state, move |conn| -> Result<_, OpError> {
            let policy = crate::orgs::policy::load(conn, &actor.org_id)?;
            let pending = if actor.is_admin() {
                crate::api_keys::requests::pending_count(conn, &actor.org_id)?
            } else {
                0
            };
            Ok((
                ops::rows(conn, &actor)?,
                crate::usage::chart::last_24_hours(conn, &actor, now)?,
                crate::secret_scanning::recent_leaks(conn, &actor, now)?,
                policy.check_may_create(&actor).is_ok(),
                pending,
            ))
        })
        .await
        .map_err(OpError::into_app)?;
    let leaks = leaks
        .into_iter()
        .map(|l| LeakLine {
            when: when(l.at),
            name: l.name,
            last_six: l.last_six,
            url: l.url,
            source: l.source,
            revoked: l.revoked,
        })
        .collect();
    let keys = rows
        .into_iter()
        .map(|r| KeyLine {
            requests_24h: recent.get(&r.id).copied().unwrap_or(0),
            age_days: crate::api_keys::age_days(r.created_at, now),
            rotate: crate::api_keys::age_days(r.created_at, now)
                > crate::api_keys::ROTATE_AFTER_DAYS,
            id: r.id,
            name: r.name,
            key_type: r.key_type.as_str().to_string(),
            last_six: r.last_six,
            scopes: r.scope,
            created: super::day(r.created_at),
            expires: r
                .expires_at
                .map(super::day)
                .unwrap_or_else(|| "never".into()),
            expires_exact: r.expires_at.map(when).unwrap_or_default(),
            last_used: r
                .last_used_at
                .map(|t| {
                    let w = when(t);
                    let (d, h) = w.split_once(' ').unwrap_or((&w, ""));
                    (d.to_string(), h.to_string())
                })
                .unwrap_or_default(),
        })
        .collect();
    let catalogue = &state.settings.scopes;
    let mut scopes: Vec<ScopeChoice> = ops::grantable(catalogue, v.actor.role)
        .into_iter()
        .map(|s| ScopeChoice {
            name: s.to_string(),
            description: catalogue.description(s).unwrap_or("").to_string(),
            checked: filled.checked.iter().any(|c| c == s),
        })
        .collect();
    // `admin` is never offered first: it comes last, with its warning (docs/spec.md §6).
    scopes.sort_by_key(|s| s.name == "admin");
    Ok(page(
        status,
        &KeysPage {
            nav: v.nav("/settings/api-keys"),
            org_name: &v.org_name,
            is_admin: v.actor.is_admin(),
            csrf_create: v.csrf("/settings/api-keys"),
            keys,
            leaks,
            may_create,
            pending_requests,
            scopes,
            created,
            already_shown,
            open_create: filled.open,
            key_prefix: &state.settings.key_prefix,
            error,
            name: filled.name,
        },
    ))
}

/// What the page shows once: nothing, the new key, or that it was already shown.
enum Once {
    Nothing,
    Key(CreatedApiKey),
    AlreadyShown,
}

/// `GET /settings/api-keys`, and `?shown=SLOT` after a key was created: the new key, taken
/// from its one-time slot (docs/spec.md §6; `shown_once`), or, when the slot is empty (a
/// reload), a note that it was already shown.
pub async fn api_keys_get(
    req: HttpRequest,
    v: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(slot) = super::query_param(&req, "shown") else {
        let filled = Filled {
            open: super::query_param(&req, "create").is_some(),
            ..Filled::default()
        };
        return render(&state, &v, StatusCode::OK, Once::Nothing, None, filled).await;
    };
    let now = state.clock.now();
    match state.shown_once.take(&v.session.id_hash, &slot, now) {
        Some(Shown::ApiKey(created)) => {
            let once = Once::Key(created);
            render(&state, &v, StatusCode::OK, once, None, Filled::default()).await
        }
        _ => {
            let once = Once::AlreadyShown;
            render(&state, &v, StatusCode::OK, once, None, Filled::default()).await
        }
    }
}

/// Reads the create form: name, type, expiration (preset days, a custom date, or never),
/// permissions.
fn create_request(f: &Fields) -> Result<CreateKey, OpError> {
    let key_type = match f.get("type").unwrap_or("secret") {
        "publishable" => KeyType::Publishable,
        "secret" => KeyType::Secret,
        _ => return Err(OpError::invalid("Choose secret or publishable.")),
    };
    let (expires_in_days, expires_at) = match f.get("expiration").unwrap_or("30") {
        "never" => (None, None),
        "custom" => {
            let date = f
                .get("expires_on")
                .ok_or_else(|| OpError::invalid("Pick the expiration date."))?;
            // The key stops at the start of that day, UTC.
            (None, Some(format!("{date}T00:00:00Z")))
        }
        d => (
            Some(
                d.parse::<i64>()
                    .map_err(|_| OpError::invalid("Pick an expiration."))?,
            ),
            None,
        ),
    };
    let rate_limit_per_minute = match f.get("rate_limit_per_minute") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<i64>()
                .map_err(|_| OpError::invalid("The rate limit must be a whole number."))?,
        ),
    };
    Ok(CreateKey {
        name: f.get("name").unwrap_or("").to_string(),
        scopes: ScopesInput::List(f.all("scope")),
        key_type,
        expires_in_days,
        expires_at,
        rate_limit_per_minute,
    })
}

/// `POST /settings/api-keys`: creates a key and answers 303 to its one-time page
/// (post/redirect/get: a reload never makes a second key).
pub async fn api_keys_post(
    v: SignedIn,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let filled = Filled {
        name: f.get("name").unwrap_or("").to_string(),
        checked: f.all("scope"),
        open: true,
    };
    let result = v
        .run(&state, create_request(&f), |conn, ctx, actor, input| {
            ops::create(conn, ctx, actor, &input)
        })
        .await;
    match result {
        Ok(created) => {
            let now = state.clock.now();
            let slot = state
                .shown_once
                .put(&v.session.id_hash, now, Shown::ApiKey(created));
            Ok(see_other(&format!("/settings/api-keys?shown={slot}")))
        }
        Err(e) => {
            let (status, m) = shown(e)?;
            render(&state, &v, status, Once::Nothing, Some(m), filled).await
        }
    }
}

/// `GET /settings/api-keys/{id}/revoke`: the confirmation step (admins).
pub async fn revoke_get(
    v: SignedIn,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let actor = v.actor.clone();
    let key_id = id.clone();
    let key = match with_db(&state, move |conn| ops::find(conn, &actor, &key_id)).await {
        Ok(k) => k,
        Err(e) => {
            let (status, m) = shown(e)?;
            return Ok(error_page(status, "Not found", &m));
        }
    };
    if !v.actor.is_admin() {
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
    let action = format!("/settings/api-keys/{id}/revoke");
    Ok(page(
        StatusCode::OK,
        &ConfirmPage {
            nav: Some(v.nav("/settings/api-keys")),
            heading: "Revoke this API key?",
            message: &message,
            action: &action,
            button: "Revoke key",
            cancel: "/settings/api-keys",
            csrf_token: &v.csrf(&action),
        },
    ))
}

/// `POST /settings/api-keys/{id}/revoke`
pub async fn revoke_post(
    v: SignedIn,
    path: web::Path<String>,
    _form: CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    match v
        .run(&state, Ok(id), |conn, ctx, actor, id| {
            ops::revoke(conn, ctx, actor, &id)
        })
        .await
    {
        Ok(()) => Ok(see_other("/settings/api-keys")),
        Err(e) => {
            let (status, m) = shown(e)?;
            let heading = if status == StatusCode::FORBIDDEN {
                "Admins only"
            } else {
                "Not found"
            };
            Ok(error_page(status, heading, &m))
        }
    }
}

/// `POST /settings/org`: switches the session's current organization.
pub async fn org_post(
    v: SignedIn,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let wanted = f.get("org_id").unwrap_or("").to_string();
    if !v.orgs.iter().any(|(id, _)| *id == wanted) {
        return Ok(error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "No such organization.",
        ));
    }
    let id_hash = v.session.id_hash.clone();
    with_db(&state, move |conn| {
        crate::sessions::set_org(conn, &id_hash, &wanted).map_err(AppError::from)
    })
    .await?;
    let back = crate::sessions::safe_return_to(f.get("return_to"));
    Ok(see_other(&back))
}
