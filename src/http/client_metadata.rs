//! Resolving a metadata document client before its request reaches the database
//! (docs/spec.md §8): a `client_id` that looks like a URL is fetched with the guarded
//! fetcher (`AppState::fetcher`, cached) and validated
//! (`clients::metadata_document::validate`); the caller then stores it with
//! `clients::metadata_document::upsert` inside its `with_db` closure. Used by
//! `GET /oauth/authorize` (a refusal is the error page: the redirect URI is not verified)
//! and `POST /oauth/token` (a refusal is `invalid_client`).

use crate::app::AppState;
use crate::clients::ValidClient;
use crate::clients::metadata_document as document;
use crate::error::{ErrorCode, OAuthError};

/// docs/spec.md §8: one address may make tessera fetch at most this many client ID
/// metadata documents that are not cached, per minute …
pub const FETCHES_PER_IP_PER_MINUTE: u32 = 30;
/// … and the same uncached (or invalid, so never cached) document at most this often.
pub const FETCHES_PER_URL_PER_MINUTE: u32 = 10;

/// Why a metadata document client was refused. [`Refusal::message`] names the problem for
/// the error page; [`Refusal::oauth_error`] names it in the token endpoint's OAuth error.
#[derive(Debug)]
pub enum Refusal {
    /// The `client_id` starts like a URL but is no valid metadata document URL.
    NotADocumentUrl,
    /// The fetch failed (`crate::fetch::FetchError` names why).
    Fetch(crate::fetch::FetchError),
    /// The document breaks a rule of docs/spec.md §8.
    Invalid(String),
    /// This address asked for too many new client IDs: retry after this many seconds (429).
    TooMany { retry_after: i64 },
}

impl Refusal {
    /// The message the authorization endpoint's error page shows.
    pub fn message(&self) -> String {
        match self {
            Self::NotADocumentUrl => "The client_id is not a valid client metadata document URL \
                 (https, with a path, no fragment or user info)."
                .to_string(),
            Self::Fetch(e) => format!(
                "The client metadata document could not be used: {}",
                e.description()
            ),
            Self::Invalid(msg) => msg.clone(),
            Self::TooMany { retry_after } => format!(
                "Too many new applications were used from your network. Retry in {} minute(s).",
                (retry_after + 59) / 60
            ),
        }
    }

    /// The HTTP status of the refusal: 429 for [`Refusal::TooMany`], else 400.
    pub fn status(&self) -> actix_web::http::StatusCode {
        match self {
            Self::TooMany { .. } => actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            _ => actix_web::http::StatusCode::BAD_REQUEST,
        }
    }

    /// RFC 6749 §5.2 `invalid_client` for the token endpoint, naming the problem
    /// (docs/spec.md §8): which rule the document breaks, or why it could not be fetched.
    pub fn oauth_error(&self) -> OAuthError {
        let description = match self {
            Self::NotADocumentUrl => "The client_id is not a valid client metadata document URL.",
            Self::Fetch(e) => e.description(),
            Self::Invalid(msg) => return OAuthError::naming(ErrorCode::InvalidClient, msg.clone()),
            Self::TooMany { retry_after } => return too_many(*retry_after),
        };
        OAuthError::new(ErrorCode::InvalidClient, description)
    }
}

/// The token endpoint's answer to an address over the limits of docs/spec.md §8: 429
/// `slow_down` with `Retry-After` (as for K2's throttle).
pub fn too_many(retry_after: i64) -> OAuthError {
    OAuthError {
        retry_after: Some(retry_after),
        ..OAuthError::new(
            ErrorCode::SlowDown,
            "Too many new client IDs from this address. Retry later.",
        )
    }
}

/// `Ok(None)` when `client_id` is an ordinary client id; `Ok(Some((url, client)))` for a
/// metadata document client whose document was fetched (or found in the cache) and is
/// valid; `Err` when it looks like a URL but cannot be used.
/// A document not in the cache is fetched only within [`FETCHES_PER_IP_PER_MINUTE`] and
/// [`FETCHES_PER_URL_PER_MINUTE`] for `ip` (else [`Refusal::TooMany`], before any fetch).
pub async fn resolve(
    state: &AppState,
    client_id: Option<&str>,
    ip: &str,
) -> Result<Option<(String, ValidClient)>, Refusal> {
    let Some(id) = client_id.filter(|id| document::looks_like_url(id)) else {
        return Ok(None);
    };
    if !document::is_document_url(id, state.settings.client_metadata_allow_loopback) {
        return Err(Refusal::NotADocumentUrl);
    }
    if !state.fetcher.is_cached(id) {
        let now = state.clock.now();
        if let Some(retry_after) = state.document_fetches.check(id, ip, now) {
            return Err(Refusal::TooMany { retry_after });
        }
        state.document_fetches.record_failure(id, ip, now);
    }
    let fetched = state
        .fetcher
        .get_json(id, crate::fetch::METADATA_DOCUMENT_MAX_BYTES)
        .await
        .map_err(Refusal::Fetch)?;
    let checked = document::validate(id, &fetched.json, &state.settings.scopes).and_then(|c| {
        // The document's `jwks_uri` is held to the server's address policy too.
        match &c.jwks_uri {
            Some(uri) => {
                crate::clients::jwks_uri::check(uri, state.settings.client_metadata_allow_loopback)
                    .map(|()| c)
                    .map_err(|e| match e {
                        crate::clients::ClientError::InvalidMetadata(m) => {
                            format!("The client metadata document is invalid: {m}")
                        }
                        other => other.to_string(),
                    })
            }
            None => Ok(c),
        }
    });
    match checked {
        Ok(client) => Ok(Some((id.to_string(), client))),
        Err(msg) => {
            // An invalid document is not kept: the next request fetches it again.
            state.fetcher.forget(id);
            Err(Refusal::Invalid(msg))
        }
    }
}
