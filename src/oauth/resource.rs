//! RFC 8707 resource indicators (docs/spec.md §8): the resource URIs resource servers
//! register, the `resource` parameter at the authorization and token endpoints, and the
//! audiences an access token gets from it.
//!
//! A resource URI is absolute, has no fragment (RFC 8707 §2) and belongs to exactly one
//! resource server (the primary key of `client_resources`). Besides the registered ones,
//! two resources are always known: the configured default audience (`--audience`) and
//! tessera's own `/api/v1` ([`api_resource`], described by RFC 9728 metadata).
//! A token request without `resource` gets the grant's resources; with none anywhere,
//! the default audience. A refresh or code exchange may narrow the grant's resources,
//! never widen them (RFC 8707 §2.2).

use diesel::prelude::*;

use super::form::StrictForm;
use crate::clients::ClientError;
use crate::db::DbConnection;
use crate::db::schema::{client_resources, grants};
use crate::error::{ErrorCode, OAuthError};

/// The longest resource URI accepted, in bytes.
pub const MAX_URI_LEN: usize = 2000;

/// The most `resource` values one request may carry.
pub const MAX_PER_REQUEST: usize = 10;

/// tessera's own API as a protected resource (RFC 9728 §3): `{issuer}/api/v1`.
pub fn api_resource(issuer: &str) -> String {
    format!("{}/api/v1", issuer.trim_end_matches('/'))
}

/// RFC 8707 §2: an absolute URI without a fragment. The error names what is wrong.
pub fn check_uri(uri: &str) -> Result<(), &'static str> {
    if uri.is_empty() || uri.len() > MAX_URI_LEN || uri.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err("must be 1 to 2000 characters, without spaces or control characters");
    }
    let parsed = url::Url::parse(uri).map_err(|_| "must be an absolute URI")?;
    if uri.contains('#') || parsed.fragment().is_some() {
        return Err("must not have a fragment");
    }
    if parsed.cannot_be_a_base() && !parsed.scheme().starts_with("urn") {
        return Err("must be an absolute URI");
    }
    Ok(())
}

