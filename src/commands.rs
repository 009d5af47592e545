//! The admin subcommands (docs/spec.md §1): each prints one JSON object on stdout; errors go
//! to stderr with a non-zero exit (main.rs). They open the same database as the server and
//! may run while it serves.

use std::io::BufRead;

mod invitations;
mod requests;

use serde_json::{Value, json};

use crate::api_keys::KeyType;
use crate::api_keys::ops::CreateKey;
use crate::api_keys::store::ApiKeyError;
use crate::app::Ctx;
use crate::cli::{
    ApiKeyCommand, ClientCommand, KeysCommand, OrgCommand, PlanArg, RoleArg, UserCommand,
};
use crate::clients::{ClientError, NewClient};
use crate::clock::{Clock, SystemClock, Timestamp, rfc3339};
use crate::config::Settings;
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;
use crate::orgs::{Actor, OrgError, Plan, Role};
use crate::scope::{ScopeSet, ScopesInput};
use crate::startup::StartupError;
use crate::tokens::keys::{self, KeyError};
use crate::users::UserError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("{0}")]
    User(#[from] UserError),
    #[error("{0}")]
    Org(#[from] OrgError),
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    ApiKey(#[from] ApiKeyError),
    #[error("{0}")]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Op(#[from] OpError),
    #[error("no {0}")]
    NotFound(String),
    #[error("cannot read the password from standard input: {0}")]
    Stdin(std::io::Error),
}

/// A migrated connection to the configured database, which must exist (a SQLite file that
/// is not there is refused: docs/spec.md §1).
fn connect(settings: &Settings) -> Result<DbConnection, CommandError> {
    let mut conn =
        crate::db::connect_existing(&settings.database_url).map_err(StartupError::from)?;
    crate::db::run_migrations(&mut conn).map_err(StartupError::from)?;
    Ok(conn)
}

pub fn migrate(settings: &Settings) -> Result<Value, CommandError> {
    let mut conn = crate::db::connect_direct(&settings.database_url).map_err(StartupError::from)?;
    let applied = crate::db::run_migrations(&mut conn).map_err(StartupError::from)?;
    Ok(json!({"applied": applied}))
}

fn plan_of(plan: PlanArg) -> Plan {
    match plan {
        PlanArg::Free => Plan::Free,
        PlanArg::Pro => Plan::Pro,
    }
}

/// `{"data": [...]}`, the shape of every list (docs/spec.md §1).
fn data<T: serde::Serialize>(items: Vec<T>) -> Result<Value, CommandError> {
    Ok(
        json!({ "data": serde_json::to_value(items).map_err(|e| CommandError::Usage(e.to_string()))? }),
    )
}

/// The CLI acting as an admin of `org_id`, which must exist (a mistyped id is an error
/// naming it, never an empty answer).
fn org_actor(conn: &mut DbConnection, org_id: &str) -> Result<Actor, CommandError> {
    crate::orgs::store::find(conn, org_id)?.ok_or_else(|| OrgError::NotFound(org_id.into()))?;
    Ok(Actor::cli(org_id))
}

/// An operation's "No such client." as "no client cli_x", naming what was asked for.
fn naming(id: &str) -> impl Fn(OpError) -> CommandError + '_ {
    move |e| match e {
        OpError::NotFound(what) => CommandError::NotFound(format!("{what} {id}")),
        other => CommandError::Op(other),
    }
}

pub fn org(settings: &Settings, cmd: OrgCommand) -> Result<Value, CommandError> {
    let now = SystemClock.now();
    let conn = &mut connect(settings)?;
    match cmd {
        OrgCommand::Members(cmd) => invitations::run(settings, conn, now, cmd),
        OrgCommand::Create { name, plan } => {
            let plan = plan_of(plan);
            let org = write_tx(conn, |conn| -> Result<_, CommandError> {
                let org = crate::orgs::store::insert(conn, &name, plan, now)?;
                record(
                    conn,
                    Some(&org.id),
                    "org.created",
                    "organization",
                    &org.id,
                    json!({"name": org.name, "plan": org.plan}),
                    now,
                )?;
                Ok(org)
            })?;
            Ok(json!({"org_id": org.id}))
        }
        OrgCommand::List => data(crate::orgs::ops::list_all(conn)?),
        OrgCommand::Update {
            org_id,
            name,
            plan,
            rate_limit_per_minute,
        } => {
            let actor = org_actor(conn, &org_id)?;
            let change = crate::orgs::ops::OrgChange {
                name,
                plan: plan.map(plan_of),
                rate_limit_per_minute: rate_limit_per_minute.map(|b| b.0),
            };
            let ctx = Ctx::offline(settings, now);
            let org =
                crate::orgs::ops::update(conn, &ctx, &actor, &change).map_err(naming(&org_id))?;
            Ok(serde_json::to_value(org).unwrap_or(Value::Null))
        }
    }
}

/// The first line of `input`, without its line ending.
pub fn read_password(mut input: impl BufRead) -> Result<String, CommandError> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(CommandError::Stdin)?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(trimmed.to_string())
}

