//! `/device` (RFC 8628 §3.3; docs/spec.md §9): the signed-in person enters the user code
//! (or arrives with it from `verification_uri_complete`), sees a consent page that says a
//! device asks, and approves or denies. Wrong codes are throttled per session and per IP
//! (docs/security.md K5); forms carry a CSRF token bound to `/device` (H1).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::authorize::scope_lines;
use super::signed_in::{FormBody, csrf_ok, forbidden_form};
use super::{current_session, page, see_other};
use crate::app::AppState;
use crate::error::AppError;
use crate::http::with_db;
use crate::oauth::device::{self, Waiting};
use crate::sessions::Session;

const PATH: &str = "/device";

#[derive(Template)]
#[template(path = "device.html")]
struct EntryPage<'a> {
    email: &'a str,
    user_code: &'a str,
    error: Option<&'a str>,
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "device_consent.html")]
struct ConsentPage<'a> {
    client_name: &'a str,
    client_uri: Option<&'a str>,
    email: &'a str,
    user_code: &'a str,
    scopes: Vec<(String, String)>,
    resources: &'a [String],
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "device_done.html")]
struct DonePage<'a> {
    heading: &'a str,
    message: &'a str,
}

async fn email_of(state: &web::Data<AppState>, session: &Session) -> Result<String, AppError> {
    let user = session.user_id.clone();
    with_db(state, move |conn| {
        Ok(crate::users::store::find(conn, &user)?
            .map(|u| u.email)
            .unwrap_or_default())
    })
    .await
}

fn entry(
    status: StatusCode,
    session: &Session,
    email: &str,
    user_code: &str,
    error: Option<&str>,
) -> HttpResponse {
    page(
        status,
        &EntryPage {
            email,
            user_code,
            error,
            csrf_token: &session.csrf_token(PATH),
        },
    )
}

/// `GET /device[?user_code=…]`: the entry form, prefilled from `verification_uri_complete`.
/// Without a session, the login page first, coming back here with the code.
pub async fn device_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let typed = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "user_code")
        .map(|(_, v)| v.replace('\0', ""))
        .unwrap_or_default();
    let Some(session) = current_session(&req, &state).await? else {
        let mut back = PATH.to_string();
        if !typed.is_empty() {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", &typed)
                .finish();
            back = format!("{PATH}?{q}");
        }
        let login = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &back)
            .finish();
        return Ok(see_other(&format!("/login?{login}")));
    };
    let email = email_of(&state, &session).await?;
    let shown: String = typed.trim().chars().take(20).collect();
    Ok(entry(StatusCode::OK, &session, &email, &shown, None))
}

/// `POST /device`: `user_code` alone shows the consent page for it; with `decision`
/// (`approve` or `deny`) it records the person's answer. A code that is unknown, expired
/// or already decided re-shows the form (400) and counts as a failure; past the limit the
/// answer is 429 with `Retry-After`, even for a right code, until the minute ends.
pub async fn device_post(
    req: HttpRequest,
    FormBody(fields): FormBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = current_session(&req, &state).await? else {
        return Ok(forbidden_form());
    };
    if !csrf_ok(&req, &state, &fields, |t| session.csrf_ok(PATH, t)) {
        return Ok(forbidden_form());
    }
    let email = email_of(&state, &session).await?;
    let raw = fields.get("user_code").unwrap_or("");
    // Shown back trimmed (a pasted code often brings spaces along); read in full, so
    // spaces around or inside a right code never make it a failure.
    let typed: String = raw.trim().chars().take(20).collect();
    let ip = crate::http::oauth::peer_ip(&req);
    let now = state.clock.now();
    let throttle = &state.device_code_throttle;
    if let Some(wait) = throttle.check(&session.id_hash, &ip, now) {
        let mut resp = entry(
            StatusCode::TOO_MANY_REQUESTS,
            &session,
            &email,
            &typed,
            Some("Too many wrong codes. Wait a minute and try again."),
        );
        resp.headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, wait.into());
        return Ok(resp);
    }
    if fields.repeated() {
        return Ok(entry(
            StatusCode::BAD_REQUEST,
            &session,
            &email,
            &typed,
            Some("Each field may appear once: send one user_code and one decision."),
        ));
    }
    let decision = match fields.get("decision") {
        None => None,
        Some("approve") => Some(true),
        Some("deny") => Some(false),
        Some(_) => {
            return Ok(entry(
                StatusCode::BAD_REQUEST,
                &session,
                &email,
                &typed,
                Some("decision must be approve or deny."),
            ));
        }
    };
    let code = (raw.len() <= 200)
        .then(|| device::normalize_user_code(raw))
        .flatten();
    let st = state.clone();
    let user_id = session.user_id.clone();
    let auth_time = session.created_at;
    let lookup = code.clone();
    let found = with_db(&state, move |conn| -> Result<_, AppError> {
        let Some(code) = lookup else {
            return Ok(None);
        };
        let now = st.clock.now();
        let Some(waiting) = device::waiting(conn, &code, now)? else {
            return Ok(None);
        };
        let decided = match decision {
            Some(approve) => Some(device::decide(
                conn, &code, &user_id, auth_time, approve, now,
            )?),
            None => None,
        };
        Ok(Some((waiting, decided)))
    })
    .await?;
    match found {
        None | Some((_, Some(false))) => {
            throttle.record_failure(&session.id_hash, &ip, now);
            Ok(entry(
                StatusCode::BAD_REQUEST,
                &session,
                &email,
                &typed,
                Some("This code is not valid: check it on your device, or start again there."),
            ))
        }
        Some((waiting, None)) => {
            let shown = device::display_user_code(code.as_deref().unwrap_or_default());
            Ok(consent(&state, &session, &email, &shown, &waiting))
        }
        Some((_, Some(true))) => Ok(match decision {
            Some(true) => page(
                StatusCode::OK,
                &DonePage {
                    heading: "Device connected",
                    message: "You can close this page and go back to your device.",
                },
            ),
            _ => page(
                StatusCode::OK,
                &DonePage {
                    heading: "Request denied",
                    message: "The device was not given access. You can close this page.",
                },
            ),
        }),
    }
}

fn consent(
    state: &AppState,
    session: &Session,
    email: &str,
    user_code: &str,
    waiting: &Waiting,
) -> HttpResponse {
    page(
        StatusCode::OK,
        &ConsentPage {
            client_name: waiting.client.display_name(),
            client_uri: waiting.client.client_uri.as_deref(),
            email,
            user_code,
            scopes: scope_lines(state, &waiting.scope),
            resources: &waiting.resources,
            csrf_token: &session.csrf_token(PATH),
        },
    )
}
