//! The `rate-limit` function: checks, status and reset, one atomic Lua script per call.
//!
//! | route | script |
//! |---|---|
//! | `GET /rate-limit/check?user_id=&limit=&window=&algorithm=&cost=` | `rate_limit.lua`, one policy named `default` |
//! | `POST /rate-limit/check` `{user_id, policies: [...], cost?}` | `rate_limit.lua`, every policy, all or nothing |
//! | `GET /rate-limit/status?...` (as the GET check) | `rate_limit.lua` in `status` mode, `flags=no-writes` |
//! | `DELETE /rate-limit/{user_id}` | `rate_limit_reset.lua`, one page of the caller's index per call |
//!
//! Algorithms: `fixed_window` (default, a counter with a TTL), `sliding_window` (sorted set
//! of admissions), `token_bucket` (hash of tokens and last refill), `gcra` (one timestamp).
//! Every script reads the time from Redis (`TIME`) and sets its keys' TTLs itself, so
//! callers' clocks never matter and nothing is left behind. Refused requests are counted
//! against no policy. Allowed: 200 with the decision; refused: 429 problem+json of type
//! quota-exceeded; the `RateLimit-*` header fields on both (see [`decide`]).

mod decide;

use std::collections::HashSet;

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use decide::{Mode, Policy};
use shared::{
    ApiError, ApiJson, ApiPath, ApiQuery, AppState, Idempotency,
    http::no_store,
    idempotency::Outcome,
    models::{
        counted,
        ids::RateLimitCaller,
        rate_limit::{
            CheckQuery, DEFAULT_POLICY, LIMIT, MAX_POLICY_NAME_CHARS, MultiCheck, MultiDecision,
            POLICIES, RateLimitDecision, RateLimitReset, WINDOW_SECS,
        },
    },
    scripts,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Keys a reset deletes per script call: a caller with more takes more calls, each short.
const RESET_PAGE: u64 = 100;

/// The rate-limit routes with their OpenAPI description, from the same handlers.
pub fn api() -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::new()
        .routes(routes!(check_rate_limit, check_policies))
        .routes(routes!(rate_limit_status))
        .routes(routes!(reset_rate_limits));
    shared::docs::tag_operations(api.get_openapi_mut(), "rate-limit");
    api
}

/// The rate-limit routes, with their state.
pub fn router(state: AppState) -> Router {
    // A check counts the request: HEAD must not run it, and no cache may keep a verdict.
    shared::http::guarded(api().split_for_parts(), &["/rate-limit/check"], state)
}

/// The one policy of the GET routes, checked.
fn query_policy(query: &CheckQuery) -> Result<Policy, ApiError> {
    LIMIT.check("limit", query.limit)?;
    WINDOW_SECS.check("window", query.window)?;
    let policy = Policy {
        name: DEFAULT_POLICY.to_owned(),
        algorithm: query.algorithm,
        limit: query.limit,
        window: query.window,
    };
    decide::check_cost(query.cost, std::slice::from_ref(&policy))?;
    Ok(policy)
}

/// The verdict of the GET routes' one policy in `mode`, and its header fields (those of a
/// refusal when a check refused).
async fn query_verdict(
    state: &AppState,
    idempotency: &Idempotency,
    query: &CheckQuery,
    mode: Mode,
) -> Result<(decide::Verdict, HeaderMap), ApiError> {
    let policy = query_policy(query)?;
    let (user, cost) = (&query.user_id, query.cost);
    let verdict = decide::run(state, idempotency, user, &[policy], cost, mode).await?;
    let refused = mode == Mode::Check && !verdict.allowed;
    let headers = decide::headers(&verdict.decisions, refused);
    Ok((verdict, headers))
}

/// The decision of a one-policy verdict.
fn only_decision(verdict: decide::Verdict) -> Result<RateLimitDecision, ApiError> {
    verdict
        .decisions
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("no decision for one policy".to_owned()))
}

