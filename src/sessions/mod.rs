//! Login sessions (server-side, docs/security.md H4) and CSRF tokens (H1).
//!
//! The cookie holds a random 256-bit id; the database holds only its SHA-256. A session
//! carries a CSRF secret; form tokens are HMAC-SHA256(secret, purpose), so a token for one
//! purpose (e.g. one pending consent) is useless for any other.

use diesel::prelude::*;
use ring::hmac;

use crate::clock::Timestamp;
use crate::crypto::{constant_time_eq, random_token, sha256_hex};
use crate::db::DbConnection;
use crate::db::schema::sessions;

pub const COOKIE: &str = "tessera_session";
/// Sessions last at most this long (absolute).
pub const LIFETIME_SECONDS: i64 = 12 * 3600;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id_hash: String,
    pub user_id: String,
    pub org_id: Option<String>,
    pub csrf_secret: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

impl Session {
    /// The CSRF token of this session for `purpose`.
    pub fn csrf_token(&self, purpose: &str) -> String {
        csrf_token(&self.csrf_secret, purpose)
    }

    pub fn csrf_ok(&self, purpose: &str, presented: &str) -> bool {
        constant_time_eq(self.csrf_token(purpose).as_bytes(), presented.as_bytes())
    }
}

/// HMAC-SHA256(secret, purpose) as unpadded base64url.
pub fn csrf_token(secret: &str, purpose: &str) -> String {
    use base64::Engine;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(hmac::sign(&key, purpose.as_bytes()).as_ref())
}

/// Creates a session for `user_id`; returns it with the cookie value (the only copy of
/// the raw id). A new id every login: ids are never reused across logins (fixation).
pub fn create(
    conn: &mut DbConnection,
    user_id: &str,
    org_id: Option<&str>,
    now: Timestamp,
) -> QueryResult<(Session, String)> {
    let raw = random_token();
    let session = Session {
        id_hash: sha256_hex(&raw),
        user_id: user_id.to_string(),
        org_id: org_id.map(str::to_string),
        csrf_secret: random_token(),
        created_at: now,
        expires_at: now + LIFETIME_SECONDS,
        last_seen_at: now,
    };
    diesel::insert_into(sessions::table)
        .values(&session)
        .execute(conn)?;
    Ok((session, raw))
}

/// The live session for a cookie value.
pub fn find(conn: &mut DbConnection, raw: &str, now: Timestamp) -> QueryResult<Option<Session>> {
    sessions::table
        .find(sha256_hex(raw))
        .filter(sessions::expires_at.gt(now))
        .select(Session::as_select())
        .first(conn)
        .optional()
}

pub fn delete(conn: &mut DbConnection, id_hash: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(id_hash)).execute(conn)
}

/// Ends every session of a user (a password reset signs them out everywhere). Returns how
/// many there were.
pub fn delete_for_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

/// Ends every session of a user but the one whose id hash is `keep` (a password change
/// signs the other devices out). Returns how many ended.
pub fn delete_others(conn: &mut DbConnection, user_id: &str, keep: &str) -> QueryResult<usize> {
    diesel::delete(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::id_hash.ne(keep)),
    )
    .execute(conn)
}

/// A same-origin relative path to go to after login, or `/` (docs/security.md A10: the server
/// is never an open redirector).
pub fn safe_return_to(candidate: Option<&str>) -> String {
    match candidate {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && p.len() <= 4096
                && p.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'\\') =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// Makes `org_id` the session's current organization (the caller checked membership).
pub fn set_org(conn: &mut DbConnection, id_hash: &str, org_id: &str) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id_hash))
        .set(sessions::org_id.eq(Some(org_id)))
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a10_only_same_origin_relative_paths_are_followed() {
        assert_eq!(
            safe_return_to(Some("/oauth/authorize?client_id=x&scope=a%20b")),
            "/oauth/authorize?client_id=x&scope=a%20b"
        );
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "/%0d%0a",
            "/a b",
            "/\\/x",
            "javascript:alert(1)",
        ] {
            let out = safe_return_to(Some(bad));
            assert!(
                out == "/" || out == bad && bad == "/%0d%0a",
                "{bad:?} → {out:?}"
            );
        }
        assert_eq!(safe_return_to(None), "/");
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_purpose() {
        let a = csrf_token("secret", "login");
        assert_eq!(a, csrf_token("secret", "login"));
        assert_ne!(a, csrf_token("secret", "consent:1"));
        assert_ne!(a, csrf_token("other", "login"));
    }
}