pub fn user(
    settings: &Settings,
    cmd: UserCommand,
    stdin: impl BufRead,
) -> Result<Value, CommandError> {
    match cmd {
        UserCommand::Create {
            email,
            password_stdin: _,
            org,
            role,
        } => user_create(settings, &email, org, role, stdin),
        UserCommand::List { org } => {
            let conn = &mut connect(settings)?;
            match org {
                Some(org_id) => {
                    let actor = org_actor(conn, &org_id)?;
                    data(crate::orgs::members::list(conn, &actor)?)
                }
                None => data(crate::users::ops::list_all(conn)?),
            }
        }
        UserCommand::SetPassword {
            email,
            password_stdin: _,
        } => {
            let email = crate::users::normalize_email(&email)?;
            let password = read_password(stdin)?;
            crate::users::validate_password(&password)?;
            let conn = &mut connect(settings)?;
            // Hash before the transaction: argon2 is slow and the write lock should not wait.
            let hash = crate::users::hash_password(&password)?;
            let ctx = Ctx::offline(settings, SystemClock.now());
            let done = crate::users::ops::set_password(conn, &ctx, &email, &hash)
                .map_err(naming(&email))?;
            Ok(serde_json::to_value(done).unwrap_or(Value::Null))
        }
    }
}

fn user_create(
    settings: &Settings,
    email: &str,
    org: Option<String>,
    role: Option<RoleArg>,
    stdin: impl BufRead,
) -> Result<Value, CommandError> {
    let email = crate::users::normalize_email(email)?;
    let password = read_password(stdin)?;
    crate::users::validate_password(&password)?;
    let mut conn = connect(settings)?;
    // Hash before the transaction: argon2 is slow and the write lock should not wait on it.
    let hash = crate::users::hash_password(&password)?;
    let now = SystemClock.now();
    let (user_id, org_id) = write_tx(&mut conn, |conn| -> Result<_, CommandError> {
        let Some(org_id) = &org else {
            return Ok(crate::users::register_with_org(
                conn, &email, hash, "cli", now,
            )?);
        };
        crate::orgs::store::find(conn, org_id)?
            .ok_or_else(|| OrgError::NotFound(org_id.clone()))?;
        let role = match role {
            Some(RoleArg::Admin) => Role::Admin,
            Some(RoleArg::Member) | None => Role::Member,
        };
        let user = crate::users::store::insert(conn, &email, hash, now)?;
        crate::orgs::store::add_member(conn, org_id, &user.id, role, now)?;
        record(
            conn,
            Some(org_id),
            "member.added",
            "user",
            &user.id,
            json!({"role": role.as_str()}),
            now,
        )?;
        Ok((user.id, org_id.clone()))
    })?;
    Ok(json!({"user_id": user_id, "org_id": org_id}))
}