/// `GET /rate-limit/check?user_id=&limit=&window=&algorithm=&cost=`.
#[utoipa::path(
    get,
    path = "/rate-limit/check",
    summary = "Check (and count) a request against a rate limit",
    description = "One atomic Lua script per check (EVALSHA). 200 with the decision when allowed; 429 problem+json of type `https://iana.org/assignments/http-problem-types#quota-exceeded` naming `violated-policies` (with the decision's fields) when not, and `Retry-After`. Header fields on both: `RateLimit-Policy: \"default\";q=10;w=60` and `RateLimit: \"default\";r=9;t=60` (draft-ietf-httpapi-ratelimit-headers-10), and the older `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`. Refused requests are not counted. `cost` weighs the request (1..=limit; at most 1000 with `sliding_window`, whose log holds one entry per unit).",
    params(CheckQuery),
    responses(
        (status = 200, description = "Allowed", body = RateLimitDecision, headers(
            ("RateLimit-Policy" = String, description = "`\"default\";q=<limit>;w=<window>`"),
            ("RateLimit" = String, description = "`\"default\";r=<remaining>;t=<reset seconds>`"),
            ("RateLimit-Limit" = u64, description = "The limit"),
            ("RateLimit-Remaining" = u64, description = "Requests left in this window"),
            ("RateLimit-Reset" = u64, description = "Seconds until the window resets"))),
        (status = 429, description = "Refused: problem+json of type quota-exceeded, `violated-policies: [\"default\"]` and the decision's fields; nothing counted", body = shared::error::Problem,
            content_type = "application/problem+json",
            headers(
            ("Retry-After" = u64, description = "Seconds to wait (rounded up)"),
            ("RateLimit-Policy" = String, description = "`\"default\";q=<limit>;w=<window>`"),
            ("RateLimit" = String, description = "`\"default\";r=0;t=<reset seconds>`"),
            ("RateLimit-Limit" = u64, description = "The limit"),
            ("RateLimit-Remaining" = u64, description = "0"),
            ("RateLimit-Reset" = u64, description = "Seconds until the window resets")),
            example = json!({"type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
                "title": "Too Many Requests", "status": 429,
                "detail": "Rate limit exceeded: 10 requests per 60 s; retry in 42 s",
                "violated-policies": ["default"], "policy": "default", "allowed": false,
                "current_count": 10, "limit": 10, "window": 60, "remaining": 0,
                "reset_in_seconds": 42, "retry_after_seconds": 42, "algorithm": "fixed_window",
                "cost": 1, "message": "Rate limit exceeded: 10 requests per 60 s; retry in 42 s"})),
        (status = 422, description = "A parameter is missing or out of range (`cost` above `limit`, or above 1000 with `sliding_window`, too); `field` names it")
    )
)]
async fn check_rate_limit(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiQuery(query): ApiQuery<CheckQuery>,
) -> Result<Response, ApiError> {
    let (verdict, headers) = query_verdict(&state, &idempotency, &query, Mode::Check).await?;
    if !verdict.allowed {
        let problem = decide::refusal(&verdict.decisions, true)?;
        return Ok((headers, problem).into_response());
    }
    Ok((StatusCode::OK, headers, Json(only_decision(verdict)?)).into_response())
}

