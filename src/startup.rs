//! Building and running the server: pool, migrations, keys, listener, routes.
//! Tests build the same [`Application`] on port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::app::AppState;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::db::{self, DbPool};
use crate::http;
use crate::metrics::Metrics;
use crate::tokens::keys::Keystore;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Db(#[from] db::DbSetupError),
    #[error("cannot check out a database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::tokens::keys::KeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Brings the schema up to date (idempotent), then opens the pool. Migrations run on a
/// connection of their own: pooled connections carry the request deadline
/// (`--db-timeout-ms`) as their statement timeout, which a migration may outlast.
pub fn open_database(settings: &Settings) -> Result<DbPool, StartupError> {
    let applied = db::run_migrations(&mut db::connect_direct(&settings.database_url)?)?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(db::build_pool(
        &settings.database_url,
        settings.db_pool_size,
        std::time::Duration::from_millis(settings.db_timeout_ms),
    )?)
}

/// SQLite's group-commit writer (docs/architecture.md §6.1) on a one-connection pool of its
/// own, its batch sizes recorded in `metrics`; `None` on PostgreSQL.
fn start_group_commit(
    settings: &Settings,
    metrics: &Metrics,
) -> Result<Option<db::group_commit::GroupCommit>, StartupError> {
    if !settings.database_url.is_sqlite() {
        return Ok(None);
    }
    let timeout = std::time::Duration::from_millis(settings.db_timeout_ms);
    let pool = db::build_pool(&settings.database_url, 1, timeout)?;
    let batch = metrics.group_commit_batch();
    let on_batch = Box::new(move |n: usize| batch.record(n as f64));
    Ok(Some(db::group_commit::GroupCommit::start(
        pool, timeout, on_batch,
    )?))
}

/// Logs what the gateway configuration will refuse without saying so (docs/spec.md §11):
/// routes without an audience, and an audience no resource server registered.
fn gateway_warnings(state: &AppState) {
    let gateway = &state.settings.gateway;
    for warning in gateway.start_warnings() {
        tracing::warn!("{warning}");
    }
    let Some(audience) = gateway.audience.as_deref() else {
        return;
    };
    let registered = state
        .pool
        .get()
        .ok()
        .and_then(|mut conn| crate::gateway::is_registered_resource(&mut conn, audience).ok());
    if registered == Some(false) {
        tracing::warn!(
            %audience,
            "[gateway] audience is not a registered resource: no client can ask for tokens for it \
             (resource=...), so /gateway/check accepts API keys only until a resource server \
             registers it (tessera client create --resource-server --resource URI)"
        );
    }
}

pub struct Application {
    server: Server,
    port: u16,
    state: web::Data<AppState>,
}

impl Application {
    /// Binds the listener (port 0 picks a free port), migrates, loads or creates keys.
    pub fn build(settings: Settings, clock: SharedClock) -> Result<Self, StartupError> {
        let pool = open_database(&settings)?;
        let keys = Keystore::open(
            &mut *pool.get()?,
            &settings.keys_dir,
            settings.signing_alg,
            settings.key_retention_seconds(),
            clock.now(),
        )?;
        let listener = TcpListener::bind(&settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind.clone(),
            source,
        })?;
        let addr = listener.local_addr()?;
        let issuer = settings
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let audience = settings.audience.clone().unwrap_or_else(|| issuer.clone());
        if issuer.starts_with("http://") && !addr.ip().is_loopback() {
            tracing::warn!(%issuer, "the issuer is plain http on a non-loopback address: put tessera behind TLS and set --issuer https://...");
        }
        if settings.client_metadata_allow_loopback {
            tracing::warn!(
                "--client-metadata-allow-loopback is set: client documents may be fetched from loopback addresses, over http too; for development and tests only"
            );
        }
        let metrics = Metrics::default();
        let group_commit = start_group_commit(&settings, &metrics)?;
        let state = web::Data::new(AppState {
            fetcher: crate::fetch::Fetcher::with_roots(
                settings.client_metadata_allow_loopback,
                &settings.extra_ca_certs,
            ),
            issuer,
            audience,
            pool,
            clock,
            keys: Arc::new(keys),
            metrics,
            group_commit,
            login_throttle: crate::throttle::FailureThrottle::new(10, 100),
            client_auth_throttle: crate::throttle::FailureThrottle::new(20, 200),
            document_fetches: crate::throttle::FailureThrottle::new(
                crate::http::client_metadata::FETCHES_PER_URL_PER_MINUTE,
                crate::http::client_metadata::FETCHES_PER_IP_PER_MINUTE,
            ),
            introspection_throttle: crate::throttle::FailureThrottle::new(300, 3000),
            device_code_throttle: crate::throttle::FailureThrottle::new(5, 50),
            password_slots: tokio::sync::Semaphore::new(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            ),
            api_keys: crate::api_keys::verify::KeyRuntime::new(
                Duration::from_millis(settings.cache_ttl_ms),
                settings
                    .rate_limit_store
                    .as_deref()
                    .map(crate::api_keys::redis_limits::RedisLimits::new)
                    .transpose()
                    .map_err(|m| StartupError::Io(std::io::Error::other(m)))?,
            ),
            live_tokens: crate::tokens::cache::LiveTokens::new(Duration::from_millis(
                settings.cache_ttl_ms,
            )),
            gateway_orgs: crate::gateway::ClientOrgs::default(),
            shown_once: crate::shown_once::ShownOnce::default(),
            dummy_password_hash: crate::users::hash_password(&crate::crypto::random_token())
                .map_err(|e| StartupError::Io(std::io::Error::other(e.to_string())))?,
            settings,
        });
        state.api_keys.health.poll_every(Duration::from_millis(
            state.settings.change_poll_interval_ms,
        ));
        gateway_warnings(&state);
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(http::routes)
                .wrap(from_fn(http::bad_input::refuse_nul_in_url))
                .wrap(from_fn(http::api::json_payload_errors))
                .wrap(from_fn(http::deadline::apply))
                .wrap(from_fn(http::security_headers::apply))
                .wrap(from_fn(http::metrics::record))
        })
        .listen(listener)?
        .workers(state.settings.workers)
        .shutdown_timeout(state.settings.shutdown_timeout_seconds)
        // Slow clients (slowloris) lose their socket when headers take longer than this.
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .run();
        Ok(Self {
            server,
            port: addr.port(),
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped. SIGTERM drains in-flight requests (up to the shutdown
    /// timeout) and returns `Ok`; the key reload loop ends with the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let reload = actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let st = state.clone();
                let result = web::block(move || -> Result<(), String> {
                    let mut conn = st.pool.get().map_err(|e| e.to_string())?;
                    st.keys.reload(&mut conn).map_err(|e| e.to_string())
                })
                .await;
                if let Ok(Err(e)) = result {
                    tracing::warn!(error = %e, "signing key reload failed; keeping the loaded keys");
                }
            }
        });
        let st = self.state.clone();
        let period = Duration::from_millis(st.settings.change_poll_interval_ms);
        // With PostgreSQL, NOTIFY wakes the change poll at once (docs/spec.md §12).
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let _listener = match &st.settings.database_url {
            crate::db::DatabaseUrl::Postgres(url) => {
                let url = crate::db::with_client_timeouts(
                    url,
                    Duration::from_millis(st.settings.db_timeout_ms),
                );
                crate::change_feed::listen(url, wake.clone())
                    .map_err(|e| tracing::warn!(error = %e, "cannot start the change listener; polling only"))
                    .ok()
            }
            crate::db::DatabaseUrl::Sqlite(_) => None,
        };
        let poller = actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(period);
            let mut since = st.clock.now();
            loop {
                tokio::select! {
                    _ = tick.tick() => since = poll_credential_changes(&st, since).await,
                    () = wake.notified() => since = poll_credential_changes(&st, since).await,
                }
            }
        });
        // A task of its own: a slow change poll never delays the shared counts.
        let st = self.state.clone();
        let flusher = actix_web::rt::spawn(async move {
            let mut flush = actix_web::rt::time::interval(FLUSH_INTERVAL);
            flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                flush.tick().await;
                flush_key_usage(&st).await;
                st.metrics.upkeep();
            }
        });
        let st = self.state.clone();
        let janitor = actix_web::rt::spawn(async move {
            let period = Duration::from_secs(st.settings.cleanup_interval_seconds);
            let mut tick = actix_web::rt::time::interval_at(
                actix_web::rt::time::Instant::now() + period,
                period,
            );
            loop {
                tick.tick().await;
                sweep_expired(&st).await;
            }
        });
        let result = self.server.await;
        reload.abort();
        poller.abort();
        flusher.abort();
        janitor.abort();
        // Whatever was counted after the last tick is written before the process exits.
        flush_key_usage(&self.state).await;
        result
    }
}

