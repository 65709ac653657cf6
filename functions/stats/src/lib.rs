//! The `stats` function: monitoring.
//!
//! | route | Redis |
//! |---|---|
//! | `GET /stats` | `INFO` + `DBSIZE` of every primary + profile counters, concurrently; a bounded `SCAN` counts the prefix's keys |
//! | `POST /stats/reset` | `SCAN MATCH {prefix}*` (every primary) + `UNLINK` in batches: never `FLUSHDB`, never a foreign key |
//! | `GET /stats/patterns?count=&cursor=` | bounded `SCAN MATCH {prefix}*` (every primary), then the queues' lengths and locks' TTLs pipelined and `semaphore_status.lua` per semaphore |
//! | `GET /health` | `PING`, timed |
//!
//! Reads the environment through `shared::Config`.

use axum::{
    Json, Router,
    extract::State,
    response::{IntoResponse, Response},
};
use shared::{
    ApiError, ApiQuery, AppState, Idempotency,
    idempotency::Outcome,
    info::{Info, eviction_warning, human_bytes},
    models::stats::{Health, ResetDone, Stats, StatsQuery},
    scripts,
    state::Scan,
};
use utoipa_axum::{router::OpenApiRouter, routes};

mod patterns;

/// Keys one SCAN call is asked to look at.
const SCAN_COUNT: u64 = 1000;
/// SCAN calls a default `/stats` may spend counting the prefix's keys (so about 10,000 keys
/// looked at): `/stats` stays fast however large the database is.
const PREFIX_SCAN_BUDGET: usize = 10;

/// The stats routes with their OpenAPI description, from the same handlers.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_stats))
        .routes(routes!(reset_data))
        .routes(routes!(patterns::get_patterns))
        .routes(routes!(health))
}

/// The stats routes, with their state.
pub fn router(state: AppState) -> Router {
    let (routes, openapi) = api().split_for_parts();
    // A query parameter the route does not declare is a 422, on every method.
    shared::http::guard(routes, &openapi, &[]).with_state(state)
}

/// A 503 that also says `connected: false`, as the README's `/stats` contract says.
fn disconnected(e: redis::RedisError) -> ApiError {
    ApiError::from(e).with("connected", false)
}

/// `GET /stats`.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "stats",
    summary = "Redis and cache statistics",
    description = "Connection, version, uptime, keys (all, and under the prefix), memory and its policy, ops/s, clients, the profile cache's hits, misses and hit rate (`GET /users/{user_id}` lookups only), and Redis's own `keyspace_hits`/`keyspace_misses` (every key lookup, `GET /cache/{key}` included). `INFO` is read tolerantly.",
    params(StatsQuery),
    responses(
        (status = 200, description = "Statistics", body = Stats),
        (status = 422, description = "Bad parameter", body = shared::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis is down: the problem carries `connected: false`", body = shared::error::Problem, content_type = "application/problem+json")
    )
)]
async fn get_stats(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    let (mut a, mut b, mut c) = (
        state.redis.clone(),
        state.redis.clone(),
        state.redis.clone(),
    );
    let info = redis::cmd("INFO");
    let dbsize = redis::cmd("DBSIZE");
    let mut counters = redis::cmd("HMGET");
    counters
        .arg(state.keys.profile_stats())
        .arg(&["lookups", "misses"]);
    // Each primary's INFO and DBSIZE (one server unless on a cluster), the shared counters
    // and the prefix count, all at once.
    let (texts, sizes, counters, prefix_keys) = tokio::try_join!(
        a.on_each_primary::<String>(&info),
        b.on_each_primary::<u64>(&dbsize),
        counters.query_async::<Vec<Option<u64>>>(&mut c),
        count_prefix_keys(&state, query.exact),
    )
    .map_err(disconnected)?;

    let infos: Vec<Info<'_>> = texts.iter().map(|t| Info::parse(t)).collect();
    let sum = |field: &str| infos.iter().map(|i| i.number(field)).sum::<u64>();
    let lookups = counters.first().copied().flatten().unwrap_or(0);
    let cache_misses = counters.get(1).copied().flatten().unwrap_or(0);
    let cache_hits = lookups.saturating_sub(cache_misses);
    let used_memory_bytes = sum("used_memory");
    let mut policies: Vec<&str> = infos
        .iter()
        .filter_map(|i| i.text("maxmemory_policy"))
        .collect();
    policies.dedup();
    let warnings = policies
        .iter()
        .filter_map(|p| eviction_warning(p))
        .collect();
    let first = infos.first();
    Ok(Json(Stats {
        connected: true,
        mode: state.redis.mode().to_owned(),
        nodes: infos.len(),
        total_keys: sizes.iter().sum(),
        memory_used: match first.and_then(|i| i.text("used_memory_human")) {
            Some(human) if infos.len() == 1 => human.to_owned(),
            _ => human_bytes(used_memory_bytes),
        },
        uptime_seconds: infos
            .iter()
            .map(|i| i.number("uptime_in_seconds"))
            .min()
            .unwrap_or(0),
        operations_per_second: sum("instantaneous_ops_per_sec"),
        redis_version: first
            .and_then(|i| i.text("redis_version"))
            .unwrap_or("unknown")
            .to_owned(),
        prefix_keys,
        used_memory_bytes,
        maxmemory_bytes: sum("maxmemory"),
        maxmemory_policy: policies
            .iter()
            .find(|p| **p != "noeviction")
            .or(policies.first())
            .map(|p| (*p).to_owned()),
        connected_clients: sum("connected_clients"),
        cache_hits,
        cache_misses,
        hit_rate: (lookups > 0).then(|| cache_hits as f64 / lookups as f64),
        // Counted by Redis itself, so the cache's GET path pays nothing for it.
        keyspace_hits: sum("keyspace_hits"),
        keyspace_misses: sum("keyspace_misses"),
        warnings,
    }))
}

