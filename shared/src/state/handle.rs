//! [`Redis`], the handle every handler uses: the connection of the configured topology
//! (`super::single`, a cluster connection, `super::sentinel`) behind one end-to-end deadline
//! per operation (`REDIS_RESPONSE_TIMEOUT_MS`) that also covers waiting for a reconnect or a
//! lookup, with the resend rules of `super::retry`: with Redis down, a request answers 503
//! in bounded time instead of hanging. Each command's duration and failure is counted
//! ([`crate::metrics`]).

use std::{sync::Arc, time::Duration};

use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value,
    aio::ConnectionLike,
    cluster_async::ClusterConnection,
    cluster_routing::{
        MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
    },
};

use super::{retry, sentinel::SentinelPrimary, single::Single};
use crate::{
    config::Mode,
    info::{Info, eviction_warning},
};

/// The Redis handle used by handlers: the connection of the configured topology with an
/// end-to-end deadline per operation. It implements redis-rs's [`ConnectionLike`], so
/// `AsyncCommands`, pipelines and `Script::invoke_async` all work on it and all get the
/// deadline; [`super::Scan`] and [`Redis::on_each_primary`] cover what differs on a
/// cluster (the keyspace is spread over several primaries).
#[derive(Clone)]
pub struct Redis {
    pub(super) backend: Backend,
    pub(super) deadline: Duration,
    pub(super) last_use: retry::LastUse,
    /// Whether each command is counted (`METRICS`).
    pub(super) metrics: bool,
}

#[derive(Clone)]
pub(super) enum Backend {
    Single(Arc<Single>),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelPrimary>),
}

impl Redis {
    /// `standalone`, `cluster` or `sentinel`.
    pub fn mode(&self) -> &'static str {
        match self.backend {
            Backend::Single(_) => Mode::Standalone,
            Backend::Cluster(_) => Mode::Cluster,
            Backend::Sentinel(_) => Mode::Sentinel,
        }
        .name()
    }

    /// The one eviction warning ([`eviction_warning`]) for the first primary whose
    /// `maxmemory-policy` may evict keys; `None` when all are safe or it is unknown (servers
    /// that hide `INFO memory`).
    pub async fn eviction_warning(&mut self) -> Option<String> {
        let infos: Vec<String> = self
            .on_each_primary(redis::cmd("INFO").arg("memory"))
            .await
            .ok()?;
        infos.iter().find_map(|text| {
            Info::parse(text)
                .text("maxmemory_policy")
                .and_then(eviction_warning)
        })
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
    pub(super) async fn primaries(&mut self) -> Result<Vec<(String, u16)>, RedisError> {
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
    pub(super) async fn on_node<T: FromRedisValue>(
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
                retry::with_one_resend!(true, manager.req_packed_command(&ping))
            }
            Backend::Cluster(cluster) => {
                let all = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                retry::with_one_resend!(true, cluster.route_command(ping.clone(), all.clone()))
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
            let started = std::time::Instant::now();
            let answer = tokio::time::timeout(deadline, async {
                let resendable = retry::resendable(cmd);
                self.check_if_idle(resendable).await;
                match &mut self.backend {
                    // Sent once more only when the error allows it (see `retry`).
                    Backend::Single(single) => {
                        let mut manager = single.manager();
                        retry::with_one_resend!(resendable, manager.req_packed_command(cmd))
                    }
                    Backend::Cluster(cluster) => retry::cluster_request(cluster, cmd).await,
                    Backend::Sentinel(primary) => primary.req_packed_command(cmd).await,
                }
            })
            .await
            .unwrap_or_else(|_| Err(self.timed_out()));
            if self.metrics {
                let name = crate::metrics::command_name(cmd);
                crate::metrics::record_command(name, started.elapsed(), answer.as_ref().err());
            }
            answer
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
            let started = std::time::Instant::now();
            let answer = tokio::time::timeout(deadline, async {
                let resendable = retry::resendable_pipeline(pipeline);
                self.check_if_idle(resendable).await;
                match &mut self.backend {
                    Backend::Single(single) => {
                        let mut manager = single.manager();
                        retry::with_one_resend!(
                            resendable,
                            manager.req_packed_commands(pipeline, offset, count)
                        )
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
            .unwrap_or_else(|_| Err(self.timed_out()));
            if self.metrics {
                let name = if pipeline.is_transaction() {
                    "MULTI"
                } else {
                    "PIPELINE"
                };
                crate::metrics::record_command(name, started.elapsed(), answer.as_ref().err());
            }
            answer
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