/// How often an instance writes its rate-limit counts and reads the others' back (with its
/// usage counts and `last_used_at`): a count reaches the other instances within two
/// periods plus the time of the writes and reads, well within one second, which bounds
/// the overshoot across instances (docs/spec.md §12).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// Writes the in-memory key usage and rate-limit counts (see `api_keys::verify::flush`).
pub async fn flush_key_usage(state: &web::Data<AppState>) {
    let st = state.clone();
    let result = web::block(move || -> Result<(), String> {
        let mut conn = st.pool.get().map_err(|e| e.to_string())?;
        crate::api_keys::verify::flush(&mut conn, &st.api_keys, st.clock.now())
            .map_err(|e| e.to_string())?;
        crate::usage::store::flush(&mut conn, &st.api_keys.hourly)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    if let Ok(Err(e)) = result {
        tracing::warn!(error = %e, "writing API key usage failed; will retry");
    }
}

/// One run of the janitor (docs/security.md R12) at the injected clock's `now`: one batch
/// per blocking call and fresh pooled connection, round-robin over `janitor::STEPS` until
/// none has more. Before each batch it waits (up to `janitor::YIELD_LIMIT`) while this
/// process has SQLite writers in `db::write_tx`; after a batch that deleted rows it pauses
/// `janitor::BATCH_PAUSE`, or four times the batch's duration if longer, so at most a fifth
/// of the time goes to the janitor however slow batches get. Counts what it deleted in
/// `tessera_janitor_deleted_rows_total`. `None` when the database did not answer (logged;
/// the next tick tries again).
pub async fn sweep_expired(state: &web::Data<AppState>) -> Option<crate::janitor::Swept> {
    use crate::janitor::{self, STEPS};
    let retention = janitor::Retention::from_settings(&state.settings);
    let cutoffs = janitor::Cutoffs::at(state.clock.now(), &retention);
    let sqlite = state.settings.database_url.is_sqlite();
    let mut total = janitor::Swept::default();
    let mut pending: Vec<usize> = (0..STEPS.len()).collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for index in pending {
            if sqlite {
                let waiting = std::time::Instant::now();
                while crate::db::sqlite_writers() > 0 && waiting.elapsed() < janitor::YIELD_LIMIT {
                    actix_web::rt::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
            let st = state.clone();
            let started = std::time::Instant::now();
            let result = web::block(move || -> Result<janitor::Batch, String> {
                let mut conn = st.pool.get().map_err(|e| e.to_string())?;
                janitor::run_step(&mut conn, index, &cutoffs).map_err(|e| e.to_string())
            })
            .await;
            let batch = match result {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "janitor sweep failed; will retry");
                    return None;
                }
                Err(_) => return None,
            };
            let Some(step) = STEPS.get(index) else {
                continue;
            };
            state
                .metrics
                .janitor_deleted(step.table, batch.deleted as u64);
            total.add(step.table, batch.deleted);
            if batch.more {
                still.push(index);
            }
            if batch.deleted > 0 {
                let pause = janitor::BATCH_PAUSE.max(started.elapsed() * 4);
                actix_web::rt::time::sleep(pause).await;
            }
        }
        pending = still;
    }
    if total.total() > 0 {
        tracing::info!(?total, "janitor deleted expired rows");
    }
    Some(total)
}

/// How far back each poll of the audit log looks, beyond the previous poll: covers clock
/// differences between instances and transactions that commit late.
const CHANGE_OVERLAP_SECONDS: i64 = 5;

/// Acts on credentials changed on any instance (keys, clients, grants, access tokens; see
/// `api_keys::cache` and `tokens::cache`) and records whether the database answered. Returns the time the next poll starts from.
pub async fn poll_credential_changes(state: &web::Data<AppState>, since: i64) -> i64 {
    let st = state.clone();
    let started = state.clock.now();
    type Changes = (Vec<(i64, String, String)>, Vec<String>);
    let result = web::block(move || -> Result<Changes, String> {
        let mut conn = st.pool.get().map_err(|e| e.to_string())?;
        let from = since - CHANGE_OVERLAP_SECONDS;
        let keys =
            crate::audit::credential_changes_since(&mut conn, from).map_err(|e| e.to_string())?;
        let tokens =
            crate::oauth::revocation::revoked_since(&mut conn, from).map_err(|e| e.to_string())?;
        Ok((keys, tokens))
    })
    .await;
    match result {
        Ok(Ok((changes, mut revoked))) => {
            for (seq, action, id) in changes {
                if action.starts_with("api_key.") {
                    state.api_keys.cache.evict_id(&id);
                } else {
                    // A deleted client or a rotated secret: its cached credentials go, and
                    // (once per event) every cached token answer.
                    state.api_keys.clients.forget_client(&id);
                    revoked.push(format!("audit:{seq}"));
                }
            }
            state
                .live_tokens
                .saw_revocations(revoked, started, 2 * CHANGE_OVERLAP_SECONDS);
            state.api_keys.health.mark_ok();
            started
        }
        Ok(Err(e)) => {
            if state.api_keys.health.mark_failed() {
                tracing::warn!(error = %e, "polling key changes failed; caches bypassed until the database answers");
            }
            since
        }
        Err(_) => {
            state.api_keys.health.mark_failed();
            since
        }
    }
}
