//! The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3), validated by oxide-auth's
//! `Authorization` state machine, driven here step by step with our own registrar (clients
//! in the database, exact redirect matching with the RFC 8252 loopback-port exception) and
//! our own PKCE rules (S256 only, required for every client). oxide-auth decides what is
//! answered with an error page (unknown client, unregistered redirect URI: `Ignore`) and
//! what goes back to the client as `error=...` (`Redirect`).
//!
//! We drive the state machine instead of `authorization_code()` because that function
//! wants an `Endpoint` with an `Authorizer`, which issues the code in the same request; our
//! code is issued only after the consent form, in another request.

use std::borrow::Cow;
use std::cell::RefCell;

use oxide_auth::code_grant::authorization::{
    Authorization, Error as OxError, ErrorUrl, Input, Output, Request,
};
use oxide_auth::code_grant::error::AuthorizationErrorType;
use oxide_auth::primitives::grant::{Extensions, Value};
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, ExactUrl, PreGrant, RegisteredUrl, RegistrarError,
};
use url::Url;

use super::form::StrictForm;
use crate::clients::store::{self, ClientRow};
use crate::clients::{GrantType, redirect_uri};
use crate::db::DbConnection;
use crate::error::AppError;
use crate::scope::{Catalogue, ScopeSet};

/// The query of `GET /oauth/authorize`, as oxide-auth reads it.
pub struct AuthorizeQuery {
    form: Option<StrictForm>,
}

impl AuthorizeQuery {
    pub fn parse(query: &str) -> Self {
        Self {
            form: StrictForm::parse(query.as_bytes()).ok(),
        }
    }
    /// The `client_id`, when it was sent exactly once.
    pub fn client_id_param(&self) -> Option<&str> {
        let form = self.form.as_ref()?;
        if form.is_repeated("client_id") {
            return None;
        }
        form.get("client_id")
    }
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.form.as_ref()?.get(name).map(Cow::Borrowed)
    }
    /// Names why a request that cannot be bound to a client is malformed (docs/spec.md §6).
    fn malformed(&self) -> &'static str {
        let Some(form) = &self.form else {
            return "The request is malformed: the query is not valid form encoding.";
        };
        if form.is_repeated("client_id") {
            "The request is malformed: client_id is repeated."
        } else if form.is_unprintable("client_id") {
            "The request is malformed: client_id has characters outside printable ASCII."
        } else if form.get("client_id").is_none() {
            "The request is malformed: client_id is missing."
        } else if form.is_repeated("redirect_uri") {
            "The request is malformed: redirect_uri is repeated."
        } else if form.is_unprintable("redirect_uri") {
            "The request is malformed: redirect_uri has characters outside printable ASCII."
        } else {
            "The request is malformed: client_id or redirect_uri is not valid."
        }
    }
    /// RFC 8707 §2: the `resource` values, well-formed, or `None` when one is not.
    fn resources(&self) -> Option<Vec<String>> {
        match &self.form {
            Some(f) => super::resource::requested(f).ok(),
            None => Some(Vec::new()),
        }
    }
}

/// The parameters that identify where an answer may go. Repeated or unprintable, they
/// cannot be verified: an error page, never a redirect (RFC 6749 §4.1.2.1,
/// docs/security.md A3, J1).
const BINDING: [&str; 2] = ["client_id", "redirect_uri"];

/// Parameters this endpoint reads once the client and redirect URI are verified; a value
/// outside VSCHAR in any of them is refused by redirect. Others are ignored (RFC 6749
/// §3.1).
const READ_AFTER_BINDING: [&str; 10] = [
    "resource",
    "response_type",
    "nonce",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "request",
    "request_uri",
];

/// The error sent back to a verified redirect URI (RFC 6749 §4.1.2.1, OpenID Connect Core
/// §3.1.2.6 for `request_not_supported` and `request_uri_not_supported`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectError {
    InvalidRequest,
    InvalidScope,
    UnsupportedResponseType,
    RequestNotSupported,
    RequestUriNotSupported,
    /// RFC 8707 §2: a malformed or unknown `resource`.
    InvalidTarget,
}

