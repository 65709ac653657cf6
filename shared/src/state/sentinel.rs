//! Sentinel mode: a `ConnectionManager` to the primary the Sentinels name, replaced when it
//! stops being the primary.
//!
//! The primary is looked up lazily (no I/O at start, as in the other modes), by redis-rs's
//! `SentinelClient`, which asks the Sentinels and checks that the server it names answers
//! `ROLE` as a primary. When a command fails in a way that says the primary moved (refused
//! or dropped connection, time-out, `READONLY` from a demoted primary, `MASTERDOWN`), the
//! connection is dropped and the next command looks the primary up again. A command that
//! certainly did not run (refused, `READONLY`, `MASTERDOWN`) is sent once more to the new
//! primary; one that may have run (dropped, time-out) only when it is safe to repeat
//! (`super::retry`).

use std::sync::{Mutex, PoisonError};

use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, Pipeline, RedisError, ServerErrorKind, TlsMode,
    Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType},
};

use crate::config::TlsFiles;

/// The current primary's connection, and how to find the next one.
pub(super) struct SentinelPrimary {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// The connection in use and its generation (so that one failure drops it only once).
    current: Mutex<Option<(u64, ConnectionManager)>>,
    generation: Mutex<u64>,
    manager_config: ConnectionManagerConfig,
    db: i64,
}

impl SentinelPrimary {
    /// No I/O: the Sentinels are asked by the first command.
    pub(super) fn new(
        sentinels: &[String],
        master: &str,
        sentinel_password: Option<&str>,
        data: ConnectionInfo,
        tls: Option<&TlsFiles>,
        manager_config: ConnectionManagerConfig,
    ) -> Result<Self, RedisError> {
        let addresses = sentinels
            .iter()
            .map(|url| redis::IntoConnectionInfo::into_connection_info(url.as_str()))
            .map(|info| info.map(|info| info.addr().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let sentinel_tls = addresses
            .iter()
            .any(|a| matches!(a, ConnectionAddr::TcpTls { .. }));
        let mut builder =
            SentinelClientBuilder::new(addresses, master, SentinelServerType::Master)?
                .set_client_to_redis_db(data.redis_settings().db());
        let settings = data.redis_settings();
        if let Some(user) = settings.username() {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = settings.password() {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(password) = sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if matches!(data.addr(), ConnectionAddr::TcpTls { .. }) {
            builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
            if let Some(tls) = tls {
                builder = builder.set_client_to_redis_certificates(super::certificates(tls));
            }
        }
        if sentinel_tls && let Some(tls) = tls {
            builder = builder.set_client_to_sentinel_certificates(super::certificates(tls));
        }
        Ok(Self {
            sentinels: tokio::sync::Mutex::new(builder.build()?),
            current: Mutex::new(None),
            generation: Mutex::new(0),
            manager_config,
            db: data.redis_settings().db(),
        })
    }

    pub(super) fn db(&self) -> i64 {
        self.db
    }

    /// The connection to the current primary, looking it up when there is none.
    async fn connection(&self) -> Result<(u64, ConnectionManager), RedisError> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        // One lookup at a time; whoever waited finds the connection the first one made.
        let mut sentinels = self.sentinels.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let client = sentinels.async_get_client().await?;
        let manager = ConnectionManager::new_lazy_with_config(client, self.manager_config.clone())?;
        let generation = {
            let mut generation = self
                .generation
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *generation += 1;
            *generation
        };
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((generation, manager.clone()));
        tracing::info!(generation, "connected to the primary the Sentinels name");
        Ok((generation, manager))
    }

    fn current(&self) -> Option<(u64, ConnectionManager)> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// After a failed command: when the failure says the primary may have moved, drops the
    /// connection (if still the one that failed) so the next command asks the Sentinels.
    /// Returns whether the command may be sent again: it certainly did not run, or it is
    /// `resendable` and failed on the connection.
    fn failed(&self, generation: u64, e: &RedisError, resendable: bool) -> bool {
        let read_only = matches!(
            crate::error::cause(e).kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        );
        let again = read_only || super::retry::may_resend(e, resendable);
        if again || e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
            let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
            if current.as_ref().is_some_and(|(g, _)| *g == generation) {
                tracing::warn!(error = %e, "the primary stopped answering; asking the Sentinels again");
                *current = None;
            }
        }
        again
    }

    pub(super) async fn req_packed_command(&self, cmd: &Cmd) -> Result<Value, RedisError> {
        let (generation, mut manager) = self.connection().await?;
        match manager.req_packed_command(cmd).await {
            Err(e) if self.failed(generation, &e, super::retry::resendable(cmd)) => {
                let (_, mut manager) = self.connection().await?;
                manager.req_packed_command(cmd).await
            }
            other => other,
        }
    }

    pub(super) async fn req_packed_commands(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, RedisError> {
        let (generation, mut manager) = self.connection().await?;
        match manager.req_packed_commands(pipeline, offset, count).await {
            Err(e) if self.failed(generation, &e, super::retry::resendable_pipeline(pipeline)) => {
                let (_, mut manager) = self.connection().await?;
                manager.req_packed_commands(pipeline, offset, count).await
            }
            other => other,
        }
    }
}
