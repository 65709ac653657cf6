//! `AppState`: the Redis connection handle and the configuration every handler shares.
//!
//! Built once per process (in `main`, i.e. the Lambda init phase) and cloned into each
//! request: cloning is two reference-count bumps. The connection is redis-rs's
//! `ConnectionManager`: one multiplexed connection that reconnects by itself after a
//! failure. It is wrapped in [`Redis`] so that every command, pipeline and script gets one
//! deadline (`REDIS_RESPONSE_TIMEOUT_MS`) that also covers waiting for a reconnect: with
//! Redis down, a request answers 503 in bounded time instead of hanging.

use std::{sync::Arc, time::Duration};

use redis::{
    Cmd, Pipeline, RedisError, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
};

use crate::{config::Config, keys::Keys};

/// What every handler gets: the Redis handle, the configuration and the key builder.
#[derive(Clone)]
pub struct AppState {
    /// The shared, auto-reconnecting Redis connection.
    pub redis: Redis,
    /// The configuration the process started with.
    pub config: Arc<Config>,
    /// Builds every Redis key under the configured prefix.
    pub keys: Keys,
}

impl AppState {
    /// Builds the state without any I/O: the connection is opened by the first command.
    /// A Lambda function can therefore start while Redis is briefly away, and answer 503
    /// until it is back, instead of failing its init phase.
    pub fn new(config: Config) -> Result<Self, RedisError> {
        let client = match &config.tls {
            // A custom CA and/or a client certificate: rustls with exactly these.
            Some(tls) => redis::Client::build_with_tls(
                config.redis_url.as_str(),
                redis::TlsCertificates {
                    client_tls: tls
                        .client
                        .as_ref()
                        .map(|(cert, key)| redis::ClientTlsConfig {
                            client_cert: cert.clone(),
                            client_key: key.clone(),
                        }),
                    root_cert: tls.ca.clone(),
                },
            )?,
            None => redis::Client::open(config.redis_url.as_str())?,
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            // A per-command timeout on the socket as well as our end-to-end deadline: the
            // library's default (500 ms) would otherwise win silently.
            .set_response_timeout(Some(config.response_timeout))
            // Few, quick reconnect attempts: a request waiting on a reconnect is bounded by
            // the deadline anyway, and the next request starts a fresh attempt.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            // Many handlers share this one connection; the default of 50 queued commands
            // would make them wait on each other under load.
            .set_pipeline_buffer_size(1024);
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self {
            redis: Redis {
                manager,
                deadline: config.response_timeout,
            },
            keys: Keys::new(&config.key_prefix),
            config: Arc::new(config),
        })
    }

    /// Builds the state and checks that Redis answers a `PING`, so that a server can say at
    /// start-up, in one clear line, that Redis is missing or refuses the credentials.
    pub async fn connect(config: Config) -> Result<Self, RedisError> {
        let state = Self::new(config)?;
        state.redis.clone().ping().await?;
        Ok(state)
    }
}

/// The Redis handle used by handlers: a `ConnectionManager` with an end-to-end deadline per
/// operation. It implements redis-rs's [`ConnectionLike`], so `AsyncCommands`, pipelines and
/// `Script::invoke_async` all work on it and all get the deadline.
#[derive(Clone)]
pub struct Redis {
    manager: ConnectionManager,
    deadline: Duration,
}

impl Redis {
    /// A warning when Redis may evict keys under memory pressure (any `maxmemory-policy` but
    /// `noeviction`): locks and queued tasks would then vanish. `None` when safe or unknown
    /// (servers that hide `INFO memory`).
    pub async fn eviction_warning(&mut self) -> Option<String> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(self)
            .await
            .ok()?;
        let policy = info
            .lines()
            .find_map(|l| l.strip_prefix("maxmemory_policy:"))?
            .trim()
            .to_owned();
        (policy != "noeviction").then(|| {
            format!(
                "Redis maxmemory-policy is {policy}: under memory pressure it may evict locks and \
                 queued tasks. Set maxmemory-policy noeviction (see README, Failure behaviour)."
            )
        })
    }

    /// One `SCAN cursor MATCH pattern COUNT count` call: the next cursor (0 when the
    /// iteration is complete) and the keys of this step. The one place SCAN is spelled;
    /// callers loop over it in bounded steps (never `KEYS`).
    pub async fn scan_step(
        &mut self,
        cursor: u64,
        pattern: &str,
        count: u64,
    ) -> Result<(u64, Vec<Vec<u8>>), RedisError> {
        redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count)
            .query_async(self)
            .await
    }

    /// Sends `PING` and returns how long the answer took.
    pub async fn ping(&mut self) -> Result<Duration, RedisError> {
        let started = std::time::Instant::now();
        redis::cmd("PING").query_async::<String>(self).await?;
        Ok(started.elapsed())
    }

    /// The per-operation deadline (`REDIS_RESPONSE_TIMEOUT_MS`).
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

/// The error a command gets when it misses its deadline: an I/O time-out, so that
/// [`RedisError::is_timeout`] holds and the request is answered 503.
fn deadline_exceeded() -> RedisError {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "Redis did not answer within REDIS_RESPONSE_TIMEOUT_MS",
    )
    .into()
}

/// Whether a failed command may be sent once more: the connection it used was found
/// broken (the server closed it while the process was idle or frozen, as a Lambda
/// container is between invocations), so the command never reached Redis. The
/// `ConnectionManager` has already started reconnecting; the retry waits for that.
/// Time-outs are not retried: the command may have run.
fn worth_one_retry(e: &RedisError) -> bool {
    e.is_connection_dropped() && !e.is_timeout()
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let deadline = self.deadline;
        Box::pin(async move {
            tokio::time::timeout(deadline, async {
                match self.manager.req_packed_command(cmd).await {
                    Err(e) if worth_one_retry(&e) => self.manager.req_packed_command(cmd).await,
                    other => other,
                }
            })
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded()))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let deadline = self.deadline;
        Box::pin(async move {
            tokio::time::timeout(deadline, async {
                match self
                    .manager
                    .req_packed_commands(pipeline, offset, count)
                    .await
                {
                    Err(e) if worth_one_retry(&e) => {
                        self.manager
                            .req_packed_commands(pipeline, offset, count)
                            .await
                    }
                    other => other,
                }
            })
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded()))
        })
    }

    fn get_db(&self) -> i64 {
        self.manager.get_db()
    }
}