/// A client as `client list` prints it: the fields of `GET /api/v1/clients` and its
/// organization (`null` for a platform client).
fn client_json(row: &crate::clients::store::ClientRow) -> Value {
    let mut v = serde_json::to_value(crate::clients::store::metadata(row)).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("org_id".into(), json!(row.org_id));
    }
    v
}

pub fn client(settings: &Settings, cmd: ClientCommand) -> Result<Value, CommandError> {
    let ctx = Ctx::offline(settings, SystemClock.now());
    match cmd {
        ClientCommand::Create { .. } => client_create(settings, cmd),
        ClientCommand::List { org } => {
            let conn = &mut connect(settings)?;
            let rows = match org {
                Some(org_id) => {
                    let actor = org_actor(conn, &org_id)?;
                    crate::clients::ops::list(conn, &actor)?
                }
                None => crate::clients::ops::list_all(conn)?,
            };
            Ok(json!({"data": rows.iter().map(client_json).collect::<Vec<_>>()}))
        }
        ClientCommand::RotateSecret {
            client_id,
            expire_old_in_seconds,
        } => {
            let conn = &mut connect(settings)?;
            let (secret, old_end) = match client_org(conn, &client_id)? {
                Some(org_id) => crate::clients::ops::rotate_secret(
                    conn,
                    &ctx,
                    &Actor::cli(&org_id),
                    &client_id,
                    expire_old_in_seconds,
                ),
                None => crate::clients::ops::rotate_platform_secret(
                    conn,
                    &ctx,
                    &client_id,
                    expire_old_in_seconds,
                ),
            }
            .map_err(naming(&client_id))?;
            Ok(json!({
                "client_id": client_id,
                "client_secret": secret,
                "old_secret_expires_at": rfc3339(old_end),
            }))
        }
        ClientCommand::Delete { client_id } => {
            let conn = &mut connect(settings)?;
            match client_org(conn, &client_id)? {
                Some(org_id) => {
                    crate::clients::ops::delete(conn, &ctx, &Actor::cli(&org_id), &client_id)
                }
                None => crate::clients::ops::delete_platform(conn, &ctx, &client_id),
            }
            .map_err(naming(&client_id))?;
            Ok(json!({"client_id": client_id, "deleted": true}))
        }
    }
}

/// The organization a client belongs to (`None`: a platform client); an unknown id is an
/// error naming it.
fn client_org(conn: &mut DbConnection, client_id: &str) -> Result<Option<String>, CommandError> {
    crate::clients::store::find(conn, client_id)?
        .map(|row| row.org_id)
        .ok_or_else(|| CommandError::NotFound(format!("client {client_id}")))
}

fn client_create(settings: &Settings, cmd: ClientCommand) -> Result<Value, CommandError> {
    let ClientCommand::Create {
        name,
        redirect_uris,
        public,
        grant_types,
        scope,
        resource_server,
        resources,
        post_logout_redirect_uris,
        id_token_signed_response_alg,
        jwks_file,
        org,
    } = cmd
    else {
        return Err(CommandError::Usage("not a create command".into()));
    };
    let grant_types = grant_types
        .as_deref()
        .map(crate::clients::parse_grant_types)
        .transpose()?;
    let scope = scope
        .as_deref()
        .map(|s| {
            ScopeSet::parse_many([s]).map_err(|e| CommandError::Usage(format!("--scope: {e}")))
        })
        .transpose()?;
    let jwks = jwks_file
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CommandError::Usage(format!("--jwks-file {}: {e}", path.display())))?;
            serde_json::from_str::<Value>(&text).map_err(|e| {
                CommandError::Usage(format!("--jwks-file {}: not JSON: {e}", path.display()))
            })
        })
        .transpose()?;
    let new = NewClient {
        name,
        redirect_uris,
        public,
        resource_server,
        grant_types,
        scope,
        org_id: org.clone(),
        resources: Some(resources),
        post_logout_redirect_uris: Some(post_logout_redirect_uris),
        id_token_signed_response_alg,
        jwks,
        ..Default::default()
    };
    let ctx = Ctx::offline(settings, SystemClock.now());
    let conn = &mut connect(settings)?;
    // An organization's client is made by the same operation as on the pages and the API;
    // a platform client (no --org, e.g. a resource server) has no organization to act in.
    let (row, secret) = match &org {
        Some(org_id) => crate::clients::ops::create(conn, &ctx, &Actor::cli(org_id), new)?,
        None => crate::clients::ops::create_platform(conn, &ctx, new)?,
    };
    let mut out = json!({"client_id": row.id});
    if let Some(secret) = secret
        && let Some(o) = out.as_object_mut()
    {
        o.insert("client_secret".into(), json!(secret));
    }
    Ok(out)
}