/// `POST /rate-limit/check`: several policies, all or nothing.
#[utoipa::path(
    post,
    path = "/rate-limit/check",
    summary = "Check (and count) a request against several rate limits at once",
    description = "Every policy is checked in one atomic Lua script; the request is counted in all of them only if all have room, so a refused request counts against none. 1 to 8 policies, each with its own algorithm and window (no two with the same algorithm and window); `cost` at most every `limit` (and 1000 with a `sliding_window` policy); `name` defaults to `p1`, `p2`... by position. 200 with every decision; 429 problem+json of type quota-exceeded naming the `violated-policies`, with every decision under `policies`. `RateLimit-Policy` and `RateLimit` list every policy; the older `RateLimit-Limit/-Remaining/-Reset` describe the one with the least room left.",
    request_body = MultiCheck,
    responses(
        (status = 200, description = "Allowed by every policy, and counted in each", body = MultiDecision, headers(
            ("RateLimit-Policy" = String, description = "`\"p1\";q=10;w=1, \"daily\";q=1000;w=86400`"),
            ("RateLimit" = String, description = "`\"p1\";r=9;t=1, \"daily\";r=999;t=86400`"))),
        (status = 429, description = "Refused by at least one policy; counted in none", body = shared::error::Problem,
            content_type = "application/problem+json", headers(
            ("Retry-After" = u64, description = "Seconds until every violated policy has room (rounded up)"))),
        (status = 422, description = "A field is missing or out of range, two policies share a name or an algorithm and window, or `cost` exceeds a limit; `field` names it")
    )
)]
async fn check_policies(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiJson(body): ApiJson<MultiCheck>,
) -> Result<Response, ApiError> {
    let policies = body_policies(&body)?;
    decide::check_cost(body.cost, &policies)?;
    let (user, cost) = (&body.user_id, body.cost);
    let verdict = decide::run(&state, &idempotency, user, &policies, cost, Mode::Check).await?;
    let replayed = Outcome {
        value: (),
        replayed: verdict.replayed,
    };
    let mut response = if verdict.allowed {
        let headers = decide::headers(&verdict.decisions, false);
        let answer = MultiDecision {
            allowed: true,
            policies: verdict.decisions,
        };
        (StatusCode::OK, headers, Json(answer)).into_response()
    } else {
        let headers = decide::headers(&verdict.decisions, true);
        (headers, decide::refusal(&verdict.decisions, false)?).into_response()
    };
    no_store(&mut response);
    Ok(replayed.respond(response))
}

/// The body's policies, checked: bounds, names, no two on one key.
fn body_policies(body: &MultiCheck) -> Result<Vec<Policy>, ApiError> {
    let count = body.policies.len();
    if !(POLICIES.min..=POLICIES.max).contains(&count) {
        return Err(ApiError::validation(
            "policies",
            format!(
                "policies must hold from {} to {} policies, got {count}",
                POLICIES.min, POLICIES.max
            ),
        ));
    }
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    let mut policies = Vec::with_capacity(count);
    for (i, p) in body.policies.iter().enumerate() {
        let at = |field: &str| format!("policies[{i}].{field}");
        LIMIT.check(&at("limit"), p.limit)?;
        WINDOW_SECS.check(&at("window"), p.window)?;
        let name = p.name.clone().unwrap_or_else(|| format!("p{}", i + 1));
        if name.len() > MAX_POLICY_NAME_CHARS || !decide::valid_name(&name) {
            return Err(ApiError::validation(
                at("name"),
                format!(
                    "policies[{i}].name must be 1 to {MAX_POLICY_NAME_CHARS} characters: a \
                     letter, then letters, digits, '_', '.' or '-'"
                ),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(ApiError::validation(
                at("name"),
                format!("policies[{i}].name {name:?} names an earlier policy too"),
            ));
        }
        if !keys.insert((p.algorithm, p.window)) {
            return Err(ApiError::validation(
                at("window"),
                format!(
                    "policies[{i}] has the algorithm and window of an earlier policy: they \
                     would share one counter"
                ),
            ));
        }
        policies.push(Policy {
            name,
            algorithm: p.algorithm,
            limit: p.limit,
            window: p.window,
        });
    }
    Ok(policies)
}

/// `GET /rate-limit/status?user_id=&limit=&window=&algorithm=&cost=`.
#[utoipa::path(
    get,
    path = "/rate-limit/status",
    summary = "What a check would answer now, without counting",
    description = "The same decision and header fields as `GET /rate-limit/check`, from the same script run read-only (`#!lua flags=no-writes`: Redis refuses any write), always with status 200: `allowed` says whether a check now would pass. `Cache-Control: no-store`: the answer changes every second.",
    params(CheckQuery),
    responses(
        (status = 200, description = "The decision a check would get (nothing counted)", body = RateLimitDecision, headers(
            ("RateLimit-Policy" = String, description = "`\"default\";q=<limit>;w=<window>`"),
            ("RateLimit" = String, description = "`\"default\";r=<remaining>;t=<reset seconds>`"),
            ("Cache-Control" = String, description = "`no-store`"))),
        (status = 422, description = "A parameter is missing or out of range; `field` names it")
    )
)]
async fn rate_limit_status(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiQuery(query): ApiQuery<CheckQuery>,
) -> Result<Response, ApiError> {
    // A status is always 200: its headers describe the decision as if allowed.
    let (verdict, headers) = query_verdict(&state, &idempotency, &query, Mode::Status).await?;
    let mut response = (StatusCode::OK, headers, Json(only_decision(verdict)?)).into_response();
    no_store(&mut response);
    Ok(response)
}

