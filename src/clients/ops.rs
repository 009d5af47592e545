//! The client operations (docs/spec.md §5): create, list, get, update, rotate the secret,
//! delete. `/api/v1/clients`, the `/developer/clients` pages, RFC 7591/7592 registration
//! (`clients::registration`) and `tessera client create` call these. Members create, read,
//! update and rotate; admins also delete. Another organization's client is 404
//! (docs/security.md I8). Each operation owns its transaction, audit record and cache
//! invalidation.

use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{self, ClientRow};
use super::{GrantType, NewClient};
use crate::app::Ctx;
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;
use crate::orgs::Actor;
use crate::scope::{MANAGEMENT_SCOPE, ScopesInput};

/// Grant type names as JSON lists carry them (`/api/v1/clients`, RFC 7591 `grant_types`).
pub fn parse_grant_list(list: &[String]) -> Result<Vec<GrantType>, String> {
    list.iter()
        .map(|g| GrantType::parse(g).ok_or_else(|| super::unknown_grant(g)))
        .collect()
}

/// A client as `/api/v1/clients` describes it.
#[derive(Debug, Clone, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// Optional (RFC 7591 §2): an unnamed client is shown by its id.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `confidential` (default) or `public`.
    #[serde(rename = "type", default)]
    pub client_type: Option<String>,
    /// `true` makes a resource server: a confidential client that may introspect tokens
    /// and verify keys, and may own `resources` (docs/spec.md §8). Kept on update.
    #[serde(default)]
    pub resource_server: Option<bool>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub scopes: Option<ScopesInput>,
    #[serde(default)]
    pub logo_uri: Option<String>,
    #[serde(default)]
    pub client_uri: Option<String>,
    /// RFC 8707 resource URIs (resource servers only; docs/spec.md §8). Omitted on update:
    /// unchanged.
    #[serde(default)]
    pub resources: Option<Vec<String>>,
    /// RP-Initiated Logout 1.0 §3 (docs/spec.md §9). Omitted on update: unchanged.
    #[serde(default)]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `RS256` (default), `ES256` or `EdDSA` (docs/spec.md §9). Omitted on update: unchanged.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    /// RFC 7517 JWK set: the client authenticates with `private_key_jwt` (RFC 7523 §2.2)
    /// and gets no secret (confidential clients only; docs/spec.md §8). Omitted on
    /// update: unchanged.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    /// RFC 7591 §2: where the client publishes its JWK set instead (`https`; excludes
    /// `jwks`; docs/spec.md §8). Omitted on update: unchanged.
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

impl ClientInput {
    /// The client this input describes, owned by the actor's organization.
    pub fn to_new(&self, actor: &Actor) -> Result<NewClient, OpError> {
        let public = match self.client_type.as_deref().unwrap_or("confidential") {
            "confidential" => false,
            "public" => true,
            _ => return Err(OpError::invalid("type must be confidential or public.")),
        };
        let grant_types = self
            .grant_types
            .as_deref()
            .map(parse_grant_list)
            .transpose()
            .map_err(OpError::Invalid)?;
        Ok(NewClient {
            name: self.name.clone(),
            redirect_uris: self.redirect_uris.clone(),
            public,
            resource_server: self.resource_server.unwrap_or(false),
            grant_types,
            scope: self.scopes.as_ref().map(ScopesInput::parse).transpose()?,
            org_id: Some(actor.org_id.clone()),
            logo_uri: self.logo_uri.clone().filter(|s| !s.is_empty()),
            client_uri: self.client_uri.clone().filter(|s| !s.is_empty()),
            created_by: actor.user_id.clone(),
            resources: self.resources.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            id_token_signed_response_alg: self.id_token_signed_response_alg.clone(),
            jwks: self.jwks.clone(),
            jwks_uri: self.jwks_uri.clone(),
        })
    }
}

/// 403 when a member would give a client `admin`: only admins grant it, to keys and
/// clients alike (docs/spec.md §5).
fn check_grantable(actor: &Actor, valid: &super::ValidClient) -> Result<(), OpError> {
    if !actor.is_admin() && valid.scope.contains(MANAGEMENT_SCOPE) {
        return Err(OpError::Forbidden(
            "Only organization admins may give a client the admin scope.",
        ));
    }
    Ok(())
}

fn audit(
    conn: &mut DbConnection,
    actor: &Actor,
    action: &str,
    client: &ClientRow,
    details: Value,
    now: i64,
) -> diesel::QueryResult<()> {
    actor.audit(conn, action, ("client", &client.id), details, now)
}