impl RedirectError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::InvalidTarget => "invalid_target",
        }
    }
}

impl AuthorizeQuery {
    /// What is wrong with a request whose client and redirect URI are verified, before
    /// oxide-auth looks at `response_type`, PKCE and `scope`: a repeated parameter
    /// (RFC 6749 §3.1), a request object or `request_uri` (not supported: no PAR, RFC 9101
    /// §5; OpenID Connect Core §6), a `response_mode` other than the one advertised
    /// (`query`, docs/spec.md §3), or a value outside VSCHAR, answered with the code of the
    /// parameter that carries it.
    pub fn refusal(&self) -> Option<RedirectError> {
        let form = self.form.as_ref()?;
        // RFC 8707 §2: `resource` may repeat; nothing else may.
        if form.repeated_except(&["resource"]).is_some() {
            return Some(RedirectError::InvalidRequest);
        }
        // An empty value is an absent parameter (RFC 6749 §3.1).
        let sent = |name: &str| form.get(name).is_some() || form.is_unprintable(name);
        if sent("request") {
            return Some(RedirectError::RequestNotSupported);
        }
        if sent("request_uri") {
            return Some(RedirectError::RequestUriNotSupported);
        }
        if let Some(name) = form.unprintable_among(&READ_AFTER_BINDING) {
            return Some(match name {
                "response_type" => RedirectError::UnsupportedResponseType,
                "scope" => RedirectError::InvalidScope,
                "resource" => RedirectError::InvalidTarget,
                _ => RedirectError::InvalidRequest,
            });
        }
        match form.get("response_mode") {
            None | Some("query") => None,
            Some(_) => Some(RedirectError::InvalidRequest),
        }
    }
}

impl Request for AuthorizeQuery {
    /// Malformed encoding, or a `client_id` or `redirect_uri` that is repeated or not
    /// VSCHAR: the request cannot be tied to a client, so it gets an error page, never a
    /// redirect (docs/security.md J1, A3). Every other fault is answered by redirect once
    /// the client and its redirect URI are verified ([`AuthorizeQuery::refusal`]).
    fn valid(&self) -> bool {
        self.form.as_ref().is_some_and(|f| {
            BINDING
                .iter()
                .all(|n| !f.is_repeated(n) && !f.is_unprintable(n))
        })
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        self.get("client_id")
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        // oxide-auth tolerates runs of spaces; RFC 6749 §3.3 does not. A scope that fails
        // our parser is handed on as one oxide-auth refuses too, so it ends as
        // `invalid_scope` at the (already verified) redirect URI.
        let raw = self.get("scope")?;
        if ScopeSet::parse(&raw).is_ok() {
            Some(raw)
        } else {
            Some(Cow::Borrowed("\""))
        }
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        self.get("redirect_uri")
    }
    /// Echoed in every answer to the client, unless it was repeated (there is no one value
    /// to echo) or not VSCHAR (refused, and then read as absent).
    fn state(&self) -> Option<Cow<'_, str>> {
        if self.form.as_ref().is_some_and(|f| f.is_repeated("state")) {
            return None;
        }
        self.get("state")
    }
    fn response_type(&self) -> Option<Cow<'_, str>> {
        self.get("response_type")
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key)
    }
}

/// A request that passed every check: what the consent page shows and the code binds.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub client: ClientRow,
    /// The redirect URI to send the browser to (the request's, or the only registered one).
    pub redirect_uri: String,
    /// The request's `redirect_uri` exactly as sent, or empty when it was omitted (then the
    /// token request may omit it too, RFC 6749 §4.1.3).
    pub requested_redirect_uri: String,
    pub scope: ScopeSet,
    pub state: Option<String>,
    pub code_challenge: String,
    /// RFC 8707: the resources requested (sorted; empty: none named).
    pub resources: Vec<String>,
    /// OpenID Connect Core §3.1.2.1: echoed in the ID token.
    pub nonce: Option<String>,
}

