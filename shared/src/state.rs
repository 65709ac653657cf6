//! `AppState`: the Redis connection handle and the configuration every handler shares.
//!
//! Built once per process (in `main`, i.e. the Lambda init phase) and cloned into each
//! request: cloning is a few reference-count bumps. The connection depends on `REDIS_MODE`:
//!
//! - standalone: redis-rs's `ConnectionManager`, one multiplexed connection that reconnects
//!   by itself after a failure;
//! - cluster: redis-rs's cluster-async `ClusterConnection`, which keeps the slot map, follows
//!   `MOVED`/`ASK` (a resharding in progress) and reconnects to nodes;
//! - sentinel: a `ConnectionManager` to the primary the Sentinels name, thrown away and
//!   looked up again when the primary stops answering as one (failover).
//!
//! It is wrapped in [`Redis`] so that every command, pipeline and script gets one deadline
//! (`REDIS_RESPONSE_TIMEOUT_MS`) that also covers waiting for a reconnect or a lookup: with
//! Redis down, a request answers 503 in bounded time instead of hanging.

mod retry;
mod sentinel;
mod single;

use std::{sync::Arc, time::Duration};

use redis::{
    Cmd, ErrorKind, FromRedisValue, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    ServerErrorKind, Value,
    aio::{ConnectionLike, ConnectionManagerConfig},
    cluster::{ClusterClient, ClusterConfig},
    cluster_async::ClusterConnection,
    cluster_routing::{
        MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
    },
};

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
            },
            keys: Keys::new(&config.key_prefix),
            config: Arc::new(config),
            shutdown: crate::lifecycle::Shutdown::default(),
        })))
    }

    /// Builds the state and checks that Redis answers a `PING`, so that a server can say at
    /// start-up, in one clear line, that Redis is missing or refuses the credentials.
    ///
    /// It also checks that the server is what `REDIS_MODE` says (a cluster node answers
    /// `MOVED` to half the keys; a Sentinel stores no data) and fails with what to set.
    pub async fn connect(config: Config) -> Result<Self, RedisError> {
        let state = Self::new(config)?;
        let mut redis = state.redis.clone();
        let wanted = state.config.topology.name();
        if let Err(e) = redis.ping().await {
            if e.kind() == ErrorKind::AuthenticationFailed
                && let Some(refusal) = credentials_refusal(&state.config).await
            {
                // The client library reports only "Password authentication failed"; the
                // server's own words (WRONGPASS, or NOPASS, ...) say which part is wrong.
                return Err(RedisError::from((
                    ErrorKind::AuthenticationFailed,
                    "Redis refused the credentials",
                    refusal,
                )));
            }
            let hint = match crate::error::misconfiguration(&e) {
                Some(hint) => Some(hint.to_owned()),
                // A cluster client that found no cluster: say what the seed is instead.
                None if wanted == "cluster" => seed_mode(&state.config).await.map(|mode| {
                    format!("the seed node runs as {mode}, not cluster: set REDIS_MODE={mode}")
                }),
                None => None,
            };
            return Err(match hint {
                Some(hint) => RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "Redis is not what REDIS_MODE expects",
                    format!("{e}. {hint}"),
                )),
                None => e,
            });
        }
        // INFO describes one server, so it goes to each primary: sent to a cluster as a plain
        // command, the client fans it out and answers a map of node -> text, not one text.
        let infos: Vec<String> = redis
            .on_each_primary(redis::cmd("INFO").arg("server"))
            .await?;
        let server_mode = infos.first().map_or("standalone", |info| server_mode(info));
        let mismatch = match (wanted, server_mode) {
            ("standalone" | "sentinel", "cluster") => Some(
                "the server is a Redis Cluster node: set REDIS_MODE=cluster (and \
                 REDIS_CLUSTER_NODES to some of its nodes)",
            ),
            (_, "sentinel") => Some(
                "the server is a Redis Sentinel, which stores no data: set REDIS_MODE=sentinel, \
                 REDIS_SENTINELS to the Sentinels and REDIS_SENTINEL_MASTER to the name they \
                 monitor",
            ),
            _ => None,
        };
        if let Some(hint) = mismatch {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "REDIS_MODE does not match the server",
                format!("REDIS_MODE={wanted}, but {hint}"),
            )));
        }
        Ok(state)
    }
}

