//! Secret scanning (docs/spec.md §10): GitHub's partner program reports tokens it found in
//! public code to `POST /api/v1/secret-scanning/verify`. [`keys`] checks the report's
//! signature; [`report`] judges each token: one whose checksum fails is a false positive
//! without any database lookup; one whose digest is an issued key is a true positive, and
//! a live secret key is revoked at once when its organization's policy
//! `revoke_leaked_keys` says so (the default); a publishable key, public by design, never
//! is. Every found key gets an `api_key.leaked` audit record with the URL
//! and source of the leak; the organization's admins see it on their key page.

pub mod keys;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api_keys::{KeyType, format, store};
use crate::app::Ctx;
use crate::db::{DbConnection, write_tx};
use crate::error::OpError;

pub use keys::{ScanKeys, SignatureError};

/// The audit actor of what secret scanning does.
pub const ACTOR: &str = "secret_scanning";

/// Longest `url` or `source` kept, bytes; longer is a 400 naming the field.
pub const MAX_FIELD_LEN: usize = 2048;

/// One match in GitHub's payload: `{"token", "type", "url", "source"}` (fields GitHub
/// adds later are ignored).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct Match {
    /// The string that looks like one of our keys.
    pub token: String,
    /// The token type the scanner registered (echoed back as `token_type`).
    #[serde(rename = "type")]
    pub token_type: String,
    /// Where it was found (a URL to the file and line, a gist, an npm package…).
    #[serde(default)]
    pub url: Option<String>,
    /// What kind of place: `content`, `commit`, `pull_request_title`, `gist_content`, `npm`…
    #[serde(default)]
    pub source: Option<String>,
}

/// GitHub's label for a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// The token is a key this server issued.
    TruePositive,
    /// Not a key of ours: bad checksum, another prefix, or never issued.
    FalsePositive,
}

/// One answer: `{"token_raw", "token_type", "label"}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verdict {
    pub token_raw: String,
    pub token_type: String,
    pub label: Label,
}

fn check_len(name: &str, v: Option<&String>) -> Result<(), OpError> {
    if v.is_some_and(|s| s.len() > MAX_FIELD_LEN) {
        Err(OpError::invalid(format!(
            "{name} must be at most {MAX_FIELD_LEN} bytes."
        )))
    } else {
        Ok(())
    }
}

/// The answer when no match passes the offline format check: all false positives, with
/// no database needed (docs/spec.md §10: the checksum short-cut). `None` when at least one
/// match needs [`report`]. Errors as [`report`].
pub fn offline(matches: &[Match], prefix: &str) -> Result<Option<Vec<Verdict>>, OpError> {
    check_fields(matches)?;
    if matches
        .iter()
        .any(|m| format::parse(&m.token, prefix).is_ok())
    {
        return Ok(None);
    }
    Ok(Some(
        matches
            .iter()
            .map(|m| Verdict {
                token_raw: m.token.clone(),
                token_type: m.token_type.clone(),
                label: Label::FalsePositive,
            })
            .collect(),
    ))
}

fn check_fields(matches: &[Match]) -> Result<(), OpError> {
    for m in matches {
        check_len("url", m.url.as_ref())?;
        check_len("source", m.source.as_ref())?;
    }
    Ok(())
}

