//! The OpenID Connect parameters of an authorization request (OpenID Connect Core
//! §3.1.2.1, docs/spec.md §9): `prompt`, `max_age`, `login_hint`, `id_token_hint`, and what
//! they make the authorization endpoint do with the person's session ([`decide`]).
//! `claims_locales` and `ui_locales` are accepted and ignored.

use crate::clock::Timestamp;
use crate::oauth::form::StrictForm;
use crate::sessions::Session;

/// The parsed OpenID Connect parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcParams {
    /// `prompt=none`: no page may be shown.
    pub none: bool,
    /// `prompt=login` (or `select_account`, which tessera treats alike): sign in again.
    pub login: bool,
    /// `prompt=consent`: ask even when consent is remembered.
    pub consent: bool,
    /// Seconds: sign in again when the session is older.
    pub max_age: Option<i64>,
    /// Prefills the email on the sign-in page.
    pub login_hint: Option<String>,
    /// The raw `id_token_hint`, verified by the caller.
    pub id_token_hint: Option<String>,
}

impl OidcParams {
    /// Parses the request's query. `Err(description)` is `invalid_request` by redirect: an
    /// unknown `prompt` value, `none` with another value, or a `max_age` that is not a
    /// non-negative integer.
    pub fn parse(query: &str) -> Result<Self, &'static str> {
        let Ok(form) = StrictForm::parse(query.as_bytes()) else {
            return Ok(Self::default());
        };
        let mut p = Self::default();
        if let Some(prompt) = form.get("prompt") {
            for v in prompt.split(' ').filter(|v| !v.is_empty()) {
                match v {
                    "none" => p.none = true,
                    "login" | "select_account" => p.login = true,
                    "consent" => p.consent = true,
                    _ => return Err("prompt has a value tessera does not know."),
                }
            }
            if p.none && (p.login || p.consent) {
                return Err("prompt=none cannot be combined with another value.");
            }
        }
        if let Some(m) = form.get("max_age") {
            match m.parse::<i64>() {
                Ok(v) if v >= 0 => p.max_age = Some(v),
                _ => return Err("max_age is not a non-negative integer."),
            }
        }
        p.login_hint = form.get("login_hint").map(str::to_string);
        p.id_token_hint = form.get("id_token_hint").map(str::to_string);
        Ok(p)
    }
}

/// What the authorization endpoint does with a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send the person to sign in (again, when `reauth`), then back.
    Login { reauth: bool },
    /// Go on with this session; `ask_again` shows the consent page even when consent is
    /// remembered (`prompt=consent`).
    Proceed { ask_again: bool },
    /// Answer the client with this error by redirect (`login_required`).
    Refuse(&'static str),
}

/// OpenID Connect Core §3.1.2.1/§3.1.2.3: sign in when there is no session, on
/// `prompt=login`, when the session is older than `max_age` seconds, or when
/// `id_token_hint` names someone else (`hint_sub`); with `prompt=none` each of these is
/// `login_required` instead.
pub fn decide(
    p: &OidcParams,
    session: Option<&Session>,
    hint_sub: Option<&str>,
    now: Timestamp,
) -> Step {
    let must_sign_in = match session {
        None => true,
        Some(s) => {
            p.login
                || p.max_age.is_some_and(|m| now - s.created_at > m)
                || hint_sub.is_some_and(|sub| sub != s.user_id)
        }
    };
    if must_sign_in {
        if p.none {
            return Step::Refuse("login_required");
        }
        return Step::Login {
            reauth: session.is_some(),
        };
    }
    Step::Proceed {
        ask_again: p.consent,
    }
}

/// The parameters a fresh sign-in satisfies: dropped from the return to the authorization
/// endpoint, which would otherwise ask again (forever, for `prompt=login`, or for a
/// `max_age=0` when the sign-in spans a second boundary).
const SATISFIED_BY_SIGN_IN: [&str; 3] = ["prompt", "max_age", "id_token_hint"];

/// The authorization request's query for the return after signing in, without
/// [`SATISFIED_BY_SIGN_IN`].
pub fn for_return(query: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            url::form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| !SATISFIED_BY_SIGN_IN.contains(&k.as_ref())),
        )
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(created_at: i64) -> Session {
        Session {
            id_hash: "h".into(),
            user_id: "usr_a".into(),
            org_id: None,
            csrf_secret: "s".into(),
            created_at,
            expires_at: created_at + 1000,
            last_seen_at: created_at,
        }
    }

    #[test]
    fn prompt_values_parse_and_none_stands_alone() {
        let p = OidcParams::parse("prompt=login+consent&max_age=0").expect("ok");
        assert!(p.login && p.consent && !p.none);
        assert_eq!(p.max_age, Some(0));
        assert!(
            OidcParams::parse("prompt=select_account")
                .expect("ok")
                .login
        );
        assert!(OidcParams::parse("prompt=none+login").is_err());
        assert!(OidcParams::parse("prompt=maybe").is_err());
        assert!(OidcParams::parse("max_age=-1").is_err());
        assert!(OidcParams::parse("max_age=soon").is_err());
    }

    #[test]
    fn sessions_older_than_max_age_or_of_someone_else_sign_in_again() {
        let s = session(100);
        let p = |q: &str| OidcParams::parse(q).expect("ok");
        assert_eq!(
            decide(&p(""), None, None, 150),
            Step::Login { reauth: false }
        );
        assert_eq!(
            decide(&p("prompt=none"), None, None, 150),
            Step::Refuse("login_required")
        );
        assert_eq!(
            decide(&p(""), Some(&s), None, 150),
            Step::Proceed { ask_again: false }
        );
        assert_eq!(
            decide(&p("max_age=60"), Some(&s), None, 150),
            Step::Proceed { ask_again: false }
        );
        assert_eq!(
            decide(&p("max_age=10"), Some(&s), None, 150),
            Step::Login { reauth: true }
        );
        assert_eq!(
            decide(&p("max_age=10&prompt=none"), Some(&s), None, 150),
            Step::Refuse("login_required")
        );
        assert_eq!(
            decide(&p("prompt=login"), Some(&s), None, 150),
            Step::Login { reauth: true }
        );
        assert_eq!(
            decide(&p(""), Some(&s), Some("usr_b"), 150),
            Step::Login { reauth: true }
        );
        assert_eq!(
            decide(&p(""), Some(&s), Some("usr_a"), 150),
            Step::Proceed { ask_again: false }
        );
        assert_eq!(
            decide(&p("prompt=consent"), Some(&s), None, 150),
            Step::Proceed { ask_again: true }
        );
    }

    #[test]
    fn the_return_after_sign_in_drops_what_the_sign_in_satisfied() {
        assert_eq!(
            for_return("client_id=a&prompt=login&max_age=0&state=x%20y&id_token_hint=h&nonce=n"),
            "client_id=a&state=x+y&nonce=n"
        );
    }
}
