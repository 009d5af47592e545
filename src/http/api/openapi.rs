//! The OpenAPI 3.1 document of `/api/v1` and `/oauth/register`, built here next to the
//! handlers it describes and served at `/api/v1/openapi.json` (public). A test checks that
//! every `/api/v1` route registered in `http::routes` appears in it, and nothing else.

use actix_web::HttpResponse;
use serde_json::{Value, json};

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema_ref(name)}}})
}

fn reply(description: &str, schema: Option<&str>) -> Value {
    match schema {
        Some(s) => {
            json!({"description": description, "content": {"application/json": {"schema": schema_ref(s)}}})
        }
        None => json!({"description": description}),
    }
}

/// The error answers every bearer-authenticated call can give.
fn bearer_errors(mut responses: serde_json::Map<String, Value>) -> Value {
    for (code, text) in [
        ("400", "Malformed request or invalid values"),
        (
            "401",
            "Missing, invalid, expired or revoked credential (RFC 6750 §3)",
        ),
        ("403", "Insufficient scope or role"),
        ("429", "The key's rate limit is exhausted; see Retry-After"),
        ("503", "The database cannot be reached"),
    ] {
        responses
            .entry(code.to_string())
            .or_insert_with(|| reply(text, Some("Error")));
    }
    Value::Object(responses)
}

fn op(
    summary: &str,
    security: &str,
    request: Option<&str>,
    ok: (&str, &str, Option<&str>),
) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok.0.to_string(), reply(ok.1, ok.2));
    responses.insert(
        "404".into(),
        reply("Not found (or another organization's)", Some("Error")),
    );
    let mut o = json!({
        "summary": summary,
        "security": [{ security: [] }],
        "responses": bearer_errors(responses),
    });
    if let Some(r) = request
        && let Some(o) = o.as_object_mut()
    {
        o.insert("requestBody".into(), body(r));
    }
    o
}

fn id_param(name: &str) -> Value {
    json!([{"name": name, "in": "path", "required": true, "schema": {"type": "string"}}])
}