/// Registers a client for the actor's organization (any member). Returns it with its
/// secret (confidential clients; the only time the secret exists in plaintext).
pub fn create(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    new: NewClient,
) -> Result<(ClientRow, Option<String>), OpError> {
    create_with(conn, ctx, actor, new, |_, _| Ok(())).map(|(row, secret, ())| (row, secret))
}

/// [`create`], running `also` on the new row inside the same transaction (registration
/// issues its access token there, so a client never exists without it).
pub(super) fn create_with<T>(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    mut new: NewClient,
    also: impl FnOnce(&mut DbConnection, &ClientRow) -> diesel::QueryResult<T>,
) -> Result<(ClientRow, Option<String>, T), OpError> {
    new.org_id = Some(actor.org_id.clone());
    new.created_by = actor.user_id.clone();
    let valid = new.validate_for(ctx.settings)?;
    check_grantable(actor, &valid)?;
    let now = ctx.now;
    write_tx(conn, |conn| -> Result<_, OpError> {
        let (row, secret) = store::insert(conn, &valid, &ctx.settings.key_prefix, now)?;
        audit(
            conn,
            actor,
            "client.created",
            &row,
            json!({"name": row.name}),
            now,
        )?;
        let extra = also(conn, &row)?;
        Ok((row, secret, extra))
    })
}

/// Registers a platform client that belongs to no organization (the CLI without `--org`,
/// e.g. a resource server), audited as done by the CLI.
pub fn create_platform(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    new: NewClient,
) -> Result<(ClientRow, Option<String>), OpError> {
    let valid = new.validate_for(ctx.settings)?;
    let now = ctx.now;
    write_tx(conn, |conn| -> Result<_, OpError> {
        let (row, secret) = store::insert(conn, &valid, &ctx.settings.key_prefix, now)?;
        crate::audit::record(
            conn,
            &crate::audit::Event {
                org_id: None,
                actor: "cli",
                action: "client.created",
                target_type: "client",
                target_id: &row.id,
                details: json!({"name": row.name}),
            },
            now,
        )?;
        Ok((row, secret))
    })
}

/// The organization's clients.
pub fn list(conn: &mut DbConnection, actor: &Actor) -> Result<Vec<ClientRow>, OpError> {
    Ok(store::list(conn, &actor.org_id)?)
}

/// One client of the actor's organization; another organization's is 404.
pub fn get(conn: &mut DbConnection, actor: &Actor, id: &str) -> Result<ClientRow, OpError> {
    store::find_in_org(conn, &actor.org_id, id)?.ok_or(OpError::NotFound("client"))
}

/// Replaces a client's metadata (any member); its kind (public, confidential, resource
/// server), organization and creator stay.
pub fn update(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: &str,
    new: NewClient,
) -> Result<ClientRow, OpError> {
    let current = get(conn, actor, id)?;
    update_row(conn, ctx, actor, &current, new)
}

/// [`update`] of a client already found (RFC 7592: the client its registration access
/// token manages, of an organization or none).
pub(super) fn update_row(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    current: &ClientRow,
    mut new: NewClient,
) -> Result<ClientRow, OpError> {
    let id = current.id.as_str();
    new.public = current.is_public;
    new.resource_server = current.is_resource_server;
    new.org_id = current.org_id.clone();
    new.created_by = current.created_by.clone();
    if new.resources.is_none() {
        new.resources = Some(current.resource_list());
    }
    if new.post_logout_redirect_uris.is_none() {
        new.post_logout_redirect_uris = Some(current.post_logout_redirect_uri_list());
    }
    if new.id_token_signed_response_alg.is_none() {
        new.id_token_signed_response_alg = Some(current.id_token_signed_response_alg.clone());
    }
    // The authentication method never changes: a client with keys keeps keys (a new set
    // replaces them), a client with a secret never gets keys.
    // `jwks` and `jwks_uri` are one method: either replaces the other.
    let has_keys = current.jwks.is_some() || current.jwks_uri.is_some();
    match (new.jwks.is_some() || new.jwks_uri.is_some(), has_keys) {
        (true, false) => {
            return Err(OpError::invalid(
                "jwks: the client authenticates with a secret; its method cannot change.",
            ));
        }
        (false, true) => {
            new.jwks = current
                .jwks
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok());
            new.jwks_uri = current.jwks_uri.clone();
        }
        _ => {}
    }
    let valid = new.validate_for(ctx.settings)?;
    check_grantable(actor, &valid)?;
    let now = ctx.now;
    let row = write_tx(conn, |conn| {
        store::update(conn, id, &valid, now)?;
        let row = store::find(conn, id)?.ok_or(OpError::NotFound("client"))?;
        audit(
            conn,
            actor,
            "client.updated",
            &row,
            json!({"name": row.name}),
            now,
        )?;
        Ok::<_, OpError>(row)
    })?;
    // This instance's cached credential carries a resource server's resources
    // (docs/spec.md §8); other instances' expire within `--cache-ttl-ms`.
    ctx.client_changed(&row.id);
    Ok(row)
}

