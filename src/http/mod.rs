//! HTTP: extract, call the feature modules, map the result. Every URL is spelled once, in
//! [`routes`]; tests boot the same routing.

pub mod api;
pub mod bad_input;
pub mod errors;
pub mod metrics;
pub mod oauth;
pub mod ops;
pub mod pages;
pub mod register;
pub mod security_headers;
pub mod well_known;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::app::AppState;
use crate::db::DbConnection;
use crate::error::AppError;

/// The `/api/v1` prefix: its routes live in one scope with the rate-limit-headers
/// middleware and the JSON body limit.
const API_V1: &str = "/api/v1";

/// A resource of the `/api/v1` scope, spelled with its full path (so that this function
/// lists every URL as a client sees it).
fn api_v1(full_path: &'static str) -> actix_web::Resource {
    web::resource(full_path.strip_prefix(API_V1).unwrap_or(full_path))
}

/// Every route of the server.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::accounts::home_get))
        .route("/static/tessera.css", web::get().to(pages::stylesheet_get))
        .route("/static/copy.js", web::get().to(pages::copy_script_get))
        .route(
            "/settings/api-keys",
            web::get().to(pages::keys::api_keys_get),
        )
        .route(
            "/settings/api-keys",
            web::post().to(pages::keys::api_keys_post),
        )
        .route(
            "/settings/api-keys/{id}/revoke",
            web::get().to(pages::keys::revoke_get),
        )
        .route(
            "/settings/api-keys/{id}/revoke",
            web::post().to(pages::keys::revoke_post),
        )
        .route("/settings/org", web::post().to(pages::keys::org_post))
        .route("/settings/audit", web::get().to(pages::audit::audit_get))
        .route(
            "/settings/members",
            web::get().to(pages::members::members_get),
        )
        .route(
            "/settings/members",
            web::post().to(pages::members::members_post),
        )
        .route(
            "/settings/members/{user_id}/role",
            web::post().to(pages::members::role_post),
        )
        .route(
            "/settings/members/{user_id}/remove",
            web::post().to(pages::members::remove_post),
        )
        .route(
            "/developer/clients",
            web::get().to(pages::clients::clients_get),
        )
        .route(
            "/developer/clients",
            web::post().to(pages::clients::clients_post),
        )
        .route(
            "/developer/clients/{id}",
            web::get().to(pages::clients::client_get),
        )
        .route(
            "/developer/clients/{id}",
            web::post().to(pages::clients::client_post),
        )
        .route(
            "/developer/clients/{id}/secret",
            web::post().to(pages::clients::secret_post),
        )
        .route(
            "/developer/clients/{id}/delete",
            web::get().to(pages::clients::delete_get),
        )
        .route(
            "/developer/clients/{id}/delete",
            web::post().to(pages::clients::delete_post),
        )
        .route("/account/apps", web::get().to(pages::apps::apps_get))
        .route(
            "/account/apps/{client_id}/revoke",
            web::post().to(pages::apps::app_revoke_post),
        )
        .route("/login", web::get().to(pages::accounts::login_get))
        .route("/login", web::post().to(pages::accounts::login_post))
        .route("/signup", web::get().to(pages::accounts::signup_get))
        .route("/signup", web::post().to(pages::accounts::signup_post))
        .route("/logout", web::get().to(pages::accounts::logout_get))
        .route("/logout", web::post().to(pages::accounts::logout_post))
        .route(
            "/oauth/authorize",
            web::get().to(pages::authorize::authorize_get),
        )
        .route(
            "/oauth/authorize",
            web::post().to(pages::authorize::authorize_post),
        )
        .route("/healthz", web::get().to(ops::healthz_get))
        .route("/readyz", web::get().to(ops::readyz_get))
        .route("/metrics", web::get().to(ops::metrics_get))
        .route(
            "/.well-known/oauth-authorization-server",
            web::get().to(well_known::metadata_get),
        )
        .route(
            "/.well-known/jwks.json",
            web::get().to(well_known::jwks_get),
        )
        .service(
            web::resource("/oauth/introspect")
                .app_data(web::PayloadConfig::new(oauth::TOKEN_BODY_LIMIT))
                .route(web::post().to(oauth::introspect_post))
                .default_service(web::to(oauth::post_only)),
        )
        .service(
            web::resource("/oauth/revoke")
                .app_data(web::PayloadConfig::new(oauth::TOKEN_BODY_LIMIT))
                .route(web::post().to(oauth::revoke_post))
                .default_service(web::to(oauth::post_only)),
        )
        .service(
            web::resource("/oauth/token")
                .app_data(web::PayloadConfig::new(oauth::TOKEN_BODY_LIMIT))
                .route(web::post().to(oauth::token_post))
                .default_service(web::to(oauth::post_only)),
        )
        .service(
            web::resource("/oauth/register")
                .app_data(web::PayloadConfig::new(api::API_BODY_LIMIT))
                .route(web::post().to(register::register_post)),
        )
        .service(
            web::resource("/oauth/register/{client_id}")
                .app_data(web::PayloadConfig::new(api::API_BODY_LIMIT))
                .route(web::get().to(register::read_get))
                .route(web::put().to(register::update_put))
                .route(web::delete().to(register::delete)),
        )
        .service(
            web::scope(API_V1)
                .app_data(web::PayloadConfig::new(api::API_BODY_LIMIT))
                .wrap(from_fn(api::auth::rate_limit_headers))
                .service(
                    api_v1("/api/v1/openapi.json").route(web::get().to(api::openapi::openapi_get)),
                )
                .service(
                    api_v1("/api/v1/keys/verify").route(web::post().to(api::verify::verify_post)),
                )
                .service(
                    api_v1("/api/v1/api-keys")
                        .route(web::get().to(api::keys::list_get))
                        .route(web::post().to(api::keys::create_post)),
                )
                .service(api_v1("/api/v1/api-keys/{id}").route(web::delete().to(api::keys::delete)))
                .service(
                    api_v1("/api/v1/api-keys/{id}/roll")
                        .route(web::post().to(api::keys::roll_post)),
                )
                .service(
                    api_v1("/api/v1/clients")
                        .route(web::get().to(api::clients::list_get))
                        .route(web::post().to(api::clients::create_post)),
                )
                .service(
                    api_v1("/api/v1/clients/{client_id}")
                        .route(web::get().to(api::clients::get))
                        .route(web::put().to(api::clients::update_put))
                        .route(web::delete().to(api::clients::delete_client)),
                )
                .service(
                    api_v1("/api/v1/clients/{client_id}/secret")
                        .route(web::post().to(api::clients::secret_post)),
                )
                .service(
                    api_v1("/api/v1/orgs/{org_id}/members")
                        .route(web::get().to(api::members::list_get))
                        .route(web::post().to(api::members::add_post)),
                )
                .service(
                    api_v1("/api/v1/orgs/{org_id}/members/{user_id}")
                        .route(web::patch().to(api::members::role_patch))
                        .route(web::delete().to(api::members::delete)),
                ),
        );
}

/// Runs `f` with a pooled connection on the blocking thread pool. Pool exhaustion or an
/// unreachable database becomes [`AppError::Unavailable`] (503).
pub async fn with_db<T, E, F>(state: &web::Data<AppState>, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<AppError> + Send + 'static,
{
    let pool = state.pool.clone();
    web::block(move || {
        let mut conn = pool
            .get()
            .map_err(|e| E::from(AppError::Unavailable(Box::new(e))))?;
        f(&mut conn)
    })
    .await
    .map_err(|e| {
        E::from(AppError::Internal(
            format!("blocking task failed: {e}").into(),
        ))
    })?
}