/// The document.
pub fn document(issuer: &str) -> Value {
    let str_ = json!({"type": "string"});
    let time = json!({"type": ["string", "null"], "format": "date-time"});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tessera management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "API keys, key verification, organization members, OAuth clients, and RFC 7591/7592 dynamic client registration. Every /api/v1 call uses Authorization: Bearer <API key or access token> carrying the admin scope, except key verification (HTTP Basic as a resource server)."
        },
        "servers": [{"url": issuer}],
        "paths": {
            "/api/v1/api-keys": {
                "get": op("List the organization's keys (never the secret)", "bearer", None, ("200", "The keys", Some("ApiKeyList"))),
                "post": op("Create a key; the plaintext appears only in this answer", "bearer", Some("CreateApiKey"), ("201", "The new key", Some("CreatedApiKey"))),
            },
            "/api/v1/api-keys/{id}": {
                "parameters": id_param("id"),
                "delete": op("Revoke a key (admins)", "bearer", None, ("204", "Revoked; refused from the next request on", None)),
            },
            "/api/v1/api-keys/{id}/roll": {
                "parameters": id_param("id"),
                "post": op("Roll a key (admins): a new key with the same settings", "bearer", Some("Overlap"), ("201", "The new key", Some("CreatedApiKey"))),
            },
            "/api/v1/keys/verify": {
                "post": op("Verify a key and count one request against its limit (resource servers)", "basic", Some("VerifyRequest"), ("200", "The verdict, with X-RateLimit headers", Some("Verification"))),
            },
            "/api/v1/orgs/{org_id}/members": {
                "parameters": id_param("org_id"),
                "get": op("List members", "bearer", None, ("200", "The members", Some("MemberList"))),
                "post": op("Add an existing user by email (admins)", "bearer", Some("AddMember"), ("201", "Added", Some("Member"))),
            },
            "/api/v1/orgs/{org_id}/members/{user_id}": {
                "parameters": [
                    {"name": "org_id", "in": "path", "required": true, "schema": str_},
                    {"name": "user_id", "in": "path", "required": true, "schema": str_}
                ],
                "patch": op("Change a member's role (admins)", "bearer", Some("ChangeRole"), ("200", "Changed", Some("Member"))),
                "delete": op("Remove a member (admins; the last admin stays: 409)", "bearer", None, ("204", "Removed", None)),
            },
            "/api/v1/clients": {
                "get": op("List the organization's OAuth clients", "bearer", None, ("200", "The clients", Some("ClientList"))),
                "post": op("Register an OAuth client; a confidential client's secret appears only here", "bearer", Some("ClientInput"), ("201", "The client", Some("Client"))),
            },
            "/api/v1/clients/{client_id}": {
                "parameters": id_param("client_id"),
                "get": op("Read a client", "bearer", None, ("200", "The client", Some("Client"))),
                "put": op("Replace a client's metadata", "bearer", Some("ClientInput"), ("200", "The client", Some("Client"))),
                "delete": op("Delete a client (admins): its tokens and codes die with it", "bearer", None, ("204", "Deleted", None)),
            },
            "/api/v1/clients/{client_id}/secret": {
                "parameters": id_param("client_id"),
                "post": op("Rotate the secret; the old one works until old_secret_expires_at", "bearer", Some("Overlap"), ("201", "The new secret", Some("RotatedSecret"))),
            },
            "/api/v1/openapi.json": {
                "get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}
            },
            "/oauth/register": {
                "post": {
                    "summary": "RFC 7591 dynamic client registration (bearer credential with admin)",
                    "security": [{"bearer": []}],
                    "requestBody": body("RegistrationMetadata"),
                    "responses": {
                        "201": reply("Registered, with registration_access_token and registration_client_uri", Some("RegistrationResponse")),
                        "400": reply("invalid_redirect_uri or invalid_client_metadata", Some("OAuthError")),
                        "401": reply("No valid credential", Some("Error")),
                        "403": reply("The credential lacks admin", Some("Error"))
                    }
                }
            },
            "/oauth/register/{client_id}": {
                "parameters": id_param("client_id"),
                "get": {"summary": "RFC 7592 read", "security": [{"registrationToken": []}],
                        "responses": {"200": reply("The metadata", Some("RegistrationResponse")), "401": reply("Invalid registration access token", Some("Error"))}},
                "put": {"summary": "RFC 7592 update (send client_id; the auth method cannot change)", "security": [{"registrationToken": []}],
                        "requestBody": body("RegistrationMetadata"),
                        "responses": {"200": reply("The metadata", Some("RegistrationResponse")), "400": reply("Invalid metadata", Some("OAuthError")), "401": reply("Invalid registration access token", Some("Error"))}},
                "delete": {"summary": "RFC 7592 delete", "security": [{"registrationToken": []}],
                           "responses": {"204": {"description": "Deleted"}, "401": reply("Invalid registration access token", Some("Error"))}}
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (tsr_sk_…) or a user's access token, carrying the admin scope"},
                "basic": {"type": "http", "scheme": "basic", "description": "A --resource-server client's id and secret"},
                "registrationToken": {"type": "http", "scheme": "bearer", "description": "The registration_access_token from RFC 7591 registration"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["type", "message"], "properties": {
                    "type": {"enum": ["invalid_request_error", "authentication_error", "permission_error", "not_found_error", "rate_limit_error", "api_error"]},
                    "message": str_, "retry_after": {"type": "integer"}}}}},
                "OAuthError": {"type": "object", "required": ["error"], "properties": {"error": str_, "error_description": str_}},
                "RateLimit": {"type": "object", "properties": {"limit": {"type": "integer"}, "remaining": {"type": "integer"}, "reset": {"type": "integer", "description": "epoch seconds"}}},
                "CreateApiKey": {"type": "object", "required": ["name", "scopes"], "additionalProperties": false, "properties": {
                    "name": str_, "scopes": {"oneOf": [{"type": "array", "items": str_}, str_]},
                    "type": {"enum": ["secret", "publishable"], "default": "secret"},
                    "expires_in_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 365},
                    "expires_at": time, "rate_limit_per_minute": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000000}}},
                "Overlap": {"type": "object", "additionalProperties": false, "description": "How long the old key or secret keeps working", "properties": {"expire_old_in_seconds": {"type": "integer", "minimum": 0, "maximum": 2592000, "default": 0}}},
                "CreatedApiKey": {"type": "object", "properties": {"id": str_, "key": str_, "name": str_, "type": str_, "scopes": {"type": "array", "items": str_},
                    "last_six": str_, "created_at": time, "expires_at": time, "rate_limit_per_minute": {"type": "integer"}}},
                "ApiKey": {"type": "object", "properties": {"id": str_, "name": str_, "type": str_, "scopes": {"type": "array", "items": str_}, "last_six": str_,
                    "created_by": {"type": ["string", "null"]}, "created_at": time, "expires_at": time, "last_used_at": time, "rate_limit_per_minute": {"type": "integer"}}},
                "ApiKeyList": {"type": "object", "properties": {"data": {"type": "array", "items": schema_ref("ApiKey")}}},
                "VerifyRequest": {"type": "object", "required": ["key"], "additionalProperties": false, "properties": {"key": str_, "scopes": {"oneOf": [{"type": "array", "items": str_}, str_]}}},
                "Verification": {"type": "object", "properties": {"valid": {"type": "boolean"},
                    "code": {"enum": ["VALID", "NOT_FOUND", "EXPIRED", "REVOKED", "INSUFFICIENT_SCOPE", "RATE_LIMITED"]},
                    "key_id": {"type": ["string", "null"]}, "org_id": {"type": ["string", "null"]}, "type": {"type": ["string", "null"]},
                    "scopes": {"type": ["array", "null"], "items": str_}, "expires_at": time, "ratelimit": {"oneOf": [schema_ref("RateLimit"), {"type": "null"}]}}},
                "Member": {"type": "object", "properties": {"user_id": str_, "email": str_, "role": {"enum": ["admin", "member"]}}},
                "MemberList": {"type": "object", "properties": {"data": {"type": "array", "items": schema_ref("Member")}}},
                "AddMember": {"type": "object", "required": ["email"], "additionalProperties": false, "properties": {"email": str_, "role": {"enum": ["admin", "member"], "default": "member"}}},
                "ChangeRole": {"type": "object", "required": ["role"], "additionalProperties": false, "properties": {"role": {"enum": ["admin", "member"]}}},
                "ClientInput": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                    "name": str_, "redirect_uris": {"type": "array", "items": str_}, "type": {"enum": ["confidential", "public"], "default": "confidential"},
                    "grant_types": {"type": "array", "items": {"enum": ["authorization_code", "refresh_token", "client_credentials"]}},
                    "scopes": {"oneOf": [{"type": "array", "items": str_}, str_]}, "logo_uri": str_, "client_uri": str_}},
                "Client": {"type": "object", "properties": {"client_id": str_, "client_name": str_, "redirect_uris": {"type": "array", "items": str_},
                    "grant_types": {"type": "array", "items": str_}, "response_types": {"type": "array", "items": str_},
                    "token_endpoint_auth_method": {"enum": ["none", "client_secret_basic"]}, "scope": str_,
                    "logo_uri": {"type": ["string", "null"]}, "client_uri": {"type": ["string", "null"]}, "client_id_issued_at": {"type": "integer"},
                    "resource_server": {"type": "boolean"}, "client_secret": {"type": "string", "description": "only when created"}}},
                "ClientList": {"type": "object", "properties": {"data": {"type": "array", "items": schema_ref("Client")}}},
                "RotatedSecret": {"type": "object", "properties": {"client_id": str_, "client_secret": str_, "old_secret_expires_at": time}},
                "RegistrationMetadata": {"type": "object", "description": "RFC 7591 §2; unknown members are ignored", "properties": {
                    "redirect_uris": {"type": "array", "items": str_}, "client_name": str_,
                    "token_endpoint_auth_method": {"enum": ["client_secret_basic", "client_secret_post", "none"]},
                    "grant_types": {"type": "array", "items": str_}, "response_types": {"type": "array", "items": {"const": "code"}},
                    "scope": str_, "logo_uri": str_, "client_uri": str_, "client_id": str_, "client_secret": str_}},
                "RegistrationResponse": {"allOf": [schema_ref("RegistrationMetadata"), {"type": "object", "properties": {
                    "client_id": str_, "client_secret": str_, "client_secret_expires_at": {"type": "integer"}, "client_id_issued_at": {"type": "integer"},
                    "registration_access_token": str_, "registration_client_uri": str_}}]}
            }
        }
    })
}

/// `GET /api/v1/openapi.json` (public).
pub async fn openapi_get(state: actix_web::web::Data<crate::app::AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(document(&state.issuer))
}
