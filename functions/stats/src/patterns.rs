//! `GET /stats/patterns`: the queues, locks and semaphores under the prefix, with their
//! figures, for the dashboard.
//!
//! Found by a bounded SCAN of the prefix from a cursor (the one [`Scan`] `/stats` uses, so a
//! cluster's every primary is visited and the cursor names the node), never `KEYS`: each key
//! met is mapped back to the name it was built from ([`shared::keys::Keys::pattern_of`]),
//! then one pipeline reads every queue's and lock's figures and one read-only script call
//! per semaphore its live holders. Nothing is written.

use std::collections::BTreeSet;

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
    let mut redis = state.redis.clone();

    // Every queue's four lengths and every lock's PTTL and fencing counter, one pipeline.
    let mut pipe = redis::pipe();
    for name in &queues {
        let [pending, processing, .., dead, scheduled] = state.keys.queue(name);
        pipe.llen(pending)
            .llen(processing)
            .llen(dead)
            .zcard(scheduled);
    }
    for resource in &locks {
        let (lock, fence) = state.keys.lock(resource);
        pipe.pttl(lock).get(fence);
    }
    let figures: Vec<redis::Value> = if queues.is_empty() && locks.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(&mut redis).await?
    };
    let number = |i: usize| -> Option<i64> {
        figures.get(i).and_then(|v| {
            redis::from_redis_value::<Option<i64>>(v.clone())
                .ok()
                .flatten()
        })
    };
    let length = |i: usize| number(i).and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    let lock_base = 4 * queues.len();
    let queues: Vec<QueueLengths> = queues
        .into_iter()
        .enumerate()
        .map(|(q, name)| QueueLengths {
            name,
            pending: length(4 * q),
            processing: length(4 * q + 1),
            dead: length(4 * q + 2),
            scheduled: length(4 * q + 3),
        })
        // Every list emptied: the queue is gone (its other keys are bookkeeping).
        .filter(|q| q.pending + q.processing + q.dead + q.scheduled > 0)
        .collect();
    let locks: Vec<LockHeld> = locks
        .into_iter()
        .enumerate()
        .filter_map(|(l, resource)| {
            // PTTL: -2 when the lock is not held (only its fencing counter is left).
            let ttl_ms = u64::try_from(number(lock_base + 2 * l)?).ok()?;
            Some(LockHeld {
                resource,
                ttl_ms,
                fencing_token: number(lock_base + 2 * l + 1).and_then(|n| u64::try_from(n).ok()),
            })
        })
        .collect();
    let mut held = Vec::new();
    for name in semaphores {
        let [holders, info, _] = state.keys.semaphore(&name);
        let (permits, triples): (u64, Vec<u64>) = scripts::SEMAPHORE_STATUS
            .key(&holders)
            .key(&info)
            .invoke_async(&mut redis)
            .await?;
        let holders = (triples.len() / 3) as u64;
        if holders > 0 {
            held.push(SemaphoreHeld {
                name,
                holders,
                permits,
            });
        }
    }
    Ok(Json(Patterns {
        queues,
        locks,
        semaphores: held,
        cursor,
    }))
}
