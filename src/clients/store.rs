//! Storage of clients and their secrets. Secrets are stored as SHA-256 digests only
//! (docs/security.md §4 policy 6): fast to check, and 256-bit random secrets need no slow hash.

use diesel::prelude::*;

use super::{ClientError, GrantType, ValidClient};
use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::{client_secrets, clients};
use crate::tokens::keys::SigningAlg;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub org_id: Option<String>,
    pub name: String,
    pub is_public: bool,
    pub is_resource_server: bool,
    /// JSON array of strings.
    pub redirect_uris: String,
    /// Space-separated grant type names.
    pub grant_types: String,
    pub scope: String,
    pub logo_uri: Option<String>,
    pub client_uri: Option<String>,
    pub registration_token_hash: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// RFC 7592: the scopes the credential that registered the client could grant,
    /// space-separated; a registration access token never grants more (docs/spec.md §3).
    pub registration_scope_ceiling: Option<String>,
    /// RFC 8707 resource URIs of a resource server, space-separated (ownership is
    /// decided by `client_resources`, docs/spec.md §8).
    pub resources: String,
    /// RP-Initiated Logout 1.0 §3: JSON array of strings.
    pub post_logout_redirect_uris: String,
    /// `RS256`, `ES256` or `EdDSA` (docs/spec.md §9).
    pub id_token_signed_response_alg: String,
    /// The JWK set of a `private_key_jwt` client, canonical JSON (`clients::jwks`).
    pub jwks: Option<String>,
    /// Where a `private_key_jwt` client publishes its JWK set (docs/spec.md §8).
    pub jwks_uri: Option<String>,
}

impl ClientRow {
    /// The registered post-logout redirect URIs (RP-Initiated Logout 1.0 §3).
    pub fn post_logout_redirect_uri_list(&self) -> Vec<String> {
        serde_json::from_str(&self.post_logout_redirect_uris).unwrap_or_default()
    }
    /// The algorithm of this client's ID tokens (docs/spec.md §9); RS256 for a value
    /// this version does not know.
    pub fn id_token_alg(&self) -> SigningAlg {
        SigningAlg::parse(&self.id_token_signed_response_alg).unwrap_or(SigningAlg::RS256)
    }
    /// Whether the client authenticates with `private_key_jwt` (RFC 7523 §2.2): it
    /// registered keys, and has no secret.
    pub fn uses_private_key_jwt(&self) -> bool {
        !self.is_public && (self.jwks.is_some() || self.jwks_uri.is_some())
    }
    /// RFC 7591 §2 `token_endpoint_auth_method`.
    pub fn auth_method(&self) -> &'static str {
        if self.is_public {
            "none"
        } else if self.uses_private_key_jwt() {
            "private_key_jwt"
        } else {
            "client_secret_basic"
        }
    }
    /// The name people see: the client's name, or its id when it registered without one
    /// (RFC 7591 §2: `client_name` is optional; the server may show the client id).
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
    pub fn redirect_uri_list(&self) -> Vec<String> {
        serde_json::from_str(&self.redirect_uris).unwrap_or_default()
    }
    pub fn resource_list(&self) -> Vec<String> {
        crate::oauth::resource::from_column(&self.resources)
    }
    pub fn grant_type_list(&self) -> Vec<GrantType> {
        self.grant_types
            .split(' ')
            .filter_map(GrantType::parse)
            .collect()
    }
}

/// A new client secret: `{prefix}_cs_` + 43 base62 characters (256 bits).
pub fn new_secret(key_prefix: &str) -> String {
    format!("{key_prefix}_cs_{}", crate::crypto::random_base62(43))
}

/// Inserts a validated client; returns its id and, for confidential clients, the secret
/// (plaintext exists only in this return value).
pub fn insert(
    conn: &mut DbConnection,
    client: &ValidClient,
    key_prefix: &str,
    now: Timestamp,
) -> Result<(ClientRow, Option<String>), ClientError> {
    insert_with_id(
        conn,
        &crate::crypto::new_id("cli_"),
        client,
        key_prefix,
        now,
    )
}

/// [`insert`] with a given id (a metadata document client's URL, docs/spec.md §8).
pub fn insert_with_id(
    conn: &mut DbConnection,
    id: &str,
    client: &ValidClient,
    key_prefix: &str,
    now: Timestamp,
) -> Result<(ClientRow, Option<String>), ClientError> {
    if let Some(org) = &client.org_id
        && crate::orgs::store::find(conn, org)?.is_none()
    {
        return Err(ClientError::OrgNotFound(org.clone()));
    }
    let row = ClientRow {
        id: id.to_string(),
        org_id: client.org_id.clone(),
        name: client.name.clone(),
        is_public: client.public,
        is_resource_server: client.resource_server,
        redirect_uris: serde_json::to_string(&client.redirect_uris).unwrap_or_else(|_| "[]".into()),
        grant_types: client
            .grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        scope: client.scope.to_string(),
        logo_uri: client.logo_uri.clone(),
        client_uri: client.client_uri.clone(),
        registration_token_hash: None,
        created_by: client.created_by.clone(),
        created_at: now,
        updated_at: now,
        registration_scope_ceiling: None,
        resources: crate::oauth::resource::to_column(&client.resources),
        post_logout_redirect_uris: serde_json::to_string(&client.post_logout_redirect_uris)
            .unwrap_or_else(|_| "[]".into()),
        id_token_signed_response_alg: client.id_token_signed_response_alg.as_str().into(),
        jwks: client.jwks.clone(),
        jwks_uri: client.jwks_uri.clone(),
    };
    diesel::insert_into(clients::table)
        .values(&row)
        .execute(conn)?;
    crate::oauth::resource::set_for_client(conn, &row.id, &client.resources)?;
    let secret = if client.public || client.jwks.is_some() || client.jwks_uri.is_some() {
        None
    } else {
        let secret = new_secret(key_prefix);
        add_secret(conn, &row.id, &secret, now, None)?;
        Some(secret)
    };
    Ok((row, secret))
}