/// `redis_mode` of an `INFO server` answer: `standalone`, `cluster` or `sentinel`.
fn server_mode(info: &str) -> &str {
    info.lines()
        .find_map(|l| l.strip_prefix("redis_mode:"))
        .map(str::trim)
        .unwrap_or("standalone")
}

/// What the first cluster seed runs as, asked over a plain connection (`None` when it
/// cannot be asked either, or is a cluster node after all).
async fn seed_mode(config: &Config) -> Option<String> {
    let Topology::Cluster { nodes } = &config.topology else {
        return None;
    };
    let seed = nodes.first()?.as_str();
    let client = match &config.tls {
        Some(tls) => redis::Client::build_with_tls(seed, certificates(tls)).ok()?,
        None => redis::Client::open(seed).ok()?,
    };
    let ask = async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .ok()?;
        Some(server_mode(&info).to_owned())
    };
    tokio::time::timeout(config.response_timeout, ask)
        .await
        .ok()
        .flatten()
        .filter(|mode| mode != "cluster")
}

/// What the server answers to the URL's `AUTH` itself (`WRONGPASS invalid username-password
/// pair or user is disabled.`), asked over a connection without credentials; `None` when it
/// cannot be asked (not standalone, or no connection).
async fn credentials_refusal(config: &Config) -> Option<String> {
    if config.topology != Topology::Standalone {
        return None;
    }
    let mut url = url::Url::parse(config.redis_url.as_str()).ok()?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(url.username());
    let password = decode(url.password()?);
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    let client = match &config.tls {
        Some(tls) => redis::Client::build_with_tls(url.as_str(), certificates(tls)).ok()?,
        None => redis::Client::open(url.as_str()).ok()?,
    };
    let mut auth = redis::cmd("AUTH");
    if !user.is_empty() {
        auth.arg(&user);
    }
    auth.arg(&password);
    let ask = async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        match auth.query_async::<()>(&mut conn).await {
            Ok(()) => None,
            Err(e) => Some(
                [e.code(), e.detail()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    };
    tokio::time::timeout(config.response_timeout, ask)
        .await
        .ok()
        .flatten()
        .filter(|reply| !reply.is_empty())
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

/// The Redis handle used by handlers: the connection of the configured topology with an
/// end-to-end deadline per operation. It implements redis-rs's [`ConnectionLike`], so
/// `AsyncCommands`, pipelines and `Script::invoke_async` all work on it and all get the
/// deadline; [`Redis::scan_step`] and [`Redis::on_each_primary`] cover what differs on a
/// cluster (the keyspace is spread over several primaries).
#[derive(Clone)]
pub struct Redis {
    backend: Backend,
    deadline: Duration,
    last_use: retry::LastUse,
}

#[derive(Clone)]
enum Backend {
    Single(Arc<Single>),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelPrimary>),
}

/// Bits of a cluster-wide SCAN cursor that name the primary (up to 1024 primaries); the rest
/// is that primary's own cursor.
const NODE_BITS: u32 = 10;

impl Redis {
    /// `standalone`, `cluster` or `sentinel`.
    pub fn mode(&self) -> &'static str {
        match self.backend {
            Backend::Single(_) => "standalone",
            Backend::Cluster(_) => "cluster",
            Backend::Sentinel(_) => "sentinel",
        }
    }

    /// A warning when Redis may evict keys under memory pressure (any `maxmemory-policy` but
    /// `noeviction`): locks and queued tasks would then vanish. `None` when safe or unknown
    /// (servers that hide `INFO memory`).
    pub async fn eviction_warning(&mut self) -> Option<String> {
        let infos: Vec<String> = self
            .on_each_primary(&redis::cmd("INFO").arg("memory").clone())
            .await
            .ok()?;
        let policy = infos.iter().find_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("maxmemory_policy:"))
                .map(str::trim)
                .filter(|p| *p != "noeviction")
                .map(str::to_owned)
        })?;
        Some(format!(
            "Redis maxmemory-policy is {policy}: under memory pressure it may evict locks and \
             queued tasks. Set maxmemory-policy noeviction (see README, Failure behaviour)."
        ))
    }

    /// One `SCAN cursor MATCH pattern COUNT count` step: the next cursor (0 when the
    /// iteration is complete) and the keys of this step. The one place SCAN is spelled;
    /// callers loop over it in bounded steps (never `KEYS`).
    ///
    /// On a cluster the iteration walks the primaries one after the other: the cursor's low
    /// [`NODE_BITS`] bits say which primary (in address order), the rest is that primary's
    /// cursor. SCAN's guarantee (every key present for the whole iteration is returned) holds
    /// while the set of primaries does not change.
    pub async fn scan_step(
        &mut self,
        cursor: u64,
        pattern: &str,
        count: u64,
    ) -> Result<(u64, Vec<Vec<u8>>), RedisError> {
        let mut scan = redis::cmd("SCAN");
        let Backend::Cluster(_) = self.backend else {
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(count);
            return scan.query_async(self).await;
        };
        let primaries = self.primaries().await?;
        let index = (cursor & ((1 << NODE_BITS) - 1)) as usize;
        let Some((host, port)) = primaries.get(index) else {
            // Fewer primaries than when the iteration started: nothing more to visit.
            return Ok((0, Vec::new()));
        };
        scan.arg(cursor >> NODE_BITS)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        let (next, keys): (u64, Vec<Vec<u8>>) = self.on_node(host, *port, scan).await?;
        let next = if next != 0 {
            match next
                .checked_shl(NODE_BITS)
                .filter(|c| c >> NODE_BITS == next)
            {
                Some(shifted) if shifted <= i64::MAX as u64 => shifted | index as u64,
                _ => {
                    return Err(RedisError::from((
                        ErrorKind::Client,
                        "SCAN cursor too large to combine with a node number",
                    )));
                }
            }
        } else if index + 1 < primaries.len() {
            (index + 1) as u64
        } else {
            0
        };
        Ok((next, keys))
    }

    /// Runs `cmd` on every primary (the one server, when not a cluster) and returns each
    /// answer: for `INFO`, `DBSIZE` and the like, which describe one server each.
    pub async fn on_each_primary<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
    ) -> Result<Vec<T>, RedisError> {
        let Backend::Cluster(_) = self.backend else {
            return Ok(vec![cmd.query_async(self).await?]);
        };
        let primaries = self.primaries().await?;
        let answers = primaries.iter().map(|(host, port)| {
            let mut redis = self.clone();
            async move { redis.on_node(host, *port, cmd.clone()).await }
        });
        futures_util::future::try_join_all(answers).await
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

    /// The cluster's primaries (`host`, `port`), sorted, from `CLUSTER SLOTS`.
    async fn primaries(&mut self) -> Result<Vec<(String, u16)>, RedisError> {
        let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(self).await?;
        let Value::Array(ranges) = slots else {
            return Err(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "CLUSTER SLOTS did not answer an array",
            )));
        };
        let mut primaries: Vec<(String, u16)> = ranges
            .into_iter()
            .filter_map(|range| match range {
                // [start, end, [host, port, id, ...], replicas...]
                Value::Array(mut parts) if parts.len() >= 3 => {
                    let Value::Array(mut primary) = parts.swap_remove(2) else {
                        return None;
                    };
                    // [host, port, id, (metadata in Redis 7)]
                    primary.truncate(2);
                    let (host, port): (String, u16) =
                        redis::from_redis_value(Value::Array(primary)).ok()?;
                    Some((host, port))
                }
                _ => None,
            })
            .collect();
        primaries.sort();
        primaries.dedup();
        if primaries.is_empty() {
            return Err(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "CLUSTER SLOTS named no primary",
            )));
        }
        Ok(primaries)
    }

    /// Sends `cmd` to one cluster node, by address, within the deadline.
    async fn on_node<T: FromRedisValue>(
        &mut self,
        host: &str,
        port: u16,
        cmd: Cmd,
    ) -> Result<T, RedisError> {
        let Backend::Cluster(cluster) = &mut self.backend else {
            return cmd.query_async(self).await;
        };
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.to_owned(),
            port,
        });
        let value = tokio::time::timeout(self.deadline, cluster.route_command(cmd, routing))
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded()))?;
        Ok(redis::from_redis_value(value)?)
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