/// Counts the keys under the prefix by SCAN; `None` when the budget runs out first
/// (unless `exact`, which scans to the end).
async fn count_prefix_keys(
    state: &AppState,
    exact: bool,
) -> Result<Option<u64>, redis::RedisError> {
    let pattern = state.keys.everything_pattern();
    let budget = if exact {
        usize::MAX
    } else {
        PREFIX_SCAN_BUDGET
    };
    let mut scan = Scan::new(&state.redis, &pattern, 0).at_most(budget);
    let mut count = 0u64;
    while let Some(keys) = scan.next_batch(SCAN_COUNT).await? {
        count += keys.len() as u64;
    }
    Ok(scan.is_complete().then_some(count))
}

/// `POST /stats/reset`.
#[utoipa::path(
    post,
    path = "/stats/reset",
    tag = "stats",
    summary = "Delete every key under the prefix",
    description = "SCAN + UNLINK in batches of about 1000: Redis is never blocked for long, no key outside the prefix is touched, and FLUSHDB is never used.",
    responses(
        (status = 200, description = "Deleted", body = ResetDone)
    )
)]
async fn reset_data(
    State(state): State<AppState>,
    idempotency: Idempotency,
) -> Result<Response, ApiError> {
    // With an Idempotency-Key a retry answers the first outcome, and one racing a reset
    // still running gets a 409. The reset is many steps, so its record is written after
    // them, not with them; deleting everything twice is harmless, so an outcome lost in
    // between costs only a second pass.
    let anchor = state.keys.reset_outcome();
    if let Some(earlier) = idempotency
        .begin(&state, &anchor, state.config.request_timeout)
        .await?
    {
        let keys_deleted = earlier.value.first().copied().unwrap_or(0);
        return Ok(earlier.respond(reset_done(&state, keys_deleted)));
    }
    let keys_deleted = match delete_prefix(&state).await {
        Ok(n) => n,
        Err(e) => {
            idempotency.abandon(&state, &anchor).await;
            return Err(e);
        }
    };
    if idempotency.is_keyed() {
        let _: Outcome<Vec<u64>> = idempotency
            .finish(&state, &scripts::OUTCOME, &anchor, |s| {
                s.arg(keys_deleted);
            })
            .await?;
    }
    Ok(reset_done(&state, keys_deleted).into_response())
}

/// Deletes every key under the prefix but the idempotency records, by SCAN + UNLINK in
/// batches; returns how many went.
async fn delete_prefix(state: &AppState) -> Result<u64, ApiError> {
    let pattern = state.keys.everything_pattern();
    let mut scan = Scan::new(&state.redis, &pattern, 0);
    let mut keys_deleted = 0u64;
    while let Some(mut keys) = scan.next_batch(SCAN_COUNT).await? {
        // Idempotency records stay (they expire by themselves): deleting one would let the
        // retry of a request that already took effect apply it again.
        keys.retain(|key| !state.keys.is_idempotency_record(key));
        if !keys.is_empty() {
            let removed: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(scan.redis())
                .await?;
            keys_deleted += removed;
        }
    }
    Ok(keys_deleted)
}

fn reset_done(state: &AppState, keys_deleted: u64) -> Json<ResetDone> {
    Json(ResetDone {
        message: format!(
            "Deleted {} with the '{}' prefix",
            shared::models::counted(keys_deleted, "key", "keys"),
            state.keys.prefix()
        ),
        keys_deleted,
    })
}

/// `GET /health`.
#[utoipa::path(
    get,
    path = "/health",
    tag = "stats",
    summary = "Health check (PING)",
    description = "For load balancers and container health checks: 200 while Redis answers, 503 when it does not.",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "Redis is down: the problem carries `redis: down`", body = shared::error::Problem, content_type = "application/problem+json")
    )
)]
async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let mut redis = state.redis.clone();
    let latency = redis
        .ping()
        .await
        .map_err(|e| ApiError::from(e).with("redis", "down"))?;
    Ok(Json(Health {
        status: "ok".to_owned(),
        redis: "up".to_owned(),
        latency_ms: (latency.as_secs_f64() * 1e6).round() / 1e3,
    }))
}