/// `api-key create`, `list`, `revoke`; `api-key check` is [`check_key`] (no database).
pub fn api_key(settings: &Settings, cmd: ApiKeyCommand) -> Result<Value, CommandError> {
    let ctx = Ctx::offline(settings, SystemClock.now());
    match cmd {
        ApiKeyCommand::Create { .. } => api_key_create(settings, cmd),
        ApiKeyCommand::Check { key } => Ok(check_key(settings, &key).1),
        ApiKeyCommand::List { org } => {
            let conn = &mut connect(settings)?;
            let actor = org_actor(conn, &org)?;
            data(crate::api_keys::ops::list(conn, &ctx, &actor)?)
        }
        ApiKeyCommand::Request(c) => requests::run(settings, c),
        ApiKeyCommand::Revoke { key_id } => {
            let conn = &mut connect(settings)?;
            let row = crate::api_keys::store::find_live(conn, &key_id)?.ok_or_else(|| {
                CommandError::NotFound(format!("live API key {key_id} (revoked or never made)"))
            })?;
            crate::api_keys::ops::revoke(conn, &ctx, &Actor::cli(&row.org_id), &key_id)
                .map_err(naming(&key_id))?;
            Ok(json!({"id": key_id, "revoked": true}))
        }
    }
}

fn api_key_create(settings: &Settings, cmd: ApiKeyCommand) -> Result<Value, CommandError> {
    let ApiKeyCommand::Create {
        org,
        name,
        scopes,
        expires_in_days,
        expires_at,
        publishable,
        rate_limit_per_minute,
    } = cmd
    else {
        return Err(CommandError::Usage("not a create command".into()));
    };
    ScopeSet::parse_many(scopes.iter().map(String::as_str))
        .map_err(|e| CommandError::Usage(format!("--scope: {e}")))?;
    if let Some(at) = &expires_at
        && expires_in_days.is_none()
        && crate::clock::parse_rfc3339(at).is_none()
    {
        return Err(CommandError::Usage(format!(
            "--expires-at: {at:?} is not an RFC 3339 time like 2030-01-31T00:00:00Z"
        )));
    }
    let input = CreateKey {
        name,
        scopes: ScopesInput::List(scopes),
        key_type: if publishable {
            KeyType::Publishable
        } else {
            KeyType::Secret
        },
        // --expires-in-days wins over --expires-at, as before.
        expires_at: expires_at.filter(|_| expires_in_days.is_none()),
        expires_in_days,
        rate_limit_per_minute,
    };
    let ctx = Ctx::offline(settings, SystemClock.now());
    let created =
        crate::api_keys::ops::create(&mut connect(settings)?, &ctx, &Actor::cli(&org), &input)?;
    Ok(serde_json::to_value(created).unwrap_or(Value::Null))
}

/// `api-key check` (docs/spec.md §1): whether `key` is a well-formed key of the configured
/// prefix with a valid checksum, and the verdict printed on stdout: `{"valid": true,
/// "type": "secret"|"publishable", "prefix": "tsr"}` or `{"valid": false, "reason": ...}`.
/// The key itself is never printed. Offline: no database.
pub fn check_key(settings: &Settings, key: &str) -> (bool, Value) {
    use crate::api_keys::format::{CHECKSUM_LEN, FormatError, RANDOM_LEN, parse};
    let prefix = &settings.key_prefix;
    match parse(key, prefix) {
        Ok((key_type, _)) => (
            true,
            json!({"valid": true, "type": key_type, "prefix": prefix}),
        ),
        Err(e) => {
            let reason = match e {
                FormatError::Prefix => {
                    format!("not a {prefix} key (expected prefix {prefix}_sk_ or {prefix}_pk_)")
                }
                FormatError::Shape => format!(
                    "malformed: expected {RANDOM_LEN} random and {CHECKSUM_LEN} checksum characters (0-9A-Za-z) after the prefix"
                ),
                FormatError::Checksum => {
                    "checksum mismatch: a typo, or not a key tessera made".to_string()
                }
            };
            (false, json!({"valid": false, "reason": reason}))
        }
    }
}

