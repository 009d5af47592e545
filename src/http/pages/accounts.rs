//! `/signup`, `/login`, `/logout` and the home page (docs/spec.md §6).
//!
//! Before login, forms are protected by a double-submit token: a random cookie and, in the
//! form, its HMAC for the form's purpose. After login, tokens derive from the session.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::signed_in::{Fields, FormBody, csrf_ok, forbidden_form};
use super::{cookie, current_session, page, see_other};
use crate::app::AppState;
use crate::error::AppError;
use crate::http::with_db;
use crate::sessions::{self, csrf_token, safe_return_to};
use crate::users::{self, UserError};

pub const PRE_SESSION_COOKIE: &str = "tessera_csrf";

/// The login and signup forms: one page, two purposes.
#[derive(Template)]
#[template(path = "credentials.html")]
struct CredentialsPage<'a> {
    signup: bool,
    csrf_token: &'a str,
    return_to: &'a str,
    return_to_encoded: String,
    email: &'a str,
    error: Option<&'a str>,
    /// Whether the login form offers sign-up (not under `--signup closed`).
    signup_offered: bool,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    csrf_token: &'a str,
}

#[derive(Debug, Default)]
pub struct ReturnTo {
    return_to: Option<String>,
    /// OpenID Connect `login_hint`: prefills the email.
    login_hint: Option<String>,
    /// `1`: show the form even to a signed-in person (OpenID Connect `prompt=login`,
    /// `max_age`, docs/spec.md §9).
    reauth: Option<String>,
}

impl ReturnTo {
    /// The query of `GET /login` and `GET /signup`. A parameter given more than once is
    /// ambiguous and counts as absent (so a doubled `return_to` lands on `/`), never a 400.
    fn parse(query: &str) -> Self {
        let mut seen: std::collections::HashMap<String, Option<String>> = Default::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            seen.entry(k.into_owned())
                .and_modify(|e| *e = None)
                .or_insert_with(|| Some(v.into_owned()));
        }
        let mut take = |name: &str| seen.remove(name).flatten();
        Self {
            return_to: take("return_to"),
            login_hint: take("login_hint"),
            reauth: take("reauth"),
        }
    }
}

/// The fields of the login and signup forms.
struct CredentialsForm {
    email: String,
    password: String,
    return_to: Option<String>,
}

impl CredentialsForm {
    fn from_fields(f: &Fields) -> Self {
        Self {
            email: f.get("email").unwrap_or("").to_string(),
            password: f.get("password").unwrap_or("").to_string(),
            return_to: f.get("return_to").map(str::to_string),
        }
    }
}

/// The message for a login or signup form with a NUL character in a field
/// (`http::bad_input`), shown on the form.
fn nul_in(form: &CredentialsForm) -> Option<String> {
    let fields = [
        ("email", form.email.as_str()),
        ("password", form.password.as_str()),
        ("return_to", form.return_to.as_deref().unwrap_or("")),
    ];
    crate::http::bad_input::nul_field(fields).map(|f| crate::http::bad_input::message(&f))
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The pre-session cookie value, and whether it must be (re)set.
fn pre_session(req: &HttpRequest) -> (String, bool) {
    match req.cookie(PRE_SESSION_COOKIE) {
        Some(c) if c.value().len() >= 43 => (c.value().to_string(), false),
        _ => (crate::crypto::random_token(), true),
    }
}

/// The CSRF check of a form posted before login: the token is the pre-session cookie's
/// for `purpose` (docs/security.md H1).
fn pre_csrf_ok(req: &HttpRequest, state: &AppState, purpose: &str, fields: &Fields) -> bool {
    csrf_ok(req, state, fields, |presented| {
        req.cookie(PRE_SESSION_COOKIE).is_some_and(|c| {
            crate::crypto::constant_time_eq(
                csrf_token(c.value(), purpose).as_bytes(),
                presented.as_bytes(),
            )
        })
    })
}

fn with_pre_cookie(
    mut resp: HttpResponse,
    state: &AppState,
    value: String,
    set: bool,
) -> HttpResponse {
    if set {
        let _ = resp.add_cookie(&cookie(state, PRE_SESSION_COOKIE, value, 3600));
    }
    resp
}

/// Renders the login (`signup: false`) or signup form with a pre-session CSRF token for
/// that purpose.
fn credentials_page(
    req: &HttpRequest,
    state: &AppState,
    signup: bool,
    status: StatusCode,
    return_to: &str,
    email: &str,
    error: Option<&str>,
) -> HttpResponse {
    let (pre, set) = pre_session(req);
    let token = csrf_token(&pre, if signup { "signup" } else { "login" });
    let tmpl = CredentialsPage {
        signup,
        csrf_token: &token,
        return_to,
        return_to_encoded: encode(return_to),
        email,
        error,
        signup_offered: state.settings.signup != users::SignupMode::Closed,
    };
    with_pre_cookie(page(status, &tmpl), state, pre, set)
}

fn login_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    return_to: &str,
    email: &str,
    error: Option<&str>,
) -> HttpResponse {
    credentials_page(req, state, false, status, return_to, email, error)
}

