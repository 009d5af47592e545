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

/// Why a metadata document client was refused. [`Refusal::message`] names the problem for
/// the error page; [`Refusal::description`] is the fixed text for an OAuth error body.
#[derive(Debug)]
pub enum Refusal {
    /// The `client_id` starts like a URL but is no valid metadata document URL.
    NotADocumentUrl,
    /// The fetch failed (`crate::fetch::FetchError` names why).
    Fetch(crate::fetch::FetchError),
    /// The document breaks a rule of docs/spec.md §8.
    Invalid(String),
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
        }
    }

    /// RFC 6749 §5.2 `invalid_client` for the token endpoint, with a fixed description.
    pub fn oauth_error(&self) -> OAuthError {
        let description = match self {
            Self::NotADocumentUrl => "The client_id is not a valid client metadata document URL.",
            Self::Fetch(e) => e.description(),
            Self::Invalid(_) => "The client metadata document is invalid.",
        };
        OAuthError::new(ErrorCode::InvalidClient, description)
    }
}

/// `Ok(None)` when `client_id` is an ordinary client id; `Ok(Some((url, client)))` for a
/// metadata document client whose document was fetched (or found in the cache) and is
/// valid; `Err` when it looks like a URL but cannot be used.
pub async fn resolve(
    state: &AppState,
    client_id: Option<&str>,
) -> Result<Option<(String, ValidClient)>, Refusal> {
    let Some(id) = client_id.filter(|id| document::looks_like_url(id)) else {
        return Ok(None);
    };
    if !document::is_document_url(id, state.settings.client_metadata_allow_loopback) {
        return Err(Refusal::NotADocumentUrl);
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
