//! The page extractors: [`SignedIn`] (the viewer of a settings page, acting in their
//! current organization; a visitor with no session is sent to the login page) and
//! [`CsrfForm`] (a form whose CSRF token is bound to the path it is posted to; a missing,
//! empty or wrong token, or a cross-site `Origin`, is 403 with nothing changed:
//! docs/security.md H1).

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use futures_util::future::LocalBoxFuture;

use super::{current_session, error_page, same_origin, see_other};
use crate::app::AppState;
use crate::error::{AppError, OpError};
use crate::http::with_db;
use crate::orgs::Actor;
use crate::sessions::Session;

/// Who is looking at a settings page, in which organization.
pub struct SignedIn {
    pub session: Session,
    pub email: String,
    pub actor: Actor,
    pub org_name: String,
    /// Every organization of the user: (id, name).
    pub orgs: Vec<(String, String)>,
}

impl SignedIn {
    /// The CSRF token of a form posted to `action` (a path).
    pub fn csrf(&self, action: &str) -> String {
        self.session.csrf_token(action)
    }

    /// The middle of every page POST (parse → run → render): runs operation `op` as this
    /// viewer's actor with the form's parsed `input`, on the blocking pool with a pooled
    /// connection and the context read there; a form that did not parse skips the
    /// operation and comes back as its error. The page's counterpart of `Principal::run`.
    pub async fn run<I, T, F>(
        &self,
        state: &web::Data<AppState>,
        input: Result<I, OpError>,
        op: F,
    ) -> Result<T, OpError>
    where
        F: FnOnce(
                &mut crate::db::DbConnection,
                &crate::app::Ctx<'_>,
                &Actor,
                I,
            ) -> Result<T, OpError>
            + Send
            + 'static,
        I: Send + 'static,
        T: Send + 'static,
    {
        let input = input?;
        let st = state.clone();
        let actor = self.actor.clone();
        with_db(state, move |conn| op(conn, &st.ctx(), &actor, input)).await
    }
}

fn early(resp: HttpResponse) -> actix_web::Error {
    InternalError::from_response("", resp).into()
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, actix_web::Error> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal("no app state".into()).into())
}

async fn load(req: HttpRequest) -> Result<SignedIn, actix_web::Error> {
    let state = state_of(&req)?;
    let Some(session) = current_session(&req, &state).await? else {
        let back: String = url::form_urlencoded::byte_serialize(req.path().as_bytes()).collect();
        return Err(early(see_other(&format!("/login?return_to={back}"))));
    };
    req.extensions_mut().insert(session.clone());
    let user = session.user_id.clone();
    let (email, orgs) = with_db(&state, move |conn| -> Result<_, AppError> {
        let email = crate::users::store::find(conn, &user)?
            .map(|u| u.email)
            .unwrap_or_default();
        Ok((email, crate::orgs::store::memberships_of(conn, &user)?))
    })
    .await?;
    // The session's organization if the user still belongs to it, else the first one.
    let current = orgs
        .iter()
        .find(|(id, _, _)| Some(id) == session.org_id.as_ref())
        .or(orgs.first())
        .cloned();
    let Some((org_id, org_name, role)) = current else {
        return Err(early(error_page(
            StatusCode::FORBIDDEN,
            "No organization",
            "Your account does not belong to any organization yet. Ask an admin to invite you, then accept on /invitations.",
        )));
    };
    let actor = Actor {
        org_id,
        user_id: Some(session.user_id.clone()),
        role,
        label: format!("user:{}", session.user_id),
    };
    Ok(SignedIn {
        session,
        email,
        actor,
        org_name,
        orgs: orgs.into_iter().map(|(id, name, _)| (id, name)).collect(),
    })
}

impl FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(load(req.clone()))
    }
}

/// Form fields in order, repeated names kept (checkbox groups).
#[derive(Debug, Default, Clone)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
    /// Whether some field name appears more than once: forms whose fields are all single
    /// (consent, device decisions) refuse such a body rather than pick one of the values
    /// (docs/security.md D3).
    pub fn repeated(&self) -> bool {
        let mut names: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names.windows(2).any(|w| w.first() == w.last())
    }
}

/// The 403 of a form that failed its CSRF check.
pub fn forbidden_form() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form is no longer valid. Go back, reload the page and try again.",
    )
}

/// The fields of a posted form. Only an `application/x-www-form-urlencoded` body has fields:
/// no body, an empty one, a body without `Content-Type` or of another type yields no fields
/// at all, so a form handler sees no `csrf_token` and answers the same 403 as for a wrong
/// one ([`csrf_ok`], docs/security.md H1). It fails only for a body over the payload limit
/// (actix's default, 256 KiB): a 413 page. No body shape reaches actix's own 400 or 415.
pub struct FormBody(pub Fields);

fn is_form(req: &HttpRequest) -> bool {
    req.content_type()
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

impl FromRequest for FormBody {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = is_form(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = match bytes.await {
                Ok(b) => b,
                // Bad input is a 4xx that says what is wrong: a body over the payload
                // limit is 413, not the 403 of a missing token.
                Err(e)
                    if matches!(
                        e.as_error::<actix_web::error::PayloadError>(),
                        Some(actix_web::error::PayloadError::Overflow)
                    ) =>
                {
                    return Err(early(error_page(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Form too large",
                        "This form is larger than the server accepts.",
                    )));
                }
                Err(_) => web::Bytes::new(),
            };
            if !form {
                return Ok(FormBody(Fields::default()));
            }
            Ok(FormBody(Fields(
                url::form_urlencoded::parse(&body).into_owned().collect(),
            )))
        })
    }
}

/// The CSRF check of every page form (docs/security.md H1): the browser's `Origin` is not
/// another site's, and the form's `csrf_token` is the one `expected` accepts (bound to a
/// session or, before login, to the pre-session cookie, and to the form's purpose). A missing
/// or empty token fails like a wrong one.
pub fn csrf_ok(
    req: &HttpRequest,
    state: &AppState,
    fields: &Fields,
    expected: impl FnOnce(&str) -> bool,
) -> bool {
    same_origin(req, state) && expected(fields.get("csrf_token").unwrap_or(""))
}

/// A form posted by a signed-in user, its CSRF token checked against the path it was
/// posted to. Any body (none, empty, another content type) without the right token is the
/// same 403; a field holding a NUL character is a 400 page naming it (`http::bad_input`).
pub struct CsrfForm(pub Fields);

impl FromRequest for CsrfForm {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = FormBody::from_request(&req, payload);
        Box::pin(async move {
            let FormBody(fields) = body.await?;
            let state = state_of(&req)?;
            // SignedIn, declared before, already loaded the session.
            let cached = req.extensions().get::<Session>().cloned();
            let session = match cached {
                Some(s) => Some(s),
                None => current_session(&req, &state).await?,
            };
            let ok = session.is_some_and(|s| {
                csrf_ok(&req, &state, &fields, |token| s.csrf_ok(req.path(), token))
            });
            if !ok {
                return Err(early(forbidden_form()));
            }
            // Checked after the CSRF token, so a cross-site post learns nothing more.
            let pairs = fields.0.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            if let Some(field) = crate::http::bad_input::nul_field(pairs) {
                return Err(early(error_page(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    &format!(
                        "{} Go back, correct the form and send it again.",
                        crate::http::bad_input::message(&field)
                    ),
                )));
            }
            Ok(CsrfForm(fields))
        })
    }
}
