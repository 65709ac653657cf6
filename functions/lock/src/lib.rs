//! The `lock` function: distributed locks on Redis.
//!
//! | route | Redis |
//! |---|---|
//! | `POST /lock/{resource}?processing_time=&ttl=&wait_ms=` | acquire, hold for `processing_time`, release (the demo of the pattern) |
//! | `POST /lock/{resource}/acquire?ttl=&wait_ms=` | `lock_acquire.lua`: `SET NX PX` + next fencing token |
//! | `POST /lock/{resource}/extend` `{token, ttl?}` | `lock_extend.lua`: compare-and-expire |
//! | `POST /lock/{resource}/release` `{token}` | `lock_release.lua`: compare-and-delete |
//! | `GET /lock/{resource}` | `PTTL` |
//! | `PUT`/`GET /lock/{resource}/protected` | the fencing demo's store ([`protected`]) |
//! | `/semaphore/{name}...` | counting semaphores ([`semaphore`]) |
//!
//! The lock's value is a random 128-bit token known only to its holder, so nobody can
//! release or extend a lock they do not hold; a holder that dies loses the lock when its TTL
//! runs out. Each grant carries a fencing token that strictly increases per resource.

use std::time::{Duration, Instant};

use axum::{Extension, Json, Router, extract::State, http::StatusCode, response::Response};
use redis::AsyncCommands;
use shared::{
    ApiError, ApiJson, ApiPath, ApiQuery, AppState, Idempotency,
    idempotency::Outcome,
    lifecycle::InvocationDeadline,
    models::{
        ids::{Resource, Token},
        lock::{
            AcquireQuery, ExtendLock, HoldQuery, LOCK_TTL_SECS, LockChanged, LockGrant,
            LockProcessed, LockStatus, PROCESSING_SECS, ReleaseLock, WAIT_MS,
        },
        random_token, ttl_from_redis,
    },
    scripts,
};
use utoipa_axum::{router::OpenApiRouter, routes};

mod protected;
mod semaphore;

/// Longest `processing_time` (API Gateway answers 504 after 29 s).
const MAX_PROCESSING_SECS: f64 = PROCESSING_SECS.bounds.max;

/// The lock routes with their OpenAPI description, from the same handlers.
pub fn api() -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::new()
        .routes(routes!(hold_lock, lock_status))
        .routes(routes!(acquire_lock))
        .routes(routes!(extend_lock))
        .routes(routes!(release_lock))
        .merge(protected::api())
        .merge(semaphore::api());
    shared::docs::tag_operations(api.get_openapi_mut(), "lock");
    api
}

/// The lock routes, with their state.
pub fn router(state: AppState) -> Router {
    // A query parameter the route does not declare is a 422, on every method.
    shared::http::guarded(api().split_for_parts(), &[], state)
}

/// A granted lock.
struct Grant {
    token: String,
    fencing_token: u64,
}