#[derive(Debug)]
pub enum AuthorizeError {
    /// Answer with an HTML error page and no redirect: the OAuth error code shown on it
    /// (`invalid_client`, `invalid_redirect_uri`, `invalid_request`) and the message.
    Page {
        error: &'static str,
        message: &'static str,
    },
    /// Send the browser back to the client with this error URL (`iss` still to add).
    Redirect(Url),
    /// docs/spec.md §8: the address made too many new clients without a credential; a 429
    /// page (no redirect: the client is not verified), retry after this many seconds.
    TooMany {
        retry_after: i64,
    },
    App(AppError),
}

impl From<AppError> for AuthorizeError {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

const PKCE: &str = "pkce";

/// RFC 7636 §4.2: S256 challenges are BASE64URL(SHA256(verifier)), 43 characters.
fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn redirect_error(req: &AuthorizeQuery, to: Url, kind: AuthorizationErrorType) -> AuthorizeError {
    AuthorizeError::Redirect(ErrorUrl::with_request(req, to, kind).into())
}

/// `error` and `state` on the verified redirect URI (`iss` is added by the caller).
fn refused(req: &AuthorizeQuery, mut to: Url, error: RedirectError) -> AuthorizeError {
    {
        let mut q = to.query_pairs_mut();
        q.append_pair("error", error.code());
        if let Some(state) = req.state() {
            q.append_pair("state", &state);
        }
    }
    AuthorizeError::Redirect(to)
}

struct Registrar<'a> {
    conn: RefCell<&'a mut DbConnection>,
    catalogue: &'a Catalogue,
    client: RefCell<Option<ClientRow>>,
    failure: RefCell<Option<AppError>>,
    /// Why `bound_redirect` refused: the client is unknown (`invalid_client`) or the
    /// redirect URI is not one it registered (`invalid_redirect_uri`).
    unbound: RefCell<&'static str>,
}

impl Registrar<'_> {
    fn bound_redirect<'b>(&self, bound: ClientUrl<'b>) -> Result<BoundClient<'b>, RegistrarError> {
        let found = store::find(&mut self.conn.borrow_mut(), &bound.client_id);
        let client = match found {
            Ok(Some(c)) => c,
            Ok(None) => {
                *self.unbound.borrow_mut() = "invalid_client";
                return Err(RegistrarError::Unspecified);
            }
            Err(e) => {
                *self.failure.borrow_mut() = Some(AppError::from_db(e));
                return Err(RegistrarError::PrimitiveError);
            }
        };
        *self.unbound.borrow_mut() = "invalid_redirect_uri";
        let registered = client.redirect_uri_list();
        let chosen = match &bound.redirect_uri {
            Some(requested) => {
                if !registered
                    .iter()
                    .any(|r| redirect_uri::matches(r, requested.as_str()))
                {
                    return Err(RegistrarError::Unspecified);
                }
                requested.as_ref().clone()
            }
            // Omitted: allowed only when exactly one URI is registered (RFC 6749 §3.1.2.3).
            None => match registered.as_slice() {
                [only] => ExactUrl::new(only.clone()).map_err(|_| RegistrarError::Unspecified)?,
                _ => return Err(RegistrarError::Unspecified),
            },
        };
        *self.client.borrow_mut() = Some(client);
        Ok(BoundClient {
            client_id: bound.client_id,
            redirect_uri: Cow::Owned(RegisteredUrl::Exact(chosen)),
        })
    }

    fn negotiate(
        &self,
        bound: &BoundClient<'_>,
        scope: Option<String>,
    ) -> Result<(PreGrant, ScopeSet), RegistrarError> {
        let client = self.client.borrow();
        let client = client.as_ref().ok_or(RegistrarError::PrimitiveError)?;
        let allowed = ScopeSet::parse(&client.scope).map_err(|_| RegistrarError::PrimitiveError)?;
        let scope = match scope {
            None => allowed,
            Some(s) => {
                let requested = ScopeSet::parse(&s).map_err(|_| RegistrarError::Unspecified)?;
                if requested.is_empty()
                    || !requested.allowed_by(&allowed)
                    || self.catalogue.check(&requested).is_err()
                {
                    return Err(RegistrarError::Unspecified);
                }
                requested
            }
        };
        let oxide_scope = scope
            .to_string()
            .parse()
            .map_err(|_| RegistrarError::PrimitiveError)?;
        let pre = PreGrant {
            client_id: bound.client_id.to_string(),
            redirect_uri: bound.redirect_uri.as_ref().clone(),
            scope: oxide_scope,
        };
        Ok((pre, scope))
    }
}

