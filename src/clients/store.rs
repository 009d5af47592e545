//! Storage of clients and their secrets. Secrets are stored as SHA-256 digests only
//! (SECURITY.md §4 policy 6): fast to check, and 256-bit random secrets need no slow hash.

use diesel::prelude::*;

use super::{ClientError, GrantType, ValidClient};
use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::{client_secrets, clients};

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
}

impl ClientRow {
    pub fn redirect_uri_list(&self) -> Vec<String> {
        serde_json::from_str(&self.redirect_uris).unwrap_or_default()
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
    if let Some(org) = &client.org_id
        && crate::orgs::store::find(conn, org)?.is_none()
    {
        return Err(ClientError::OrgNotFound(org.clone()));
    }
    let row = ClientRow {
        id: crate::crypto::new_id("cli_"),
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
    };
    diesel::insert_into(clients::table)
        .values(&row)
        .execute(conn)?;
    let secret = if client.public {
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
    let hashes: Vec<(String, Option<i64>)> = client_secrets::table
        .filter(client_secrets::client_id.eq(client_id))
        .select((client_secrets::secret_hash, client_secrets::expires_at))
        .load(conn)?;
    let presented = crate::crypto::sha256_hex(secret);
    Ok(hashes.iter().fold(false, |found, (h, exp)| {
        let live = exp.is_none_or(|e| now < e);
        found | (live & crate::crypto::constant_time_eq(h.as_bytes(), presented.as_bytes()))
    }))
}
