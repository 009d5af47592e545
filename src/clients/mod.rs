//! OAuth clients: grant types, redirect-URI rules (RFC 6749 §3.1.2, RFC 8252 §7, BCP
//! §2.1/§4.1.3), registration, and storage.

pub mod jwks;
pub mod jwks_uri;
pub mod metadata_document;
pub mod open_registration;
pub mod ops;
pub mod redirect_uri;
pub mod registration;
pub mod store;

use crate::scope::{Catalogue, MANAGEMENT_SCOPE, ScopeSet};
use crate::tokens::keys::SigningAlg;

/// The grants tessera implements (RFC 6749 §4.1, §6, §4.4).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// RFC 8628 §3.4 (docs/spec.md §9).
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::DeviceCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => DEVICE_CODE_GRANT,
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// RFC 8628 §3.4: the device-code grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid redirect URI {uri:?}: {reason}")]
    InvalidRedirectUri { uri: String, reason: &'static str },
    #[error("invalid client metadata: {0}")]
    InvalidMetadata(String),
    #[error("organization {0} does not exist")]
    OrgNotFound(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// What a new client asks for, before validation.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub resource_server: bool,
    /// `None`: authorization_code + refresh_token (none for a resource server).
    pub grant_types: Option<Vec<GrantType>>,
    /// `None`: [`default_scope`], every catalogue scope but `admin`.
    pub scope: Option<ScopeSet>,
    pub org_id: Option<String>,
    pub logo_uri: Option<String>,
    pub client_uri: Option<String>,
    pub created_by: Option<String>,
    /// RFC 8707 resource URIs (resource servers only; docs/spec.md §8). `None`: none on
    /// creation, unchanged on update.
    pub resources: Option<Vec<String>>,
    /// RP-Initiated Logout 1.0 §3 `post_logout_redirect_uris`, validated like redirect
    /// URIs. `None`: none on creation, unchanged on update.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// OpenID Connect Dynamic Client Registration 1.0 §2 `id_token_signed_response_alg`
    /// (`RS256`, `ES256` or `EdDSA`). `None`: RS256 on creation, unchanged on update.
    pub id_token_signed_response_alg: Option<String>,
    /// RFC 7517 JWK set of a `private_key_jwt` client (RFC 7523 §2.2; docs/spec.md §8),
    /// which then has no secret. `None`: a secret (or none, public) on creation,
    /// unchanged on update.
    pub jwks: Option<serde_json::Value>,
    /// RFC 7591 §2 `jwks_uri`: where a `private_key_jwt` client publishes its JWK set
    /// (docs/spec.md §8; excludes `jwks`; [`jwks_uri::check`]). `None`: none on creation,
    /// unchanged on update.
    pub jwks_uri: Option<String>,
}

/// A registration that passed every rule.
#[derive(Debug, Clone)]
pub struct ValidClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub resource_server: bool,
    pub grant_types: Vec<GrantType>,
    pub scope: ScopeSet,
    pub org_id: Option<String>,
    pub logo_uri: Option<String>,
    pub client_uri: Option<String>,
    pub created_by: Option<String>,
    /// Sorted, de-duplicated resource URIs.
    pub resources: Vec<String>,
    /// De-duplicated, in the order given.
    pub post_logout_redirect_uris: Vec<String>,
    pub id_token_signed_response_alg: SigningAlg,
    /// The canonical JSON of a `private_key_jwt` client's JWK set ([`jwks::validate`]).
    pub jwks: Option<String>,
    /// Where a `private_key_jwt` client publishes its JWK set ([`jwks_uri::check`]).
    pub jwks_uri: Option<String>,
}

/// Parses `id_token_signed_response_alg` (docs/spec.md §9): one of
/// [`crate::tokens::keys::ID_TOKEN_ALGS`]; anything else is invalid client metadata
/// naming the field and the valid values.
pub fn parse_id_token_alg(value: &str) -> Result<SigningAlg, ClientError> {
    SigningAlg::parse(value)
        .filter(|a| crate::tokens::keys::ID_TOKEN_ALGS.contains(a))
        .ok_or_else(|| {
            meta(format!(
                "id_token_signed_response_alg {value:?} is not supported. Valid values: RS256, ES256, EdDSA."
            ))
        })
}

