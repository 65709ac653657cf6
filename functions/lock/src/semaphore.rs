//! Counting semaphores: at most `permits` holders at once, each with a TTL.
//!
//! | route | Redis |
//! |---|---|
//! | `POST /semaphore/{name}/acquire?permits=&ttl=` | `semaphore_acquire.lua`: lapsed holders out, then `ZADD` if below `permits` |
//! | `POST /semaphore/{name}/extend` `{token, ttl?}` | `semaphore_extend.lua`: compare-and-rescore |
//! | `POST /semaphore/{name}/release` `{token}` | `semaphore_release.lua`: compare-and-remove |
//! | `GET /semaphore/{name}` | `semaphore_status.lua`: live holders (reads only) |
//!
//! The holders are a sorted set of random holder tokens scored by their expiry (Redis's
//! clock), so a holder that dies frees its permit when its TTL runs out: every write script
//! first removes the lapsed holders, then counts. While anyone holds a permit the semaphore
//! keeps the `permits` its holders were granted with; an acquire asking for another count is
//! a 409 (two counts at once would let the larger one's holders exceed the smaller one's).

use axum::{Json, extract::State, http::StatusCode, response::Response};
use shared::{
    ApiError, ApiJson, ApiPath, ApiQuery, AppState, Idempotency,
    idempotency::Outcome,
    models::{
        ids::{SemaphoreName, Token},
        random_token,
        semaphore::{
            ExtendPermit, PermitChanged, ReleasePermit, SEMAPHORE_PERMITS, SEMAPHORE_TTL_SECS,
            SemaphoreAcquireQuery, SemaphoreGrant, SemaphoreHolder, SemaphoreStatus,
        },
    },
    scripts,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::lapsed_grant;

/// The semaphore routes.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(semaphore_status))
        .routes(routes!(acquire_permit))
        .routes(routes!(extend_permit))
        .routes(routes!(release_permit))
}

/// `POST /semaphore/{name}/acquire`.
#[utoipa::path(
    post,
    path = "/semaphore/{name}/acquire",
    summary = "Take a permit of a counting semaphore",
    description = "Lua: removes the holders whose TTL ran out, then adds a random holder token \
        to the sorted set of holders (scored by expiry) if fewer than `permits` hold one. \
        Idempotent per holder token, and with an `Idempotency-Key` a retry after a lost answer \
        gets the same grant back (409 if that grant has since expired or been released). While \
        anyone holds a permit, the semaphore keeps the `permits` it was taken with: another \
        count is a 409 naming it.",
    params(SemaphoreName, SemaphoreAcquireQuery),
    responses(
        (status = 201, description = "Granted: keep the token to extend or release", body = SemaphoreGrant),
        (status = 409, description = "Every permit is held (`retry_after_ms`), or the semaphore counts another number of permits (`permits`)")
    )
)]
async fn acquire_permit(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<SemaphoreName>,
    ApiQuery(query): ApiQuery<SemaphoreAcquireQuery>,
) -> Result<Response, ApiError> {
    let permits = SEMAPHORE_PERMITS.check("permits", query.permits)?;
    let ttl_ms = SEMAPHORE_TTL_SECS.check("ttl", query.ttl)? * 1000;
    let [holders, info, fence] = state.keys.semaphore(&name);
    // One token per request: the script is idempotent per token, so a resend after a lost
    // reply answers the same grant.
    let token = random_token();
    let answer: Outcome<(i64, i64, i64, i64, String)> = idempotency
        .run(&state, &scripts::SEMAPHORE_ACQUIRE, &holders, |s| {
            s.key(&holders)
                .key(&info)
                .key(&fence)
                .arg(&token)
                .arg(permits)
                .arg(ttl_ms);
        })
        .await?;
    let (status, first, second, expires_at_ms, token) = answer.value.clone();
    let [first, second, expires_at_ms] = [first, second, expires_at_ms].map(|n| n.max(0) as u64);
    match status {
        1 => {
            let fencing_token = first;
            let (mut ttl_ms, mut expires_at_ms) = (ttl_ms, expires_at_ms);
            if answer.replayed {
                // The recorded grant may be history: replaying "201, you hold it" for an
                // expired or released permit would admit one holder too many.
                let live = live_holders(&state, &name).await?;
                let Some(holder) = live
                    .holders
                    .iter()
                    .find(|h| h.fencing_token == fencing_token)
                else {
                    let permit_of = format!("permit of '{name}'");
                    return Err(lapsed_grant(
                        &permit_of,
                        ("name", name.into()),
                        fencing_token,
                    ));
                };
                // As it is now: it may have been extended since.
                (ttl_ms, expires_at_ms) = (holder.ttl_ms, holder.expires_at_ms);
            }
            Ok(answer.respond((
                StatusCode::CREATED,
                Json(SemaphoreGrant {
                    name: name.into(),
                    token,
                    fencing_token,
                    permits,
                    permits_left: second,
                    ttl_ms,
                    expires_at_ms,
                }),
            )))
        }
        0 => Err(ApiError::conflict(format!(
            "'{name}' has no permit left ({}); one frees within {first} ms",
            if permits == 1 {
                "its only one is held".to_owned()
            } else {
                format!("all {permits} held")
            }
        ))
        .with("name", name)
        .with("permits", permits)
        .with("retry_after_ms", first)),
        _ => Err(ApiError::conflict(format!(
            "semaphore '{name}' is held with {}, not {permits}: while anyone \
             holds a permit its count stays the one its holders were granted with (ask with \
             permits={first}, or once it is free)",
            shared::models::counted(first, "permit", "permits")
        ))
        .with("name", name)
        .with("permits", first)),
    }
}

