//! The token endpoint (RFC 6749 §3.2, §4.4, §5): request parsing, per-client grant and
//! scope policy, and the RFC 6749 §5.1 response.

use serde::Serialize;

use super::client_auth::{self, Presented};
use super::form::StrictForm;
use super::resource::{self, Credential};
use super::{codes, refresh};
use crate::api_keys::cache::{CredentialCache, Health};
use crate::clients::GrantType;
use crate::clients::store::ClientRow;
use crate::clock::Timestamp;
use crate::config::Settings;
use crate::db::DbConnection;
use crate::error::{AppError, ErrorCode, OAuthError};
use crate::scope::ScopeSet;
use crate::tokens::jwt::{AccessTokenRequest, issue_access_token};
use crate::tokens::keys::Keystore;

/// A token request after parsing: one variant per grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: String,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<ScopeSet>,
    },
    ClientCredentials {
        scope: Option<ScopeSet>,
    },
    /// RFC 8628 §3.4.
    DeviceCode {
        device_code: String,
    },
}

impl TokenRequest {
    /// The grant this request uses.
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
            Self::DeviceCode { .. } => GrantType::DeviceCode,
        }
    }
}

/// What issuing needs besides the database.
#[derive(Debug, Clone, Copy)]
pub struct Issuing<'a> {
    pub settings: &'a Settings,
    pub issuer: &'a str,
    pub audience: &'a str,
    pub keys: &'a Keystore,
    pub now: Timestamp,
    /// SQLite's group-commit writer for the grant transactions (`None`: `write_tx`).
    pub group_commit: Option<&'a crate::db::group_commit::GroupCommit>,
}

impl Issuing<'_> {
    /// What a client assertion is checked against (RFC 7523 §3).
    pub fn assertion(&self) -> super::client_assertion::Expect<'_> {
        super::client_assertion::Expect::at(self.issuer, self.settings, self.now)
    }
}

/// RFC 6749 §5.1.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    /// OpenID Connect Core §3.1.3.3: with `openid` in the scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// Parameters that carry credentials or grants: never accepted in the query string
/// (RFC 6749 §2.3.1, §3.2; docs/security.md D7).
pub const SENSITIVE_PARAMS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "code",
    "code_verifier",
    "refresh_token",
    "client_id",
    "grant_type",
    "scope",
    "redirect_uri",
    "device_code",
];

/// The refusal of a grant parameter whose value has a character outside VSCHAR
/// (RFC 6749 Appendix A): the code of that parameter, never "not valid form encoding".
fn unprintable(code: ErrorCode) -> OAuthError {
    OAuthError::new(
        code,
        "A parameter value has characters outside RFC 6749's VSCHAR.",
    )
}

/// A required parameter: `bad` when its value is not VSCHAR, `invalid_request` when absent.
fn required<'f>(
    form: &'f StrictForm,
    name: &str,
    bad: ErrorCode,
    missing: &'static str,
) -> Result<&'f str, OAuthError> {
    if form.is_unprintable(name) {
        return Err(unprintable(bad));
    }
    form.get(name)
        .ok_or_else(|| OAuthError::invalid_request(missing))
}

/// RFC 6749 §3.3: a scope outside `scope-token *( SP scope-token )` with NQCHAR tokens
/// (non-ASCII included) is `invalid_scope`.
fn parse_scope(form: &StrictForm) -> Result<Option<ScopeSet>, OAuthError> {
    if form.is_unprintable("scope") {
        return Err(unprintable(ErrorCode::InvalidScope));
    }
    form.get("scope")
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "The scope is malformed."))
}

