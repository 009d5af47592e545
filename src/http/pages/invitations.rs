//! `/invitations` and `/invitations/{token}` (docs/spec.md §5): the invitee's side. The
//! list shows the pending invitations for the signed-in person's email (accounts older than
//! the invitation; docs/security.md I12); the link shows one invitation, to the account with
//! the invited email. Accept and Decline call `orgs::invitations::answer`. A person with no
//! organization yet may use these pages, so they read the session themselves instead of
//! using `SignedIn`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::signed_in::{CsrfForm, Fields};
use super::{current_session, page, see_other, when};
use crate::app::AppState;
use crate::error::{AppError, OpError};
use crate::http::errors::shown;
use crate::http::with_db;
use crate::orgs::invitations::{self, AnswerError, Offer, Via};
use crate::sessions::Session;
use crate::users::store::User;

pub struct OfferLine {
    pub id: String,
    pub org_name: String,
    pub role: String,
    pub expires: String,
    /// Where the Accept and Decline form posts.
    pub action: String,
    pub csrf: String,
    pub by_link: bool,
}

#[derive(Template)]
#[template(path = "invitations.html")]
struct InvitationsPage<'a> {
    heading: &'a str,
    /// The signed-in frame (templates/signed_in.html); `None` on an invitation link's page.
    nav: Option<super::layout::Nav>,
    signed_in: bool,
    email: &'a str,
    /// URL-encoded path to come back to after signing in or up.
    return_to: String,
    offers: Vec<OfferLine>,
    show_empty: bool,
    joined: bool,
    error: Option<String>,
    notice: Option<String>,
}

impl InvitationsPage<'_> {
    fn render(&self, status: StatusCode) -> HttpResponse {
        page(status, self)
    }
}

