//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), as
//! operations: [`register`] for an actor of an organization, and [`managed`] →
//! [`read`]/[`update`]/[`delete`] for the holder of a registration access token. They
//! reuse `clients::ops`, so a registered client obeys the same rules and audit as one
//! made on the pages or over `/api/v1`. Invalid metadata is [`OpError::Invalid`]
//! (`invalid_client_metadata`) or [`OpError::InvalidRedirectUri`] (`invalid_redirect_uri`),
//! RFC 7591 §3.2.2.

use serde::Deserialize;

use super::store::{self, ClientRow};
use super::{NewClient, default_scope, ops, outside};
use crate::app::Ctx;
use crate::db::DbConnection;
use crate::error::OpError;
use crate::orgs::{Actor, Role};
use crate::scope::{Catalogue, MANAGEMENT_SCOPE, ScopeSet};

/// RFC 7591 §2 client metadata (what we understand of it; the rest is ignored).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = RegistrationMetadata)]
pub struct Metadata {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub client_uri: Option<String>,
    #[serde(default)]
    pub logo_uri: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    /// `true` registers a resource server: a confidential client that may introspect
    /// tokens and verify keys (docs/spec.md §8). It cannot change on update.
    #[serde(default)]
    pub resource_server: Option<bool>,
    /// RFC 8707 resource URIs of a resource server (absolute, no fragment, each owned by
    /// one resource server; docs/spec.md §8), validated as on `/api/v1/clients`. Omitted
    /// on update: unchanged.
    #[serde(default)]
    pub resources: Option<Vec<String>>,
    /// RP-Initiated Logout 1.0 §3 (docs/spec.md §9), validated like `redirect_uris`.
    #[serde(default)]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// OpenID Connect Dynamic Client Registration 1.0 §2: `RS256` (default), `ES256` or
    /// `EdDSA`; anything else is `invalid_client_metadata`.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    /// RFC 7591 §2 JWK set of a `private_key_jwt` client (RFC 7523 §2.2): public
    /// signing keys (ES256, RS256, EdDSA); validated by `clients::jwks::validate`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// RFC 7591 §2: where a `private_key_jwt` client publishes its JWK set (`https`,
    /// fetched under the SSRF guard; excludes `jwks`; docs/spec.md §8).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// RFC 7592 §2.2: present on update.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
}

impl Metadata {
    /// Whether the client is public (`none`), else confidential (a secret, or
    /// `private_key_jwt` with `jwks` or `jwks_uri`, RFC 7523 §2.2).
    pub fn public(&self) -> Result<bool, OpError> {
        let keys = self.private_key_jwt()?;
        match self.token_endpoint_auth_method.as_deref() {
            None | Some("client_secret_basic") | Some("client_secret_post") if !keys => Ok(false),
            Some("private_key_jwt") => Ok(false),
            Some("none") if !keys => Ok(true),
            Some(m @ ("none" | "client_secret_basic" | "client_secret_post")) => {
                Err(OpError::invalid(format!(
                    "jwks: a client using {m} has no keys; jwks or jwks_uri needs token_endpoint_auth_method private_key_jwt."
                )))
            }
            None => Err(OpError::invalid(
                "token_endpoint_auth_method: a client with jwks or jwks_uri must say private_key_jwt.",
            )),
            Some(other) => Err(OpError::invalid(format!(
                "token_endpoint_auth_method {other} is not supported. Valid methods: \
                 client_secret_basic, client_secret_post, none, private_key_jwt."
            ))),
        }
    }

    /// Whether the metadata registers keys (`jwks` or `jwks_uri`, never both);
    /// `private_key_jwt` needs them.
    pub fn private_key_jwt(&self) -> Result<bool, OpError> {
        if self.jwks.is_some() && self.jwks_uri.is_some() {
            return Err(OpError::invalid(
                "jwks_uri: jwks and jwks_uri exclude each other (RFC 7591 section 2).",
            ));
        }
        let keys = self.jwks.is_some() || self.jwks_uri.is_some();
        if self.token_endpoint_auth_method.as_deref() == Some("private_key_jwt") && !keys {
            return Err(OpError::invalid(
                "jwks: token_endpoint_auth_method private_key_jwt needs the client's public keys in jwks or at jwks_uri.",
            ));
        }
        Ok(keys)
    }

    pub(super) fn to_new(&self) -> Result<NewClient, OpError> {
        let grant_types = self
            .grant_types
            .as_deref()
            .map(ops::parse_grant_list)
            .transpose()
            .map_err(OpError::Invalid)?;
        if let Some(rt) = &self.response_types
            && rt.iter().any(|t| t != "code")
        {
            return Err(OpError::invalid("response_types: only code is supported."));
        }
        // RFC 7592 §2.2: an omitted or empty value asks for the server's default.
        let scope = match self.scope.as_deref() {
            None | Some("") => None,
            Some(s) => Some(ScopeSet::parse(s).map_err(|_| {
                OpError::invalid(
                    "scope must be scope names separated by single spaces (RFC 6749 section 3.3).",
                )
            })?),
        };
        Ok(NewClient {
            // RFC 7591 §2: optional; an unnamed client is shown by its client_id.
            name: self.client_name.clone().unwrap_or_default(),
            redirect_uris: self.redirect_uris.clone(),
            public: self.public()?,
            resource_server: self.resource_server.unwrap_or(false),
            grant_types,
            scope,
            org_id: None,
            logo_uri: self.logo_uri.clone(),
            client_uri: self.client_uri.clone(),
            created_by: None,
            resources: self.resources.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            id_token_signed_response_alg: self.id_token_signed_response_alg.clone(),
            jwks: self.jwks.clone(),
            jwks_uri: self.jwks_uri.clone(),
        })
    }
}

