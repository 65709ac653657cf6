//! `AppState`: the Redis connection handle and the configuration every handler shares.
//!
//! Built once per process (in `main`, i.e. the Lambda init phase) and cloned into each
//! request: cloning is a few reference-count bumps. The connection depends on `REDIS_MODE`:
//!
//! - standalone: redis-rs's `ConnectionManager`, one multiplexed connection that reconnects
//!   by itself after a failure (`single`);
//! - cluster: redis-rs's cluster-async `ClusterConnection`, which keeps the slot map, follows
//!   `MOVED`/`ASK` (a resharding in progress) and reconnects to nodes;
//! - sentinel: a `ConnectionManager` to the primary the Sentinels name, thrown away and
//!   looked up again when the primary stops answering as one (failover) (`sentinel`).
//!
//! This module builds the state; the parts have a module each: [`Redis`], the handle with
//! its deadline (`handle`) and resend rules (`retry`); [`Scan`], listing keys (`scan`); the
//! start-up checks of [`AppState::connect`] (`connect`).

mod connect;
mod handle;
mod retry;
mod scan;
mod sentinel;
mod single;

use std::{sync::Arc, time::Duration};

use redis::{
    IntoConnectionInfo, RedisError,
    aio::ConnectionManagerConfig,
    cluster::{ClusterClient, ClusterConfig},
};

use handle::Backend;
pub use handle::Redis;
pub use scan::Scan;

use crate::{
    config::{Config, TlsFiles, Topology},
    keys::Keys,
};
use sentinel::SentinelPrimary;
use single::Single;

/// What every handler gets: the Redis handle, the configuration and the key builder.
///
/// One `Arc`: axum clones the state for every route service and every extraction, on every
/// request; with the parts' own reference counts each clone was half a dozen atomic
/// operations on cache lines that both worker threads write (a visible share of the CPU per
/// request under load), now it is one.
#[derive(Clone)]
pub struct AppState(Arc<State>);

/// The parts of an [`AppState`] (reached through it: `state.redis`, `state.config`, ...).
pub struct State {
    /// The shared, auto-reconnecting Redis connection.
    pub redis: Redis,
    /// The configuration the process started with.
    pub config: Arc<Config>,
    /// Builds every Redis key under the configured prefix.
    pub keys: Keys,
    /// Set when the process is stopping: work in flight that holds something (the lock
    /// demo) gives it back.
    pub shutdown: crate::lifecycle::Shutdown,
}

impl std::ops::Deref for AppState {
    type Target = State;

    fn deref(&self) -> &State {
        &self.0
    }
}

impl AppState {
    /// Builds the state without any I/O: the connection is opened by the first command.
    /// A Lambda function can therefore start while Redis is briefly away, and answer 503
    /// until it is back, instead of failing its init phase.
    pub fn new(config: Config) -> Result<Self, RedisError> {
        let backend = match &config.topology {
            Topology::Standalone => {
                let client = match &config.tls {
                    Some(tls) => {
                        redis::Client::build_with_tls(config.redis_url.as_str(), certificates(tls))?
                    }
                    None => redis::Client::open(config.redis_url.as_str())?,
                };
                Backend::Single(Arc::new(Single::new(
                    client,
                    manager_config(&config),
                    config.response_timeout,
                )?))
            }
            Topology::Cluster { nodes } => {
                let mut builder = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.response_timeout)
                    // No retries inside the client: it would resend any command after an
                    // I/O error, although one whose reply was lost may have run.
                    // `retry::cluster_request` follows MOVED/ASK, waits out TRYAGAIN and
                    // resends only what is safe to repeat.
                    .retries(0);
                if let Some(tls) = &config.tls {
                    builder = builder.certs(certificates(tls));
                }
                // No I/O yet: the nodes are reached by the first command.
                Backend::Cluster(
                    builder.build()?.get_pending_async_connection_with_config(
                        ClusterConfig::new()
                            .set_connection_timeout(config.connect_timeout)
                            .set_response_timeout(config.response_timeout),
                    ),
                )
            }
            Topology::Sentinel {
                sentinels,
                master,
                password,
            } => Backend::Sentinel(Arc::new(SentinelPrimary::new(
                sentinels,
                master,
                password.as_deref(),
                config.redis_url.as_str().into_connection_info()?,
                config.tls.as_ref(),
                // The library's own per-command timer here: a time-out is how a silent
                // primary is noticed and the Sentinels asked again (see `sentinel`).
                manager_config(&config).set_response_timeout(Some(config.response_timeout)),
            )?)),
        };
        Ok(Self(Arc::new(State {
            redis: Redis {
                backend,
                deadline: config.response_timeout,
                last_use: retry::LastUse::default(),
                metrics: config.metrics,
            },
            keys: Keys::new(&config.key_prefix),
            config: Arc::new(config),
            shutdown: crate::lifecycle::Shutdown::default(),
        })))
    }
}

/// The settings of every `ConnectionManager` (standalone, and each primary in sentinel mode).
fn manager_config(config: &Config) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        // No per-command timer of the library's own (its default, 500 ms, would win
        // silently): every command already runs under [`Redis`]'s deadline, which covers
        // a reconnect too, and a second timer per command costs CPU on every request.
        .set_response_timeout(None)
        // Few, quick reconnect attempts: a request waiting on a reconnect is bounded by
        // the deadline anyway, and the next request starts a fresh attempt.
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
        // Many handlers share this one connection; the default of 50 queued commands
        // would make them wait on each other under load.
        .set_pipeline_buffer_size(1024)
}

/// The custom CA and client certificate of `REDIS_TLS_*`, as redis-rs takes them.
fn certificates(tls: &TlsFiles) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: tls
            .client
            .as_ref()
            .map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
        root_cert: tls.ca.clone(),
    }
}
