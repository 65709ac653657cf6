//! The `stats` function: monitoring.
//!
//! | route | Redis |
//! |---|---|
//! | `GET /stats` | `INFO` + `DBSIZE` + profile counters, pipelined; a bounded `SCAN` counts the prefix's keys |
//! | `POST /stats/reset` | `SCAN MATCH {prefix}*` + `UNLINK` in batches: never `FLUSHDB`, never a foreign key |
//! | `GET /health` | `PING`, timed |
//!
//! Reads the environment through `shared::Config`.

mod info;

use axum::{Json, Router, extract::State};
use shared::{
    ApiError, ApiQuery, AppState,
    models::stats::{Health, ResetDone, Stats, StatsQuery},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::info::{Info, human_bytes};

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
        .routes(routes!(health))
}

/// The stats routes, with their state.
pub fn router(state: AppState) -> Router {
    api().split_for_parts().0.with_state(state)
}

/// A 503 that also says `connected: false`, as the original's `/stats` did.
fn disconnected(e: redis::RedisError) -> ApiError {
    ApiError::from(e).with("connected", false)
}

/// `GET /stats`.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "stats",
    summary = "Redis and cache statistics",
    description = "Connection, version, uptime, keys (all, and under the prefix), memory and its policy, ops/s, clients, and the profile cache's hits, misses and hit rate. `INFO` is read tolerantly.",
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
    let mut redis = state.redis.clone();
    let (text, total_keys, counters): (String, u64, Vec<Option<u64>>) = redis::pipe()
        .cmd("INFO")
        .cmd("DBSIZE")
        .hmget(state.keys.profile_stats(), &["lookups", "misses"])
        .query_async(&mut redis)
        .await
        .map_err(disconnected)?;
    let prefix_keys = count_prefix_keys(&state, query.exact)
        .await
        .map_err(disconnected)?;

    let info = Info::parse(&text);
    let lookups = counters.first().copied().flatten().unwrap_or(0);
    let cache_misses = counters.get(1).copied().flatten().unwrap_or(0);
    let cache_hits = lookups.saturating_sub(cache_misses);
    let used_memory_bytes = info.number("used_memory");
    let maxmemory_policy = info.text("maxmemory_policy").map(str::to_owned);
    let mut warnings = Vec::new();
    if let Some(policy) = maxmemory_policy.as_deref().filter(|p| *p != "noeviction") {
        warnings.push(format!(
            "maxmemory-policy is {policy}: under memory pressure Redis may evict locks and \
             queued tasks. Set maxmemory-policy noeviction."
        ));
    }
    Ok(Json(Stats {
        connected: true,
        total_keys,
        memory_used: info
            .text("used_memory_human")
            .map_or_else(|| human_bytes(used_memory_bytes), str::to_owned),
        uptime_seconds: info.number("uptime_in_seconds"),
        operations_per_second: info.number("instantaneous_ops_per_sec"),
        redis_version: info.text("redis_version").unwrap_or("unknown").to_owned(),
        prefix_keys,
        used_memory_bytes,
        maxmemory_bytes: info.number("maxmemory"),
        maxmemory_policy,
        connected_clients: info.number("connected_clients"),
        cache_hits,
        cache_misses,
        hit_rate: (lookups > 0).then(|| cache_hits as f64 / lookups as f64),
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
    let mut redis = state.redis.clone();
    let mut cursor = 0u64;
    let mut count = 0u64;
    let mut calls = 0usize;
    loop {
        let (next, keys) = redis.scan_step(cursor, &pattern, SCAN_COUNT).await?;
        count += keys.len() as u64;
        cursor = next;
        calls += 1;
        if cursor == 0 {
            return Ok(Some(count));
        }
        if !exact && calls >= PREFIX_SCAN_BUDGET {
            return Ok(None);
        }
    }
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
async fn reset_data(State(state): State<AppState>) -> Result<Json<ResetDone>, ApiError> {
    let pattern = state.keys.everything_pattern();
    let mut redis = state.redis.clone();
    let mut cursor = 0u64;
    let mut keys_deleted = 0u64;
    loop {
        let (next, keys) = redis.scan_step(cursor, &pattern, SCAN_COUNT).await?;
        if !keys.is_empty() {
            let removed: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut redis)
                .await?;
            keys_deleted += removed;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    Ok(Json(ResetDone {
        message: format!(
            "Deleted {keys_deleted} keys with the '{}' prefix",
            state.keys.prefix()
        ),
        keys_deleted,
    }))
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
