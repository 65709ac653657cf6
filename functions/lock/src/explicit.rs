//! The explicit lock API: acquire (with a token to keep), extend and release by that token.
//!
//! | route | Redis |
//! |---|---|
//! | `POST /lock/{resource}/acquire?ttl=&wait_ms=` | `lock_acquire.lua`: `SET NX PX` + next fencing token |
//! | `POST /lock/{resource}/extend` `{token, ttl?}` | `lock_extend.lua`: compare-and-expire |
//! | `POST /lock/{resource}/release` `{token}` | `lock_release.lua`: compare-and-delete |

use axum::{Json, extract::State, http::StatusCode, response::Response};
use redis::AsyncCommands;
use shared::{
    ApiError, ApiJson, ApiPath, ApiQuery, AppState, Idempotency,
    idempotency::Outcome,
    models::{
        ids::{Resource, Token},
        lock::{
            AcquireQuery, ExtendLock, LOCK_TTL_SECS, LockChanged, LockGrant, ReleaseLock, WAIT_MS,
        },
    },
    scripts,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{acquire, lapsed_grant};

/// The explicit lock routes.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(acquire_lock))
        .routes(routes!(extend_lock))
        .routes(routes!(release_lock))
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
        let grant_on = format!("grant on '{resource}'");
        let fencing_token = grant.value.fencing_token;
        return Err(lapsed_grant(
            &grant_on,
            ("resource", resource.into()),
            fencing_token,
        ));
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
