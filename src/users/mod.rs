//! User accounts: the email normal form, argon2id password hashes, storage.

pub mod ops;
pub mod store;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// `--signup` (docs/spec.md §7): who may create an account on `/signup`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SignupMode {
    /// Anyone; every new account gets an organization of its own, as its admin.
    Open,
    /// Only through a pending invitation's link, with the invited email; the account gets
    /// no organization of its own (it joins by accepting).
    Invite,
    /// Nobody: only the operator's `tessera user create`.
    Closed,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("the email address is not valid")]
    InvalidEmail,
    #[error("the password must be 8 to 1024 characters")]
    InvalidPassword,
    #[error("password hashing failed")]
    Hash,
    #[error(transparent)]
    Org(#[from] crate::orgs::OrgError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// The one normal form of an email (docs/security.md J5): surrounding whitespace trimmed, ASCII
/// letters lowercased; anything else compared byte for byte.
pub fn normalize_email(email: &str) -> Result<String, UserError> {
    let e = email.trim().to_ascii_lowercase();
    let valid = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !domain.starts_with('.') && !domain.ends_with('.'));
    if valid {
        Ok(e)
    } else {
        Err(UserError::InvalidEmail)
    }
}

pub fn validate_password(password: &str) -> Result<(), UserError> {
    let n = password.chars().count();
    if (8..=1024).contains(&n) {
        Ok(())
    } else {
        Err(UserError::InvalidPassword)
    }
}

/// argon2id with the crate's defaults (19 MiB, t=2, p=1). Slow on purpose: callers run it
/// off the async workers.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let salt = SaltString::encode_b64(&crate::crypto::random_bytes::<16>())
        .map_err(|_| UserError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| UserError::Hash)
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Creates a user with an organization of their own, of which they are the admin (the
/// first account ever, and every self-service signup). Call inside a write transaction.
/// Returns (user id, org id).
pub fn register_with_org(
    conn: &mut crate::db::DbConnection,
    email: &str,
    password_hash: String,
    actor: &str,
    now: crate::clock::Timestamp,
) -> Result<(String, String), UserError> {
    use crate::orgs::{Plan, Role};
    let user = store::insert(conn, email, password_hash, now)?;
    let org =
        crate::orgs::store::insert(conn, &format!("{email}'s organization"), Plan::Free, now)?;
    crate::orgs::store::add_member(conn, &org.id, &user.id, Role::Admin, now)?;
    for (action, target_type, target_id, details) in [
        (
            "org.created",
            "organization",
            &org.id,
            serde_json::json!({"name": org.name, "plan": org.plan}),
        ),
        (
            "member.added",
            "user",
            &user.id,
            serde_json::json!({"role": "admin"}),
        ),
    ] {
        crate::audit::record(
            conn,
            &crate::audit::Event {
                org_id: Some(&org.id),
                actor,
                action,
                target_type,
                target_id,
                details,
            },
            now,
        )?;
    }
    Ok((user.id, org.id))
}

/// Signup (docs/spec.md §6): a new user with an organization of their own, of which they
/// are the admin (`with_org`; under `--signup invite` the account has none until it accepts
/// its invitation), in one transaction. `Ok(Err(_))` is a refusal to show on the form
/// (taken email, bad input); `Err` is a storage failure.
pub fn signup(
    conn: &mut crate::db::DbConnection,
    email: &str,
    password_hash: String,
    with_org: bool,
    now: crate::clock::Timestamp,
) -> Result<Result<String, UserError>, crate::error::AppError> {
    crate::db::write_tx(conn, |conn| {
        let made = if with_org {
            register_with_org(conn, email, password_hash, "signup", now).map(|(u, _)| u)
        } else {
            store::insert(conn, email, password_hash, now).map(|u| u.id)
        };
        match made {
            Ok(user_id) => Ok(Ok(user_id)),
            Err(UserError::Db(e)) => Err(e.into()),
            Err(e) => Ok(Err(e)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn j5_emails_have_one_normal_form() {
        assert_eq!(
            normalize_email("  Alice@Example.COM ").expect("ok"),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a b@example.com",
            "a@b@c",
            "a@.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