/// `keys list` / `keys rotate` at time `now`.
pub fn keys(settings: &Settings, cmd: KeysCommand, now: Timestamp) -> Result<Value, CommandError> {
    let mut conn = connect(settings)?;
    let conn: &mut DbConnection = &mut conn;
    let retention = settings.key_retention_seconds();
    match cmd {
        KeysCommand::List => {
            let set = keys::load_set(conn, &settings.keys_dir)?;
            let list: Vec<Value> = set
                .all()
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    json!({
                        "kid": k.kid,
                        "alg": k.alg.as_str(),
                        "use": k.purpose,
                        "state": set.state(i, now, retention),
                        "created_at": rfc3339(k.created_at),
                        "sign_from": rfc3339(k.sign_from),
                        "private_key_present": key_file_exists(settings, &k.kid),
                    })
                })
                .collect();
            Ok(json!({"data": list}))
        }
        KeysCommand::Rotate => {
            let sign_from = now + settings.key_rotation_delay_seconds;
            let kid = keys::create_key(
                conn,
                &settings.keys_dir,
                settings.signing_alg,
                keys::KeyUse::Access,
                now,
                sign_from,
            )?;
            // docs/spec.md §9: the ID-token keys rotate with it, on the same staging.
            let mut id_token_keys = Vec::new();
            for alg in keys::ID_TOKEN_ALGS {
                let id_kid = keys::create_key(
                    conn,
                    &settings.keys_dir,
                    alg,
                    keys::KeyUse::IdToken,
                    now,
                    sign_from,
                )?;
                id_token_keys.push(json!({"kid": id_kid, "alg": alg.as_str()}));
            }
            let set = keys::load_set(conn, &settings.keys_dir)?;
            let pruned = keys::prune_expired(conn, &settings.keys_dir, &set, now, retention)?;
            record(
                conn,
                None,
                "signing_key.rotated",
                "signing_key",
                &kid,
                json!({"sign_from": sign_from, "id_token_keys": id_token_keys}),
                now,
            )?;
            Ok(json!({
                "kid": kid,
                "alg": settings.signing_alg.as_str(),
                "id_token_keys": id_token_keys,
                "published_at": rfc3339(now),
                "sign_from": rfc3339(sign_from),
                "pruned": pruned,
            }))
        }
    }
}

fn key_file_exists(settings: &Settings, kid: &str) -> bool {
    settings.keys_dir.join(format!("{kid}.pem")).exists()
}

fn record(
    conn: &mut DbConnection,
    org_id: Option<&str>,
    action: &str,
    target_type: &str,
    target_id: &str,
    details: Value,
    now: i64,
) -> diesel::QueryResult<()> {
    crate::audit::record(
        conn,
        &crate::audit::Event {
            org_id,
            actor: "cli",
            action,
            target_type,
            target_id,
            details,
        },
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_without_its_newline() {
        assert_eq!(
            read_password(&b"hunter2hunter2\nsecond"[..]).expect("read"),
            "hunter2hunter2"
        );
        assert_eq!(
            read_password(&b"crlf-password\r\n"[..]).expect("read"),
            "crlf-password"
        );
        assert_eq!(
            read_password(&b"no newline"[..]).expect("read"),
            "no newline"
        );
        assert_eq!(
            read_password(&b" spaces kept \n"[..]).expect("read"),
            " spaces kept "
        );
    }
}
