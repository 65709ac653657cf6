//! `GET /stats/patterns`: the queues, locks and semaphores under the prefix, with their
//! figures, for the dashboard.
//!
//! Found by a bounded SCAN of the prefix from a cursor (the one [`Scan`] `/stats` uses, so a
//! cluster's every primary is visited and the cursor names the node), never `KEYS`: each key
//! met is mapped back to the name it was built from ([`shared::keys::Keys::pattern_of`]),
//! then a small pipeline per queue and lock reads its figures and the read-only status script
//! each semaphore's live holders, many in flight at once. Nothing is written.

use std::collections::BTreeSet;

use futures_util::{StreamExt, TryStreamExt, stream};

use axum::{Json, extract::State};
use shared::{
    ApiError, ApiQuery, AppState,
    keys::PatternKey,
    models::{
        cache::CURSOR,
        stats::{
            LockHeld, PATTERNS_COUNT, PATTERNS_STEPS, Patterns, PatternsQuery, QueueLengths,
            SemaphoreHeld,
        },
    },
    scripts,
    state::Scan,
};

/// `GET /stats/patterns`.
#[utoipa::path(
    get,
    path = "/stats/patterns",
    tag = "stats",
    summary = "Queues, locks held and semaphores (bounded SCAN, paged by cursor)",
    description = "What the dashboard draws: each queue's pending, processing, dead and scheduled lengths, each lock held with its TTL and fencing token, each semaphore's live holders and permits. Found by `SCAN MATCH {prefix}*` (never KEYS), at most 10 steps of `count` keys per request: pass the answer's `cursor` back until it is 0. A name whose keys fall in two stretches of the walk may appear in both answers. Reads only.",
    params(PatternsQuery),
    responses(
        (status = 200, description = "What this stretch of the walk met", body = Patterns),
        (status = 422, description = "Bad parameter", body = shared::error::Problem, content_type = "application/problem+json")
    )
)]
pub(crate) async fn get_patterns(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PatternsQuery>,
) -> Result<Json<Patterns>, ApiError> {
    PATTERNS_COUNT.check("count", query.count)?;
    CURSOR.check("cursor", query.cursor)?;
    let pattern = state.keys.everything_pattern();
    let mut scan = Scan::new(&state.redis, &pattern, query.cursor).at_most(PATTERNS_STEPS);
    let (mut queues, mut locks, mut semaphores) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    while let Some(keys) = scan.next_batch(query.count).await? {
        for key in &keys {
            let Ok(key) = std::str::from_utf8(key) else {
                continue;
            };
            match state.keys.pattern_of(key) {
                Some(PatternKey::Queue(name)) => queues.insert(name),
                Some(PatternKey::Lock(name)) => locks.insert(name),
                Some(PatternKey::Semaphore(name)) => semaphores.insert(name),
                None => false,
            };
        }
    }
    let cursor = scan.cursor();
    // One small pipeline per name (its keys share one slot), at most CONCURRENT in flight on
    // the multiplexed connection, which writes them out together: a round trip for many
    // names, not one each. A key of an unexpected type (written by someone else) spoils
    // only its own name's figures: that name is left out, the answer stays a 200.
    let queues = in_flight(queues, |name| queue_lengths(&state, name)).await?;
    let locks = in_flight(locks, |resource| lock_held(&state, resource)).await?;
    let semaphores = in_flight(semaphores, |name| semaphore_held(&state, name)).await?;
    Ok(Json(Patterns {
        queues,
        locks,
        semaphores,
        cursor,
    }))
}

/// How many names' reads one request keeps in flight.
const CONCURRENT: usize = 64;

/// `read` of every name, `CONCURRENT` at a time, in name order; the names it found nothing
/// for (`None`) are left out. A connection failure fails the whole answer (a 503).
async fn in_flight<T, F>(
    names: BTreeSet<String>,
    read: impl Fn(String) -> F,
) -> Result<Vec<T>, ApiError>
where
    F: Future<Output = Result<Option<T>, ApiError>>,
{
    let found: Vec<Option<T>> = stream::iter(names)
        .map(read)
        .buffered(CONCURRENT)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// A reply that is a number, or `None` (nil, an error reply, anything else).
fn number(reply: Option<&redis::RedisResult<redis::Value>>) -> Option<i64> {
    let value = reply?.as_ref().ok()?;
    redis::from_redis_value::<Option<i64>>(value.clone())
        .ok()
        .flatten()
}

/// Whether `e` is a reply about the data (a key of another type, a value that is no number),
/// not about reaching Redis.
fn about_the_data(e: &redis::RedisError) -> bool {
    use redis::ErrorKind::{Parse, Server, UnexpectedReturnType};
    shared::error::server_code(e).as_deref() == Some("WRONGTYPE")
        || matches!(
            e.kind(),
            UnexpectedReturnType | Parse | Server(redis::ServerErrorKind::ResponseError)
        )
}

/// A queue's four lengths; `None` when every list is empty (the queue is gone: its other keys
/// are bookkeeping) or a key holds another type.
async fn queue_lengths(state: &AppState, name: String) -> Result<Option<QueueLengths>, ApiError> {
    let [pending, processing, .., dead, scheduled] = state.keys.queue(&name);
    let replies: Vec<redis::RedisResult<redis::Value>> = redis::pipe()
        .ignore_errors()
        .llen(pending)
        .llen(processing)
        .llen(dead)
        .zcard(scheduled)
        .query_async(&mut state.redis.clone())
        .await?;
    if replies.iter().any(Result::is_err) {
        return Ok(None);
    }
    let length = |i: usize| number(replies.get(i)).and_then(|n| u64::try_from(n).ok());
    let q = QueueLengths {
        name,
        pending: length(0).unwrap_or(0),
        processing: length(1).unwrap_or(0),
        dead: length(2).unwrap_or(0),
        scheduled: length(3).unwrap_or(0),
    };
    Ok((q.pending + q.processing + q.dead + q.scheduled > 0).then_some(q))
}

/// A lock held: its TTL and fencing counter; `None` when it is not held (only its counter is
/// left: PTTL -2), has no expiry, or its key holds another type.
async fn lock_held(state: &AppState, resource: String) -> Result<Option<LockHeld>, ApiError> {
    let (lock, fence) = state.keys.lock(&resource);
    let replies: Vec<redis::RedisResult<redis::Value>> = redis::pipe()
        .ignore_errors()
        .pttl(lock)
        .get(fence)
        .query_async(&mut state.redis.clone())
        .await?;
    let Some(ttl_ms) = number(replies.first()).and_then(|n| u64::try_from(n).ok()) else {
        return Ok(None);
    };
    Ok(Some(LockHeld {
        resource,
        ttl_ms,
        fencing_token: number(replies.get(1)).and_then(|n| u64::try_from(n).ok()),
    }))
}

/// A semaphore with live holders, and its permits (the read-only status script); `None` when
/// nobody holds it or its keys hold other types.
async fn semaphore_held(state: &AppState, name: String) -> Result<Option<SemaphoreHeld>, ApiError> {
    let [holders, info, _] = state.keys.semaphore(&name);
    let status: redis::RedisResult<(u64, Vec<u64>)> = scripts::SEMAPHORE_STATUS
        .key(&holders)
        .key(&info)
        .invoke_async(&mut state.redis.clone())
        .await;
    let (permits, triples) = match status {
        Ok(status) => status,
        Err(e) if about_the_data(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let holders = (triples.len() / 3) as u64;
    Ok((holders > 0).then_some(SemaphoreHeld {
        name,
        holders,
        permits,
    }))
}
