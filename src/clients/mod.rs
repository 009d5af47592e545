//! OAuth clients: grant types, redirect-URI rules (RFC 6749 §3.1.2, RFC 8252 §7, BCP
//! §2.1/§4.1.3), registration, and storage.

pub mod ops;
pub mod redirect_uri;
pub mod registration;
pub mod store;

use crate::scope::{Catalogue, ScopeSet};

/// The grants tessera implements (RFC 6749 §4.1, §6, §4.4).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

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
    /// `None`: the whole catalogue.
    pub scope: Option<ScopeSet>,
    pub org_id: Option<String>,
    pub logo_uri: Option<String>,
    pub client_uri: Option<String>,
    pub created_by: Option<String>,
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
}

/// Parses the CLI's comma list of grant types.
pub fn parse_grant_types(list: &str) -> Result<Vec<GrantType>, ClientError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let g = GrantType::parse(item)
            .ok_or_else(|| ClientError::InvalidMetadata(format!("unknown grant type {item:?}")))?;
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

impl NewClient {
    pub fn validate(self, catalogue: &Catalogue) -> Result<ValidClient, ClientError> {
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(meta("the client name must be 1-200 characters"));
        }
        if self.public && self.resource_server {
            return Err(meta("a resource server must be a confidential client"));
        }
        let grant_types = match self.grant_types {
            Some(g) => g,
            None if self.resource_server => Vec::new(),
            None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        };
        if grant_types.is_empty() && !self.resource_server {
            return Err(meta("at least one grant type is needed"));
        }
        if self.public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(meta(
                "a public client cannot use client_credentials (it has no secret)",
            ));
        }
        if grant_types.contains(&GrantType::RefreshToken)
            && !grant_types.contains(&GrantType::AuthorizationCode)
        {
            return Err(meta("refresh_token needs authorization_code"));
        }
        for uri in &self.redirect_uris {
            redirect_uri::validate(uri)?;
        }
        let mut redirect_uris = Vec::new();
        for uri in self.redirect_uris {
            if !redirect_uris.contains(&uri) {
                redirect_uris.push(uri);
            }
        }
        if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            return Err(meta("authorization_code needs at least one redirect URI"));
        }
        let scope = match self.scope {
            Some(s) => {
                catalogue
                    .check(&s)
                    .map_err(|_| meta("a scope is not in the catalogue"))?;
                s
            }
            None => ScopeSet::parse_many(catalogue.names()).map_err(|_| meta("bad catalogue"))?,
        };
        for (field, value) in [
            ("logo_uri", &self.logo_uri),
            ("client_uri", &self.client_uri),
        ] {
            if let Some(v) = value {
                let ok = url::Url::parse(v).is_ok_and(|u| u.scheme() == "https") && v.len() <= 2000;
                if !ok {
                    return Err(meta(format!("{field} must be an https URL")));
                }
            }
        }
        Ok(ValidClient {
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
    fn defaults_are_code_and_refresh_with_the_whole_catalogue() {
        let c = base().validate(&Catalogue::default()).expect("valid");
        assert_eq!(
            c.grant_types,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert!(c.scope.contains("admin") && c.scope.contains("inference:read"));
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
    }
}
