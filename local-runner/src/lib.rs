//! The local runner: one axum server that mounts every function's router, for development
//! and tests. No business logic lives here.
//!
//! Run it with `cargo run -p local-runner` (or `scripts/run.sh`, which also installs
//! `redis-server` when missing). It listens on `BIND`:`PORT` (default 127.0.0.1:8002) and
//! reads the shared settings (`REDIS_URL`, `KEY_PREFIX`, ...; see `--help`). With no
//! `REDIS_URL` and nothing answering at the default address, it starts a private
//! `redis-server` of its own (see [`embedded_redis`]).

pub mod access_log;
pub mod demo;
pub mod parse_errors;
pub mod redis_process;
pub mod server;
pub mod settings;
pub mod shards;
pub mod watchdog;

use std::{future::Future, sync::Arc};

use axum::{
    Router,
    error_handling::HandleErrorLayer,
    http::{HeaderName, header},
    response::IntoResponse,
    routing::get,
};
use shared::{AppState, Config, error::ApiError, metrics::HttpMetricsLayer};
use tokio::sync::Semaphore;
use tower::{ServiceBuilder, limit::GlobalConcurrencyLimitLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::{
    access_log::AccessLogLayer,
    redis_process::{HOW_TO_GET_REDIS, RedisProcess, answers_ping},
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every function's routes, merged, with the shared fallbacks and layers, plus the request
/// log ([`access_log`]) with a request id (`x-request-id`, taken from the client or
/// generated, and echoed in the response), and the cap on requests in flight (`MAX_IN_FLIGHT_REQUESTS`):
/// past it a request is answered a `503` problem with `Retry-After` at once, before any
/// handler or body read, rather than queued — a queue would only hold more bodies in memory
/// while its clients time out. With `METRICS=on` (the default), `GET /metrics` and the
/// request figures ([`shared::metrics`]).
pub fn app(state: AppState) -> Router {
    let in_flight = Arc::new(Semaphore::new(state.config.max_in_flight_requests));
    app_sharing(state, in_flight)
}

/// [`app`], with the in-flight cap held by `in_flight`, which the routers of several
/// server threads ([`shards`]) share: the cap is then the process's.
pub fn app_sharing(state: AppState, in_flight: Arc<Semaphore>) -> Router {
    // One semaphore for the whole router: `Router::layer` applies a layer to each route
    // separately, and the plain ConcurrencyLimitLayer would give each route a cap of its own.
    let in_flight = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            ApiError::Overloaded
        }))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(in_flight));
    let routes = Router::new()
        .merge(cache::router(state.clone()))
        .merge(users::router(state.clone()))
        .merge(rate_limit::router(state.clone()))
        .merge(lock::router(state.clone()))
        .merge(queue::router(state.clone()))
        .merge(stats::router(state.clone()))
        .merge(docs::live_router());
    let metrics = state.config.metrics;
    let routes = if metrics {
        routes.route("/metrics", get(scrape))
    } else {
        routes
    };
    // One `Router::layer` call for the runner's layers (each call boxes every route once
    // more). Outermost the metrics, so that the in-flight cap's 503s are timed and counted
    // too; then the request id is set, the request logged, the id copied to the answer, CORS
    // (taken out of `finish` to sit here: the cap's 503s carry its headers too, and a
    // preflight is answered without taking a slot), and the in-flight cap applied.
    shared::http::finish_inside_cors(routes, &state.config).layer(
        ServiceBuilder::new()
            .option_layer(metrics.then_some(HttpMetricsLayer))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(AccessLogLayer::new(REQUEST_ID))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .option_layer(shared::http::cors(&state.config.cors_allow_origins))
            .layer(in_flight),
    )
}

/// `GET /metrics`: every figure, in the Prometheus text format. Behind `API_KEY` like the
/// API itself (it is not among [`shared::http::is_public`]'s routes): it tells traffic
/// volumes and error rates, and Prometheus sends a bearer token
/// (`authorization` in a scrape config) as easily as nothing.
async fn scrape() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, shared::metrics::CONTENT_TYPE)],
        shared::metrics::render(),
    )
}

/// Serves `app` on `listener` with the default connection limits until `shutdown`
/// resolves, then stops accepting and lets the requests in flight finish (see
/// [`server::serve_with`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve_with(listener, app, server::Limits::default(), shutdown).await
}

/// Resolves when the process gets SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}

/// The embedded default. When `REDIS_URL` was not given (in standalone mode) and nothing answers at
/// `default_port` on 127.0.0.1, starts a private `redis-server` on a free port, points
/// `config` at it and returns it (keep it alive: dropping it stops the server). Returns
/// `Ok(None)` when no embedded server is needed, and an error saying how to get Redis when
/// one is needed and there is no binary.
///
/// `bin` is the `redis-server` to use, normally [`redis_process::redis_server_bin`].
pub fn embedded_redis(
    config: &mut Config,
    default_port: u16,
    bin: Option<std::path::PathBuf>,
) -> Result<Option<RedisProcess>, String> {
    if config.redis_url_is_explicit
        || config.topology != shared::config::Topology::Standalone
        || answers_ping(default_port)
    {
        return Ok(None);
    }
    let bin = bin.ok_or_else(|| HOW_TO_GET_REDIS.to_owned())?;
    let process = RedisProcess::start(bin.clone(), &[])
        .map_err(|e| format!("could not start {}: {e}", bin.display()))?;
    config.redis_url = process.url();
    tracing::info!(
        url = %config.redis_url,
        "no REDIS_URL and nothing at 127.0.0.1:{default_port}: started a private redis-server \
         (no persistence; stopped on exit)"
    );
    Ok(Some(process))
}
