//! `/account` (docs/spec.md §6): the signed-in person's own settings — display name
//! (`POST /account/name`, `profile.rs`) and password change (`POST /account/password`:
//! the current password is required (guesses count against the login throttle), the other
//! devices' sessions end, the apps' grants are revoked with their tokens, and the change is
//! audited as `user.password_changed`). Needs a session, not an organization.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::layout::{Nav, nav_for};
use super::signed_in::{CsrfForm, forbidden_form};
use super::{current_session, page, query_param, see_other};
use crate::app::AppState;
use crate::error::AppError;
use crate::http::with_db;
use crate::sessions::Session;
use crate::users;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    /// The display name, "" when none is set.
    name: String,
    csrf_name: String,
    csrf_password: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

async fn render(
    state: &web::Data<AppState>,
    session: &Session,
    status: StatusCode,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<HttpResponse, AppError> {
    let nav = nav_for(state, session, "/account").await?;
    let user = session.user_id.clone();
    let name = with_db(state, move |conn| {
        crate::oidc::claims::name_of(conn, &user).map_err(AppError::from)
    })
    .await?;
    Ok(page(
        status,
        &AccountPage {
            nav,
            name: name.unwrap_or_default(),
            csrf_name: session.csrf_token("/account/name"),
            csrf_password: session.csrf_token("/account/password"),
            error,
            notice,
        },
    ))
}

/// `GET /account`; `?done=name` or `?done=password` shows what the last form did.
pub async fn account_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = current_session(&req, &state).await? else {
        return Ok(see_other("/login?return_to=%2Faccount"));
    };
    let notice = match query_param(&req, "done").as_deref() {
        Some("name") => Some("Display name saved."),
        Some("password") => Some(
            "Password changed. Your other devices were signed out, and apps you authorized will ask you to sign in again.",
        ),
        _ => None,
    };
    render(&state, &session, StatusCode::OK, None, notice).await
}

/// `POST /account/password`: form fields `current_password` and `new_password` (8 to 1,024
/// characters). A wrong current password or a bad new one is a 400 page naming the field,
/// nothing changed (too many wrong ones from this address: 429 with `Retry-After`, as
/// `/login`); success is a 303 to `/account?done=password`.
pub async fn password_post(
    req: HttpRequest,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = current_session(&req, &state).await? else {
        return Ok(forbidden_form());
    };
    let current = f.get("current_password").unwrap_or("").to_string();
    let new = f.get("new_password").unwrap_or("").to_string();
    if users::validate_password(&new).is_err() {
        let m = "new_password must be 8 to 1,024 characters.";
        return render(
            &state,
            &session,
            StatusCode::BAD_REQUEST,
            Some(m.into()),
            None,
        )
        .await;
    }
    let user_id = session.user_id.clone();
    let (email, stored) = with_db(&state, move |conn| {
        users::store::find(conn, &user_id).map_err(AppError::from)
    })
    .await?
    .map(|u| (u.email, u.password_hash))
    .unwrap_or_else(|| (String::new(), state.dummy_password_hash.clone()));
    // Guesses of the current password count against the login's throttle (docs/security.md K1).
    let ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let now = state.clock.now();
    if let Some(wait) = state.login_throttle.check(&email, &ip, now) {
        let m = "Too many wrong current passwords. Wait a minute and try again.";
        let mut resp = render(
            &state,
            &session,
            StatusCode::TOO_MANY_REQUESTS,
            Some(m.into()),
            None,
        )
        .await?;
        resp.headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, wait.into());
        return Ok(resp);
    }
    // Both argon2 runs off the async workers, within the login's concurrency slots.
    let _permit = state
        .password_slots
        .acquire()
        .await
        .map_err(|_| AppError::Internal("semaphore closed".into()))?;
    let hashed = web::block(move || {
        if users::verify_password(&current, &stored) {
            users::hash_password(&new).map(Some)
        } else {
            Ok(None)
        }
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string().into()))?
    .map_err(|e| AppError::Internal(e.to_string().into()))?;
    let Some(hash) = hashed else {
        state.login_throttle.record_failure(&email, &ip, now);
        tracing::info!(user_id = %session.user_id, "password change refused: wrong current password");
        let m = "current_password is not your current password.";
        return render(
            &state,
            &session,
            StatusCode::BAD_REQUEST,
            Some(m.into()),
            None,
        )
        .await;
    };
    state.login_throttle.record_success(&email, &ip);
    let st = state.clone();
    let (user_id, keep) = (session.user_id.clone(), session.id_hash.clone());
    let done = with_db(&state, move |conn| {
        users::ops::change_password(conn, &st.ctx(), &user_id, &keep, &hash)
    })
    .await
    .map_err(crate::error::OpError::into_app)?;
    tracing::info!(
        user_id = %session.user_id,
        other_sessions_ended = done.other_sessions_ended,
        grants_revoked = done.grants_revoked,
        "password changed"
    );
    Ok(see_other("/account?done=password"))
}