/// A registered client: its row, its secret (confidential clients) and its registration
/// access token, both shown only in this answer.
pub struct Registered {
    pub row: ClientRow,
    pub secret: Option<String>,
    pub registration_access_token: String,
}

/// The most a credential acting as `actor` may grant a client: every catalogue scope for
/// an admin, every one but `admin` for a member (docs/spec.md §5).
pub fn ceiling_of(actor: &Actor, catalogue: &Catalogue) -> ScopeSet {
    let names = catalogue
        .names()
        .filter(|s| actor.is_admin() || *s != MANAGEMENT_SCOPE);
    ScopeSet::parse_many(names).unwrap_or_default()
}

/// Holds `new` to `ceiling`: no scope asked for is the default scope within the ceiling
/// (never `admin`, docs/spec.md §1); a catalogue scope outside the ceiling is refused,
/// naming it and the scopes this registration may have. Scopes outside the catalogue are
/// left to `NewClient::validate`, which names them.
pub(super) fn cap(
    new: &mut NewClient,
    ceiling: &ScopeSet,
    catalogue: &Catalogue,
) -> Result<(), OpError> {
    let Some(requested) = &new.scope else {
        let default = default_scope(catalogue);
        let within = default
            .iter()
            .map(|s| s.as_str())
            .filter(|s| ceiling.contains(s));
        new.scope = Some(ScopeSet::parse_many(within).unwrap_or_default());
        return Ok(());
    };
    let known = ScopeSet::parse_many(catalogue.names()).unwrap_or_default();
    let catalogued = ScopeSet::parse_many(
        requested
            .iter()
            .map(|s| s.as_str())
            .filter(|s| known.contains(s)),
    )
    .unwrap_or_default();
    match outside(&catalogued, ceiling) {
        Some(extra) => Err(OpError::invalid(format!(
            "scope: the credential that registered this client cannot grant {extra}. \
             Valid scopes: {ceiling}."
        ))),
        None => Ok(()),
    }
}

/// RFC 7591 §3: registers a client for the actor's organization. The scopes the actor
/// could grant are stored with the registration access token, the most any RFC 7592
/// update may ever grant.
pub fn register(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    meta: &Metadata,
) -> Result<Registered, OpError> {
    let mut new = meta.to_new()?;
    let ceiling = ceiling_of(actor, &ctx.settings.scopes);
    cap(&mut new, &ceiling, &ctx.settings.scopes)?;
    let prefix = &ctx.settings.key_prefix;
    let (row, secret, token) = ops::create_with(conn, ctx, actor, new, |conn, row| {
        store::new_registration_token(conn, &row.id, prefix, &ceiling)
    })?;
    Ok(Registered {
        row,
        secret,
        registration_access_token: token,
    })
}

/// RFC 7592 §2: the client a registration access token manages, and an actor acting for
/// it (the token manages exactly this client, deletion included). `None` when the token
/// does not match the client.
pub fn managed(
    conn: &mut DbConnection,
    client_id: &str,
    token: &str,
) -> Result<Option<(ClientRow, Actor)>, OpError> {
    let Some(row) = store::find_by_registration_token(conn, client_id, token)? else {
        return Ok(None);
    };
    let actor = Actor {
        org_id: row.org_id.clone().unwrap_or_default(),
        user_id: None,
        role: Role::Admin,
        label: format!("registration:{}", row.id),
    };
    Ok(Some((row, actor)))
}

/// RFC 7592 §2.2: replaces the metadata. `client_id` must match; the kind (public or
/// confidential) cannot change; a `client_secret`, if sent, must be the current one. The
/// token acts for no person, so the scope is held to the ceiling stored at registration
/// (none stored: every catalogue scope but `admin`); an omitted scope is the default
/// within it, never a widening.
pub fn update(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    current: &ClientRow,
    meta: &Metadata,
) -> Result<ClientRow, OpError> {
    if meta.client_id.as_deref() != Some(current.id.as_str()) {
        return Err(OpError::invalid(
            "client_id must be present and match the client.",
        ));
    }
    if meta
        .resource_server
        .is_some_and(|rs| rs != current.is_resource_server)
    {
        return Err(OpError::invalid(
            "resource_server cannot change after registration.",
        ));
    }
    if meta.public()? != current.is_public
        || meta.private_key_jwt()? != current.uses_private_key_jwt()
    {
        return Err(OpError::invalid(format!(
            "token_endpoint_auth_method cannot change after registration: it is {}.",
            current.auth_method()
        )));
    }
    if let Some(secret) = &meta.client_secret
        && !store::secret_matches(conn, &current.id, secret, ctx.now)?
    {
        return Err(OpError::invalid("client_secret does not match."));
    }
    let catalogue = &ctx.settings.scopes;
    let ceiling = current
        .registration_scope_ceiling
        .as_deref()
        .and_then(|c| ScopeSet::parse(c).ok())
        .unwrap_or_else(|| default_scope(catalogue));
    let mut new = meta.to_new()?;
    cap(&mut new, &ceiling, catalogue)?;
    if super::open_registration::is_open(conn, &current.id)? {
        super::open_registration::check(meta, &new)?;
    }
    ops::update_row(conn, ctx, actor, current, new)
}

/// RFC 7592 §2.3: deletes the client and everything issued to it.
pub fn delete(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    current: &ClientRow,
) -> Result<(), OpError> {
    ops::delete_row(conn, ctx, &actor.label, current)
}
