//! When a command is sent again, and when it is not.
//!
//! A reply can be lost after Redis ran the command: the connection drops or the deadline
//! passes while the answer is on its way. On a multiplexed connection every command in
//! flight gets the same "connection dropped" error, including those Redis already executed.
//! So a failed command is resent only when running it twice is the same as running it once
//! ([`resendable`]); anything else fails with an error the API answers as a 503 saying the
//! request may have been applied (and an `Idempotency-Key` makes the client's own retry
//! safe).
//!
//! Resent after a dropped connection or an I/O error (the list, next to the retry):
//! - commands that only read: `GET`, `MGET`, `EXISTS`, `TTL`, `PTTL`, `TYPE`, `HGET`,
//!   `HMGET`, `HGETALL`, `HEXISTS`, `HLEN`, `LLEN`, `LRANGE`, `LINDEX`, `ZCARD`, `ZCOUNT`,
//!   `ZRANGE`, `ZSCORE`, `SCAN`, `DBSIZE`, `INFO`, `PING`, `TIME`, `ROLE`, `CLUSTER`,
//!   `ECHO`, `MEMORY`, `SCRIPT` (loading a script is idempotent);
//! - the scripts [`crate::scripts::safe_to_resend`] names: read-only ones, the claim and the
//!   acquire (idempotent per receipt and per token), and every script inside the
//!   idempotency envelope (the second run replays the first one's record);
//! - a pipeline or transaction made only of those.
//!
//! Sent again whatever the command, because the error proves it did not run: a refused
//! connection, and on a cluster `MOVED`, `ASK`, `TRYAGAIN` and `CLUSTERDOWN` (and
//! `EXECABORT` of a transaction whose commands were redirected during a resharding).
//!
//! redis-rs's cluster client would resend any command after an I/O error, so it is built
//! with no retries of its own and [`cluster_request`] applies this policy instead.

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    Arg, Cmd, ErrorKind, Pipeline, RedisError, ServerErrorKind, Value,
    aio::ConnectionLike,
    cluster_async::ClusterConnection,
    cluster_routing::{RoutingInfo, SingleNodeRoutingInfo},
};

/// Commands that only read (see the module header).
const READ_ONLY: [&str; 28] = [
    "GET", "MGET", "EXISTS", "TTL", "PTTL", "TYPE", "HGET", "HMGET", "HGETALL", "HEXISTS", "HLEN",
    "LLEN", "LRANGE", "LINDEX", "ZCARD", "ZCOUNT", "ZRANGE", "ZSCORE", "SCAN", "DBSIZE", "INFO",
    "PING", "TIME", "ROLE", "CLUSTER", "ECHO", "MEMORY", "SCRIPT",
];

/// Whether `cmd` may be sent again after its reply was lost (see the module header).
pub(crate) fn resendable(cmd: &Cmd) -> bool {
    let mut args = cmd.args_iter();
    let Some(Arg::Simple(name)) = args.next() else {
        return false;
    };
    if name.eq_ignore_ascii_case(b"EVALSHA") {
        return matches!(args.next(), Some(Arg::Simple(sha)) if crate::scripts::safe_to_resend(sha));
    }
    READ_ONLY
        .iter()
        .any(|read| name.eq_ignore_ascii_case(read.as_bytes()))
}

/// Whether every command of `pipeline` may be sent again.
pub(crate) fn resendable_pipeline(pipeline: &Pipeline) -> bool {
    pipeline.cmd_iter().all(resendable)
}

/// Whether a failure after sending `cmd` allows sending it once more.
pub(crate) fn may_resend(e: &RedisError, resendable: bool) -> bool {
    if e.is_connection_refusal() {
        return true;
    }
    resendable && (e.is_connection_dropped() || e.is_io_error()) && !e.is_timeout()
}

/// Awaits `$send` (an expression making a request future), and sends it once more when
/// its failure allows it ([`may_resend`]). A macro, not a function taking a closure: the
/// future borrows the connection, and an async closure doing that is not `Send`.
macro_rules! with_one_resend {
    ($resendable:expr, $send:expr) => {
        match $send.await {
            Err(e) if $crate::state::retry::may_resend(&e, $resendable) => $send.await,
            other => other,
        }
    };
}
pub(crate) use with_one_resend;

/// How long a connection may sit unused before a command that cannot be resent is preceded
/// by a `PING` (which can): after a frozen Lambda container or an idle NAT, the server may
/// have closed the connection, and the `PING` finds out (and reconnects) instead of a write.
pub(crate) const IDLE_CHECK: Duration = Duration::from_secs(1);

