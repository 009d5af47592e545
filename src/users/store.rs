//! Storage of users.

use diesel::prelude::*;

use super::UserError;
use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::users;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
    pub password_changed_at: i64,
}

/// Inserts a user; `email` must already be normalized. A taken email is
/// [`UserError::EmailTaken`], decided by the unique index (no check-then-insert race).
pub fn insert(
    conn: &mut DbConnection,
    email: &str,
    password_hash: String,
    now: Timestamp,
) -> Result<User, UserError> {
    let user = User {
        id: crate::crypto::new_id("usr_"),
        email: email.to_string(),
        password_hash,
        created_at: now,
        password_changed_at: now,
    };
    match diesel::insert_into(users::table)
        .values(&user)
        .execute(conn)
    {
        Ok(_) => Ok(user),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Err(UserError::EmailTaken),
        Err(e) => Err(e.into()),
    }
}

pub fn find_by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Every user, oldest first (the operator's `tessera user list`).
pub fn list_all(conn: &mut DbConnection) -> QueryResult<Vec<User>> {
    users::table
        .order((users::created_at.asc(), users::id.asc()))
        .select(User::as_select())
        .load(conn)
}

/// Replaces a user's password hash and records when.
pub fn set_password(
    conn: &mut DbConnection,
    id: &str,
    password_hash: &str,
    now: Timestamp,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::password_changed_at.eq(now),
        ))
        .execute(conn)
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}