/// Sends each command of a (non-transactional) pipeline on its own, concurrently: for a
/// cluster pipeline whose keys live in different slots (e.g. a profile and the shared hit
/// counters), which one node cannot run as one batch.
async fn one_by_one(
    cluster: &ClusterConnection,
    pipeline: &Pipeline,
) -> Result<Vec<Value>, RedisError> {
    let commands = pipeline.cmd_iter().map(|cmd| {
        let mut cluster = cluster.clone();
        async move { retry::cluster_request(&mut cluster, cmd).await }
    });
    futures_util::future::try_join_all(commands).await
}

fn is_cross_slot(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::CrossSlot)
}

impl Redis {
    /// Before a command that cannot be resent, on a connection idle for a while: a `PING`
    /// (which can be) finds a connection the server closed meanwhile and reopens it, so
    /// the write does not fail on it. (Errors are left to the command itself.)
    async fn check_if_idle(&mut self, resendable: bool) {
        if !self.last_use.touch() || resendable {
            return;
        }
        let ping = redis::cmd("PING");
        let _ = match &mut self.backend {
            Backend::Single(single) => {
                let mut manager = single.manager();
                match manager.req_packed_command(&ping).await {
                    Err(e) if retry::may_resend(&e, true) => {
                        manager.req_packed_command(&ping).await
                    }
                    other => other,
                }
            }
            Backend::Cluster(cluster) => {
                let all = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                match cluster.route_command(ping.clone(), all.clone()).await {
                    Err(e) if retry::may_resend(&e, true) => cluster.route_command(ping, all).await,
                    other => other,
                }
            }
            Backend::Sentinel(primary) => primary.req_packed_command(&ping).await,
        };
    }
}

