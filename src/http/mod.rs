//! HTTP: extract, call the feature modules, map the result. Every URL is spelled once, in
//! [`routes`]; tests boot the same routing.

pub mod api;
pub mod bad_input;
pub mod client_keys;
pub mod client_metadata;
pub mod cors;
pub mod deadline;
pub mod device;
pub mod endpoint;
pub mod errors;
pub mod gateway;
pub mod logout;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod ops;
pub mod pages;
pub mod protected_resource;
pub mod register;
pub mod security_headers;
pub mod well_known;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::app::AppState;
use crate::db::DbConnection;
use crate::error::AppError;
use endpoint::{Endpoint, Shape};

/// The `/api/v1` prefix: its routes live in one scope with the rate-limit-headers
/// middleware and the JSON body limit.
const API_V1: &str = "/api/v1";

/// An endpoint outside `/api/v1`.
fn at(path: &'static str, shape: Shape) -> Endpoint {
    Endpoint::new(path, path, shape)
}

/// An endpoint of the `/api/v1` scope, spelled with its full path (so that this function
/// lists every URL as a client sees it).
fn api_v1(full_path: &'static str) -> Endpoint {
    let mount = full_path.strip_prefix(API_V1).unwrap_or(full_path);
    Endpoint::new(full_path, mount, Shape::Api)
}

