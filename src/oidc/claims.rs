//! The claims about a person (OpenID Connect Core §5.1, §5.4): `email` and
//! `email_verified` with the `email` scope, `name` with `profile` (once the account has a
//! display name). ID tokens and `/oauth/userinfo` release the same set.

use diesel::prelude::*;
use serde::Serialize;

use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::{grants, users};
use crate::scope::ScopeSet;

/// The claims the granted scopes release (absent members are not serialized).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProfileClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// tessera does not verify addresses yet: always `false` when `email` is released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The claims of user `user_id` that `scope` releases; empty when the user is gone.
pub fn for_scope(
    conn: &mut DbConnection,
    user_id: &str,
    scope: &ScopeSet,
) -> QueryResult<ProfileClaims> {
    let wants_email = scope.contains("email");
    let wants_profile = scope.contains("profile");
    if !wants_email && !wants_profile {
        return Ok(ProfileClaims::default());
    }
    let row: Option<(String, Option<String>)> = users::table
        .find(user_id)
        .select((users::email, users::name))
        .first(conn)
        .optional()?;
    let Some((email, name)) = row else {
        return Ok(ProfileClaims::default());
    };
    Ok(ProfileClaims {
        email: wants_email.then(|| email.clone()),
        email_verified: wants_email.then_some(false),
        name: if wants_profile {
            name.filter(|n| !n.is_empty())
        } else {
            None
        },
    })
}

/// When the person behind grant `grant_id` signed in (OpenID Connect Core §12.2: the ID
/// token of a refresh keeps the original `auth_time`). `None` for grants made before
/// tessera recorded it.
pub fn grant_auth_time(conn: &mut DbConnection, grant_id: &str) -> QueryResult<Option<Timestamp>> {
    Ok(grants::table
        .find(grant_id)
        .select(grants::auth_time)
        .first::<Option<i64>>(conn)
        .optional()?
        .flatten())
}

/// The longest display name, in characters.
pub const NAME_MAX_CHARS: usize = 100;

/// A display name as typed: trimmed; empty is "no name" (`Ok(None)`); refused when longer
/// than [`NAME_MAX_CHARS`] or holding a control character (the message names the field).
pub fn validate_name(raw: &str) -> Result<Option<String>, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err("The display name is longer than 100 characters.");
    }
    if name.chars().any(char::is_control) {
        return Err("The display name has a control character.");
    }
    Ok(Some(name.to_string()))
}

/// Sets (or, with `None`, clears) user `user_id`'s display name: the `name` claim.
pub fn set_name(conn: &mut DbConnection, user_id: &str, name: Option<&str>) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set(users::name.eq(name))
        .execute(conn)
}

/// User `user_id`'s display name, if they set one.
pub fn name_of(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<String>> {
    Ok(users::table
        .find(user_id)
        .select(users::name)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}
