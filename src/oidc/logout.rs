//! RP-Initiated Logout 1.0 (docs/spec.md §9): the checks of a logout request at the
//! `end_session_endpoint`, before the person is asked to confirm. The HTTP side
//! (`http::logout`) renders the confirmation page and ends the session.

use crate::clients::store::{self, ClientRow};
use crate::db::DbConnection;
use crate::tokens::keys::KeySet;

/// The parameters of a logout request (RP-Initiated Logout 1.0 §2), as sent (GET query or
/// POST form). `logout_hint` and `ui_locales` are accepted and ignored.
#[derive(Debug, Clone, Default)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

impl LogoutParams {
    /// Reads the parameters from name/value pairs; empty values count as absent. A
    /// parameter sent twice is refused naming it (RFC 6749 §3.1, as at the other endpoints).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, LogoutError> {
        let mut out = Self::default();
        for (name, value) in pairs {
            let (slot, field) = match name {
                "id_token_hint" => (&mut out.id_token_hint, "id_token_hint"),
                "client_id" => (&mut out.client_id, "client_id"),
                "post_logout_redirect_uri" => (
                    &mut out.post_logout_redirect_uri,
                    "post_logout_redirect_uri",
                ),
                "state" => (&mut out.state, "state"),
                _ => continue,
            };
            if value.is_empty() {
                continue;
            }
            if slot.is_some() {
                return Err(LogoutError::field(field, "is repeated; send it once"));
            }
            *slot = Some(value.to_string());
        }
        if out.state.as_ref().is_some_and(|s| s.len() > 2000) {
            return Err(LogoutError::field(
                "state",
                "is longer than 2000 characters",
            ));
        }
        Ok(out)
    }
}

/// A logout request that passed every check of RP-Initiated Logout 1.0 §2–§4.
#[derive(Debug, Clone)]
pub struct LogoutRequest {
    /// The client that asks (from `client_id` or the hint's `aud`).
    pub client: Option<ClientRow>,
    /// The `sub` of a valid `id_token_hint`: the person the client wants signed out.
    pub hint_sub: Option<String>,
    /// Where to send the browser afterwards: the registered `post_logout_redirect_uri`
    /// with `state` added to its query. `None`: the "signed out" page.
    pub redirect: Option<String>,
}

/// Why a logout request is refused: no redirection then, an error page naming the field
/// (RP-Initiated Logout 1.0 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutError {
    pub field: &'static str,
    pub message: String,
}

impl LogoutError {
    fn field(field: &'static str, what: &str) -> Self {
        Self {
            field,
            message: format!("{field} {what}."),
        }
    }
}

/// Checks a logout request (RP-Initiated Logout 1.0 §2, §3, §4):
/// - `id_token_hint` must be an ID token tessera signed (our issuer, one of our ID-token
///   keys); an expired one is accepted.
/// - `client_id`, when sent with a hint, must be the hint's `aud`; the client must exist.
/// - `post_logout_redirect_uri` needs the client (from either) and must equal one of its
///   registered `post_logout_redirect_uris` exactly; `state` is then added to it.
///
/// The inner `Err` names the failing parameter; the outer one is a storage failure.
pub fn check(
    conn: &mut DbConnection,
    keys: &KeySet,
    issuer: &str,
    params: &LogoutParams,
) -> diesel::QueryResult<Result<LogoutRequest, LogoutError>> {
    let client = match client_id_of(keys, issuer, params) {
        Ok((Some(id), sub)) => match store::find(conn, &id)? {
            Some(c) => (Some(c), sub),
            None => {
                return Ok(Err(LogoutError::field(
                    "client_id",
                    "names no registered client",
                )));
            }
        },
        Ok((None, sub)) => (None, sub),
        Err(e) => return Ok(Err(e)),
    };
    Ok(finish(client, params))
}

/// The client the request names (by `client_id` or the hint's `aud`) and the hint's `sub`.
fn client_id_of(
    keys: &KeySet,
    issuer: &str,
    params: &LogoutParams,
) -> Result<(Option<String>, Option<String>), LogoutError> {
    let hint = match &params.id_token_hint {
        Some(t) => Some(
            super::id_token::verify_hint(keys, t, issuer).ok_or_else(|| {
                LogoutError::field("id_token_hint", "is not an ID token issued by this server")
            })?,
        ),
        None => None,
    };
    let client_id = match (&params.client_id, &hint) {
        (Some(c), Some(h)) if *c != h.aud => {
            return Err(LogoutError::field(
                "client_id",
                "does not match the audience of the id_token_hint",
            ));
        }
        (Some(c), _) => Some(c.clone()),
        (None, Some(h)) => Some(h.aud.clone()),
        (None, None) => None,
    };
    Ok((client_id, hint.map(|h| h.sub)))
}

fn finish(
    (client, hint_sub): (Option<ClientRow>, Option<String>),
    params: &LogoutParams,
) -> Result<LogoutRequest, LogoutError> {
    let redirect = match &params.post_logout_redirect_uri {
        None => None,
        Some(uri) => {
            let Some(c) = &client else {
                return Err(LogoutError::field(
                    "post_logout_redirect_uri",
                    "needs an id_token_hint or a client_id",
                ));
            };
            if !c.post_logout_redirect_uri_list().iter().any(|r| r == uri) {
                return Err(LogoutError::field(
                    "post_logout_redirect_uri",
                    "is not registered for this client",
                ));
            }
            Some(with_state(uri, params.state.as_deref()))
        }
    };
    Ok(LogoutRequest {
        client,
        hint_sub,
        redirect,
    })
}

/// `uri` with `state` appended to its query (RP-Initiated Logout 1.0 §3).
fn with_state(uri: &str, state: Option<&str>) -> String {
    let Some(state) = state else {
        return uri.to_string();
    };
    // The registered URI is kept byte for byte (it has no fragment, docs/spec.md §3).
    let pair = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("state", state)
        .finish();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{pair}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_overlong_parameters_are_named() {
        let e = LogoutParams::from_pairs([("state", "a"), ("state", "b")]).expect_err("twice");
        assert_eq!(e.field, "state");
        let long = "x".repeat(2001);
        let e = LogoutParams::from_pairs([("state", long.as_str())]).expect_err("long");
        assert_eq!(e.field, "state");
        let p = LogoutParams::from_pairs([("client_id", ""), ("ui_locales", "de")]).expect("ok");
        assert!(p.client_id.is_none());
    }

    #[test]
    fn state_joins_the_query_of_the_registered_uri() {
        assert_eq!(
            with_state("https://app.example/bye?x=1", Some("a b")),
            "https://app.example/bye?x=1&state=a+b"
        );
        assert_eq!(
            with_state("https://app.example/bye", None),
            "https://app.example/bye"
        );
    }
}