/// When the connection was last used, shared by the clones of one handle.
#[derive(Clone, Default)]
pub(crate) struct LastUse(Arc<AtomicU64>);

/// Milliseconds since the first call, plus one (never 0, which stands for "never").
pub(super) fn millis_since_start() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64 + 1
}

impl LastUse {
    /// Marks the connection used now, and says whether it had been idle for longer than
    /// [`IDLE_CHECK`] (or never used).
    pub(crate) fn touch(&self) -> bool {
        let now = millis_since_start();
        // A read, and a write only when the millisecond changed: under load every request
        // touches this one cache line, which a write on each would bounce between cores.
        let mut before = self.0.load(Ordering::Relaxed);
        if before != now {
            before = self.0.swap(now, Ordering::Relaxed);
        }
        before == 0 || now.saturating_sub(before) > IDLE_CHECK.as_millis() as u64
    }
}

/// Most attempts one command gets on a cluster (redirects, `TRYAGAIN`, a resend); the
/// request's deadline bounds them too.
const CLUSTER_ATTEMPTS: u32 = 10;

/// Sends `cmd` on a cluster connection built with no retries, redirecting and resending it
/// as the module header says.
pub(crate) async fn cluster_request(
    cluster: &mut ClusterConnection,
    cmd: &Cmd,
) -> Result<Value, RedisError> {
    let resendable = resendable(cmd);
    let mut attempt = 0;
    let mut result = cluster.req_packed_command(cmd).await;
    loop {
        let e = match result {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        attempt += 1;
        if attempt >= CLUSTER_ATTEMPTS {
            return Err(unsettled(e));
        }
        result = match e.kind() {
            // Redirects: the command did not run on that node. MOVED also makes the client
            // refresh its slot map; send straight to the node named meanwhile (after a pause
            // from the second redirect on: during a failover the map takes a moment).
            ErrorKind::Server(ServerErrorKind::Moved) => match node_of(&e) {
                Some(route) => {
                    if attempt > 1 {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    cluster.route_command(cmd.clone(), route).await
                }
                None => return Err(e),
            },
            ErrorKind::Server(ServerErrorKind::Ask) => match node_of(&e) {
                Some(RoutingInfo::SingleNode(route)) => {
                    // Two commands, two replies: skip ASKING's `OK` (offset 1), keep the
                    // command's (count 1). Expecting one reply left the second on the
                    // connection, where the next request took it for its own.
                    let mut asking = redis::pipe();
                    asking.cmd("ASKING").add_command(cmd.clone());
                    cluster
                        .route_pipeline(asking, 1, 1, route)
                        .await
                        .and_then(|mut values| values.pop().ok_or_else(no_reply))
                }
                _ => return Err(e),
            },
            ErrorKind::Server(ServerErrorKind::TryAgain | ServerErrorKind::ClusterDown)
            | ErrorKind::ClusterConnectionNotFound => {
                tokio::time::sleep(backoff(attempt)).await;
                cluster.req_packed_command(cmd).await
            }
            _ if may_resend(&e, resendable) => {
                tokio::time::sleep(backoff(attempt)).await;
                cluster.req_packed_command(cmd).await
            }
            _ => return Err(e),
        };
    }
}

/// Sends a pipeline on a cluster connection built with no retries: resent after errors that
/// prove it did not run, or when every command in it may be resent.
pub(crate) async fn cluster_pipeline(
    cluster: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> Result<Vec<Value>, RedisError> {
    let resendable = resendable_pipeline(pipeline);
    let mut attempt = 0;
    let mut result = cluster.req_packed_commands(pipeline, offset, count).await;
    loop {
        let e = match result {
            Ok(values) => return Ok(values),
            Err(e) => e,
        };
        attempt += 1;
        if attempt >= CLUSTER_ATTEMPTS {
            return Err(unsettled(e));
        }
        // A transaction whose commands were redirected is refused whole (EXECABORT): its
        // cause is the redirect, and nothing of it ran.
        let cause = crate::error::cause(&e);
        result = match (cause.kind(), node_of(&cause)) {
            // The slot is being migrated and the keys have moved: the node named runs the
            // pipeline once asked (`ASKING`), which a resend to the slot's owner never
            // would, however long it waited.
            (ErrorKind::Server(ServerErrorKind::Ask), Some(RoutingInfo::SingleNode(route))) => {
                asked(cluster, pipeline, offset, count, route).await
            }
            (ErrorKind::Server(ServerErrorKind::Moved), Some(RoutingInfo::SingleNode(route))) => {
                if attempt > 1 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                cluster
                    .route_pipeline(pipeline.clone(), offset, count, route)
                    .await
            }
            (kind, _) => {
                // Refused during a resharding or a failover (nothing ran), or lost and safe to
                // send again: once more after a pause, once the slot has settled.
                let again = matches!(
                    kind,
                    ErrorKind::Server(
                        ServerErrorKind::Moved
                            | ServerErrorKind::Ask
                            | ServerErrorKind::ExecAbort
                            | ServerErrorKind::TryAgain
                            | ServerErrorKind::ClusterDown
                    ) | ErrorKind::ClusterConnectionNotFound
                ) || may_resend(&e, resendable);
                if !again {
                    return Err(e);
                }
                tokio::time::sleep(backoff(attempt)).await;
                cluster.req_packed_commands(pipeline, offset, count).await
            }
        };
    }
}

/// `pipeline` sent to the node an `ASK` named. A transaction is preceded by one `ASKING`
/// (Redis keeps the flag while a `MULTI` is open, so it covers every queued command; the
/// replies to skip grow by ASKING's `OK`). The commands of a plain pipeline are sent one by
/// one, each with its own `ASKING`.
async fn asked(
    cluster: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
    route: SingleNodeRoutingInfo,
) -> Result<Vec<Value>, RedisError> {
    if pipeline.is_transaction() {
        let mut asking = redis::pipe();
        asking.cmd("ASKING").cmd("MULTI");
        for cmd in pipeline.cmd_iter() {
            asking.add_command(cmd.clone());
        }
        asking.cmd("EXEC");
        return cluster
            .route_pipeline(asking, offset + 1, count, route)
            .await;
    }
    let mut values = Vec::new();
    for cmd in pipeline.cmd_iter() {
        values.push(cluster_request(cluster, cmd).await?);
    }
    Ok(values.into_iter().skip(offset).take(count).collect())
}

/// The node a `MOVED`/`ASK` error names.
fn node_of(e: &RedisError) -> Option<RoutingInfo> {
    let (address, _slot) = e.redirect_node()?;
    let (host, port) = address.rsplit_once(':')?;
    Some(RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port: port.parse().ok()?,
    }))
}

/// A redirect that is still one after every attempt: the slot's owner keeps changing
/// (failover, resharding). Nothing ran, and it is not a misconfiguration (which a MOVED in
/// standalone mode would be): a passing cluster state, answered 503.
fn unsettled(e: RedisError) -> RedisError {
    if matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::Moved | ServerErrorKind::Ask | ServerErrorKind::ExecAbort
        )
    ) {
        return RedisError::from((
            ErrorKind::ClusterConnectionNotFound,
            "the slot's owner kept changing (failover or resharding in progress)",
            e.to_string(),
        ));
    }
    e
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10u64 << attempt.min(5))
}

