//! `GET /oauth/authorize` (validation, login redirect, consent page or remembered consent)
//! and `POST /oauth/authorize` (the consent decision). RFC 6749 §4.1, RFC 9207 (`iss` on
//! every response to the client), docs/spec.md §3 and §6.

use super::signed_in::{FormBody, csrf_ok, forbidden_form};
use super::{current_session, error_page, oauth_error_page, page, see_other};
use crate::app::AppState;
use crate::consent::decision::{self, Decided, Next};
use crate::error::AppError;
use crate::http::client_metadata::Refusal;
use crate::http::with_db;
use crate::oauth::authorize::{self, AuthorizeError, AuthorizeQuery, ValidRequest};
use crate::oidc::id_token::verify_hint;
use crate::oidc::prompt::{self, OidcParams, Step};
use crate::scope::ScopeSet;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_name: &'a str,
    /// The app's homepage, shown as text. Its logo is not shown: pages load nothing from
    /// other origins (CSP `img-src 'self'`).
    client_uri: Option<&'a str>,
    email: &'a str,
    org_name: Option<&'a str>,
    scopes: Vec<(String, String)>,
    /// RFC 8707: the resources the app wants to reach with this grant.
    resources: &'a [String],
    redirect_host: &'a str,
    /// docs/spec.md §8: a metadata document client or an openly registered one: nobody
    /// vetted it, and the page says so.
    unverified: bool,
    /// A metadata document client's host, the one thing that identifies it.
    client_host: Option<String>,
    csrf_token: &'a str,
    request_id: &'a str,
}

