//! Storage of organizations and memberships.

use diesel::prelude::*;

use super::{OrgError, Plan, Role};
use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::{memberships, organizations};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = organizations)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub rate_limit_per_minute: Option<i64>,
    pub created_at: i64,
}

pub fn insert(
    conn: &mut DbConnection,
    name: &str,
    plan: Plan,
    now: Timestamp,
) -> Result<Organization, OrgError> {
    let org = Organization {
        id: crate::crypto::new_id("org_"),
        name: super::validate_name(name)?.to_string(),
        plan,
        rate_limit_per_minute: None,
        created_at: now,
    };
    diesel::insert_into(organizations::table)
        .values(&org)
        .execute(conn)?;
    Ok(org)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Organization>> {
    organizations::table
        .find(id)
        .select(Organization::as_select())
        .first(conn)
        .optional()
}

/// Every organization, oldest first (the operator's `tessera org list`).
pub fn list_all(conn: &mut DbConnection) -> QueryResult<Vec<Organization>> {
    organizations::table
        .order((organizations::created_at.asc(), organizations::id.asc()))
        .select(Organization::as_select())
        .load(conn)
}

/// Sets an organization's name, plan and per-minute budget (docs/spec.md §10). Returns the
/// number of rows changed (0: no such organization).
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    name: &str,
    plan: Plan,
    rate_limit_per_minute: Option<i64>,
) -> QueryResult<usize> {
    diesel::update(organizations::table.find(id))
        .set((
            organizations::name.eq(name),
            organizations::plan.eq(plan),
            organizations::rate_limit_per_minute.eq(rate_limit_per_minute),
        ))
        .execute(conn)
}

pub fn add_member(
    conn: &mut DbConnection,
    org_id: &str,
    user_id: &str,
    role: Role,
    now: Timestamp,
) -> QueryResult<()> {
    diesel::insert_into(memberships::table)
        .values((
            memberships::org_id.eq(org_id),
            memberships::user_id.eq(user_id),
            memberships::role.eq(role.as_str()),
            memberships::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn role_of(conn: &mut DbConnection, org_id: &str, user_id: &str) -> QueryResult<Option<Role>> {
    memberships::table
        .find((org_id, user_id))
        .select(memberships::role)
        .first(conn)
        .optional()
}

/// The organizations a user belongs to, oldest membership first.
pub fn orgs_of(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<String>> {
    memberships::table
        .filter(memberships::user_id.eq(user_id))
        .order(memberships::created_at.asc())
        .select(memberships::org_id)
        .load(conn)
}

/// A member as `/api/v1/orgs/{org_id}/members` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    #[schema(value_type = super::Role)]
    pub role: String,
}

/// The members of an organization, oldest first.
pub fn members(conn: &mut DbConnection, org_id: &str) -> QueryResult<Vec<Member>> {
    use crate::db::schema::users;
    let rows: Vec<(String, String, String)> = memberships::table
        .inner_join(users::table)
        .filter(memberships::org_id.eq(org_id))
        .order((memberships::created_at.asc(), memberships::user_id.asc()))
        .select((memberships::user_id, users::email, memberships::role))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(user_id, email, role)| Member {
            user_id,
            email,
            role,
        })
        .collect())
}

pub fn admin_count(conn: &mut DbConnection, org_id: &str) -> QueryResult<i64> {
    memberships::table
        .filter(memberships::org_id.eq(org_id))
        .filter(memberships::role.eq(Role::Admin.as_str()))
        .count()
        .get_result(conn)
}

pub fn set_role(
    conn: &mut DbConnection,
    org_id: &str,
    user_id: &str,
    role: Role,
) -> QueryResult<usize> {
    diesel::update(memberships::table.find((org_id, user_id)))
        .set(memberships::role.eq(role.as_str()))
        .execute(conn)
}

pub fn remove_member(conn: &mut DbConnection, org_id: &str, user_id: &str) -> QueryResult<usize> {
    diesel::delete(memberships::table.find((org_id, user_id))).execute(conn)
}

/// The user's organizations with their names and the user's role, oldest membership
/// first: `(org id, org name, role)`.
pub fn memberships_of(
    conn: &mut DbConnection,
    user_id: &str,
) -> QueryResult<Vec<(String, String, Role)>> {
    use crate::db::schema::organizations;
    memberships::table
        .inner_join(organizations::table)
        .filter(memberships::user_id.eq(user_id))
        .order(memberships::created_at.asc())
        .select((organizations::id, organizations::name, memberships::role))
        .load(conn)
}