/// The resources of a space-separated column ("" → none).
pub fn from_column(column: &str) -> Vec<String> {
    column
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Sorted and de-duplicated, for storage and comparison.
pub fn normalize(mut uris: Vec<String>) -> Vec<String> {
    uris.sort();
    uris.dedup();
    uris
}

/// The column form of a list of resources.
pub fn to_column(uris: &[String]) -> String {
    uris.join(" ")
}

/// The `resource` values of a request (RFC 8707 §2: it may repeat). A malformed one, or
/// more than [`MAX_PER_REQUEST`], is `invalid_target`.
pub fn requested(form: &StrictForm) -> Result<Vec<String>, OAuthError> {
    let bad = |d| OAuthError::new(ErrorCode::InvalidTarget, d);
    if form.is_unprintable("resource") {
        return Err(bad("A resource has characters outside VSCHAR."));
    }
    let all = form.all("resource");
    if all.len() > MAX_PER_REQUEST {
        return Err(bad("Too many resource parameters."));
    }
    for uri in &all {
        check_uri(uri).map_err(|why| {
            OAuthError::naming(ErrorCode::InvalidTarget, format!("resource {why}."))
        })?;
    }
    Ok(normalize(all.into_iter().map(str::to_string).collect()))
}

/// The resources tessera knows besides the registered ones.
fn built_in(issuer: &str, audience: &str) -> [String; 2] {
    [audience.to_string(), api_resource(issuer)]
}

/// Whether every URI of `uris` is a resource tessera knows: registered by a resource
/// server, the default audience, or tessera's own API.
pub fn all_known(
    conn: &mut DbConnection,
    issuer: &str,
    audience: &str,
    uris: &[String],
) -> QueryResult<bool> {
    let builtin = built_in(issuer, audience);
    let others: Vec<&String> = uris.iter().filter(|u| !builtin.contains(u)).collect();
    if others.is_empty() {
        return Ok(true);
    }
    let found: i64 = client_resources::table
        .filter(client_resources::uri.eq_any(&others))
        .count()
        .get_result(conn)?;
    Ok(usize::try_from(found).is_ok_and(|n| n == others.len()))
}

/// The resource URIs a client registered (empty for all but resource servers), sorted.
pub fn of_client(conn: &mut DbConnection, client_id: &str) -> QueryResult<Vec<String>> {
    client_resources::table
        .filter(client_resources::client_id.eq(client_id))
        .order(client_resources::uri.asc())
        .select(client_resources::uri)
        .load(conn)
}

/// The resources a grant was authorized for.
pub fn of_grant(conn: &mut DbConnection, grant_id: &str) -> QueryResult<Vec<String>> {
    let column: Option<String> = grants::table
        .find(grant_id)
        .select(grants::resource)
        .first(conn)
        .optional()?;
    Ok(column.as_deref().map(from_column).unwrap_or_default())
}

/// The resources of the grant a code or refresh token of `client_id` belongs to, looked
/// up before the code is consumed or the token rotated, so that a refused `resource`
/// changes nothing. `None`: no such credential of that client (the grant itself then
/// answers `invalid_grant`).
pub fn of_credential(
    conn: &mut DbConnection,
    grant: Credential<'_>,
    client_id: &str,
) -> QueryResult<Option<Vec<String>>> {
    use crate::db::schema::{authorization_codes as ac, refresh_tokens as rt};
    let digest = crate::crypto::sha256_hex(match grant {
        Credential::Code(c) | Credential::RefreshToken(c) => c,
    });
    let grant_id: Option<String> = match grant {
        Credential::Code(_) => ac::table
            .find(&digest)
            .filter(ac::client_id.eq(client_id))
            .select(ac::grant_id)
            .first(conn)
            .optional()?,
        Credential::RefreshToken(_) => rt::table
            .find(&digest)
            .filter(rt::client_id.eq(client_id))
            .select(rt::grant_id)
            .first(conn)
            .optional()?,
    };
    match grant_id {
        Some(g) => of_grant(conn, &g).map(Some),
        None => Ok(None),
    }
}

/// A grant credential presented at the token endpoint.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Code(&'a str),
    RefreshToken(&'a str),
}

/// Validates the resource URIs a resource server registers: each well-formed, at most 50.
pub fn validate_registration(uris: &[String]) -> Result<Vec<String>, ClientError> {
    if uris.len() > 50 {
        return Err(ClientError::InvalidMetadata(
            "resources: at most 50 resource URIs.".into(),
        ));
    }
    for uri in uris {
        check_uri(uri).map_err(|why| {
            ClientError::InvalidMetadata(format!("resources: the resource URI {uri:?} {why}."))
        })?;
    }
    Ok(normalize(uris.to_vec()))
}

/// Replaces a resource server's resource URIs (call in a write transaction). A URI that
/// another resource server holds is refused, naming it (docs/spec.md §8: one owner).
pub fn set_for_client(
    conn: &mut DbConnection,
    client_id: &str,
    uris: &[String],
) -> Result<(), ClientError> {
    let taken: Vec<String> = client_resources::table
        .filter(client_resources::uri.eq_any(uris))
        .filter(client_resources::client_id.ne(client_id))
        .select(client_resources::uri)
        .load(conn)?;
    if let Some(uri) = taken.first() {
        return Err(ClientError::InvalidMetadata(format!(
            "resources: {uri:?} already belongs to another resource server."
        )));
    }
    diesel::delete(client_resources::table.filter(client_resources::client_id.eq(client_id)))
        .execute(conn)?;
    for uri in uris {
        let inserted = diesel::insert_into(client_resources::table)
            .values((
                client_resources::uri.eq(uri),
                client_resources::client_id.eq(client_id),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {}
            // Another resource server took it meanwhile.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {
                return Err(ClientError::InvalidMetadata(format!(
                    "resources: {uri:?} already belongs to another resource server."
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn invalid_target(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidTarget, description)
}

/// The audiences of an access token (RFC 8707 §2.2): the requested resources, which must
/// be known and, when the grant names resources, among them; without a request, the
/// grant's; with neither, the default audience.
pub fn audiences(
    conn: &mut DbConnection,
    issuer: &str,
    audience: &str,
    requested: &[String],
    granted: &[String],
) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(if granted.is_empty() {
            vec![audience.to_string()]
        } else {
            granted.to_vec()
        });
    }
    if !granted.is_empty() && !requested.iter().all(|r| granted.contains(r)) {
        return Err(invalid_target(
            "The resource is not one this grant was authorized for.",
        ));
    }
    if !all_known(conn, issuer, audience, requested)? {
        return Err(invalid_target("The resource is unknown."));
    }
    Ok(requested.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_uris_are_absolute_without_fragment() {
        assert!(check_uri("https://mcp.example.com/mcp").is_ok());
        assert!(check_uri("https://mcp.example.com").is_ok());
        assert!(check_uri("urn:example:resource").is_ok());
        assert!(check_uri("/mcp").is_err());
        assert!(check_uri("mcp.example.com").is_err());
        assert!(check_uri("https://mcp.example.com/#a").is_err());
        assert!(check_uri("https://mcp.example.com/#").is_err());
        assert!(check_uri("").is_err());
        assert!(check_uri("https://a b").is_err());
    }

    #[test]
    fn columns_round_trip_sorted() {
        let v = normalize(vec![
            "https://b".into(),
            "https://a".into(),
            "https://b".into(),
        ]);
        assert_eq!(to_column(&v), "https://a https://b");
        assert_eq!(from_column(&to_column(&v)), v);
        assert!(from_column("").is_empty());
    }

    #[test]
    fn repeated_resources_are_read_in_full() {
        let f =
            StrictForm::parse(b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb").expect("form");
        assert_eq!(
            requested(&f).expect("ok"),
            vec!["https://a".to_string(), "https://b".to_string()]
        );
        let f = StrictForm::parse(b"resource=%2Frelative").expect("form");
        assert_eq!(
            requested(&f).expect_err("relative").code,
            ErrorCode::InvalidTarget
        );
    }
}