fn signup_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    return_to: &str,
    email: &str,
    error: Option<&str>,
) -> HttpResponse {
    credentials_page(req, state, true, status, return_to, email, error)
}

/// Starts a session: a fresh id (never the pre-login one), the old session dropped.
async fn start_session(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    user_id: String,
    return_to: &str,
) -> Result<HttpResponse, AppError> {
    let old = req
        .cookie(sessions::COOKIE)
        .map(|c| crate::crypto::sha256_hex(c.value()));
    let now = state.clock.now();
    let raw = with_db(state, move |conn| {
        if let Some(old) = old {
            sessions::delete(conn, &old)?;
        }
        let org = crate::orgs::store::orgs_of(conn, &user_id)?
            .into_iter()
            .next();
        sessions::create(conn, &user_id, org.as_deref(), now)
            .map(|(_, raw)| raw)
            .map_err(AppError::from)
    })
    .await?;
    let mut resp = see_other(return_to);
    let _ = resp.add_cookie(&cookie(
        state,
        sessions::COOKIE,
        raw,
        sessions::LIFETIME_SECONDS,
    ));
    let mut clear = cookie(state, PRE_SESSION_COOKIE, String::new(), 0);
    clear.make_removal();
    let _ = resp.add_cookie(&clear);
    Ok(resp)
}

pub async fn login_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let q = ReturnTo::parse(req.query_string());
    let return_to = safe_return_to(q.return_to.as_deref());
    if q.reauth.as_deref() != Some("1") && current_session(&req, &state).await?.is_some() {
        return Ok(see_other(&return_to));
    }
    let hint = q.login_hint.as_deref().unwrap_or("").replace('\0', "");
    Ok(login_page(
        &req,
        &state,
        StatusCode::OK,
        &return_to,
        &hint,
        None,
    ))
}

/// Verifies a password off the async workers, at most `password_slots` at a time
/// (docs/security.md K3). Unknown accounts are checked against a dummy hash, so both failures
/// cost the same (H6).
async fn check_password(
    state: &web::Data<AppState>,
    email: String,
    password: String,
) -> Result<Option<String>, AppError> {
    let _permit = state
        .password_slots
        .acquire()
        .await
        .map_err(|_| AppError::Internal("semaphore closed".into()))?;
    let user = with_db(state, move |conn| {
        users::store::find_by_email(conn, &email).map_err(AppError::from)
    })
    .await?;
    // The hash is checked after the connection went back to the pool and outside the
    // database deadline: argon2 is CPU work (tens of ms, far more on a loaded machine), and
    // counted inside `with_db` it held a connection and, past 2 s, was answered as a
    // database outage (503) — seen in R1 under load.
    let dummy = state.dummy_password_hash.clone();
    web::block(move || {
        let hash = user
            .as_ref()
            .map_or(dummy.as_str(), |u| u.password_hash.as_str());
        let ok = users::verify_password(&password, hash);
        user.filter(|_| ok).map(|u| u.id)
    })
    .await
    .map_err(|e| AppError::Internal(format!("blocking task failed: {e}").into()))
}