/// Every endpoint of the server: those outside `/api/v1`, and those inside it.
fn endpoints() -> (Vec<Endpoint>, Vec<Endpoint>) {
    use Shape::{OAuth, Plain};
    let token_body = || web::PayloadConfig::new(oauth::TOKEN_BODY_LIMIT);
    let api_body = || web::PayloadConfig::new(api::API_BODY_LIMIT);
    let top = vec![
        at("/", Plain).get(pages::dashboard::home_get),
        at("/static/tessera.css", Plain).get(pages::stylesheet_get),
        at("/static/copy.js", Plain).get(pages::copy_script_get),
        at("/static/favicon.svg", Plain).get(pages::favicon_get),
        at("/favicon.ico", Plain).get(pages::favicon_get),
        at("/settings/api-keys", Plain)
            .get(pages::keys::api_keys_get)
            .post(pages::keys::api_keys_post),
        at("/settings/api-keys/{id}/revoke", Plain)
            .get(pages::keys::revoke_get)
            .post(pages::keys::revoke_post),
        at("/settings/org", Plain).post(pages::keys::org_post),
        at("/settings/key-requests", Plain)
            .get(pages::key_requests::key_requests_get)
            .post(pages::key_requests::key_requests_post),
        at("/settings/key-requests/{id}/approve", Plain).post(pages::key_requests::approve_post),
        at("/settings/key-requests/{id}/deny", Plain).post(pages::key_requests::deny_post),
        at("/settings/key-requests/{id}/claim", Plain).post(pages::key_requests::claim_post),
        at("/settings/audit", Plain).get(pages::audit::audit_get),
        at("/settings/usage", Plain).get(pages::usage::usage_get),
        at("/settings/usage.csv", Plain).get(pages::usage::usage_csv_get),
        at("/settings/organization", Plain)
            .get(pages::organization::organization_get)
            .post(pages::organization::organization_post),
        at("/settings/members", Plain)
            .get(pages::members::members_get)
            .post(pages::members::members_post),
        at("/settings/members/{user_id}/role", Plain).post(pages::members::role_post),
        at("/settings/members/{user_id}/remove", Plain).post(pages::members::remove_post),
        at(
            "/settings/members/invitations/{invitation_id}/revoke",
            Plain,
        )
        .post(pages::members::invitation_revoke_post),
        at("/invitations", Plain)
            .get(pages::invitations::invitations_get)
            .post(pages::invitations::invitations_post),
        at("/invitations/{token}", Plain)
            .get(pages::invitations::link_get)
            .post(pages::invitations::link_post),
        at("/developer/clients", Plain)
            .get(pages::clients::clients_get)
            .post(pages::clients::clients_post),
        at("/developer/clients/{id}", Plain)
            .get(pages::clients::client_get)
            .post(pages::clients::client_post),
        at("/developer/clients/{id}/secret", Plain).post(pages::clients::secret_post),
        at("/developer/clients/{id}/delete", Plain)
            .get(pages::clients::delete_get)
            .post(pages::clients::delete_post),
        at("/account/apps", Plain).get(pages::apps::apps_get),
        at("/account", Plain).get(pages::account::account_get),
        at("/account/name", Plain).post(pages::profile::name_post),
        at("/account/password", Plain).post(pages::account::password_post),
        at("/account/apps/{client_id}/revoke", Plain).post(pages::apps::app_revoke_post),
        at("/login", Plain)
            .get(pages::accounts::login_get)
            .post(pages::accounts::login_post),
        at("/signup", Plain)
            .get(pages::accounts::signup_get)
            .post(pages::accounts::signup_post),
        at("/logout", Plain)
            .get(pages::accounts::logout_get)
            .post(pages::accounts::logout_post),
        at("/oauth/authorize", OAuth)
            .get(pages::authorize::authorize_get)
            .post(pages::authorize::authorize_post),
        at("/device", Plain)
            .get(pages::device::device_get)
            .post(pages::device::device_post),
        at("/oauth/device_authorization", OAuth)
            .data(token_body())
            .post(device::device_authorization_post)
            .cross_origin(),
        at("/healthz", Plain).get(ops::healthz_get),
        at("/readyz", Plain).get(ops::readyz_get),
        at("/metrics", Plain).get(ops::metrics_get),
        at("/.well-known/oauth-authorization-server", Plain)
            .get(well_known::metadata_get)
            .cross_origin(),
        at("/.well-known/oauth-protected-resource", Plain)
            .get(protected_resource::metadata_get)
            .cross_origin(),
        at(protected_resource::API_METADATA_PATH, Plain)
            .get(protected_resource::metadata_get)
            .cross_origin(),
        at("/.well-known/jwks.json", Plain)
            .get(well_known::jwks_get)
            .cross_origin(),
        at("/.well-known/openid-configuration", Plain)
            .get(oidc::openid_configuration_get)
            .cross_origin(),
        at(logout::END_SESSION_PATH, Plain)
            .get(logout::end_session_get)
            .post(logout::end_session_post),
        at("/oauth/userinfo", OAuth)
            .get(oidc::userinfo)
            .post(oidc::userinfo)
            .cross_origin(),
        at("/oauth/introspect", OAuth)
            .data(token_body())
            .post(oauth::introspect_post),
        at("/oauth/revoke", OAuth)
            .data(token_body())
            .post(oauth::revoke_post)
            .cross_origin(),
        at("/oauth/token", OAuth)
            .data(token_body())
            .post(oauth::token_post)
            .cross_origin(),
        at("/oauth/register", OAuth)
            .data(api_body())
            .post(register::register_post)
            .cross_origin(),
        // docs/spec.md §11: any method (nginx sends GET, Envoy the original one); Envoy
        // ext_authz appends the original path to the check's.
        Endpoint::new(gateway::CHECK_PATH, gateway::CHECK_MOUNT, Plain).any(gateway::check),
        at("/oauth/register/{client_id}", OAuth)
            .data(api_body())
            .get(register::read_get)
            .put(register::update_put)
            .delete(register::delete)
            .cross_origin(),
    ];
    let api = vec![
        api_v1("/api/v1/openapi.json").get(api::openapi::openapi_get),
        api_v1("/api/v1/keys/verify").post(api::verify::verify_post),
        api_v1("/api/v1/api-keys")
            .get(api::keys::list_get)
            .post(api::keys::create_post),
        api_v1("/api/v1/api-keys/{id}").delete(api::keys::delete),
        api_v1("/api/v1/api-keys/{id}/roll").post(api::keys::roll_post),
        api_v1("/api/v1/clients")
            .get(api::clients::list_get)
            .post(api::clients::create_post),
        api_v1("/api/v1/clients/{client_id}")
            .get(api::clients::get)
            .put(api::clients::update_put)
            .delete(api::clients::delete_client),
        api_v1("/api/v1/clients/{client_id}/secret").post(api::clients::secret_post),
        api_v1("/api/v1/orgs/{org_id}/members")
            .get(api::members::list_get)
            .post(api::invitations::invite_post),
        api_v1("/api/v1/orgs/{org_id}/members/{user_id}")
            .patch(api::members::role_patch)
            .delete(api::members::delete),
        api_v1("/api/v1/orgs/{org_id}/invitations").get(api::invitations::list_get),
        api_v1("/api/v1/orgs/{org_id}/invitations/{invitation_id}")
            .delete(api::invitations::delete),
        api_v1("/api/v1/orgs/{org_id}")
            .get(api::orgs::org_get)
            .patch(api::orgs::org_patch),
        api_v1("/api/v1/usage").get(api::usage::usage_get),
        api_v1("/api/v1/key-requests")
            .get(api::key_requests::list_get)
            .post(api::key_requests::create_post),
        api_v1("/api/v1/key-requests/{id}/approve").post(api::key_requests::approve_post),
        api_v1("/api/v1/key-requests/{id}/deny").post(api::key_requests::deny_post),
        api_v1("/api/v1/key-requests/{id}/claim").post(api::key_requests::claim_post),
        api_v1("/api/v1/secret-scanning/verify").post(api::secret_scanning::verify_post),
    ];
    (top, api)
}

