//! The OpenAPI 3.1 document of `/api/v1` and `/oauth/register`, generated with `utoipa`
//! from the `#[utoipa::path]` attributes on the handlers and the `ToSchema` types they
//! take and give, and served at `/api/v1/openapi.json` (public). A test checks that every
//! `/api/v1` and `/oauth/register` route registered in `http::routes` appears in it, and
//! nothing else (docs/architecture.md §4).

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::server::Server;

use crate::http::errors::ErrorBody;

/// The name of the `/api/v1` bearer security scheme (API key or user access token).
pub const BEARER: &str = "bearer";
/// The name of the HTTP Basic scheme of key verification (a resource server).
pub const BASIC: &str = "basic";
/// The name of the secret-scanning signature scheme (docs/spec.md §10).
pub const GITHUB_SIGNATURE: &str = "githubSignature";
/// The name of the RFC 7592 registration access token scheme.
pub const REGISTRATION_TOKEN: &str = "registrationToken";

/// What every call authenticated by a bearer credential (`Principal`) may answer besides
/// its own success, 400 aside (docs/spec.md §5).
#[derive(utoipa::IntoResponses)]
pub enum BearerErrors {
    /// Missing, invalid, expired or revoked credential.
    #[response(
        status = 401,
        headers(("WWW-Authenticate" = String, description = "RFC 6750 §3 challenge, e.g. `Bearer realm=\"tessera\", error=\"invalid_token\"`"))
    )]
    Unauthorized(ErrorBody),
    /// The credential lacks `admin` (`insufficient_scope` challenge), the caller's role
    /// does not allow the operation, or the organization is not usable.
    #[response(
        status = 403,
        headers(("WWW-Authenticate" = String, description = "On a missing scope: `Bearer realm=\"tessera\", error=\"insufficient_scope\", scope=\"admin\"`"))
    )]
    Forbidden(ErrorBody),
    /// No such object (another organization's is indistinguishable from none), or the
    /// `Tessera-Organization` header names an organization the caller is not in.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The key's rate limit is exhausted.
    #[response(
        status = 429,
        headers(
            ("Retry-After" = i64, description = "Seconds until the window ends"),
            ("X-RateLimit-Limit" = i64),
            ("X-RateLimit-Remaining" = i64),
            ("X-RateLimit-Reset" = i64, description = "Epoch seconds")
        )
    )]
    TooManyRequests(ErrorBody),
    /// The database cannot be reached.
    #[response(status = 503, headers(("Retry-After" = i64)))]
    Unavailable(ErrorBody),
}

/// 400 on `/api/v1`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 400,
    description = "A malformed body, an invalid value, or a malformed Tessera-Organization header"
)]
pub struct InvalidRequest(pub ErrorBody);

/// 413: the body is larger than `API_BODY_LIMIT`.
#[derive(utoipa::IntoResponses)]
#[response(status = 413, description = "The body is larger than 64 KiB")]
pub struct TooLarge(pub ErrorBody);

/// 409 on the members routes.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 409,
    description = "The user is already a member, or the change would leave the organization without an admin"
)]
pub struct Conflict(pub ErrorBody);

/// Adds the security schemes.
struct Schemes;

