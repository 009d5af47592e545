//! The consent operations (docs/spec.md §6): what `/oauth/authorize` does for a signed-in
//! user ([`on_request`]: a code at once when consent already covers the scope, else a
//! stored pending request for the consent page), the decision on that page ([`decide`]),
//! and withdrawing consent from `/account/apps` ([`withdraw`]). The pages only render.

use crate::app::Ctx;
use crate::db::{DbConnection, write_tx};
use crate::error::AppError;
use crate::oauth::authorize::ValidRequest;
use crate::oauth::codes::{self, NewCode};
use crate::scope::ScopeSet;
use crate::sessions::Session;

use super::Pending;

/// What the authorization endpoint does next for a signed-in user.
pub enum Next {
    /// Consent already covers the scope: the code to send back.
    Code(String),
    /// Ask: the stored request, with the user's email and current organization's name.
    Consent {
        pending: Box<Pending>,
        email: String,
        org_name: Option<String>,
    },
}

/// A valid authorization request from a signed-in user (RFC 6749 §4.1.1).
pub fn on_request(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    valid: &ValidRequest,
    session: &Session,
) -> Result<Next, AppError> {
    on_request_with(conn, ctx, valid, session, false)
}

/// True when the user's remembered consent covers the request's scope and every resource
/// it names (`prompt=none` may go on without a page, docs/spec.md §8, §9).
pub fn covered(
    conn: &mut DbConnection,
    valid: &ValidRequest,
    session: &Session,
) -> Result<bool, AppError> {
    let remembered = super::remembered(conn, &session.user_id, &valid.client.id)?;
    Ok(remembered.is_some_and(|r| r.covers(&valid.scope, &valid.resources)))
}

/// [`on_request`], asking again even when consent is remembered when `ask_again`
/// (OpenID Connect `prompt=consent`).
pub fn on_request_with(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    valid: &ValidRequest,
    session: &Session,
    ask_again: bool,
) -> Result<Next, AppError> {
    let now = ctx.now;
    if !ask_again && covered(conn, valid, session)? {
        let code = write_tx(conn, |conn| {
            codes::issue(
                conn,
                &NewCode {
                    client_id: &valid.client.id,
                    user_id: &session.user_id,
                    redirect_uri: &valid.requested_redirect_uri,
                    scope: &valid.scope,
                    code_challenge: &valid.code_challenge,
                    resources: &valid.resources,
                    nonce: valid.nonce.as_deref(),
                    auth_time: session.created_at,
                },
                ctx.settings.code_ttl_seconds,
                now,
            )
        })?;
        return Ok(Next::Code(code));
    }
    let pending = Pending {
        id: crate::crypto::random_token(),
        session_id: session.id_hash.clone(),
        user_id: session.user_id.clone(),
        client_id: valid.client.id.clone(),
        redirect_uri: valid.requested_redirect_uri.clone(),
        scope: valid.scope.to_string(),
        state: valid.state.clone(),
        code_challenge: valid.code_challenge.clone(),
        created_at: now,
        expires_at: now + super::PENDING_TTL_SECONDS,
        resource: crate::oauth::resource::to_column(&valid.resources),
        nonce: valid.nonce.clone(),
        auth_time: Some(session.created_at),
    };
    write_tx(conn, |conn| super::insert_pending(conn, &pending))?;
    let email = crate::users::store::find(conn, &session.user_id)?
        .map(|u| u.email)
        .unwrap_or_default();
    let org_name = match &session.org_id {
        Some(o) => crate::orgs::store::find(conn, o)?.map(|o| o.name),
        None => None,
    };
    Ok(Next::Consent {
        pending: Box::new(pending),
        email,
        org_name,
    })
}

/// The outcome of a consent decision: where to send the user back, with a code (approved)
/// or without (denied: `access_denied`).
pub struct Decided {
    pub pending: Pending,
    pub code: Option<String>,
    pub redirect_uri: String,
}

/// Approves or denies pending request `id` of this session, once (docs/security.md A11:
/// everything comes from the stored request). `None` when it expired, was already
/// decided, or belongs to another session.
pub fn decide(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    session: &Session,
    id: &str,
    approve: bool,
) -> Result<Option<Decided>, AppError> {
    let now = ctx.now;
    write_tx(conn, |conn| {
        let Some(p) = super::find_pending(conn, id, &session.id_hash, now)? else {
            return Ok(None);
        };
        if !super::take_pending(conn, id)? {
            return Ok(None);
        }
        let client = crate::clients::store::find(conn, &p.client_id)?
            .ok_or_else(|| AppError::Internal("client gone".into()))?;
        let redirect_uri = if p.redirect_uri.is_empty() {
            client
                .redirect_uri_list()
                .into_iter()
                .next()
                .unwrap_or_default()
        } else {
            p.redirect_uri.clone()
        };
        if !approve {
            return Ok(Some(Decided {
                pending: p,
                code: None,
                redirect_uri,
            }));
        }
        let scope =
            ScopeSet::parse(&p.scope).map_err(|_| AppError::Internal("stored scope".into()))?;
        let resources = crate::oauth::resource::from_column(&p.resource);
        super::remember(
            conn,
            &p.user_id,
            &p.client_id,
            client.org_id.as_deref(),
            &super::Remembered {
                scope: scope.clone(),
                resources: resources.clone(),
            },
            now,
        )?;
        let code = codes::issue(
            conn,
            &NewCode {
                client_id: &p.client_id,
                user_id: &p.user_id,
                redirect_uri: &p.redirect_uri,
                scope: &scope,
                code_challenge: &p.code_challenge,
                resources: &resources,
                nonce: p.nonce.as_deref(),
                auth_time: p.auth_time.unwrap_or(session.created_at),
            },
            ctx.settings.code_ttl_seconds,
            now,
        )?;
        Ok(Some(Decided {
            pending: p,
            code: Some(code),
            redirect_uri,
        }))
    })
}

/// Withdraws the user's consent for a client: the consent goes and every token of it is
/// inactive from the next request on. False when there was no consent.
pub fn withdraw(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    user_id: &str,
    client_id: &str,
) -> Result<bool, AppError> {
    let removed = write_tx(conn, |conn| {
        super::revoke(conn, user_id, client_id, ctx.now)
    })?;
    ctx.tokens_changed();
    if removed {
        ctx.revoked(crate::metrics::Revocation::Consent);
    }
    Ok(removed)
}

/// The apps a user has authorized (`/account/apps`), most recent first. An unverified
/// client (self-registered, or a client ID metadata document: docs/spec.md §6, §8) comes
/// with `unverified` set and no `client_uri`: nobody vouches for the homepage it claims.
pub fn apps(conn: &mut DbConnection, user_id: &str) -> Result<Vec<super::AuthorizedApp>, AppError> {
    let mut apps = super::apps_of(conn, user_id)?;
    for app in &mut apps {
        app.unverified = crate::clients::metadata_document::looks_like_url(&app.client_id)
            || crate::clients::open_registration::is_open(conn, &app.client_id)?;
        if app.unverified {
            app.client_uri = None;
        }
    }
    Ok(apps)
}