pub async fn login_post(
    req: HttpRequest,
    FormBody(fields): FormBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !pre_csrf_ok(&req, &state, "login", &fields) {
        return Ok(forbidden_form());
    }
    let form = CredentialsForm::from_fields(&fields);
    let return_to = safe_return_to(form.return_to.as_deref());
    if let Some(bad) = nul_in(&form) {
        let email = form.email.replace('\0', "");
        return Ok(login_page(
            &req,
            &state,
            StatusCode::BAD_REQUEST,
            &return_to,
            &email,
            Some(&bad),
        ));
    }
    let email =
        users::normalize_email(&form.email).unwrap_or_else(|_| form.email.trim().to_string());
    let ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let now = state.clock.now();
    if let Some(wait) = state.login_throttle.check(&email, &ip, now) {
        let mut resp = login_page(
            &req,
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &return_to,
            &email,
            Some("Too many failed attempts. Wait a minute and try again."),
        );
        resp.headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, wait.into());
        return Ok(resp);
    }
    match check_password(&state, email.clone(), form.password).await? {
        Some(user_id) => {
            state.login_throttle.record_success(&email, &ip);
            tracing::info!(%user_id, "login");
            // Pending invitations are the first thing to see (docs/spec.md §5).
            let landing = if return_to == "/"
                && super::invitations::pending_count(&state, user_id.clone()).await? > 0
            {
                "/invitations".to_string()
            } else {
                return_to
            };
            start_session(&req, &state, user_id, &landing).await
        }
        None => {
            state.login_throttle.record_failure(&email, &ip, now);
            state.metrics.login_failure();
            // 403, not 401: credentials were sent and are not enough (RFC 9110 §15.5.4); a
            // 401 would have to carry an HTTP authentication challenge (§15.5.2), and a
            // form login has none.
            Ok(login_page(
                &req,
                &state,
                StatusCode::FORBIDDEN,
                &return_to,
                &email,
                Some("The email or password is incorrect."),
            ))
        }
    }
}

/// What `--signup` (docs/spec.md §7) allows for a sign-up returning to `return_to`:
/// `Ok(None)` anyone, `Ok(Some(email))` only that email (a pending invitation's link under
/// `invite`), `Err(message)` nobody.
async fn signup_gate(
    state: &web::Data<AppState>,
    return_to: &str,
) -> Result<Result<Option<String>, &'static str>, AppError> {
    match state.settings.signup {
        users::SignupMode::Open => Ok(Ok(None)),
        users::SignupMode::Closed => Ok(Err(
            "Sign-up is closed: an operator creates accounts (tessera user create).",
        )),
        users::SignupMode::Invite => {
            let refused = "Sign-up is by invitation only: open the invitation link you were sent.";
            let Some(token) = crate::orgs::invitations::token_in_path(return_to) else {
                return Ok(Err(refused));
            };
            let (token, now) = (token.to_string(), state.clock.now());
            let email = with_db(state, move |conn| {
                crate::orgs::invitations::signup_email(conn, now, &token).map_err(AppError::from)
            })
            .await?;
            Ok(email.map(Some).ok_or(refused))
        }
    }
}

pub async fn signup_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let q = ReturnTo::parse(req.query_string());
    let return_to = safe_return_to(q.return_to.as_deref());
    let invited = match signup_gate(&state, &return_to).await? {
        Ok(invited) => invited,
        Err(refused) => {
            return Ok(login_page(
                &req,
                &state,
                StatusCode::FORBIDDEN,
                &return_to,
                "",
                Some(refused),
            ));
        }
    };
    Ok(signup_page(
        &req,
        &state,
        StatusCode::OK,
        &return_to,
        invited.as_deref().unwrap_or(""),
        None,
    ))
}