/// Takes the lock on `resource` for `ttl_ms`, polling for up to `wait_ms` while it is held.
/// With an Idempotency-Key the grant is recorded (a refusal is not: it changed nothing), so
/// a retry after a lost answer gets the same grant back.
async fn acquire(
    state: &AppState,
    idempotency: &Idempotency,
    resource: &str,
    ttl_ms: u64,
    wait_ms: u64,
) -> Result<Outcome<Grant>, ApiError> {
    let (lock, fence) = state.keys.lock(resource);
    // One token for every attempt: the script is idempotent per token, so a resend after a
    // lost reply answers the same grant.
    let token = random_token();
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    loop {
        let answer: Outcome<(i64, i64, String)> = idempotency
            .run(state, &scripts::LOCK_ACQUIRE, &lock, |s| {
                s.key(&lock).key(&fence).arg(&token).arg(ttl_ms);
            })
            .await?;
        let (granted, value, token) = answer.value;
        if granted == 1 {
            return Ok(Outcome {
                value: Grant {
                    token,
                    fencing_token: u64::try_from(value).unwrap_or(0),
                },
                replayed: answer.replayed,
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

/// `POST /lock/{resource}`: acquire, hold for `processing_time` seconds, release.
#[utoipa::path(
    post,
    path = "/lock/{resource}",
    summary = "Do some work under a lock (acquire, hold, release)",
    description = "The original demo: acquire, hold for `processing_time` seconds, release. A concurrent request gets 409 at once, or after waiting up to `wait_ms`.",
    params(Resource, HoldQuery),
    responses(
        (status = 200, description = "The work ran under the lock, which is now released", body = LockProcessed),
        (status = 422, description = "processing_time outside 0..=25 s, ttl or wait_ms out of range, ttl not longer than processing_time, or processing_time + wait_ms over 25 s"),
        (status = 409, description = "Held by someone else: the problem carries `retry_after_ms`")
    )
)]
async fn hold_lock(
    State(state): State<AppState>,
    idempotency: Idempotency,
    deadline: Option<Extension<InvocationDeadline>>,
    ApiPath(resource): ApiPath<Resource>,
    ApiQuery(query): ApiQuery<HoldQuery>,
) -> Result<Response, ApiError> {
    let processing = query.processing_time;
    if !processing.is_finite() || !(0.0..=MAX_PROCESSING_SECS).contains(&processing) {
        return Err(ApiError::validation(
            "processing_time",
            format!(
                "processing_time must be from 0 to {MAX_PROCESSING_SECS} seconds (API Gateway \
                 gives up after 29 s), got {processing}"
            ),
        ));
    }
    LOCK_TTL_SECS.check("ttl", query.ttl)?;
    if (query.ttl as f64) <= processing {
        return Err(ApiError::validation(
            "ttl",
            format!(
                "ttl ({} s) must be longer than processing_time ({processing} s): the lock would \
                 expire while the work still runs",
                query.ttl
            ),
        ));
    }
    WAIT_MS.check("wait_ms", query.wait_ms)?;
    if processing * 1000.0 + query.wait_ms as f64 > MAX_PROCESSING_SECS * 1000.0 {
        return Err(ApiError::validation(
            "wait_ms",
            format!(
                "processing_time + wait_ms must not exceed {MAX_PROCESSING_SECS} s (API Gateway \
                 gives up after 29 s), got {processing} s + {} ms",
                query.wait_ms
            ),
        ));
    }

    let (lock, _) = state.keys.lock(&resource);
    // With an Idempotency-Key: a retry of a demo that already ran gets its outcome back, one
    // that races a demo still running gets a 409, and this one is marked as running for as
    // long as it can take.
    let expected = Duration::from_secs_f64(processing)
        + Duration::from_millis(query.wait_ms)
        + Duration::from_secs(5);
    if let Some(earlier) = idempotency.begin(&state, &lock, expected).await? {
        return processed(resource.into(), earlier);
    }
    // On Lambda, never wait or hold past the invocation: a frozen environment would keep
    // the lock until its TTL. Half a second is left for the release and the answer.
    let margin = Duration::from_millis(500);
    let left = |deadline: &Option<Extension<InvocationDeadline>>| {
        deadline
            .as_ref()
            .map_or(Duration::MAX, |Extension(d)| d.remaining(margin))
    };
    let wait_ms = query
        .wait_ms
        .min(u64::try_from(left(&deadline).as_millis()).unwrap_or(u64::MAX));
    let grant = match acquire(
        &state,
        &Idempotency::default(),
        &resource,
        query.ttl * 1000,
        wait_ms,
    )
    .await
    {
        Ok(grant) => grant.value,
        Err(e) => {
            idempotency.abandon(&state, &lock).await;
            return Err(e);
        }
    };
    let hold = Duration::from_secs_f64(processing).min(left(&deadline));
    // The work and the release run in their own task: if the client goes away mid-way, the
    // lock is still released at the end instead of lingering until its TTL; a stopping
    // process cuts the work short and releases.
    let work = {
        let state = state.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let whole = tokio::select! {
                () = tokio::time::sleep(hold) => true,
                () = state.shutdown.triggered() => false,
            };
            let ran = if whole { hold } else { started.elapsed() };
            let ran_ms = ran.as_millis() as u64;
            let (lock, _) = state.keys.lock(&resource);
            let done: Outcome<Vec<u64>> = idempotency
                .finish(&state, &scripts::LOCK_HOLD_DONE, &lock, |s| {
                    s.key(&lock)
                        .arg(&grant.token)
                        .arg(grant.fencing_token)
                        .arg(ran_ms);
                })
                .await?;
            processed(resource.into(), done)
        })
    };
    work.await
        .map_err(|e| ApiError::Internal(format!("lock task failed: {e}")))?
}

/// The demo's answer from its recorded outcome `{released, fencing_token, ran_ms}`.
fn processed(resource: String, outcome: Outcome<Vec<u64>>) -> Result<Response, ApiError> {
    let [released, fencing_token, ran_ms] = outcome.value[..] else {
        return Err(ApiError::Internal(format!(
            "lock demo outcome has {} members, not 3",
            outcome.value.len()
        )));
    };
    let processing_time = ran_ms as f64 / 1000.0;
    Ok(outcome.respond(Json(LockProcessed {
        message: format!(
            "Processed '{resource}' for {processing_time} s under the lock, then released it"
        ),
        resource,
        processing_time,
        locked: true,
        fencing_token,
        released: released == 1,
    })))
}

/// `POST /lock/{resource}/acquire`.
#[utoipa::path(
    post,
    path = "/lock/{resource}/acquire",
    summary = "Acquire a lock",
    description = "`SET NX PX` with a random token, plus the next fencing token (Lua).",
    params(Resource, AcquireQuery),
    responses(
        (status = 201, description = "Granted: keep the token to extend or release", body = LockGrant),
        (status = 409, description = "Held by someone else: the problem carries `retry_after_ms`")
    )
)]
async fn acquire_lock(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(resource): ApiPath<Resource>,
    ApiQuery(query): ApiQuery<AcquireQuery>,
) -> Result<Response, ApiError> {
    let ttl = LOCK_TTL_SECS.check("ttl", query.ttl)?;
    WAIT_MS.check("wait_ms", query.wait_ms)?;
    let grant = acquire(&state, &idempotency, &resource, ttl * 1000, query.wait_ms).await?;
    if grant.replayed && !still_holds(&state, &resource, &grant.value.token).await? {
        // The recorded grant is history: its lock expired or was released (and may be
        // someone else's now). Replaying "201, you hold it" would make two holders.
        return Err(ApiError::conflict(format!(
            "this Idempotency-Key's grant on '{resource}' (fencing token {}) has expired or \
             was released; acquire again with a new key",
            grant.value.fencing_token
        ))
        .with("resource", resource)
        .with("fencing_token", grant.value.fencing_token));
    }
    Ok(grant.respond((
        StatusCode::CREATED,
        Json(LockGrant {
            resource: resource.into(),
            token: grant.value.token.clone(),
            fencing_token: grant.value.fencing_token,
            ttl_ms: ttl * 1000,
        }),
    )))
}