/// Parses the body into a request (after client credentials were read from it). The error
/// of each parameter (docs/security.md D8, D10, J1–J4): repeated anything →
/// `invalid_request`; a missing parameter → `invalid_request`; a `grant_type` we do not
/// know, whatever its characters → `unsupported_grant_type` (RFC 6749 §5.2); a malformed
/// `scope` → `invalid_scope`; a `code`, `code_verifier`, `redirect_uri` or
/// `refresh_token` that cannot match anything issued → `invalid_grant`. Parameters the
/// grant does not use are ignored (RFC 6749 §3.2).
pub fn parse(form: &StrictForm) -> Result<TokenRequest, OAuthError> {
    // RFC 8707 §2: `resource` may repeat (read by `resource::requested`); nothing else may.
    if form.repeated_except(&["resource"]).is_some() {
        return Err(OAuthError::invalid_request("A parameter is repeated."));
    }
    if form.is_unprintable("grant_type") {
        return Err(unprintable(ErrorCode::UnsupportedGrantType));
    }
    match form.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is missing.")),
        Some("client_credentials") => Ok(TokenRequest::ClientCredentials {
            scope: parse_scope(form)?,
        }),
        Some("authorization_code") => {
            let code = required(form, "code", ErrorCode::InvalidGrant, "code is missing.")?;
            if form.is_unprintable("redirect_uri") {
                return Err(unprintable(ErrorCode::InvalidGrant));
            }
            let code_verifier = required(
                form,
                "code_verifier",
                ErrorCode::InvalidGrant,
                "code_verifier is missing (PKCE is required).",
            )?;
            Ok(TokenRequest::AuthorizationCode {
                code: code.to_string(),
                redirect_uri: form.get("redirect_uri").map(str::to_string),
                code_verifier: code_verifier.to_string(),
            })
        }
        Some("refresh_token") => Ok(TokenRequest::RefreshToken {
            refresh_token: required(
                form,
                "refresh_token",
                ErrorCode::InvalidGrant,
                "refresh_token is missing.",
            )?
            .to_string(),
            scope: parse_scope(form)?,
        }),
        Some(crate::clients::DEVICE_CODE_GRANT) => Ok(TokenRequest::DeviceCode {
            device_code: required(
                form,
                "device_code",
                ErrorCode::InvalidGrant,
                "device_code is missing.",
            )?
            .to_string(),
        }),
        Some(_) => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "This grant type is not supported.",
        )),
    }
}

/// The scope to grant: the request's if it stays within the client's registration and the
/// catalogue, else `invalid_scope`; without a request, everything the client may have.
pub(super) fn granted_scope(
    client: &ClientRow,
    requested: Option<ScopeSet>,
    settings: &Settings,
) -> Result<ScopeSet, OAuthError> {
    let registered = ScopeSet::parse(&client.scope)
        .map_err(|_| AppError::Internal("stored scope is malformed".into()))?;
    match requested {
        None => Ok(registered),
        Some(req) if req.allowed_by(&registered) && settings.scopes.check(&req).is_ok() => Ok(req),
        Some(_) => Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "The requested scope is not allowed for this client.",
        )),
    }
}

/// The audiences for a token of the grant that `credential` belongs to (RFC 8707 §2.2),
/// decided before anything is consumed; `None` when the credential is not the client's.
fn grant_audiences(
    conn: &mut DbConnection,
    ctx: Issuing<'_>,
    credential: Credential<'_>,
    client_id: &str,
    requested: &[String],
) -> Result<Option<Vec<String>>, OAuthError> {
    match resource::of_credential(conn, credential, client_id)? {
        Some(granted) => {
            resource::audiences(conn, ctx.issuer, ctx.audience, requested, &granted).map(Some)
        }
        None => Ok(None),
    }
}