/// Judges each match, in order (docs/spec.md §10). A live leaked key of an organization
/// whose `revoke_leaked_keys` is true is revoked in the same transaction as its
/// `api_key.leaked` record (and `api_key.revoked`, actor `secret_scanning`), refused here
/// from the next request on and on other instances through the audit-log poll.
/// Errors: 400 naming `url` or `source` when one is longer than [`MAX_FIELD_LEN`].
pub fn report(
    conn: &mut DbConnection,
    ctx: &Ctx<'_>,
    matches: &[Match],
) -> Result<Vec<Verdict>, OpError> {
    check_fields(matches)?;
    let mut verdicts = Vec::with_capacity(matches.len());
    for m in matches {
        let mut revoked_id: Option<(String, String)> = None;
        let label = match format::parse(&m.token, &ctx.settings.key_prefix) {
            // Checksum, prefix or shape wrong: not ours, and no lookup.
            Err(_) => Label::FalsePositive,
            Ok((_, key)) => {
                let digest = key.hash();
                // None: never issued; Some(revoked): ours, and whether we revoked it now.
                let found = write_tx(conn, |conn| -> Result<Option<bool>, OpError> {
                    let Some(row) = store::find_by_hash(conn, &digest)? else {
                        return Ok(None);
                    };
                    let live =
                        row.revoked_at.is_none() && row.expires_at.is_none_or(|t| t > ctx.now);
                    // A publishable key is public by design (it ships in web pages): found
                    // in public code it is recorded, never revoked, or anyone could copy one
                    // into a repository to have it killed.
                    let revoke = live
                        && row.key_type == KeyType::Secret
                        && crate::orgs::policy::load(conn, &row.org_id)?.revoke_leaked_keys;
                    if revoke {
                        store::revoke(conn, &row.org_id, &row.id, ACTOR, ctx.now)?;
                    }
                    crate::audit::record(
                        conn,
                        &crate::audit::Event {
                            org_id: Some(&row.org_id),
                            actor: ACTOR,
                            action: "api_key.leaked",
                            target_type: "api_key",
                            target_id: &row.id,
                            details: json!({
                                "name": row.name,
                                "last_six": row.last_six,
                                "url": m.url,
                                "source": m.source,
                                "token_type": m.token_type,
                                "was_live": live,
                                "revoked": revoke,
                            }),
                        },
                        ctx.now,
                    )?;
                    if revoke {
                        revoked_id = Some((row.id, row.org_id));
                    }
                    Ok(Some(revoke))
                })?;
                if let (Some(true), Some((id, org_id))) = (found, revoked_id.take()) {
                    // Committed: refused on this instance from the next request on.
                    ctx.key_revoked(&id);
                    // docs/spec.md §7: ids and where it leaked, never the key.
                    tracing::warn!(
                        key_id = %id,
                        org_id = %org_id,
                        source = m.source.as_deref().unwrap_or(""),
                        url = m.url.as_deref().unwrap_or(""),
                        "secret scanning: a leaked key was revoked"
                    );
                }
                match found {
                    None => Label::FalsePositive,
                    Some(_) => Label::TruePositive,
                }
            }
        };
        verdicts.push(Verdict {
            token_raw: m.token.clone(),
            token_type: m.token_type.clone(),
            label,
        });
    }
    Ok(verdicts)
}

/// A leak report as the admins' key page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub at: crate::clock::Timestamp,
    pub key_id: String,
    pub name: String,
    pub last_six: String,
    pub url: String,
    pub source: String,
    pub revoked: bool,
}

/// How long a leak report stays on the admins' key page: 30 days.
pub const SHOWN_FOR_SECONDS: i64 = 30 * 86_400;

/// The organization's leak reports of the last [`SHOWN_FOR_SECONDS`], newest first, at most
/// 20 (the banner of `/settings/api-keys`); empty for members.
pub fn recent_leaks(
    conn: &mut DbConnection,
    actor: &crate::orgs::Actor,
    now: crate::clock::Timestamp,
) -> Result<Vec<Leak>, OpError> {
    use crate::db::schema::audit_events;
    use diesel::prelude::*;
    if !actor.is_admin() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, String, String)> = audit_events::table
        .filter(audit_events::org_id.eq(&actor.org_id))
        .filter(audit_events::action.eq("api_key.leaked"))
        .filter(audit_events::created_at.ge(now - SHOWN_FOR_SECONDS))
        .order(audit_events::seq.desc())
        .limit(20)
        .select((
            audit_events::created_at,
            audit_events::target_id,
            audit_events::details,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(at, key_id, details)| {
            let d: serde_json::Value = serde_json::from_str(&details).unwrap_or_default();
            let text = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            Leak {
                at,
                name: text("name"),
                last_six: text("last_six"),
                url: text("url"),
                source: text("source"),
                revoked: d.get("revoked").and_then(serde_json::Value::as_bool) == Some(true),
                key_id,
            }
        })
        .collect())
}