/// Runs `script` for the holder of `token` on semaphore `name`; `0` back means the token
/// holds no permit: a 409 saying it cannot `action` it.
async fn as_holder(
    state: &AppState,
    idempotency: &Idempotency,
    (name, token): (&SemaphoreName, &Token),
    (action, script): (&str, &scripts::WriteScript),
    ttl_ms: Option<u64>,
) -> Result<Outcome<i64>, ApiError> {
    let [holders, info, _] = state.keys.semaphore(name);
    let done: Outcome<i64> = idempotency
        .run(state, script, &holders, |s| {
            s.key(&holders).key(&info).arg(token.as_str()).arg(ttl_ms);
        })
        .await?;
    if done.value == 0 {
        return Err(ApiError::conflict(format!(
            "cannot {action} a permit of '{name}': this token holds none (it expired, was \
             released, or was never granted)"
        ))
        .with("name", name.clone()));
    }
    Ok(done)
}

/// `POST /semaphore/{name}/extend`.
#[utoipa::path(
    post,
    path = "/semaphore/{name}/extend",
    summary = "Refresh a permit you hold: set its remaining TTL",
    description = "Compare-and-rescore (Lua): only the token's holder can extend, and only \
        while its permit has not expired. Sets the time left to `ttl` seconds from now.",
    params(SemaphoreName),
    request_body = ExtendPermit,
    responses(
        (status = 200, description = "The permit now expires `ttl` seconds from now", body = PermitChanged),
        (status = 409, description = "This token holds no permit")
    )
)]
async fn extend_permit(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<SemaphoreName>,
    ApiJson(body): ApiJson<ExtendPermit>,
) -> Result<Response, ApiError> {
    let ttl = SEMAPHORE_TTL_SECS.check("ttl", body.ttl.unwrap_or(SEMAPHORE_TTL_SECS.default))?;
    let holder = (&name, &body.token);
    let extension = ("extend", &*scripts::SEMAPHORE_EXTEND);
    let done = as_holder(&state, &idempotency, holder, extension, Some(ttl * 1000)).await?;
    Ok(done.respond(Json(PermitChanged {
        message: format!("Permit of '{name}' now expires in {ttl} s (its TTL was set to {ttl} s)"),
        name: name.into(),
        ttl_ms: Some(ttl * 1000),
        expires_at_ms: u64::try_from(done.value).ok(),
    })))
}

/// `POST /semaphore/{name}/release`.
#[utoipa::path(
    post,
    path = "/semaphore/{name}/release",
    summary = "Give back a permit you hold",
    description = "Compare-and-remove (Lua): nobody can release a permit they do not hold.",
    params(SemaphoreName),
    request_body = ReleasePermit,
    responses(
        (status = 200, description = "Released", body = PermitChanged),
        (status = 409, description = "This token holds no permit")
    )
)]
async fn release_permit(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<SemaphoreName>,
    ApiJson(body): ApiJson<ReleasePermit>,
) -> Result<Response, ApiError> {
    let holder = (&name, &body.token);
    let release = ("release", &*scripts::SEMAPHORE_RELEASE);
    let done = as_holder(&state, &idempotency, holder, release, None).await?;
    Ok(done.respond(Json(PermitChanged {
        message: format!("Permit of '{name}' released"),
        name: name.into(),
        ttl_ms: None,
        expires_at_ms: None,
    })))
}

/// The live holders of `name` (reads only).
async fn live_holders(state: &AppState, name: &str) -> Result<SemaphoreStatus, ApiError> {
    let [holders, info, _] = state.keys.semaphore(name);
    let mut redis = state.redis.clone();
    let (permits, triples): (u64, Vec<u64>) = scripts::SEMAPHORE_STATUS
        .key(&holders)
        .key(&info)
        .invoke_async(&mut redis)
        .await?;
    let holders: Vec<SemaphoreHolder> = triples
        .chunks_exact(3)
        .map(|triple| SemaphoreHolder {
            fencing_token: triple[0],
            ttl_ms: triple[1],
            expires_at_ms: triple[2],
        })
        .collect();
    let permits = (!holders.is_empty()).then_some(permits);
    Ok(SemaphoreStatus {
        name: name.to_owned(),
        permits,
        permits_left: permits.map(|p| p.saturating_sub(holders.len() as u64)),
        holders,
    })
}

/// `GET /semaphore/{name}`.
#[utoipa::path(
    get,
    path = "/semaphore/{name}",
    summary = "A semaphore's holders and free permits",
    description = "The live holders (named by their fencing tokens: holder tokens are \
        secrets) with the time each has left, soonest first, and the permits free. Reads only.",
    params(SemaphoreName),
    responses(
        (status = 200, description = "Holders and permits", body = SemaphoreStatus)
    )
)]
async fn semaphore_status(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<SemaphoreName>,
) -> Result<Json<SemaphoreStatus>, ApiError> {
    Ok(Json(live_holders(&state, &name).await?))
}
