//! The `rate-limit` function: `GET /rate-limit/check`, one atomic Lua script per check.
//!
//! | algorithm | script | state |
//! |---|---|---|
//! | `fixed_window` (default) | `rate_limit_fixed_window.lua` | counter with a TTL (the classic INCR + EXPIRE) |
//! | `sliding_window` | `rate_limit_sliding_window.lua` | sorted set of admission times |
//! | `token_bucket` | `rate_limit_token_bucket.lua` | hash of tokens and last refill |
//!
//! Every script reads the time from Redis (`TIME`) and sets its key's TTL itself, so callers'
//! clocks never matter and nothing is left behind. Refused requests are not counted.
//! Answers 200 or 429 with the same body, and `RateLimit-*` headers on both.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::{
    ApiError, ApiQuery, AppState,
    models::{
        random_token,
        rate_limit::{Algorithm, CheckQuery, LIMIT, RateLimitDecision, WINDOW_SECS},
    },
    scripts,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The rate-limit routes with their OpenAPI description, from the same handlers.
pub fn api() -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::new().routes(routes!(check_rate_limit));
    shared::docs::tag_operations(api.get_openapi_mut(), "rate-limit");
    api
}

/// The rate-limit routes, with their state.
pub fn router(state: AppState) -> Router {
    // A check counts the request: HEAD must not run it, and no cache may keep a verdict.
    shared::http::guarded(api().split_for_parts(), &["/rate-limit/check"], state)
}

/// `GET /rate-limit/check?user_id=&limit=&window=&algorithm=`.
#[utoipa::path(
    get,
    path = "/rate-limit/check",
    summary = "Check (and count) a request against a rate limit",
    description = "One atomic Lua script per check (EVALSHA). 200 when allowed, 429 when not, with the same body; `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` on both, `Retry-After` on 429. Refused requests are not counted.",
    params(CheckQuery),
    responses(
        (status = 200, description = "Allowed", body = RateLimitDecision, headers(
            ("RateLimit-Limit" = u64, description = "The limit"),
            ("RateLimit-Remaining" = u64, description = "Requests left in this window"),
            ("RateLimit-Reset" = u64, description = "Seconds until the window resets"))),
        (status = 429, description = "Refused: same body, plus Retry-After", body = RateLimitDecision, headers(
            ("Retry-After" = u64, description = "Seconds to wait (rounded up)"),
            ("RateLimit-Limit" = u64, description = "The limit"),
            ("RateLimit-Remaining" = u64, description = "0"),
            ("RateLimit-Reset" = u64, description = "Seconds until the window resets"))),
        (status = 422, description = "A parameter is missing or out of range; `field` names it")
    )
)]
async fn check_rate_limit(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CheckQuery>,
) -> Result<Response, ApiError> {
    LIMIT.check("limit", query.limit)?;
    WINDOW_SECS.check("window", query.window)?;

    let script = match query.algorithm {
        Algorithm::FixedWindow => &scripts::RATE_LIMIT_FIXED_WINDOW,
        Algorithm::SlidingWindow => &scripts::RATE_LIMIT_SLIDING_WINDOW,
        Algorithm::TokenBucket => &scripts::RATE_LIMIT_TOKEN_BUCKET,
    };
    let key = state
        .keys
        .rate_limit(query.algorithm.as_str(), query.window, &query.user_id);
    let mut redis = state.redis.clone();
    let mut invocation = script.key(key);
    invocation.arg(query.limit).arg(query.window * 1000);
    if query.algorithm == Algorithm::SlidingWindow {
        // The new log member: unique even for two requests in the same microsecond.
        invocation.arg(random_token());
    }
    let (allowed, current, remaining, reset_ms, retry_ms): (i64, i64, i64, i64, i64) =
        invocation.invoke_async(&mut redis).await?;

    let allowed = allowed == 1;
    // The scripts keep both within 0..=limit (and current may exceed a lowered limit); never
    // let a negative number wrap into a huge unsigned one here either.
    let current = u64::try_from(current).unwrap_or(0);
    let remaining = u64::try_from(remaining).unwrap_or(0).min(query.limit);
    // Rounded up: a client that waits this long is never refused for being early.
    let reset_in_seconds = secs_ceil(reset_ms);
    let retry_after = secs_ceil(retry_ms).max(1);
    let message = if allowed {
        format!("Request allowed ({current}/{})", query.limit)
    } else {
        format!(
            "Rate limit exceeded: {} requests per {} s; retry in {retry_after} s",
            query.limit, query.window
        )
    };
    let body = RateLimitDecision {
        allowed,
        current_count: current,
        limit: query.limit,
        window: query.window,
        message,
        remaining,
        reset_in_seconds,
        algorithm: query.algorithm,
    };

    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("ratelimit-limit"),
        HeaderValue::from(query.limit),
    );
    headers.insert(
        HeaderName::from_static("ratelimit-remaining"),
        HeaderValue::from(remaining),
    );
    headers.insert(
        HeaderName::from_static("ratelimit-reset"),
        HeaderValue::from(reset_in_seconds),
    );
    let status = if allowed {
        StatusCode::OK
    } else {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        StatusCode::TOO_MANY_REQUESTS
    };
    Ok((status, headers, Json(body)).into_response())
}

/// Milliseconds to whole seconds, rounded up (negative counts as zero).
fn secs_ceil(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).div_ceil(1000)
}