/// The signed-in person and their account, if any.
async fn viewer(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<Option<(Session, User)>, AppError> {
    let Some(session) = current_session(req, state).await? else {
        return Ok(None);
    };
    let id = session.user_id.clone();
    let user = with_db(state, move |conn| {
        crate::users::store::find(conn, &id).map_err(AppError::from)
    })
    .await?;
    Ok(user.map(|u| (session, u)))
}

fn line(session: &Session, o: &Offer, token: Option<&str>) -> OfferLine {
    let action = match token {
        Some(t) => format!("/invitations/{t}"),
        None => "/invitations".to_string(),
    };
    OfferLine {
        id: o.id.clone(),
        org_name: o.org_name.clone(),
        role: o.role.as_str().to_string(),
        expires: when(o.expires_at),
        csrf: session.csrf_token(&action),
        action,
        by_link: token.is_some(),
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The signed-in list of `user`'s pending invitations, with a notice or an error.
async fn render_list(
    state: &web::Data<AppState>,
    session: &Session,
    user: &User,
    status: StatusCode,
    outcome: Outcome,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let u = user.clone();
    let offers = with_db(state, move |conn| {
        invitations::offers_for(conn, now, &u).map_err(AppError::from)
    })
    .await?;
    Ok(InvitationsPage {
        heading: "Invitations",
        nav: Some(super::layout::nav_for(state, session, "/invitations").await?),
        signed_in: true,
        email: &user.email,
        return_to: String::new(),
        offers: offers.iter().map(|o| line(session, o, None)).collect(),
        show_empty: true,
        joined: outcome.joined,
        error: outcome.error,
        notice: outcome.notice,
    }
    .render(status))
}

#[derive(Default)]
struct Outcome {
    joined: bool,
    error: Option<String>,
    notice: Option<String>,
}

/// `GET /invitations`: the pending invitations for the signed-in person's email.
pub async fn invitations_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some((session, user)) = viewer(&req, &state).await? else {
        return Ok(see_other("/login?return_to=%2Finvitations"));
    };
    render_list(&state, &session, &user, StatusCode::OK, Outcome::default()).await
}

/// The decision of an Accept/Decline form: `accept` → true, `decline` → false.
fn decision(f: &Fields) -> Option<bool> {
    match f.get("decision") {
        Some("accept") => Some(true),
        Some("decline") => Some(false),
        _ => None,
    }
}

/// Answers an invitation through its link's token (`by_link`) or by id; on acceptance the
/// session moves to the new organization. A refusal comes back as the status and message
/// to show.
async fn answer(
    state: &web::Data<AppState>,
    session: &Session,
    user: &User,
    by_link: bool,
    value: String,
    accept: bool,
) -> Result<Result<Offer, (StatusCode, String)>, AppError> {
    let st = state.clone();
    let u = user.clone();
    let sid = session.id_hash.clone();
    let r = with_db(state, move |conn| {
        let via = if by_link {
            Via::Token(&value)
        } else {
            Via::Id(&value)
        };
        let offer = invitations::answer(conn, &st.ctx(), &u, via, accept)?;
        if accept {
            crate::sessions::set_org(conn, &sid, &offer.org_id).map_err(OpError::from)?;
        }
        Ok(offer)
    })
    .await;
    match r {
        Ok(offer) => Ok(Ok(offer)),
        Err(e @ AnswerError::Gone) => Ok(Err((StatusCode::GONE, e.to_string()))),
        Err(e @ AnswerError::OtherAccount(_)) => Ok(Err((StatusCode::FORBIDDEN, e.to_string()))),
        Err(AnswerError::Op(e)) => shown(e).map(Err),
    }
}

/// The outcome to show; an acceptance also moves `session` (as the page frame shows it) to
/// the organization joined, as `answer` did in the database.
fn answered(session: &mut Session, offer: &Offer, accept: bool) -> Outcome {
    if accept {
        session.org_id = Some(offer.org_id.clone());
        Outcome {
            joined: true,
            notice: Some(format!(
                "You joined {} as {}.",
                offer.org_name,
                offer.role.as_str()
            )),
            error: None,
        }
    } else {
        Outcome {
            notice: Some(format!(
                "You declined the invitation to {}.",
                offer.org_name
            )),
            ..Outcome::default()
        }
    }
}

fn refused(status_message: (StatusCode, String)) -> (StatusCode, Outcome) {
    let (status, m) = status_message;
    (
        status,
        Outcome {
            error: Some(m),
            ..Outcome::default()
        },
    )
}

/// `POST /invitations` `invitation_id`, `decision=accept|decline`: from the list.
pub async fn invitations_post(
    req: HttpRequest,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some((session, user)) = viewer(&req, &state).await? else {
        return Ok(see_other("/login?return_to=%2Finvitations"));
    };
    let (Some(accept), Some(id)) = (decision(&f), f.get("invitation_id")) else {
        let (status, outcome) = refused((
            StatusCode::BAD_REQUEST,
            "Choose Accept or Decline (decision) for an invitation (invitation_id).".into(),
        ));
        return render_list(&state, &session, &user, status, outcome).await;
    };
    let mut session = session;
    let (status, outcome) =
        match answer(&state, &session, &user, false, id.to_string(), accept).await? {
            Ok(offer) => (StatusCode::OK, answered(&mut session, &offer, accept)),
            Err(e) => refused(e),
        };
    render_list(&state, &session, &user, status, outcome).await
}

/// The page of one link: the invitation with Accept and Decline, or why it cannot be
/// answered, in the signed-in frame.
async fn link_page(
    state: &web::Data<AppState>,
    session: &Session,
    user: &User,
    token: &str,
    offer: Option<&Offer>,
    status: StatusCode,
    outcome: Outcome,
) -> Result<HttpResponse, AppError> {
    Ok(InvitationsPage {
        heading: "Invitation",
        nav: Some(super::layout::nav_for(state, session, "/invitations").await?),
        signed_in: true,
        email: &user.email,
        return_to: String::new(),
        offers: offer
            .map(|o| vec![line(session, o, Some(token))])
            .unwrap_or_default(),
        show_empty: false,
        joined: outcome.joined,
        error: outcome.error,
        notice: outcome.notice,
    }
    .render(status))
}

/// `GET /invitations/{token}`: signed in, the invitation (for the account with the invited
/// email); otherwise links to sign in or sign up that come back here.
pub async fn link_get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let Some((session, user)) = viewer(&req, &state).await? else {
        return Ok(InvitationsPage {
            heading: "Invitation",
            nav: None,
            signed_in: false,
            email: "",
            return_to: encode(&format!("/invitations/{token}")),
            offers: Vec::new(),
            show_empty: false,
            joined: false,
            error: None,
            notice: None,
        }
        .render(StatusCode::OK));
    };
    let now = state.clock.now();
    let (u, t) = (user.clone(), token.clone());
    let found = with_db(&state, move |conn| {
        invitations::offer_by_token(conn, now, &u, &t)
    })
    .await;
    let shown_error = |e: AnswerError| -> Result<(StatusCode, String), AppError> {
        match e {
            e @ (AnswerError::Gone | AnswerError::OtherAccount(_)) => {
                let status = if matches!(e, AnswerError::Gone) {
                    StatusCode::GONE
                } else {
                    StatusCode::FORBIDDEN
                };
                Ok((status, e.to_string()))
            }
            AnswerError::Op(e) => shown(e),
        }
    };
    match found {
        Ok(offer) => {
            link_page(
                &state,
                &session,
                &user,
                &token,
                Some(&offer),
                StatusCode::OK,
                Outcome::default(),
            )
            .await
        }
        Err(e) => {
            let (status, outcome) = refused(shown_error(e)?);
            link_page(&state, &session, &user, &token, None, status, outcome).await
        }
    }
}

/// `POST /invitations/{token}` `decision=accept|decline`.
pub async fn link_post(
    req: HttpRequest,
    path: web::Path<String>,
    CsrfForm(f): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let here = format!("/invitations/{}", encode(&token));
    let Some((session, user)) = viewer(&req, &state).await? else {
        return Ok(see_other(&format!("/login?return_to={}", encode(&here))));
    };
    let Some(accept) = decision(&f) else {
        let (status, outcome) = refused((
            StatusCode::BAD_REQUEST,
            "Choose Accept or Decline (decision).".into(),
        ));
        return link_page(&state, &session, &user, &token, None, status, outcome).await;
    };
    let mut session = session;
    let (status, outcome) =
        match answer(&state, &session, &user, true, token.clone(), accept).await? {
            Ok(offer) => (StatusCode::OK, answered(&mut session, &offer, accept)),
            Err(e) => refused(e),
        };
    link_page(&state, &session, &user, &token, None, status, outcome).await
}

/// How many invitations `user_id` may answer on `/invitations` now (the notice on the home
/// page, and where a sign-in lands).
pub async fn pending_count(
    state: &web::Data<AppState>,
    user_id: String,
) -> Result<usize, AppError> {
    let now = state.clock.now();
    with_db(state, move |conn| -> Result<usize, AppError> {
        let Some(user) = crate::users::store::find(conn, &user_id)? else {
            return Ok(0);
        };
        Ok(invitations::offers_for(conn, now, &user)?.len())
    })
    .await
}
