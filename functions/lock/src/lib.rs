//! The `lock` function: distributed locks on Redis.
//!
//! | route | Redis |
//! |---|---|
//! | `POST /lock/{resource}?processing_time=&ttl=&wait_ms=` | acquire, hold for `processing_time`, release (the original's demo) |
//! | `POST /lock/{resource}/acquire?ttl=&wait_ms=` | `lock_acquire.lua`: `SET NX PX` + next fencing token |
//! | `POST /lock/{resource}/extend` `{token, ttl?}` | `lock_extend.lua`: compare-and-expire |
//! | `POST /lock/{resource}/release` `{token}` | `lock_release.lua`: compare-and-delete |
//! | `GET /lock/{resource}` | `PTTL` |
//!
//! The lock's value is a random 128-bit token known only to its holder, so nobody can
//! release or extend a lock they do not hold; a holder that dies loses the lock when its TTL
//! runs out. Each grant carries a fencing token that strictly increases per resource.

use std::time::{Duration, Instant};

use axum::{Json, Router, extract::State, http::StatusCode};
use redis::AsyncCommands;
use shared::{
    ApiError, ApiJson, ApiPath, ApiQuery, AppState,
    keys::identifier,
    models::{
        lock::{
            AcquireQuery, ExtendLock, HoldQuery, LockChanged, LockGrant, LockProcessed, LockStatus,
            ReleaseLock,
        },
        random_token, ttl_from_redis,
    },
    scripts, validate,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Longest `processing_time`: API Gateway answers 504 after 29 s.
const MAX_PROCESSING_SECS: f64 = 25.0;
/// Longest lock TTL, seconds (one day).
const MAX_TTL_SECS: u64 = 86_400;
/// Longest wait for a held lock, ms.
const MAX_WAIT_MS: u64 = 25_000;
/// Default TTL of `extend`, seconds.
const DEFAULT_TTL_SECS: u64 = 30;

/// The lock routes with their OpenAPI description, from the same handlers.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(hold_lock, lock_status))
        .routes(routes!(acquire_lock))
        .routes(routes!(extend_lock))
        .routes(routes!(release_lock))
}

/// The lock routes, with their state.
pub fn router(state: AppState) -> Router {
    api().split_for_parts().0.with_state(state)
}

/// A granted lock.
struct Grant {
    token: String,
    fencing_token: u64,
}

/// Takes the lock on `resource` for `ttl_ms`, polling for up to `wait_ms` while it is held.
async fn acquire(
    state: &AppState,
    resource: &str,
    ttl_ms: u64,
    wait_ms: u64,
) -> Result<Grant, ApiError> {
    let (lock, fence) = state.keys.lock(resource);
    let token = random_token();
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let mut redis = state.redis.clone();
    loop {
        let (granted, value): (i64, i64) = scripts::LOCK_ACQUIRE
            .key(&lock)
            .key(&fence)
            .arg(&token)
            .arg(ttl_ms)
            .invoke_async(&mut redis)
            .await?;
        if granted == 1 {
            return Ok(Grant {
                token,
                fencing_token: u64::try_from(value).unwrap_or(0),
            });
        }
        let retry_after_ms = u64::try_from(value).unwrap_or(0);
        let now = Instant::now();
        if now >= deadline {
            return Err(ApiError::conflict(format!(
                "resource '{resource}' is locked by another holder; it frees within {retry_after_ms} ms"
            ))
            .with("resource", resource)
            .with("retry_after_ms", retry_after_ms));
        }
        // Poll: short enough to catch a release soon, never past the lock's expiry or our
        // deadline. (No blocking command: it would hold a connection of its own.)
        let pause = Duration::from_millis(retry_after_ms.clamp(1, 50)).min(deadline - now);
        tokio::time::sleep(pause).await;
    }
}

/// Releases the lock if `token` still holds it.
async fn release(state: &AppState, resource: &str, token: &str) -> Result<bool, ApiError> {
    let (lock, _) = state.keys.lock(resource);
    let mut redis = state.redis.clone();
    let released: i64 = scripts::LOCK_RELEASE
        .key(lock)
        .arg(token)
        .invoke_async(&mut redis)
        .await?;
    Ok(released == 1)
}

