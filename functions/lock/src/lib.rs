//! The `lock` function: distributed locks on Redis.
//!
//! | route | Redis |
//! |---|---|
//! | `POST /lock/{resource}?processing_time=&ttl=&wait_ms=` | acquire, hold for `processing_time`, release (the demo of the pattern) |
//! | `POST /lock/{resource}/acquire`, `/extend`, `/release` | the explicit API ([`explicit`]): `SET NX PX` + fencing token, compare-and-act |
//! | `GET /lock/{resource}` | `PTTL` |
//! | `PUT`/`GET /lock/{resource}/protected` | the fencing demo's store ([`protected`]) |
//! | `/semaphore/{name}...` | counting semaphores ([`semaphore`]) |
//!
//! The lock's value is a random 128-bit token known only to its holder, so nobody can
//! release or extend a lock they do not hold; a holder that dies loses the lock when its TTL
//! runs out. Each grant carries a fencing token that strictly increases per resource.

use std::time::{Duration, Instant};

use axum::{Extension, Json, Router, extract::State, response::Response};
use redis::AsyncCommands;
use shared::{
    ApiError, ApiPath, ApiQuery, AppState, Idempotency,
    idempotency::Outcome,
    lifecycle::InvocationDeadline,
    models::{
        ids::Resource,
        lock::{HoldQuery, LOCK_TTL_SECS, LockProcessed, LockStatus, PROCESSING_SECS, WAIT_MS},
        random_token, ttl_from_redis,
    },
    scripts,
};
use utoipa_axum::{router::OpenApiRouter, routes};

mod explicit;
mod protected;
mod semaphore;

/// Longest `processing_time` (API Gateway answers 504 after 29 s).
const MAX_PROCESSING_SECS: f64 = PROCESSING_SECS.bounds.max;

/// The lock routes with their OpenAPI description, from the same handlers.
pub fn api() -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::new()
        .routes(routes!(hold_lock, lock_status))
        .merge(explicit::api())
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

/// The 409 for a grant an Idempotency-Key recorded that is history: its lock or permit
/// expired or was released (and may be someone else's now), so replaying "201, you hold
/// it" would make one holder too many. `grant` names it in the sentence ("grant on 'r'"),
/// `(member, name)` in the problem.
fn lapsed_grant(grant: &str, (member, name): (&str, String), fencing_token: u64) -> ApiError {
    ApiError::conflict(format!(
        "this Idempotency-Key's {grant} (fencing token {fencing_token}) has expired or was \
         released; acquire again with a new key"
    ))
    .with(member, name)
    .with("fencing_token", fencing_token)
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