/// Every route of the server. A path that names no endpoint is 404: the `/api/v1` JSON
/// error under `/api/v1`, a plain page elsewhere.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let (top, api) = endpoints();
    for e in top {
        cfg.service(e.into_resource());
    }
    let mut scope = web::scope(API_V1)
        .app_data(web::PayloadConfig::new(api::API_BODY_LIMIT))
        .wrap(from_fn(api::auth::rate_limit_headers))
        .wrap(from_fn(protected_resource::challenge))
        .default_service(web::to(endpoint::api_not_found));
    for e in api {
        scope = scope.service(e.into_resource());
    }
    cfg.service(scope)
        .default_service(web::to(endpoint::page_not_found));
}

/// Every path the server serves (as a client writes it) and its methods: the table the
/// route tests walk.
pub fn route_table() -> Vec<(&'static str, Vec<actix_web::http::Method>)> {
    let (top, api) = endpoints();
    top.iter()
        .chain(api.iter())
        .map(Endpoint::describe)
        .collect()
}

/// Runs `f` with a pooled connection on the blocking thread pool. Pool exhaustion, an
/// unreachable database, or one that does not answer within `--db-timeout-ms` (checkout
/// and queries together) becomes [`AppError::Unavailable`] (503).
pub async fn with_db<T, E, F>(state: &web::Data<AppState>, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<AppError> + Send + 'static,
{
    let pool = state.pool.clone();
    let deadline = std::time::Duration::from_millis(state.settings.db_timeout_ms);
    let work = web::block(move || {
        let mut conn = pool
            .get()
            .map_err(|e| E::from(AppError::Unavailable(Box::new(e))))?;
        f(&mut conn)
    });
    // A frozen database (a hung host, a partition) never answers; the blocking thread waits
    // for it, but the request does not (docs/security.md R2).
    match tokio::time::timeout(deadline, work).await {
        Ok(done) => done.map_err(|e| {
            E::from(AppError::Internal(
                format!("blocking task failed: {e}").into(),
            ))
        })?,
        Err(_) => Err(E::from(AppError::Unavailable(
            format!(
                "the database did not answer within {} ms",
                deadline.as_millis()
            )
            .into(),
        ))),
    }
}