/// Whether `token` holds the lock on `resource` now.
async fn still_holds(state: &AppState, resource: &str, token: &str) -> Result<bool, ApiError> {
    let (lock, _) = state.keys.lock(resource);
    let mut redis = state.redis.clone();
    let holder: Option<String> = redis.get(lock).await?;
    Ok(holder.as_deref() == Some(token))
}

/// Runs `script`, which acts on `resource`'s lock only for the holder of `token` (extend,
/// release; `ttl_ms` is the extension's argument). A token that does not hold the lock is
/// a 409 saying it cannot `action` it.
async fn as_holder(
    state: &AppState,
    idempotency: &Idempotency,
    (resource, token): (&Resource, &Token),
    (action, script): (&str, &scripts::WriteScript),
    ttl_ms: Option<u64>,
) -> Result<Outcome<i64>, ApiError> {
    let (lock, _) = state.keys.lock(resource);
    let done: Outcome<i64> = idempotency
        .run(state, script, &lock, |s| {
            s.key(&lock).arg(token.as_str()).arg(ttl_ms);
        })
        .await?;
    if done.value != 1 {
        return Err(ApiError::conflict(format!(
            "cannot {action} the lock on '{resource}': this token does not hold it (it \
             expired, was released, or belongs to someone else)"
        ))
        .with("resource", resource.clone()));
    }
    Ok(done)
}