/// PKCE (RFC 7636 §4.3, §4.4.1): a 43-character S256 challenge is required from every
/// client (docs/security.md §4 policy 1); `plain`, and an absent method (which means plain),
/// are refused.
fn pkce(req: &AuthorizeQuery) -> Result<Extensions, ()> {
    let challenge = req.extension("code_challenge").ok_or(())?;
    if req.extension("code_challenge_method").as_deref() != Some("S256")
        || !valid_challenge(&challenge)
    {
        return Err(());
    }
    let mut ext = Extensions::new();
    ext.set_raw(
        PKCE.to_string(),
        Value::private(Some(challenge.into_owned())),
    );
    Ok(ext)
}

/// Validates an authorization request. Decides error page vs redirect exactly as RFC 6749
/// §4.1.2.1 says: nothing is sent to a redirect URI before the client and the URI are
/// verified.
pub fn validate(
    conn: &mut DbConnection,
    catalogue: &Catalogue,
    req: &AuthorizeQuery,
) -> Result<ValidRequest, AuthorizeError> {
    let registrar = Registrar {
        conn: RefCell::new(conn),
        catalogue,
        client: RefCell::new(None),
        failure: RefCell::new(None),
        unbound: RefCell::new("invalid_request"),
    };
    let mut machine = Authorization::new(req);
    let mut input = Input::None;
    let mut redirect: Option<Url> = None;
    let mut scope_set = None;
    loop {
        let next = match machine.advance(input) {
            Output::Bind {
                client_id,
                redirect_uri,
            } => {
                let url = ClientUrl {
                    client_id: Cow::Owned(client_id),
                    redirect_uri: redirect_uri.map(Cow::Owned),
                };
                match registrar.bound_redirect(url) {
                    Ok(bound) => {
                        let to = bound.redirect_uri.to_url();
                        if let Some(error) = req.refusal() {
                            return Err(refused(req, to, error));
                        }
                        redirect = Some(to);
                        Input::Bound {
                            request: req,
                            bound_client: BoundClient {
                                client_id: Cow::Owned(bound.client_id.into_owned()),
                                redirect_uri: Cow::Owned(bound.redirect_uri.into_owned()),
                            },
                        }
                    }
                    Err(RegistrarError::PrimitiveError) => {
                        let cause = registrar.failure.borrow_mut().take();
                        return Err(AuthorizeError::App(
                            cause.unwrap_or_else(|| AppError::Internal("registrar".into())),
                        ));
                    }
                    Err(RegistrarError::Unspecified) => {
                        let error = *registrar.unbound.borrow();
                        let message = if error == "invalid_client" {
                            "No application is registered with this client_id."
                        } else {
                            "The redirect_uri is missing or is not one the application registered \
                             (it must match a registered URI exactly)."
                        };
                        return Err(AuthorizeError::Page { error, message });
                    }
                }
            }
            Output::Extend => match (pkce(req), &redirect) {
                (Ok(ext), _) => Input::Extended(ext),
                (Err(()), Some(to)) => {
                    return Err(redirect_error(
                        req,
                        to.clone(),
                        AuthorizationErrorType::InvalidRequest,
                    ));
                }
                (Err(()), None) => {
                    return Err(AuthorizeError::Page {
                        error: "invalid_request",
                        message: "The request is malformed.",
                    });
                }
            },
            Output::Negotiate {
                bound_client,
                scope,
            } => {
                let bound = bound_client.clone();
                match registrar.negotiate(&bound, scope.map(|s| s.to_string())) {
                    Ok((pre_grant, set)) => {
                        scope_set = Some(set);
                        Input::Negotiated {
                            pre_grant,
                            state: req.state().map(Cow::into_owned),
                        }
                    }
                    Err(_) => {
                        let to = bound.redirect_uri.to_url();
                        return Err(redirect_error(
                            req,
                            to,
                            AuthorizationErrorType::InvalidScope,
                        ));
                    }
                }
            }
            Output::Ok {
                pre_grant,
                state,
                extensions,
            } => {
                let client = registrar
                    .client
                    .borrow_mut()
                    .take()
                    .ok_or_else(|| AppError::Internal("no client".into()))?;
                let to = pre_grant.redirect_uri.to_url();
                if !client
                    .grant_type_list()
                    .contains(&GrantType::AuthorizationCode)
                {
                    return Err(redirect_error(
                        req,
                        to,
                        AuthorizationErrorType::UnauthorizedClient,
                    ));
                }
                let code_challenge: String = extensions
                    .private()
                    .find_map(|(k, v)| {
                        if k == PKCE {
                            v.map(str::to_string)
                        } else {
                            None
                        }
                    })
                    .ok_or_else(|| AppError::Internal("pkce extension missing".into()))?;
                // docs/security.md B7: a challenge is a one-time value; a client that repeats one
                // is not generating verifiers per request, so the request is refused.
                let reused = {
                    use crate::db::schema::authorization_codes as ac;
                    use diesel::prelude::*;
                    let mut conn = registrar.conn.borrow_mut();
                    ac::table
                        .filter(ac::client_id.eq(&client.id))
                        .filter(ac::code_challenge.eq(&code_challenge))
                        .select(ac::code_hash)
                        .first::<String>(&mut **conn)
                        .optional()
                        .map_err(AppError::from_db)?
                        .is_some()
                };
                if reused {
                    return Err(redirect_error(
                        req,
                        to,
                        AuthorizationErrorType::InvalidRequest,
                    ));
                }
                // Whether they are known is the caller's check (it knows the issuer).
                let Some(resources) = req.resources() else {
                    return Err(refused(req, to, RedirectError::InvalidTarget));
                };
                return Ok(ValidRequest {
                    client,
                    redirect_uri: pre_grant.redirect_uri.as_str().to_string(),
                    requested_redirect_uri: req
                        .redirect_uri()
                        .map(Cow::into_owned)
                        .unwrap_or_default(),
                    scope: scope_set
                        .take()
                        .ok_or_else(|| AppError::Internal("no scope".into()))?,
                    state,
                    code_challenge,
                    resources,
                    nonce: req.get("nonce").map(Cow::into_owned),
                });
            }
            Output::Err(OxError::Ignore) => {
                return Err(AuthorizeError::Page {
                    error: "invalid_request",
                    message: req.malformed(),
                });
            }
            Output::Err(OxError::Redirect(url)) => {
                return Err(AuthorizeError::Redirect(url.into()));
            }
            Output::Err(OxError::PrimitiveError) => {
                let cause = registrar.failure.borrow_mut().take();
                return Err(AuthorizeError::App(cause.unwrap_or_else(|| {
                    AppError::Internal("authorization flow".into())
                })));
            }
        };
        input = next;
    }
}

/// Appends `iss` (RFC 9207) and the given parameters to a redirect URI.
pub fn with_params(mut url: Url, params: &[(&str, &str)]) -> String {
    url.query_pairs_mut().extend_pairs(params.iter().copied());
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b3_only_43_character_base64url_challenges_are_accepted() {
        assert!(valid_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!valid_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!valid_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cMx"
        ));
        assert!(!valid_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
        assert!(!valid_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw=cM"
        ));
    }
}