/// Validates and de-duplicates `post_logout_redirect_uris` (RP-Initiated Logout 1.0 §3)
/// with the rules of redirect URIs (docs/spec.md §3); at most 20.
fn post_logout_uris(uris: Vec<String>, public: bool) -> Result<Vec<String>, ClientError> {
    if uris.len() > 20 {
        return Err(meta("post_logout_redirect_uris: at most 20."));
    }
    let mut out: Vec<String> = Vec::new();
    for uri in uris {
        redirect_uri::validate(&uri, public).map_err(|e| match e {
            ClientError::InvalidRedirectUri { uri, reason } => {
                meta(format!("post_logout_redirect_uris: {uri:?}: {reason}"))
            }
            other => other,
        })?;
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

/// The message for a grant type tessera does not implement, naming it and the valid ones.
pub fn unknown_grant(name: &str) -> String {
    let valid: Vec<&str> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
    format!(
        "Unsupported grant type: {name}. Valid grant types: {}.",
        valid.join(", ")
    )
}

/// Parses the CLI's comma list of grant types.
pub fn parse_grant_types(list: &str) -> Result<Vec<GrantType>, ClientError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let g = GrantType::parse(item)
            .ok_or_else(|| ClientError::InvalidMetadata(unknown_grant(item)))?;
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out.sort();
    Ok(out)
}

fn meta(msg: impl Into<String>) -> ClientError {
    ClientError::InvalidMetadata(msg.into())
}

/// The scope of a client registered without one: every catalogue scope but `admin`,
/// which is only ever given explicitly (docs/spec.md §1, §3).
pub fn default_scope(catalogue: &Catalogue) -> ScopeSet {
    let names = catalogue.names().filter(|s| *s != MANAGEMENT_SCOPE);
    ScopeSet::parse_many(names).unwrap_or_default()
}

/// The scopes of `requested` outside `allowed`, space-separated, or `None` when there
/// are none; for messages that name the offending scopes and list the valid ones.
pub fn outside(requested: &ScopeSet, allowed: &ScopeSet) -> Option<String> {
    let extra: Vec<&str> = requested
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !allowed.contains(s))
        .collect();
    (!extra.is_empty()).then(|| extra.join(" "))
}

impl NewClient {
    /// [`Self::validate`] under the server's settings: a `jwks_uri` is also held to the
    /// address policy of `--client-metadata-allow-loopback` (docs/spec.md §8,
    /// docs/security.md K6). Every registration path (pages, `/api/v1`, RFC 7591/7592,
    /// the CLI) validates through here.
    pub fn validate_for(
        self,
        settings: &crate::config::Settings,
    ) -> Result<ValidClient, ClientError> {
        let valid = self.validate(&settings.scopes)?;
        if let Some(uri) = &valid.jwks_uri {
            jwks_uri::check(uri, settings.client_metadata_allow_loopback)?;
        }
        Ok(valid)
    }