/// Authenticates the client and runs the grant. Everything a 200 reports is decided here.
/// `resources` are the request's RFC 8707 `resource` values ([`resource::requested`]);
/// a client authenticated by its secret is remembered in `cache` when given
/// ([`client_credentials_cached`] reads it).
pub fn exchange(
    conn: &mut DbConnection,
    ctx: Issuing<'_>,
    cache: Option<&CredentialCache>,
    presented: &Presented,
    request: TokenRequest,
    resources: &[String],
) -> Result<TokenResponse, OAuthError> {
    let client = client_auth::authenticate_remembered(conn, cache, presented, ctx.assertion())?;
    match request {
        TokenRequest::ClientCredentials { scope } => {
            let audiences = resource::audiences(conn, ctx.issuer, ctx.audience, resources, &[])?;
            client_credentials(ctx, &client, scope, &audiences)
        }
        TokenRequest::DeviceCode { device_code } => {
            require_grant(&client, GrantType::DeviceCode)?;
            super::device::exchange(conn, ctx, &client, &device_code, resources)
        }
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            require_grant(&client, GrantType::AuthorizationCode)?;
            let audiences =
                grant_audiences(conn, ctx, Credential::Code(&code), &client.id, resources)?;
            let refresh = client
                .grant_type_list()
                .contains(&GrantType::RefreshToken)
                .then(|| {
                    (
                        ctx.settings.key_prefix.clone(),
                        refresh_policy(ctx.settings),
                    )
                });
            let client_id = client.id.clone();
            let now = ctx.now;
            let (r, refresh_token) = super::commit_grant(ctx.group_commit, conn, move |conn| {
                let r = codes::redeem(
                    conn,
                    &code,
                    &client_id,
                    redirect_uri.as_deref(),
                    &code_verifier,
                    now,
                )
                .map_err(Refusal::from)?;
                let refresh_token = match refresh {
                    Some((prefix, policy)) => {
                        let scope = r.scope.to_string();
                        let family = refresh::Family {
                            grant_id: &r.grant_id,
                            client_id: &client_id,
                            user_id: Some(&r.user_id),
                            scope: &scope,
                            absolute_expires_at: 0,
                        };
                        Some(
                            refresh::issue_first(conn, &prefix, family, policy, now)
                                .map_err(|e| Refusal::Abort(e.into()))?,
                        )
                    }
                    None => None,
                };
                Ok((r, refresh_token))
            })?;
            let audiences = audiences.unwrap_or_else(|| vec![ctx.audience.to_string()]);
            let openid = OpenId {
                nonce: r.nonce.as_deref(),
                auth_time: r.auth_time,
            };
            let scope = r.scope.clone();
            let response = respond(
                ctx,
                &client,
                &r.user_id,
                r.scope,
                refresh_token,
                Some(&r.grant_id),
                &audiences,
            )?;
            with_id_token(conn, ctx, &client, &r.user_id, &scope, openid, response)
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
        } => {
            require_grant(&client, GrantType::RefreshToken)?;
            let audiences = grant_audiences(
                conn,
                ctx,
                Credential::RefreshToken(&refresh_token),
                &client.id,
                resources,
            )?;
            let (prefix, policy) = (
                ctx.settings.key_prefix.clone(),
                refresh_policy(ctx.settings),
            );
            let client_id = client.id.clone();
            let now = ctx.now;
            let r = super::commit_grant(ctx.group_commit, conn, move |conn| {
                refresh::rotate(
                    conn,
                    &prefix,
                    &refresh_token,
                    &client_id,
                    scope,
                    policy,
                    now,
                )
                .map_err(Refusal::from)
            })?;
            let subject = r.user_id.clone().unwrap_or_else(|| client.id.clone());
            let audiences = audiences.unwrap_or_else(|| vec![ctx.audience.to_string()]);
            let scope = r.scope.clone();
            let response = respond(
                ctx,
                &client,
                &subject,
                r.scope,
                Some(r.refresh_token),
                Some(&r.grant_id),
                &audiences,
            )?;
            match &r.user_id {
                // OpenID Connect Core §12.2: the original `auth_time`, no `nonce`.
                Some(user_id) => {
                    let openid = OpenId {
                        nonce: None,
                        auth_time: crate::oidc::claims::grant_auth_time(conn, &r.grant_id)?,
                    };
                    with_id_token(conn, ctx, &client, user_id, &scope, openid, response)
                }
                None => Ok(response),
            }
        }
    }
}

/// Why a grant transaction ended without tokens.
pub(super) enum Refusal {
    /// A protocol refusal. Its writes commit: a consumed code stays consumed, and the
    /// revocation that follows a replayed code or refresh token must survive the error
    /// it causes (docs/security.md C1, E2).
    Refuse(OAuthError),
    /// A server-side failure: everything rolls back.
    Abort(OAuthError),
}

impl From<OAuthError> for Refusal {
    fn from(e: OAuthError) -> Self {
        if e.cause.is_some() {
            Self::Abort(e)
        } else {
            Self::Refuse(e)
        }
    }
}

impl From<diesel::result::Error> for Refusal {
    fn from(e: diesel::result::Error) -> Self {
        Self::Abort(e.into())
    }
}

/// Runs a grant in a write transaction that commits protocol refusals and rolls back
/// failures.
pub(super) fn commit_refusals<F>(conn: &mut DbConnection, f: F) -> Result<TokenResponse, OAuthError>
where
    F: FnOnce(&mut DbConnection) -> Result<TokenResponse, Refusal>,
{
    crate::db::write_tx(conn, |conn| match f(conn) {
        Ok(response) => Ok(Ok(response)),
        Err(Refusal::Refuse(e)) => Ok(Err(e)),
        Err(Refusal::Abort(e)) => Err(e),
    })?
}

pub(super) fn refresh_policy(s: &Settings) -> refresh::Policy {
    refresh::Policy {
        idle_ttl: s.refresh_idle_ttl_seconds,
        absolute_ttl: s.refresh_absolute_ttl_seconds,
        grace: s.refresh_grace_seconds,
    }
}

pub(super) fn require_grant(client: &ClientRow, grant: GrantType) -> Result<(), OAuthError> {
    if client.grant_type_list().contains(&grant) {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "This client may not use this grant type.",
        ))
    }
}

/// Signs the access token and shapes the RFC 6749 §5.1 response.
pub(super) fn respond(
    ctx: Issuing<'_>,
    client: &ClientRow,
    subject: &str,
    scope: ScopeSet,
    refresh_token: Option<String>,
    grant_id: Option<&str>,
    audiences: &[String],
) -> Result<TokenResponse, OAuthError> {
    let scope = scope.to_string();
    let lifetime = ctx.settings.access_token_ttl_seconds;
    let req = AccessTokenRequest {
        issuer: ctx.issuer,
        audience: audiences,
        subject,
        client_id: &client.id,
        scope: &scope,
        lifetime,
        grant_id,
    };
    let (access_token, _) = issue_access_token(ctx.keys, &req, ctx.now).map_err(AppError::from)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: lifetime,
        refresh_token,
        scope,
        id_token: None,
    })
}

