//! The JWK set of a `private_key_jwt` client that registered a `jwks_uri` (RFC 7523 §2.2;
//! docs/spec.md §8, docs/security.md D13, K6), fetched before a request's database work:
//! the token, device authorization, introspection and revocation endpoints call
//! [`attach`] on the presented credentials, and `oauth::client_assertion::verify` then
//! checks the assertion against the set attached.
//!
//! The set comes from the guarded fetcher (`AppState::fetcher`: no private address, no
//! redirect, 5 s, [`jwks_uri::MAX_BYTES`]; cached per `Cache-Control`, 5 min–24 h) and is
//! validated like an inline `jwks`. When the assertion's header asks for a key the cached
//! set lacks (a rotated `kid`), the set is fetched again — at most once a minute per URL
//! (`Fetcher::may_refetch`). Any failure is `invalid_client` with the one body of a failed
//! client authentication (docs/security.md D4); the reason goes to the log.

use actix_web::web;

use crate::app::AppState;
use crate::clients::ValidClient;
use crate::clients::jwks::KeySet;
use crate::clients::{jwks_uri, metadata_document, store};
use crate::error::OAuthError;
use crate::fetch::Fetcher;
use crate::http::with_db;
use crate::oauth::client_assertion::{self, FetchedKeys};
use crate::oauth::client_auth::Presented;

/// Fills in the keys of a `Presented::Assertion` whose client registered a `jwks_uri`
/// (`document`: the metadata document client already resolved for this request, whose
/// document names the `jwks_uri`). Other credentials pass unchanged. Errors:
/// `invalid_client` (the set cannot be fetched or is invalid).
pub async fn attach(
    state: &web::Data<AppState>,
    presented: Presented,
    document: Option<&ValidClient>,
) -> Result<Presented, OAuthError> {
    let (client_id, assertion) = match presented {
        Presented::Assertion {
            client_id,
            assertion,
            keys: None,
        } => (client_id, assertion),
        other => return Ok(other),
    };
    let uri = match document {
        Some(d) => d.jwks_uri.clone(),
        None if metadata_document::looks_like_url(&client_id) => None,
        None => {
            let id = client_id.clone();
            with_db(state, move |conn| -> Result<_, OAuthError> {
                Ok(store::find(conn, &id)?.and_then(|row| row.jwks_uri))
            })
            .await?
        }
    };
    let keys = match uri {
        None => None,
        Some(uri) => {
            let jwks = key_set(&state.fetcher, &uri, &assertion)
                .await
                .map_err(|reason| {
                    tracing::info!(reason, "the client's jwks_uri could not be used");
                    OAuthError::invalid_client()
                })?;
            Some(FetchedKeys { uri, jwks })
        }
    };
    Ok(Presented::Assertion {
        client_id,
        assertion,
        keys,
    })
}

/// The set at `uri`, fetched again once (rate-limited) when it lacks the key the
/// assertion's header names.
async fn key_set(fetcher: &Fetcher, uri: &str, assertion: &str) -> Result<String, &'static str> {
    let jwks = current(fetcher, uri).await?;
    let lacks_key = client_assertion::wanted_key(assertion).is_some_and(|(alg, kid)| {
        client_assertion::SIGNING_ALGS.contains(&crate::clients::jwks::alg_name(alg))
            && KeySet::parse(&jwks).is_none_or(|set| set.candidates(alg, kid.as_deref()).is_empty())
    });
    if lacks_key && fetcher.may_refetch(uri) {
        fetcher.forget(uri);
        return current(fetcher, uri).await;
    }
    Ok(jwks)
}

/// The valid set at `uri`, cached or fetched; an invalid one is not kept.
async fn current(fetcher: &Fetcher, uri: &str) -> Result<String, &'static str> {
    let fetched = fetcher
        .get_json(uri, jwks_uri::MAX_BYTES)
        .await
        .map_err(|e| e.description())?;
    jwks_uri::keys_of(&fetched.json).map_err(|_| {
        fetcher.forget(uri);
        "The JWK set at jwks_uri is invalid (public signing keys only)."
    })
}