/// Every client, platform clients included, newest first (the operator's `tessera client
/// list`; no HTTP route lists across organizations).
pub fn list_all(conn: &mut DbConnection) -> Result<Vec<ClientRow>, OpError> {
    Ok(store::list_all(conn)?)
}

/// A platform client (one of no organization, made by `tessera client create` without
/// `--org`); an organization's client is 404 here.
pub fn get_platform(conn: &mut DbConnection, id: &str) -> Result<ClientRow, OpError> {
    store::find(conn, id)?
        .filter(|row| row.org_id.is_none())
        .ok_or(OpError::NotFound("client"))
}

/// Records `action` on `client` by the actor labelled `label`, in the client's
/// organization's log (none for a platform client).
fn audit_as(
    conn: &mut DbConnection,
    label: &str,
    action: &str,
    client: &ClientRow,
    details: Value,
    now: i64,
) -> diesel::QueryResult<()> {
    crate::audit::record(
        conn,
        &crate::audit::Event {
            org_id: client.org_id.as_deref(),
            actor: label,
            action,
            target_type: "client",
            target_id: &client.id,
            details,
        },
        now,
    )
}

/// Deletes a client (admins): its codes, grants, refresh and access tokens die with it,
/// here from the next request on.
pub fn delete(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: &str,
) -> Result<(), OpError> {
    let row = get(conn, actor, id)?;
    actor.require_admin()?;
    delete_row(conn, ctx, &actor.label, &row)
}

/// [`delete`] for a platform client, done by the CLI.
pub fn delete_platform(conn: &mut DbConnection, ctx: &Ctx<'_>, id: &str) -> Result<(), OpError> {
    let row = get_platform(conn, id)?;
    delete_row(conn, ctx, "cli", &row)
}

/// Deletes a client already found, audited as done by `label`.
pub(super) fn delete_row(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    label: &str,
    row: &ClientRow,
) -> Result<(), OpError> {
    write_tx(conn, |conn| -> Result<_, OpError> {
        audit_as(
            conn,
            label,
            "client.deleted",
            row,
            json!({"name": row.name}),
            ctx.now,
        )?;
        store::delete(conn, &row.id)?;
        Ok(())
    })?;
    ctx.client_changed(&row.id);
    Ok(())
}

/// Rotates a confidential client's secret (any member); the old one keeps working for
/// `overlap` seconds (`0..=30 days`). Returns the new secret and when the old one stops.
pub fn rotate_secret(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: &str,
    overlap: i64,
) -> Result<(String, i64), OpError> {
    let overlap = crate::api_keys::ops::check_overlap(overlap)?;
    let row = get(conn, actor, id)?;
    rotate_row(conn, ctx, &actor.label, &row, overlap)
}

/// [`rotate_secret`] for a platform client (e.g. a resource server), done by the CLI.
pub fn rotate_platform_secret(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    id: &str,
    overlap: i64,
) -> Result<(String, i64), OpError> {
    let overlap = crate::api_keys::ops::check_overlap(overlap)?;
    let row = get_platform(conn, id)?;
    rotate_row(conn, ctx, "cli", &row, overlap)
}

fn rotate_row(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    label: &str,
    row: &ClientRow,
    overlap: i64,
) -> Result<(String, i64), OpError> {
    if row.is_public {
        return Err(OpError::invalid("A public client has no secret."));
    }
    if row.uses_private_key_jwt() {
        return Err(OpError::invalid(
            "A private_key_jwt client has no secret: it registers keys (jwks) instead.",
        ));
    }
    let now = ctx.now;
    let rotated = write_tx(conn, |conn| -> Result<_, OpError> {
        let (secret, old_end) =
            store::rotate_secret(conn, &row.id, &ctx.settings.key_prefix, overlap, now)?;
        audit_as(
            conn,
            label,
            "client.secret_rotated",
            row,
            json!({"old_secret_expires_at": old_end}),
            now,
        )?;
        Ok((secret, old_end))
    })?;
    ctx.client_changed(&row.id);
    Ok(rotated)
}
