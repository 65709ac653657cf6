//! Standalone mode: one `ConnectionManager`, replaced when a command's deadline passes.
//!
//! redis-rs's `ConnectionManager` reopens its connection only after an error that closed
//! it. A connection that goes silent instead — the host gone without a reset, a network
//! partition, a primary endpoint that now names another node (an ElastiCache failover) —
//! closes nothing: every command would wait for its deadline, and the API answer 503 until
//! the kernel gives up on the socket, about 15 minutes later. So when a command's deadline
//! passes, the connection is replaced by a fresh one (opened by the next command), at most
//! once per deadline: a Redis that is merely slow (`CLIENT PAUSE`, a long script) costs one
//! reconnect per period, not one per request. Commands still waiting on the old connection
//! end there (answered, or at their own deadline); it closes when the last lets go of it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use redis::{
    RedisError,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
};

use super::retry::millis_since_start;

/// The connection in use, and how to make the next one.
pub(super) struct Single {
    current: ArcSwap<ConnectionManager>,
    client: redis::Client,
    config: ConnectionManagerConfig,
    deadline: Duration,
    /// When the connection was last replaced ([`millis_since_start`]; 0: never).
    replaced_ms: AtomicU64,
}

impl Single {
    /// No I/O: the connection is opened by the first command.
    pub(super) fn new(
        client: redis::Client,
        config: ConnectionManagerConfig,
        deadline: Duration,
    ) -> Result<Self, RedisError> {
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Self {
            current: ArcSwap::from_pointee(manager),
            client,
            config,
            deadline,
            replaced_ms: AtomicU64::new(0),
        })
    }

    /// The connection to send the next command on.
    pub(super) fn manager(&self) -> ConnectionManager {
        ConnectionManager::clone(&self.current.load())
    }

    /// A command's deadline passed: replaces the connection unless it was replaced less than
    /// a deadline ago. Returns whether this call replaced it.
    pub(super) fn timed_out(&self) -> bool {
        let now = millis_since_start();
        let last = self.replaced_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.deadline.as_millis() as u64 {
            return false;
        }
        if self
            .replaced_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(fresh) => {
                self.current.store(Arc::new(fresh));
                tracing::warn!(
                    "Redis did not answer within REDIS_RESPONSE_TIMEOUT_MS: the next command opens a new connection"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not prepare a new Redis connection");
                false
            }
        }
    }

    pub(super) fn db(&self) -> i64 {
        self.current.load().get_db()
    }
}