/// `DELETE /rate-limit/{user_id}`.
#[utoipa::path(
    delete,
    path = "/rate-limit/{user_id}",
    summary = "Reset one caller's rate limits (every algorithm and window)",
    description = "Deletes every limiter key of the caller, found through its index (a sorted set every check registers its keys in, all under the caller's hash tag). At most 100 keys per script call, repeated until the index is empty: bounded work per call. Idempotent: a second reset deletes nothing. Other callers are untouched.",
    params(RateLimitCaller),
    responses(
        (status = 200, description = "Reset (also when there was nothing to reset)", body = RateLimitReset),
        (status = 400, description = "The user id cannot be read back from a URL; `field` names it")
    )
)]
async fn reset_rate_limits(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(user_id): ApiPath<RateLimitCaller>,
) -> Result<Response, ApiError> {
    let index = state.keys.rate_limit_index(&user_id);
    // With an Idempotency-Key a retry answers the first outcome (a retry racing it, a 409).
    // The reset is several pages, so its record is written after them; resetting twice is
    // harmless, so an outcome lost in between costs only a second, empty pass.
    if let Some(earlier) = idempotency
        .begin(&state, &index, state.config.request_timeout)
        .await?
    {
        let deleted = earlier.value.first().copied().unwrap_or(0);
        return Ok(earlier.respond(reset_done(&user_id, deleted)));
    }
    let deleted = match delete_pages(&state, &index).await {
        Ok(n) => n,
        Err(e) => {
            idempotency.abandon(&state, &index).await;
            return Err(e);
        }
    };
    if idempotency.is_keyed() {
        let _: Outcome<Vec<u64>> = idempotency
            .finish(&state, &scripts::OUTCOME, &index, |s| {
                s.arg(deleted);
            })
            .await?;
    }
    Ok(reset_done(&user_id, deleted))
}

/// Runs `rate_limit_reset.lua` on `index` until it lists nothing; the keys deleted.
async fn delete_pages(state: &AppState, index: &str) -> Result<u64, ApiError> {
    let mut redis = state.redis.clone();
    let mut deleted = 0u64;
    loop {
        let (gone, left): (u64, u64) = scripts::RATE_LIMIT_RESET
            .key(index)
            .arg(RESET_PAGE)
            .invoke_async(&mut redis)
            .await?;
        deleted += gone;
        if left == 0 {
            return Ok(deleted);
        }
    }
}

fn reset_done(user_id: &str, deleted: u64) -> Response {
    let mut response = Json(RateLimitReset {
        message: format!(
            "Rate limits of '{user_id}' reset ({} deleted)",
            counted(deleted, "key", "keys")
        ),
        user_id: user_id.to_owned(),
        deleted_keys: deleted,
    })
    .into_response();
    no_store(&mut response);
    response
}