impl utoipa::Modify for Schemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let http = |scheme: HttpAuthScheme, description: &str| {
            let mut h = Http::new(scheme);
            h.description = Some(description.to_string());
            SecurityScheme::Http(h)
        };
        components.add_security_scheme(
            BEARER,
            http(
                HttpAuthScheme::Bearer,
                "An API key (`<prefix>_sk_…`) or a user's access token, carrying the admin scope",
            ),
        );
        components.add_security_scheme(
            BASIC,
            http(
                HttpAuthScheme::Basic,
                "A resource-server client's id and secret",
            ),
        );
        components.add_security_scheme(
            GITHUB_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                super::secret_scanning::SIGNATURE,
                "GitHub's ECDSA P-256 SHA-256 signature of the raw body (base64 DER), by the key `Github-Public-Key-Identifier` names in --secret-scanning-keys",
            ))),
        );
        components.add_security_scheme(
            REGISTRATION_TOKEN,
            http(
                HttpAuthScheme::Bearer,
                "The registration_access_token handed out by RFC 7591 registration",
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tessera management API",
        description = "API keys, key verification, organization members, OAuth clients, and RFC 7591/7592 dynamic client registration. Every /api/v1 call uses Authorization: Bearer <API key or access token> carrying the admin scope, except key verification (HTTP Basic as a resource server) and this document (public)."
    ),
    paths(
        openapi_get,
        super::verify::verify_post,
        super::keys::list_get,
        super::keys::create_post,
        super::keys::delete,
        super::keys::roll_post,
        super::clients::list_get,
        super::clients::create_post,
        super::clients::get,
        super::clients::update_put,
        super::clients::delete_client,
        super::clients::secret_post,
        super::members::list_get,
        super::invitations::invite_post,
        super::invitations::list_get,
        super::invitations::delete,
        super::members::role_patch,
        super::members::delete,
        super::usage::usage_get,
        super::orgs::org_get,
        super::orgs::org_patch,
        super::key_requests::create_post,
        super::key_requests::list_get,
        super::key_requests::approve_post,
        super::key_requests::deny_post,
        super::key_requests::claim_post,
        super::secret_scanning::verify_post,
        crate::http::register::register_post,
        crate::http::register::read_get,
        crate::http::register::update_put,
        crate::http::register::delete,
    ),
    // Schemas reached only through `IntoResponses` types are not collected by the derive.
    components(schemas(
        ErrorBody,
        crate::http::errors::ErrorType,
        crate::error::ErrorJson,
    )),
    modifiers(&Schemes)
)]
struct ApiDoc;

/// The document, with `issuer` as its one server.
pub fn document(issuer: &str) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.servers = Some(vec![Server::new(issuer)]);
    doc
}

/// `GET /api/v1/openapi.json` (public).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "getOpenApiDocument",
    tag = "document",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_get(state: actix_web::web::Data<crate::app::AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(document(&state.issuer))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(super::document("https://issuer.example")).expect("serializes")
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    out.push((path.clone(), method.clone(), op.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_operation_has_a_unique_operation_id() {
        let doc = doc();
        let ops = operations(&doc);
        assert!(ops.len() >= 20, "{} operations", ops.len());
        let mut seen = std::collections::BTreeSet::new();
        for (path, method, op) in &ops {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(seen.insert(id.to_string()), "{id} is used twice");
        }
    }

    #[test]
    fn every_ref_resolves() {
        let doc = doc();
        let text = doc.to_string();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| *c != '"').collect();
            assert!(
                doc["components"]["schemas"].get(&name).is_some(),
                "missing schema {name}"
            );
        }
        assert!(doc["components"]["schemas"].get("i64").is_none());
    }

    #[test]
    fn create_key_requires_exactly_name_and_scopes() {
        let doc = doc();
        assert_eq!(
            doc["components"]["schemas"]["CreateKey"]["required"],
            serde_json::json!(["name", "scopes"])
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_issuer_as_server() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["servers"],
            serde_json::json!([{"url": "https://issuer.example"}])
        );
        let too_large = format!("{} KiB", super::super::API_BODY_LIMIT / 1024);
        let description =
            doc["paths"]["/api/v1/api-keys"]["post"]["responses"]["413"]["description"]
                .as_str()
                .unwrap_or_default();
        assert!(description.contains(&too_large), "{description}");
        for name in ["bearer", "basic", "registrationToken"] {
            assert!(
                doc["components"]["securitySchemes"].get(name).is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn every_call_but_the_document_names_its_security_and_errors() {
        let doc = doc();
        for (path, method, op) in operations(&doc) {
            if path == "/api/v1/openapi.json" {
                continue;
            }
            assert!(op["security"].is_array(), "{method} {path}: security");
            for status in ["401", "503"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path}: {status}"
                );
            }
        }
    }
}