/// What an ID token carries from the authorization request.
#[derive(Debug, Clone, Copy)]
pub(super) struct OpenId<'a> {
    pub(super) nonce: Option<&'a str>,
    pub(super) auth_time: Option<Timestamp>,
}

/// Adds the ID token (docs/spec.md §9) when `scope` has `openid`.
pub(super) fn with_id_token(
    conn: &mut DbConnection,
    ctx: Issuing<'_>,
    client: &ClientRow,
    user_id: &str,
    scope: &ScopeSet,
    openid: OpenId<'_>,
    mut response: TokenResponse,
) -> Result<TokenResponse, OAuthError> {
    if !scope.contains(crate::oidc::OPENID) {
        return Ok(response);
    }
    let profile = crate::oidc::claims::for_scope(conn, user_id, scope)?;
    let request = crate::oidc::id_token::IdTokenRequest {
        issuer: ctx.issuer,
        client_id: &client.id,
        user_id,
        access_token: &response.access_token,
        nonce: openid.nonce,
        auth_time: openid.auth_time,
        lifetime: ctx.settings.access_token_ttl_seconds,
        alg: client.id_token_alg(),
        profile,
    };
    response.id_token =
        Some(crate::oidc::id_token::issue(ctx.keys, request, ctx.now).map_err(AppError::from)?);
    Ok(response)
}

/// RFC 6749 §4.4: a confidential client acting for itself. `sub` is the client id (its
/// `cli_` prefix keeps it apart from user ids) and no refresh token is issued (§4.4.3).
/// RFC 6749 §4.4 without the database: the client authenticated with this id and secret
/// within `--cache-ttl-ms` (`CredentialCache::client`, voided at once on this instance by
/// a secret rotation, a client update or deletion, and through the change poll on the
/// others), no RFC 8707 `resource` requested (those are checked against the database).
/// `None` when the request does not qualify or the client is not cached: the caller runs
/// [`exchange`].
pub fn client_credentials_cached(
    ctx: Issuing<'_>,
    cache: &CredentialCache,
    health: &Health,
    presented: &Presented,
    request: &TokenRequest,
    resources: &[String],
) -> Option<Result<TokenResponse, OAuthError>> {
    let TokenRequest::ClientCredentials { scope } = request else {
        return None;
    };
    if !resources.is_empty() {
        return None;
    }
    let client = cache.client(presented.client_id(), presented.secret()?, health, ctx.now)?;
    let audiences = [ctx.audience.to_string()];
    Some(client_credentials(ctx, &client, scope.clone(), &audiences))
}

fn client_credentials(
    ctx: Issuing<'_>,
    client: &ClientRow,
    scope: Option<ScopeSet>,
    audiences: &[String],
) -> Result<TokenResponse, OAuthError> {
    if client.is_public
        || !client
            .grant_type_list()
            .contains(&GrantType::ClientCredentials)
    {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "This client may not use this grant type.",
        ));
    }
    let scope = granted_scope(client, scope, ctx.settings)?;
    respond(ctx, client, &client.id, scope, None, None, audiences)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(s: &str) -> StrictForm {
        StrictForm::parse(s.as_bytes()).expect("form")
    }

    #[test]
    fn d8_unknown_and_forbidden_grants_are_unsupported() {
        for g in [
            "password",
            "implicit",
            "foo",
            "urn:ietf:params:oauth:grant-type:device_code:x",
        ] {
            let e = parse(&form(&format!("grant_type={g}"))).expect_err(g);
            assert_eq!(e.code, ErrorCode::UnsupportedGrantType, "{g}");
        }
        assert_eq!(
            parse(&form("scope=a")).expect_err("missing").code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn j1_repeated_token_parameters_are_invalid_requests() {
        let e = parse(&form(
            "grant_type=client_credentials&grant_type=client_credentials",
        ))
        .expect_err("dup");
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn d10_malformed_scope_is_invalid_scope() {
        let e = parse(&form("grant_type=client_credentials&scope=a++b")).expect_err("double space");
        assert_eq!(e.code, ErrorCode::InvalidScope);
        assert_eq!(
            parse(&form("grant_type=client_credentials&scope=b+a")).expect("ok"),
            TokenRequest::ClientCredentials {
                scope: Some(ScopeSet::parse("a b").expect("scope"))
            }
        );
    }
}