pub fn add_secret(
    conn: &mut DbConnection,
    client_id: &str,
    secret: &str,
    now: Timestamp,
    expires_at: Option<Timestamp>,
) -> QueryResult<()> {
    diesel::insert_into(client_secrets::table)
        .values((
            client_secrets::id.eq(crate::crypto::new_id("sec_")),
            client_secrets::client_id.eq(client_id),
            client_secrets::secret_hash.eq(crate::crypto::sha256_hex(secret)),
            client_secrets::created_at.eq(now),
            client_secrets::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ClientRow>> {
    clients::table
        .find(id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()
}

/// True when `secret` is one of the client's unexpired secrets. Compares SHA-256 digests
/// in constant time.
pub fn secret_matches(
    conn: &mut DbConnection,
    client_id: &str,
    secret: &str,
    now: Timestamp,
) -> QueryResult<bool> {
    Ok(matching_secret(conn, client_id, secret, now)?.is_some())
}

/// When `secret`, one of the client's unexpired secrets, expires: `Some(None)` for a
/// secret without expiry, `None` when `secret` is none of them. Compares SHA-256 digests
/// in constant time, every stored secret.
pub fn matching_secret(
    conn: &mut DbConnection,
    client_id: &str,
    secret: &str,
    now: Timestamp,
) -> QueryResult<Option<Option<Timestamp>>> {
    let hashes: Vec<(String, Option<i64>)> = client_secrets::table
        .filter(client_secrets::client_id.eq(client_id))
        .select((client_secrets::secret_hash, client_secrets::expires_at))
        .load(conn)?;
    let presented = crate::crypto::sha256_hex(secret);
    Ok(hashes.iter().fold(None, |found, (h, exp)| {
        let live = exp.is_none_or(|e| now < e);
        if live & crate::crypto::constant_time_eq(h.as_bytes(), presented.as_bytes()) {
            Some(*exp)
        } else {
            found
        }
    }))
}

/// A client of this organization; another organization's is `None`, like one that does
/// not exist (docs/security.md I8).
pub fn find_in_org(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> QueryResult<Option<ClientRow>> {
    clients::table
        .find(id)
        .filter(clients::org_id.eq(org_id))
        .select(ClientRow::as_select())
        .first(conn)
        .optional()
}

/// The organization's clients, newest first.
pub fn list(conn: &mut DbConnection, org_id: &str) -> QueryResult<Vec<ClientRow>> {
    clients::table
        .filter(clients::org_id.eq(org_id))
        .order((clients::created_at.desc(), clients::id.desc()))
        .select(ClientRow::as_select())
        .load(conn)
}

/// Every client, platform clients (no organization) included, newest first (the
/// operator's `tessera client list`).
pub fn list_all(conn: &mut DbConnection) -> QueryResult<Vec<ClientRow>> {
    clients::table
        .order((clients::created_at.desc(), clients::id.desc()))
        .select(ClientRow::as_select())
        .load(conn)
}

/// Replaces a client's metadata (its kind, public or confidential, never changes).
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    client: &ValidClient,
    now: Timestamp,
) -> Result<usize, ClientError> {
    crate::oauth::resource::set_for_client(conn, id, &client.resources)?;
    let n = diesel::update(clients::table.find(id))
        .set((
            clients::name.eq(&client.name),
            clients::redirect_uris
                .eq(serde_json::to_string(&client.redirect_uris).unwrap_or_else(|_| "[]".into())),
            clients::grant_types.eq(client
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(" ")),
            clients::scope.eq(client.scope.to_string()),
            clients::logo_uri.eq(&client.logo_uri),
            clients::client_uri.eq(&client.client_uri),
            clients::resources.eq(crate::oauth::resource::to_column(&client.resources)),
            clients::post_logout_redirect_uris
                .eq(serde_json::to_string(&client.post_logout_redirect_uris)
                    .unwrap_or_else(|_| "[]".into())),
            clients::id_token_signed_response_alg.eq(client.id_token_signed_response_alg.as_str()),
            clients::jwks.eq(&client.jwks),
            clients::jwks_uri.eq(&client.jwks_uri),
            // Unchanged for every client but a metadata document's, whose document
            // decides (docs/spec.md §8); such a client never has a secret.
            clients::is_public.eq(client.public),
            clients::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n)
}

/// Deletes a client. Its grants, codes, refresh tokens, consents and secrets go with it
/// (foreign keys cascade), so every token of it is inactive from the next request on.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(clients::table.find(id)).execute(conn)
}

/// A new secret; the current ones stop at `now + overlap` (or earlier if they already
/// expire sooner). Returns the new secret and when the old ones stop.
pub fn rotate_secret(
    conn: &mut DbConnection,
    id: &str,
    key_prefix: &str,
    overlap_seconds: i64,
    now: Timestamp,
) -> QueryResult<(String, Timestamp)> {
    let old_end = now + overlap_seconds;
    diesel::update(
        client_secrets::table
            .filter(client_secrets::client_id.eq(id))
            .filter(
                client_secrets::expires_at
                    .is_null()
                    .or(client_secrets::expires_at.gt(old_end)),
            ),
    )
    .set(client_secrets::expires_at.eq(Some(old_end)))
    .execute(conn)?;
    // Secrets long expired are of no use to anyone.
    diesel::delete(
        client_secrets::table
            .filter(client_secrets::client_id.eq(id))
            .filter(client_secrets::expires_at.le(now)),
    )
    .execute(conn)?;
    let secret = new_secret(key_prefix);
    add_secret(conn, id, &secret, now, None)?;
    Ok((secret, old_end))
}

/// Sets the RFC 7592 registration access token (stored as SHA-256) and the most it may
/// ever grant, `ceiling`; returns the token.
pub fn new_registration_token(
    conn: &mut DbConnection,
    id: &str,
    key_prefix: &str,
    ceiling: &crate::scope::ScopeSet,
) -> QueryResult<String> {
    let token = format!("{key_prefix}_rat_{}", crate::crypto::random_base62(43));
    diesel::update(clients::table.find(id))
        .set((
            clients::registration_token_hash.eq(Some(crate::crypto::sha256_hex(&token))),
            clients::registration_scope_ceiling.eq(Some(ceiling.to_string())),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The client whose registration access token this is.
pub fn find_by_registration_token(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
) -> QueryResult<Option<ClientRow>> {
    let Some(row) = find(conn, id)? else {
        return Ok(None);
    };
    let presented = crate::crypto::sha256_hex(token);
    let ok = row
        .registration_token_hash
        .as_deref()
        .is_some_and(|h| crate::crypto::constant_time_eq(h.as_bytes(), presented.as_bytes()));
    Ok(ok.then_some(row))
}

/// The registered metadata of a client, as RFC 7591 §3.2.1 and `/api/v1/clients` show it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ClientMetadata {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<&'static str>,
    /// `["code"]` when the client may use the authorization code grant, else empty.
    pub response_types: Vec<&'static str>,
    /// `none` (public), `private_key_jwt` (a client with keys, RFC 7523 §2.2) or
    /// `client_secret_basic` (confidential).
    pub token_endpoint_auth_method: &'static str,
    /// The JWK set of a `private_key_jwt` client (RFC 7591 §2); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Where a `private_key_jwt` client publishes its JWK set (RFC 7591 §2); absent
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Space-separated scopes the client may ask for.
    pub scope: String,
    pub logo_uri: Option<String>,
    pub client_uri: Option<String>,
    /// Epoch seconds.
    #[schema(value_type = i64)]
    pub client_id_issued_at: Timestamp,
    /// Whether the client may introspect tokens and verify keys.
    pub resource_server: bool,
    /// RFC 8707 resource URIs of a resource server (docs/spec.md §8); empty otherwise.
    pub resources: Vec<String>,
    /// RP-Initiated Logout 1.0 §3 (docs/spec.md §9).
    pub post_logout_redirect_uris: Vec<String>,
    /// OpenID Connect Dynamic Client Registration 1.0 §2: `RS256`, `ES256` or `EdDSA`.
    pub id_token_signed_response_alg: String,
}

/// The registered metadata of a client (docs/spec.md §5).
pub fn metadata(row: &ClientRow) -> ClientMetadata {
    let grants = row.grant_type_list();
    ClientMetadata {
        client_id: row.id.clone(),
        client_name: row.name.clone(),
        redirect_uris: row.redirect_uri_list(),
        grant_types: grants.iter().map(|g| g.as_str()).collect(),
        response_types: if grants.contains(&GrantType::AuthorizationCode) {
            vec!["code"]
        } else {
            vec![]
        },
        token_endpoint_auth_method: row.auth_method(),
        jwks_uri: row.jwks_uri.clone(),
        jwks: row
            .jwks
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok()),
        scope: row.scope.clone(),
        logo_uri: row.logo_uri.clone(),
        client_uri: row.client_uri.clone(),
        client_id_issued_at: row.created_at,
        resource_server: row.is_resource_server,
        resources: row.resource_list(),
        post_logout_redirect_uris: row.post_logout_redirect_uri_list(),
        id_token_signed_response_alg: row.id_token_signed_response_alg.clone(),
    }
}