pub async fn signup_post(
    req: HttpRequest,
    FormBody(fields): FormBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !pre_csrf_ok(&req, &state, "signup", &fields) {
        return Ok(forbidden_form());
    }
    let form = CredentialsForm::from_fields(&fields);
    let return_to = safe_return_to(form.return_to.as_deref());
    let bad = |msg: &str| {
        signup_page(
            &req,
            &state,
            StatusCode::BAD_REQUEST,
            &return_to,
            form.email.trim(),
            Some(msg),
        )
    };
    if let Some(bad) = nul_in(&form) {
        return Ok(signup_page(
            &req,
            &state,
            StatusCode::BAD_REQUEST,
            &return_to,
            &form.email.replace('\0', ""),
            Some(&bad),
        ));
    }
    let invited = match signup_gate(&state, &return_to).await? {
        Ok(invited) => invited,
        Err(refused) => {
            return Ok(login_page(
                &req,
                &state,
                StatusCode::FORBIDDEN,
                &return_to,
                "",
                Some(refused),
            ));
        }
    };
    let email = match users::normalize_email(&form.email) {
        Ok(e) => e,
        Err(e) => return Ok(bad(&e.to_string())),
    };
    if let Some(invited) = invited.filter(|i| *i != email) {
        return Ok(bad(&format!(
            "email: this invitation is for {invited}; sign up with that address."
        )));
    }
    if let Err(e) = users::validate_password(&form.password) {
        return Ok(bad(&e.to_string()));
    }
    // The optional display name (docs/spec.md §9: the `name` claim).
    let name = match crate::oidc::claims::validate_name(fields.get("name").unwrap_or("")) {
        Ok(n) => n,
        Err(msg) => return Ok(bad(msg)),
    };
    let hash = {
        let _permit = state
            .password_slots
            .acquire()
            .await
            .map_err(|_| AppError::Internal("semaphore closed".into()))?;
        let password = form.password.clone();
        web::block(move || users::hash_password(&password))
            .await
            .map_err(|e| AppError::Internal(e.to_string().into()))?
            .map_err(|e| AppError::Internal(e.to_string().into()))?
    };
    let now = state.clock.now();
    let with_org = state.settings.signup == users::SignupMode::Open;
    let created = with_db(&state, move |conn| -> Result<_, AppError> {
        let created = users::signup(conn, &email, hash, with_org, now)?;
        if let (Ok(user_id), Some(name)) = (&created, &name) {
            crate::oidc::claims::set_name(conn, user_id, Some(name))?;
        }
        Ok(created)
    })
    .await?;
    match created {
        Ok(user_id) => {
            tracing::info!(%user_id, "signup");
            start_session(&req, &state, user_id, &return_to).await
        }
        Err(UserError::EmailTaken) => Ok(bad(
            "An account with this email already exists. Sign in instead.",
        )),
        Err(e) => Ok(bad(&e.to_string())),
    }
}

pub async fn logout_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    match current_session(&req, &state).await? {
        Some(s) => Ok(page(
            StatusCode::OK,
            &LogoutPage {
                csrf_token: &s.csrf_token("logout"),
            },
        )),
        None => Ok(see_other("/login")),
    }
}

pub async fn logout_post(
    req: HttpRequest,
    FormBody(fields): FormBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = current_session(&req, &state).await? else {
        return Ok(forbidden_form());
    };
    if !csrf_ok(&req, &state, &fields, |t| session.csrf_ok("logout", t)) {
        return Ok(forbidden_form());
    }
    let id = session.id_hash.clone();
    with_db(&state, move |conn| {
        sessions::delete(conn, &id).map_err(AppError::from)
    })
    .await?;
    tracing::info!(user_id = %session.user_id, "logout");
    let mut resp = see_other("/login");
    let mut gone = cookie(&state, sessions::COOKIE, String::new(), 0);
    gone.make_removal();
    let _ = resp.add_cookie(&gone);
    Ok(resp)
}
