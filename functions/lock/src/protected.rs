//! The fencing demo: a store the lock protects, which refuses writes from a holder whose
//! lock has expired since (Kleppmann's "How to do distributed locking").
//!
//! | route | Redis |
//! |---|---|
//! | `PUT /lock/{resource}/protected` `{fencing_token, value}` | `lock_protected_write.lua`: compare-and-set on the token |
//! | `GET /lock/{resource}/protected` | `HMGET` + `PTTL`, pipelined |
//!
//! A lock alone cannot stop a holder that paused (GC, swap, a slow network) past its TTL:
//! it wakes up believing it holds the lock. The store can, if every write carries the
//! grant's fencing token and the store keeps the highest one it has seen: the paused
//! holder's token is older than the one the next holder wrote with, so its late write is
//! refused. The record sits next to the lock's fencing counter (one hash tag), so the same
//! script also refuses a token the lock never issued.

use axum::{Json, extract::State, response::Response};
use shared::{
    ApiError, ApiJson, ApiPath, AppState, Idempotency,
    idempotency::Outcome,
    models::{
        ids::Resource,
        lock::{ProtectedValue, ProtectedWrite},
        raw_json_or_string, ttl_from_redis,
    },
    scripts,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The protected store's routes.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(write_protected, read_protected))
}

/// `PUT /lock/{resource}/protected`.
#[utoipa::path(
    put,
    path = "/lock/{resource}/protected",
    summary = "Write to the store the lock protects (fencing demo)",
    description = "Compare-and-set on the fencing token (Lua): the value is stored only if \
        `fencing_token` is at least the highest token this resource's store has seen (equal: \
        a retry of the same holder's write). An older token is a 409 `stale fencing token` \
        naming the highest seen: its grant ended and a newer holder has written since. A \
        token the lock never issued (0, or above the resource's fencing counter) is a 409 \
        too, naming the counter. The record lives as long as the fencing counter did at the \
        write (a day past the last grant's TTL).",
    params(Resource),
    request_body = ProtectedWrite,
    responses(
        (status = 200, description = "Stored, with the token that wrote it", body = ProtectedValue),
        (status = 409, description = "Stale token (`highest_fencing_token`) or a token the lock never issued (`fencing_counter`)")
    )
)]
async fn write_protected(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(resource): ApiPath<Resource>,
    ApiJson(body): ApiJson<ProtectedWrite>,
) -> Result<Response, ApiError> {
    let (_, fence) = state.keys.lock(&resource);
    let record = state.keys.lock_protected(&resource);
    let token = body.fencing_token;
    let done: Outcome<(i64, i64, i64)> = idempotency
        .run(&state, &scripts::LOCK_PROTECTED_WRITE, &record, |s| {
            s.key(&fence).key(&record).arg(token).arg(body.value.get());
        })
        .await?;
    let (status, number, ttl) = done.value;
    let number = u64::try_from(number).unwrap_or(0);
    match status {
        1 => Ok(done.respond(Json(ProtectedValue {
            resource: resource.into(),
            value: body.value,
            fencing_token: token,
            ttl_ms: ttl_from_redis(ttl),
        }))),
        0 => Err(ApiError::conflict(format!(
            "stale fencing token: {token} is older than {number}, the highest this store has \
             seen for '{resource}'; a newer holder has written since, so the grant that \
             token came with has ended (expired or released)"
        ))
        .with("resource", resource)
        .with("fencing_token", token)
        .with("highest_fencing_token", number)),
        _ => Err(ApiError::conflict(format!(
            "fencing token {token} was never issued for '{resource}': the lock's fencing \
             counter is {number}, and a token is one of its values (a counter of 0 means no \
             grant for a day or more; acquire the lock again)"
        ))
        .with("resource", resource)
        .with("fencing_token", token)
        .with("fencing_counter", number)),
    }
}

/// `GET /lock/{resource}/protected`.
#[utoipa::path(
    get,
    path = "/lock/{resource}/protected",
    summary = "Read the store the lock protects (fencing demo)",
    description = "The value last stored by `PUT`, with the fencing token that wrote it \
        (`HMGET` + `PTTL`, pipelined).",
    params(Resource),
    responses(
        (status = 200, description = "The value and the token that wrote it", body = ProtectedValue),
        (status = 404, description = "Nothing was written (or the record expired)")
    )
)]
async fn read_protected(
    State(state): State<AppState>,
    ApiPath(resource): ApiPath<Resource>,
) -> Result<Json<ProtectedValue>, ApiError> {
    let record = state.keys.lock_protected(&resource);
    let mut redis = state.redis.clone();
    let ((value, token), ttl): ((Option<String>, Option<u64>), i64) = redis::pipe()
        .hmget(&record, &["value", "fencing_token"])
        .pttl(&record)
        .query_async(&mut redis)
        .await?;
    let (Some(value), Some(fencing_token)) = (value, token) else {
        return Err(ApiError::not_found(format!(
            "nothing was written to the store protected by the lock on '{resource}' (or the \
             record expired)"
        ))
        .with("resource", resource));
    };
    Ok(Json(ProtectedValue {
        resource: resource.into(),
        value: raw_json_or_string(&value),
        fencing_token,
        ttl_ms: ttl_from_redis(ttl),
    }))
}