/// A redirect to the client (302 after a GET; 303 after the consent POST, docs/security.md A9).
fn to_client(status: StatusCode, url: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Location", url))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

fn parse_url(s: &str) -> Result<url::Url, AppError> {
    url::Url::parse(s).map_err(|_| AppError::Internal("stored redirect URI does not parse".into()))
}

/// The redirect back to the client: `code` or `error`, then `state` and `iss`
/// (RFC 6749 §4.1.2 and §4.1.2.1, RFC 9207 §2).
fn client_url(
    state: &AppState,
    redirect_uri: &str,
    outcome: (&str, &str),
    client_state: Option<&str>,
) -> Result<String, AppError> {
    let mut params = vec![outcome];
    if let Some(s) = client_state {
        params.push(("state", s));
    }
    params.push(("iss", state.issuer.as_str()));
    Ok(authorize::with_params(parse_url(redirect_uri)?, &params))
}

fn success_url(
    state: &AppState,
    redirect_uri: &str,
    code: &str,
    client_state: Option<&str>,
) -> Result<String, AppError> {
    client_url(state, redirect_uri, ("code", code), client_state)
}

fn error_url(
    state: &AppState,
    redirect_uri: &str,
    error: &str,
    client_state: Option<&str>,
) -> Result<String, AppError> {
    client_url(state, redirect_uri, ("error", error), client_state)
}

pub(super) fn scope_lines(state: &AppState, scope: &ScopeSet) -> Vec<(String, String)> {
    scope
        .iter()
        .map(|s| {
            (
                s.to_string(),
                state
                    .settings
                    .scopes
                    .description(s.as_str())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

/// What the GET answers with.
enum Answer {
    /// Sign in (again, when `reauth`: `prompt=login`, `max_age`, `id_token_hint`), the
    /// email prefilled from `login_hint`.
    Login {
        reauth: bool,
        hint: Option<String>,
    },
    Signed(Next),
}

/// An OpenID Connect refusal by redirect to the verified redirect URI: `error`, `state`
/// (`iss` is added where every redirect error gets it).
/// The page for a client ID metadata document that cannot be used (docs/spec.md §8): 400
/// naming the problem, or 429 with `Retry-After` when the address asked for too many new
/// client IDs. Never a redirect: the redirect URI is not verified.
fn document_refused(refusal: &Refusal) -> HttpResponse {
    let mut response = error_page(
        refusal.status(),
        "This authorization request cannot be processed",
        &refusal.message(),
    );
    if let Refusal::TooMany { retry_after } = refusal
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&retry_after.to_string())
    {
        response
            .headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, value);
    }
    response
}

fn refuse_to(valid: &ValidRequest, error: &str) -> Result<AuthorizeError, AppError> {
    let mut url = parse_url(&valid.redirect_uri)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", error);
        if let Some(s) = &valid.state {
            q.append_pair("state", s);
        }
    }
    Ok(AuthorizeError::Redirect(url))
}

pub async fn authorize_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let query = req.query_string().to_string();
    // docs/spec.md §8: a client_id that is a URL names a metadata document, fetched here
    // (outside the database call); its refusal is an error page, never a redirect.
    let ip = crate::http::oauth::peer_ip(&req);
    let document = match crate::http::client_metadata::resolve(
        &state,
        AuthorizeQuery::parse(&query).client_id_param(),
        &ip,
    )
    .await
    {
        Ok(d) => d,
        Err(refusal) => return Ok(document_refused(&refusal)),
    };
    let session = current_session(&req, &state).await?;
    let st = state.clone();
    let outcome = with_db(
        &state,
        move |conn| -> Result<Result<(ValidRequest, Answer), AuthorizeError>, AppError> {
            if let Some((url, client)) = &document
                && let Err(retry_after) =
                    crate::clients::metadata_document::upsert(conn, &st.ctx(), url, client, &ip)?
            {
                return Ok(Err(AuthorizeError::TooMany { retry_after }));
            }
            let valid = match authorize::validate(
                conn,
                &st.settings.scopes,
                &AuthorizeQuery::parse(&query),
            ) {
                Ok(v) => v,
                Err(AuthorizeError::App(e)) => return Err(e),
                Err(other) => return Ok(Err(other)),
            };
            // RFC 8707 §2: an unknown resource goes back to the (verified) client.
            if !crate::oauth::resource::all_known(conn, &st.issuer, &st.audience, &valid.resources)
                .map_err(AppError::from_db)?
            {
                return Ok(Err(refuse_to(&valid, "invalid_target")?));
            }
            // OpenID Connect Core §3.1.2.1 (docs/spec.md §9).
            let oidc = match OidcParams::parse(&query) {
                Ok(p) => p,
                Err(_) => return Ok(Err(refuse_to(&valid, "invalid_request")?)),
            };
            let hint_sub = match &oidc.id_token_hint {
                None => None,
                Some(t) => match verify_hint(&st.keys.snapshot(), t, &st.issuer) {
                    Some(c) => Some(c.sub),
                    None => return Ok(Err(refuse_to(&valid, "invalid_request")?)),
                },
            };
            let ctx = st.ctx();
            match prompt::decide(&oidc, session.as_ref(), hint_sub.as_deref(), ctx.now) {
                Step::Refuse(code) => Ok(Err(refuse_to(&valid, code)?)),
                Step::Login { reauth } => Ok(Ok((
                    valid,
                    Answer::Login {
                        reauth,
                        hint: oidc.login_hint,
                    },
                ))),
                Step::Proceed { ask_again } => {
                    let session = session.ok_or_else(|| AppError::Internal("no session".into()))?;
                    if oidc.none && !decision::covered(conn, &valid, &session)? {
                        return Ok(Err(refuse_to(&valid, "consent_required")?));
                    }
                    let next = decision::on_request_with(conn, &ctx, &valid, &session, ask_again)?;
                    Ok(Ok((valid, Answer::Signed(next))))
                }
            }
        },
    )
    .await?;
    let (valid, next) = match outcome {
        Ok(v) => v,
        Err(AuthorizeError::Page { error, message }) => {
            return Ok(oauth_error_page(
                StatusCode::BAD_REQUEST,
                error,
                "This authorization request cannot be processed",
                message,
            ));
        }
        Err(AuthorizeError::Redirect(url)) => {
            let url = authorize::with_params(url, &[("iss", state.issuer.as_str())]);
            return Ok(to_client(StatusCode::FOUND, &url));
        }
        Err(AuthorizeError::TooMany { retry_after }) => {
            return Ok(document_refused(&Refusal::TooMany { retry_after }));
        }
        Err(AuthorizeError::App(e)) => return Err(e),
    };
    match next {
        Answer::Login { reauth, hint } => {
            let back = format!(
                "/oauth/authorize?{}",
                prompt::for_return(req.query_string())
            );
            let mut login = url::form_urlencoded::Serializer::new(String::new());
            login.append_pair("return_to", &back);
            if let Some(h) = &hint {
                login.append_pair("login_hint", h);
            }
            if reauth {
                login.append_pair("reauth", "1");
            }
            Ok(see_other(&format!("/login?{}", login.finish())))
        }
        Answer::Signed(Next::Code(code)) => Ok(to_client(
            StatusCode::FOUND,
            &success_url(&state, &valid.redirect_uri, &code, valid.state.as_deref())?,
        )),
        Answer::Signed(Next::Consent {
            pending,
            email,
            org_name,
        }) => {
            let session = current_session(&req, &state)
                .await?
                .ok_or_else(|| AppError::Internal("session vanished".into()))?;
            let host = url::Url::parse(&valid.redirect_uri)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            let token = session.csrf_token(&format!("consent:{}", pending.id));
            let row = valid.client.clone();
            let unverified = with_db(&state, move |conn| {
                crate::clients::metadata_document::unverified(conn, &row).map_err(AppError::from_db)
            })
            .await?;
            let client_host = crate::clients::metadata_document::looks_like_url(&valid.client.id)
                .then(|| crate::clients::metadata_document::host_of(&valid.client.id))
                .flatten();
            Ok(page(
                StatusCode::OK,
                &ConsentPage {
                    client_name: valid.client.display_name(),
                    client_uri: valid.client.client_uri.as_deref(),
                    email: &email,
                    org_name: org_name.as_deref(),
                    scopes: scope_lines(&state, &valid.scope),
                    resources: &valid.resources,
                    redirect_host: &host,
                    unverified,
                    client_host,
                    csrf_token: &token,
                    request_id: &pending.id,
                },
            ))
        }
    }
}

/// The consent form's target. Everything comes from the stored request; the form carries
/// only its id, the CSRF token and the decision (docs/security.md A11, H1). A form whose
/// request id or CSRF token is missing, repeated or wrong is refused with 403 and nothing
/// changes. Once both check out, the pending request (and with it the client and its
/// redirect URI) is verified, so any other fault in the form, such as a repeated parameter
/// or an unknown decision, is answered by redirect with `invalid_request`, `state` and
/// `iss` (RFC 6749 §4.1.2.1), and the request is used up.
pub async fn authorize_post(
    req: HttpRequest,
    FormBody(fields): FormBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = current_session(&req, &state).await? else {
        return Ok(forbidden_form());
    };
    // A body that is not a form has no readable token: the same as a wrong one (H1).
    let once = |name: &str| fields.all(name).len() <= 1;
    let (Some(id), true, true) = (fields.get("request"), once("request"), once("csrf_token"))
    else {
        return Ok(forbidden_form());
    };
    let purpose = format!("consent:{id}");
    if !csrf_ok(&req, &state, &fields, |t| session.csrf_ok(&purpose, t)) {
        return Ok(forbidden_form());
    }
    let decision = match (fields.repeated(), fields.get("decision")) {
        (false, Some("approve")) => Ok(true),
        (false, Some("deny")) => Ok(false),
        _ => Err("invalid_request"),
    };
    let st = state.clone();
    let id = id.to_string();
    let approve = decision == Ok(true);
    let result = with_db(&state, move |conn| {
        decision::decide(conn, &st.ctx(), &session, &id, approve)
    })
    .await?;
    match result {
        None => Ok(error_page(
            StatusCode::BAD_REQUEST,
            "This request has expired",
            "Start again from the application.",
        )),
        Some(Decided {
            pending,
            code: Some(code),
            redirect_uri,
        }) => Ok(to_client(
            StatusCode::SEE_OTHER,
            &success_url(&state, &redirect_uri, &code, pending.state.as_deref())?,
        )),
        Some(Decided {
            pending,
            code: None,
            redirect_uri,
        }) => Ok(to_client(
            StatusCode::SEE_OTHER,
            &error_url(
                &state,
                &redirect_uri,
                decision.err().unwrap_or("access_denied"),
                pending.state.as_deref(),
            )?,
        )),
    }
}