/// `POST /lock/{resource}`: acquire, hold for `processing_time` seconds, release.
#[utoipa::path(
    post,
    path = "/lock/{resource}",
    tag = "lock",
    summary = "Do some work under a lock (acquire, hold, release)",
    description = "The original demo: acquire, hold for `processing_time` seconds, release. A concurrent request gets 409 at once, or after waiting up to `wait_ms`.",
    params(("resource" = String, Path, min_length = 1, max_length = 512, description = "What the lock protects (1 to 512 characters)", example = "payment_gateway"), HoldQuery),
    responses(
        (status = 200, description = "The work ran under the lock, which is now released", body = LockProcessed),
        (status = 400, description = "processing_time above 25 s, or ttl not longer than processing_time", body = shared::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Held by someone else: the problem carries `retry_after_ms`", body = shared::error::Problem, content_type = "application/problem+json")
    )
)]
async fn hold_lock(
    State(state): State<AppState>,
    ApiPath(resource): ApiPath<String>,
    ApiQuery(query): ApiQuery<HoldQuery>,
) -> Result<Json<LockProcessed>, ApiError> {
    identifier("resource", &resource)?;
    let processing = query.processing_time;
    if !processing.is_finite() || !(0.0..=MAX_PROCESSING_SECS).contains(&processing) {
        return Err(ApiError::bad_request(
            "processing_time",
            format!(
                "processing_time must be from 0 to {MAX_PROCESSING_SECS} seconds (API Gateway \
                 gives up after 29 s), got {processing}"
            ),
        ));
    }
    validate::range("ttl", query.ttl, 1, MAX_TTL_SECS)?;
    if (query.ttl as f64) <= processing {
        return Err(ApiError::bad_request(
            "ttl",
            format!(
                "ttl ({} s) must be longer than processing_time ({processing} s): the lock would \
                 expire while the work still runs",
                query.ttl
            ),
        ));
    }
    validate::range("wait_ms", query.wait_ms, 0, MAX_WAIT_MS)?;
    if processing * 1000.0 + query.wait_ms as f64 > MAX_PROCESSING_SECS * 1000.0 {
        return Err(ApiError::bad_request(
            "wait_ms",
            format!(
                "processing_time + wait_ms must not exceed {MAX_PROCESSING_SECS} s (API Gateway \
                 gives up after 29 s), got {processing} s + {} ms",
                query.wait_ms
            ),
        ));
    }

    let grant = acquire(&state, &resource, query.ttl * 1000, query.wait_ms).await?;
    // The work and the release run in their own task: if the client goes away mid-way, the
    // lock is still released at the end instead of lingering until its TTL.
    let work = {
        let state = state.clone();
        let resource = resource.clone();
        let token = grant.token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(processing)).await;
            release(&state, &resource, &token).await
        })
    };
    let released = work
        .await
        .map_err(|e| ApiError::Internal(format!("lock task failed: {e}")))??;
    Ok(Json(LockProcessed {
        message: format!(
            "Processed '{resource}' for {processing} s under the lock, then released it"
        ),
        resource,
        processing_time: processing,
        locked: true,
        fencing_token: grant.fencing_token,
        released,
    }))
}

/// `POST /lock/{resource}/acquire`.
#[utoipa::path(
    post,
    path = "/lock/{resource}/acquire",
    tag = "lock",
    summary = "Acquire a lock",
    description = "`SET NX PX` with a random token, plus the next fencing token (Lua).",
    params(("resource" = String, Path, min_length = 1, max_length = 512, description = "What the lock protects (1 to 512 characters)", example = "payment_gateway"), AcquireQuery),
    responses(
        (status = 201, description = "Granted: keep the token to extend or release", body = LockGrant),
        (status = 409, description = "Held by someone else: the problem carries `retry_after_ms`", body = shared::error::Problem, content_type = "application/problem+json")
    )
)]
async fn acquire_lock(
    State(state): State<AppState>,
    ApiPath(resource): ApiPath<String>,
    ApiQuery(query): ApiQuery<AcquireQuery>,
) -> Result<(StatusCode, Json<LockGrant>), ApiError> {
    identifier("resource", &resource)?;
    let ttl = validate::range("ttl", query.ttl, 1, MAX_TTL_SECS)?;
    validate::range("wait_ms", query.wait_ms, 0, MAX_WAIT_MS)?;
    let grant = acquire(&state, &resource, ttl * 1000, query.wait_ms).await?;
    Ok((
        StatusCode::CREATED,
        Json(LockGrant {
            resource,
            token: grant.token,
            fencing_token: grant.fencing_token,
            ttl_ms: ttl * 1000,
        }),
    ))
}