/// `POST /lock/{resource}/extend`.
#[utoipa::path(
    post,
    path = "/lock/{resource}/extend",
    summary = "Refresh a lock you hold: set its remaining TTL",
    description = "Compare-and-expire (Lua): only the token's holder can extend. Sets the lock's \
        remaining time to live to `ttl` seconds from now (a lease refresh): it does not add to \
        the time left, so a `ttl` below it shortens the lock.",
    params(Resource),
    request_body = ExtendLock,
    responses(
        (status = 200, description = "The lock now expires `ttl` seconds from now", body = LockChanged),
        (status = 409, description = "This token does not hold the lock")
    )
)]
async fn extend_lock(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(resource): ApiPath<Resource>,
    ApiJson(body): ApiJson<ExtendLock>,
) -> Result<Response, ApiError> {
    let ttl = LOCK_TTL_SECS.check("ttl", body.ttl.unwrap_or(LOCK_TTL_SECS.default))?;
    let holder = (&resource, &body.token);
    let extension = ("extend", &*scripts::LOCK_EXTEND);
    let extended = as_holder(&state, &idempotency, holder, extension, Some(ttl * 1000)).await?;
    Ok(extended.respond(Json(LockChanged {
        // PEXPIRE sets the time left; "extended by" would promise an addition.
        message: format!(
            "Lock on '{resource}' now expires in {ttl} s (its TTL was set to {ttl} s)"
        ),
        resource: resource.into(),
        ttl_ms: Some(ttl * 1000),
    })))
}

/// `POST /lock/{resource}/release`.
#[utoipa::path(
    post,
    path = "/lock/{resource}/release",
    summary = "Release a lock you hold",
    description = "Compare-and-delete (Lua): nobody can release a lock they do not hold.",
    params(Resource),
    request_body = ReleaseLock,
    responses(
        (status = 200, description = "Released", body = LockChanged),
        (status = 409, description = "This token does not hold the lock")
    )
)]
async fn release_lock(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(resource): ApiPath<Resource>,
    ApiJson(body): ApiJson<ReleaseLock>,
) -> Result<Response, ApiError> {
    let holder = (&resource, &body.token);
    let release = ("release", &*scripts::LOCK_RELEASE);
    let released = as_holder(&state, &idempotency, holder, release, None).await?;
    Ok(released.respond(Json(LockChanged {
        message: format!("Lock on '{resource}' released"),
        resource: resource.into(),
        ttl_ms: None,
    })))
}

/// `GET /lock/{resource}`.
#[utoipa::path(
    get,
    path = "/lock/{resource}",
    summary = "Is the resource locked?",
    params(Resource),
    responses(
        (status = 200, description = "Lock status", body = LockStatus)
    )
)]
async fn lock_status(
    State(state): State<AppState>,
    ApiPath(resource): ApiPath<Resource>,
) -> Result<Json<LockStatus>, ApiError> {
    let (lock, _) = state.keys.lock(&resource);
    let mut redis = state.redis.clone();
    let pttl: i64 = redis.pttl(lock).await?;
    Ok(Json(LockStatus {
        resource: resource.into(),
        locked: pttl != -2,
        ttl_ms: ttl_from_redis(pttl),
    }))
}