fn no_reply() -> RedisError {
    RedisError::from((ErrorKind::Client, "no reply to a redirected command"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_idempotent_scripts_are_resendable_writes_are_not() {
        assert!(resendable(redis::cmd("GET").arg("k")));
        assert!(resendable(redis::cmd("pttl").arg("k")));
        assert!(!resendable(redis::cmd("SET").arg("k").arg("v")));
        assert!(!resendable(redis::cmd("RPUSH").arg("q").arg("t")));
        assert!(!resendable(redis::cmd("UNLINK").arg("k")));
        let sha = |s: &redis::Script| s.get_hash().to_owned();
        let evalsha = |hash: String| {
            let mut c = redis::cmd("EVALSHA");
            c.arg(hash).arg(0);
            c
        };
        use crate::scripts::*;
        assert!(resendable(&evalsha(sha(&QUEUE_CLAIM.plain))));
        assert!(resendable(&evalsha(sha(&QUEUE_ACK.idempotent))));
        assert!(!resendable(&evalsha(sha(&QUEUE_ACK.plain))));
        assert!(!resendable(&evalsha(sha(&QUEUE_POP))));
        assert!(!resendable(&evalsha(sha(&RATE_LIMIT.plain))));
        assert!(resendable(&evalsha(sha(&RATE_LIMIT.idempotent))));
        assert!(resendable(&evalsha(sha(&RATE_LIMIT_STATUS))));
        assert!(resendable(&evalsha(sha(&RATE_LIMIT_RESET))));
        let mut reads = redis::pipe();
        reads.get("a").ttl("a");
        assert!(resendable_pipeline(&reads));
        reads.hincr("s", "lookups", 1);
        assert!(!resendable_pipeline(&reads));
    }
}
