//! The `end_session_endpoint` (RP-Initiated Logout 1.0; docs/spec.md §9). A relying party
//! sends the browser here (GET, or a POST form) with `id_token_hint`, `client_id`,
//! `post_logout_redirect_uri` and `state`; the request is checked
//! (`oidc::logout::check`), the signed-in person confirms on a page whose form posts back
//! here with a CSRF token bound to this path (docs/security.md H1), and then the session
//! is ended (row deleted, cookie cleared) and the browser goes to the registered URI with
//! `state`, or to a "signed out" page. A refused request shows an error page naming the
//! parameter and never redirects (RP-Initiated Logout 1.0 §4).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::signed_in::{Fields, FormBody, csrf_ok, forbidden_form};
use super::pages::{cookie, current_session, error_page, page, see_other};
use super::with_db;
use crate::app::AppState;
use crate::error::AppError;
use crate::oidc::logout::{self, LogoutError, LogoutParams, LogoutRequest};
use crate::sessions::{self, Session};

/// The path of the `end_session_endpoint` (discovery, docs/spec.md §9).
pub const END_SESSION_PATH: &str = "/oauth/end_session";

#[derive(Template)]
#[template(path = "end_session.html")]
struct ConfirmPage<'a> {
    action: &'a str,
    email: &'a str,
    client_name: Option<&'a str>,
    client_id: Option<&'a str>,
    post_logout_redirect_uri: Option<&'a str>,
    state: Option<&'a str>,
    other_person: bool,
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage;

fn refused(e: &LogoutError) -> HttpResponse {
    error_page(
        StatusCode::BAD_REQUEST,
        "Sign-out request refused",
        &e.message,
    )
}

/// Checks the parameters against the database (storage failures are 503/500).
async fn check(
    state: &web::Data<AppState>,
    params: LogoutParams,
) -> Result<Result<(LogoutParams, LogoutRequest), LogoutError>, AppError> {
    let st = state.clone();
    with_db(state, move |conn| {
        let keys = st.keys.snapshot();
        let checked = logout::check(conn, &keys, &st.issuer, &params)?;
        Ok(checked.map(|r| (params, r)))
    })
    .await
}

/// `GET /oauth/end_session` (RP-Initiated Logout 1.0 §2): the query's parameters.
pub async fn end_session_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    ask(&req, &state, &Fields(pairs)).await
}

/// `POST /oauth/end_session`: a relying party's form (RP-Initiated Logout 1.0 §2) is
/// handled as the GET; a form carrying `csrf_token` is the person's confirmation from our
/// page: with a valid token the session ends, without one it is the 403 of every form.
pub async fn end_session_post(
    req: HttpRequest,
    FormBody(fields): FormBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if fields.0.iter().any(|(k, _)| k == "csrf_token") {
        confirm(&req, &state, &fields).await
    } else {
        ask(&req, &state, &fields).await
    }
}

fn params_of(fields: &Fields) -> Result<LogoutParams, LogoutError> {
    LogoutParams::from_pairs(fields.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// The confirmation page, or straight on when nobody is signed in (a logout request is
/// idempotent, RP-Initiated Logout 1.0 §4).
async fn ask(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    fields: &Fields,
) -> Result<HttpResponse, AppError> {
    let params = match params_of(fields) {
        Ok(p) => p,
        Err(e) => return Ok(refused(&e)),
    };
    let (params, checked) = match check(state, params).await? {
        Ok(ok) => ok,
        Err(e) => return Ok(refused(&e)),
    };
    let Some(session) = current_session(req, state).await? else {
        return Ok(done(checked.redirect.as_deref()));
    };
    let user = session.user_id.clone();
    let email = with_db(state, move |conn| -> Result<String, AppError> {
        Ok(crate::users::store::find(conn, &user)?
            .map(|u| u.email)
            .unwrap_or_default())
    })
    .await?;
    let client = checked.client.as_ref();
    Ok(page(
        StatusCode::OK,
        &ConfirmPage {
            action: END_SESSION_PATH,
            email: &email,
            client_name: client.map(|c| c.display_name()),
            client_id: client.map(|c| c.id.as_str()),
            post_logout_redirect_uri: params.post_logout_redirect_uri.as_deref(),
            state: params.state.as_deref(),
            // RP-Initiated Logout 1.0 §4: a hint about someone else makes the request
            // suspect; the person is told and decides.
            other_person: checked
                .hint_sub
                .as_deref()
                .is_some_and(|s| s != session.user_id),
            csrf_token: &session.csrf_token(END_SESSION_PATH),
        },
    ))
}

/// The person confirmed: end the session, clear the cookie, and go back or show the
/// "signed out" page.
async fn confirm(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    fields: &Fields,
) -> Result<HttpResponse, AppError> {
    let session: Option<Session> = current_session(req, state).await?;
    let Some(session) = session else {
        return Ok(forbidden_form());
    };
    if !csrf_ok(req, state, fields, |t| session.csrf_ok(END_SESSION_PATH, t)) {
        return Ok(forbidden_form());
    }
    let params = match params_of(fields) {
        Ok(p) => p,
        Err(e) => return Ok(refused(&e)),
    };
    let (_, checked) = match check(state, params).await? {
        Ok(ok) => ok,
        Err(e) => return Ok(refused(&e)),
    };
    let id = session.id_hash.clone();
    with_db(state, move |conn| {
        sessions::delete(conn, &id).map_err(AppError::from)
    })
    .await?;
    tracing::info!(user_id = %session.user_id, "logout (end_session)");
    let mut resp = done(checked.redirect.as_deref());
    let mut gone = cookie(state, sessions::COOKIE, String::new(), 0);
    gone.make_removal();
    let _ = resp.add_cookie(&gone);
    Ok(resp)
}

fn done(redirect: Option<&str>) -> HttpResponse {
    match redirect {
        Some(uri) => see_other(uri),
        None => page(StatusCode::OK, &SignedOutPage),
    }
}