/// The 409 for a token that does not hold the lock.
fn not_holder(resource: &str, action: &str) -> ApiError {
    ApiError::conflict(format!(
        "cannot {action} the lock on '{resource}': this token does not hold it (it expired, \
         was released, or belongs to someone else)"
    ))
    .with("resource", resource)
}

/// `POST /lock/{resource}/extend`.
#[utoipa::path(
    post,
    path = "/lock/{resource}/extend",
    tag = "lock",
    summary = "Extend a lock you hold",
    description = "Compare-and-expire (Lua): only the token's holder can extend.",
    params(("resource" = String, Path, min_length = 1, max_length = 512, description = "What the lock protects (1 to 512 characters)", example = "payment_gateway")),
    request_body = ExtendLock,
    responses(
        (status = 200, description = "Extended", body = LockChanged),
        (status = 409, description = "This token does not hold the lock", body = shared::error::Problem, content_type = "application/problem+json")
    )
)]
async fn extend_lock(
    State(state): State<AppState>,
    ApiPath(resource): ApiPath<String>,
    ApiJson(body): ApiJson<ExtendLock>,
) -> Result<Json<LockChanged>, ApiError> {
    identifier("resource", &resource)?;
    validate::identifier("token", &body.token)?;
    let ttl = validate::range("ttl", body.ttl.unwrap_or(DEFAULT_TTL_SECS), 1, MAX_TTL_SECS)?;
    let (lock, _) = state.keys.lock(&resource);
    let mut redis = state.redis.clone();
    let extended: i64 = scripts::LOCK_EXTEND
        .key(lock)
        .arg(&body.token)
        .arg(ttl * 1000)
        .invoke_async(&mut redis)
        .await?;
    if extended != 1 {
        return Err(not_holder(&resource, "extend"));
    }
    Ok(Json(LockChanged {
        message: format!("Lock on '{resource}' extended by {ttl} s"),
        resource,
        ttl_ms: Some(ttl * 1000),
    }))
}

/// `POST /lock/{resource}/release`.
#[utoipa::path(
    post,
    path = "/lock/{resource}/release",
    tag = "lock",
    summary = "Release a lock you hold",
    description = "Compare-and-delete (Lua): nobody can release a lock they do not hold.",
    params(("resource" = String, Path, min_length = 1, max_length = 512, description = "What the lock protects (1 to 512 characters)", example = "payment_gateway")),
    request_body = ReleaseLock,
    responses(
        (status = 200, description = "Released", body = LockChanged),
        (status = 409, description = "This token does not hold the lock", body = shared::error::Problem, content_type = "application/problem+json")
    )
)]
async fn release_lock(
    State(state): State<AppState>,
    ApiPath(resource): ApiPath<String>,
    ApiJson(body): ApiJson<ReleaseLock>,
) -> Result<Json<LockChanged>, ApiError> {
    identifier("resource", &resource)?;
    validate::identifier("token", &body.token)?;
    if !release(&state, &resource, &body.token).await? {
        return Err(not_holder(&resource, "release"));
    }
    Ok(Json(LockChanged {
        message: format!("Lock on '{resource}' released"),
        resource,
        ttl_ms: None,
    }))
}

/// `GET /lock/{resource}`.
#[utoipa::path(
    get,
    path = "/lock/{resource}",
    tag = "lock",
    summary = "Is the resource locked?",
    params(("resource" = String, Path, min_length = 1, max_length = 512, description = "What the lock protects (1 to 512 characters)", example = "payment_gateway")),
    responses(
        (status = 200, description = "Lock status", body = LockStatus)
    )
)]
async fn lock_status(
    State(state): State<AppState>,
    ApiPath(resource): ApiPath<String>,
) -> Result<Json<LockStatus>, ApiError> {
    identifier("resource", &resource)?;
    let (lock, _) = state.keys.lock(&resource);
    let mut redis = state.redis.clone();
    let pttl: i64 = redis.pttl(lock).await?;
    Ok(Json(LockStatus {
        resource,
        locked: pttl != -2,
        ttl_ms: ttl_from_redis(pttl),
    }))
}