    pub fn validate(self, catalogue: &Catalogue) -> Result<ValidClient, ClientError> {
        // RFC 7591 §2: client_name is optional; an unnamed client is shown by its id.
        let name = self.name.trim().to_string();
        if name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(meta(
                "The client name must be at most 200 characters, without control characters.",
            ));
        }
        if self.public && self.resource_server {
            return Err(meta("A resource server must be a confidential client."));
        }
        let grant_types = match self.grant_types {
            Some(g) => g,
            None if self.resource_server => Vec::new(),
            None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        };
        if grant_types.is_empty() && !self.resource_server {
            return Err(meta(
                "grant_types: at least one grant type is needed (authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code).",
            ));
        }
        if self.public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(meta(
                "grant_types: a public client cannot use client_credentials (it has no secret).",
            ));
        }
        if grant_types.contains(&GrantType::RefreshToken)
            && !grant_types.contains(&GrantType::AuthorizationCode)
            && !grant_types.contains(&GrantType::DeviceCode)
        {
            return Err(meta(
                "grant_types: refresh_token needs authorization_code or the device-code grant.",
            ));
        }
        for uri in &self.redirect_uris {
            redirect_uri::validate(uri, self.public)?;
        }
        let mut redirect_uris = Vec::new();
        for uri in self.redirect_uris {
            if !redirect_uris.contains(&uri) {
                redirect_uris.push(uri);
            }
        }
        if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            return Err(meta(
                "redirect_uris: authorization_code needs at least one redirect URI.",
            ));
        }
        let scope = match self.scope {
            Some(s) => {
                catalogue.check_named(&s).map_err(meta)?;
                s
            }
            None => default_scope(catalogue),
        };
        for (field, value) in [
            ("logo_uri", &self.logo_uri),
            ("client_uri", &self.client_uri),
        ] {
            if let Some(v) = value {
                let ok = url::Url::parse(v).is_ok_and(|u| u.scheme() == "https") && v.len() <= 2000;
                if !ok {
                    return Err(meta(format!(
                        "{field} must be an https URL of at most 2000 characters."
                    )));
                }
            }
        }
        let resources = crate::oauth::resource::validate_registration(
            self.resources.as_deref().unwrap_or_default(),
        )?;
        if !resources.is_empty() && !self.resource_server {
            return Err(meta("resources: only a resource server has resource URIs."));
        }
        let post_logout_redirect_uris = post_logout_uris(
            self.post_logout_redirect_uris.unwrap_or_default(),
            self.public,
        )?;
        let id_token_signed_response_alg = match self.id_token_signed_response_alg.as_deref() {
            None => SigningAlg::RS256,
            Some(a) => parse_id_token_alg(a)?,
        };
        let jwks = match &self.jwks {
            Some(_) if self.public => {
                return Err(meta(
                    "jwks: a public client has no keys (token_endpoint_auth_method none).",
                ));
            }
            Some(set) => Some(jwks::validate(set)?),
            None => None,
        };
        let jwks_uri = match self.jwks_uri {
            Some(_) if self.public => {
                return Err(meta(
                    "jwks_uri: a public client has no keys (token_endpoint_auth_method none).",
                ));
            }
            Some(_) if jwks.is_some() => {
                return Err(meta(
                    "jwks_uri: jwks and jwks_uri exclude each other (RFC 7591 section 2).",
                ));
            }
            Some(uri) => {
                // The form; the address policy of the server is applied by `validate_for`.
                jwks_uri::check(&uri, true)?;
                Some(uri)
            }
            None => None,
        };
        Ok(ValidClient {
            jwks_uri,
            resources,
            post_logout_redirect_uris,
            id_token_signed_response_alg,
            jwks,
            name,
            redirect_uris,
            public: self.public,
            resource_server: self.resource_server,
            grant_types,
            scope,
            org_id: self.org_id,
            logo_uri: self.logo_uri,
            client_uri: self.client_uri,
            created_by: self.created_by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> NewClient {
        NewClient {
            name: "App".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_code_and_refresh_with_the_catalogue_but_admin() {
        let c = base().validate(&Catalogue::default()).expect("valid");
        assert_eq!(
            c.grant_types,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert_eq!(
            c.scope.to_string(),
            "analytics:read email inference:read inference:write offline_access openid profile"
        );
    }

    #[test]
    fn the_name_is_optional_and_unknown_scopes_are_named() {
        let c = NewClient {
            name: "  ".into(),
            ..base()
        };
        assert_eq!(c.validate(&Catalogue::default()).expect("valid").name, "");
        let c = NewClient {
            scope: Some(ScopeSet::parse("inference:read root").expect("syntax")),
            ..base()
        };
        let e = c.validate(&Catalogue::default()).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "invalid client metadata: Scope not in the catalogue: root. Valid scopes: \
             admin analytics:read email inference:read inference:write offline_access openid profile."
        );
    }

    #[test]
    fn d9_public_clients_cannot_use_client_credentials() {
        let c = NewClient {
            public: true,
            grant_types: Some(vec![GrantType::ClientCredentials]),
            ..base()
        };
        assert!(c.validate(&Catalogue::default()).is_err());
    }

    #[test]
    fn resource_servers_need_no_redirect_uri_or_grant() {
        let c = NewClient {
            name: "RS".into(),
            resource_server: true,
            ..Default::default()
        };
        let v = c.validate(&Catalogue::default()).expect("valid");
        assert!(v.grant_types.is_empty());
    }

    #[test]
    fn code_grant_needs_a_redirect_uri_and_known_scopes() {
        let c = NewClient {
            redirect_uris: vec![],
            ..base()
        };
        assert!(c.validate(&Catalogue::default()).is_err());
        let c = NewClient {
            scope: Some(ScopeSet::parse("root").expect("syntax")),
            ..base()
        };
        assert!(c.validate(&Catalogue::default()).is_err());
    }

    #[test]
    fn grant_type_lists_parse_strictly() {
        assert_eq!(
            parse_grant_types("client_credentials,authorization_code").expect("ok"),
            vec![GrantType::AuthorizationCode, GrantType::ClientCredentials]
        );
        assert!(parse_grant_types("password").is_err());
        assert!(parse_grant_types("").expect("ok").is_empty());
        assert_eq!(
            parse_grant_types("urn:ietf:params:oauth:grant-type:device_code,refresh_token")
                .expect("ok"),
            vec![GrantType::RefreshToken, GrantType::DeviceCode]
        );
    }
}