impl Redis {
    /// A command's deadline passed: the error to answer, after letting the backend react
    /// (a standalone connection is replaced: see `single`).
    fn timed_out(&self) -> RedisError {
        if let Backend::Single(single) = &self.backend {
            single.timed_out();
        }
        deadline_exceeded()
    }
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let deadline = self.deadline;
        Box::pin(async move {
            tokio::time::timeout(deadline, async {
                let resendable = retry::resendable(cmd);
                self.check_if_idle(resendable).await;
                match &mut self.backend {
                    // Sent once more only when the error allows it (see `retry`).
                    Backend::Single(single) => {
                        let mut manager = single.manager();
                        match manager.req_packed_command(cmd).await {
                            Err(e) if retry::may_resend(&e, resendable) => {
                                manager.req_packed_command(cmd).await
                            }
                            other => other,
                        }
                    }
                    Backend::Cluster(cluster) => retry::cluster_request(cluster, cmd).await,
                    Backend::Sentinel(primary) => primary.req_packed_command(cmd).await,
                }
            })
            .await
            .unwrap_or_else(|_| Err(self.timed_out()))
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
                let resendable = retry::resendable_pipeline(pipeline);
                self.check_if_idle(resendable).await;
                match &mut self.backend {
                    Backend::Single(single) => {
                        let mut manager = single.manager();
                        match manager.req_packed_commands(pipeline, offset, count).await {
                            Err(e) if retry::may_resend(&e, resendable) => {
                                manager.req_packed_commands(pipeline, offset, count).await
                            }
                            other => other,
                        }
                    }
                    Backend::Cluster(cluster) => {
                        match retry::cluster_pipeline(cluster, pipeline, offset, count).await {
                            Err(e) if is_cross_slot(&e) && !pipeline.is_transaction() => {
                                one_by_one(cluster, pipeline).await
                            }
                            other => other,
                        }
                    }
                    Backend::Sentinel(primary) => {
                        primary.req_packed_commands(pipeline, offset, count).await
                    }
                }
            })
            .await
            .unwrap_or_else(|_| Err(self.timed_out()))
        })
    }

    fn get_db(&self) -> i64 {
        match &self.backend {
            Backend::Single(single) => single.db(),
            Backend::Cluster(_) => 0,
            Backend::Sentinel(primary) => primary.db(),
        }
    }
}
