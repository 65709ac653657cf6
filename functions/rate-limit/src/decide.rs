//! Running `rate_limit.lua` for one caller's policies, and turning its numbers into
//! decisions, header fields and answers.
//!
//! Header fields (draft-ietf-httpapi-ratelimit-headers-10, sections "RateLimit-Policy
//! Field" and "RateLimit Field",
//! <https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/10/>): each is a
//! Structured Field List with one Item per policy, the Item a String (the policy's name)
//! with Integer parameters: `RateLimit-Policy: "default";q=10;w=60` (quota, window in
//! seconds) and `RateLimit: "default";r=9;t=60` (remaining, seconds until it resets). Names
//! are restricted to [`shared::models::rate_limit::POLICY_NAME`], so they never need
//! escaping inside the quotes. The older `RateLimit-Limit`, `-Remaining` and `-Reset` stay
//! for existing clients, and describe the policy with the least room left (the one that
//! refuses first).

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use redis::ScriptInvocation;
use shared::{
    ApiError, AppState, Idempotency,
    idempotency::Outcome,
    models::{
        random_token,
        rate_limit::{Algorithm, COST, RateLimitDecision, SLIDING_WINDOW_MAX_COST},
    },
    scripts,
};

/// One validated policy.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Its name in answers and header fields.
    pub name: String,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Units per window.
    pub limit: u64,
    /// Window, seconds.
    pub window: u64,
}

/// Whether a run counts the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Count it if every policy has room (`POST`/`GET /rate-limit/check`).
    Check,
    /// Only read (`GET /rate-limit/status`): the script runs with `flags=no-writes`.
    Status,
}

/// The script's verdict over every policy.
pub(crate) struct Verdict {
    /// Every policy had room (and, for a check, the request was counted in all).
    pub allowed: bool,
    /// One decision per policy, in order.
    pub decisions: Vec<RateLimitDecision>,
    /// The recorded decision of an earlier request with the same `Idempotency-Key`.
    pub replayed: bool,
}

/// `cost` within [`COST`], at most every policy's limit and, in a sliding window, at most
/// [`SLIDING_WINDOW_MAX_COST`]; else a 422 naming `cost`.
pub(crate) fn check_cost(cost: u64, policies: &[Policy]) -> Result<(), ApiError> {
    COST.check("cost", cost)?;
    if let Some(p) = policies.iter().find(|p| cost > p.limit) {
        return Err(ApiError::validation(
            "cost",
            format!(
                "cost must be at most the limit of every policy: {cost} > {} (policy {:?}), \
                 so it could never be admitted",
                p.limit, p.name
            ),
        ));
    }
    let log = Algorithm::SlidingWindow;
    if let Some(p) = policies.iter().find(|p| p.algorithm == log)
        && cost > SLIDING_WINDOW_MAX_COST
    {
        return Err(ApiError::validation(
            "cost",
            format!(
                "cost must be at most {SLIDING_WINDOW_MAX_COST} in a sliding_window policy \
                 ({:?}): its log holds one entry per unit, and one request's work is bounded",
                p.name
            ),
        ));
    }
    Ok(())
}

/// `name` follows [`shared::models::rate_limit::POLICY_NAME`].
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Runs the script once for `policies` of `user`: one round trip, all keys in one slot. A
/// check with an `Idempotency-Key` runs inside the envelope (the record in the caller's
/// slot): a retry of an admitted request replays its decision instead of counting again.
pub(crate) async fn run(
    state: &AppState,
    idempotency: &Idempotency,
    user: &str,
    policies: &[Policy],
    cost: u64,
    mode: Mode,
) -> Result<Verdict, ApiError> {
    let index = state.keys.rate_limit_index(user);
    // The nonce names a sliding window's log entries; no other algorithm reads it.
    let log = policies
        .iter()
        .any(|p| p.algorithm == Algorithm::SlidingWindow);
    let nonce = if log { random_token() } else { String::new() };
    let args = |invocation: &mut ScriptInvocation<'_>| {
        invocation.key(&index);
        for p in policies {
            invocation.key(state.keys.rate_limit(p.algorithm.as_str(), p.window, user));
        }
        let mode_arg = if mode == Mode::Check {
            "check"
        } else {
            "status"
        };
        invocation.arg(mode_arg).arg(&nonce).arg(cost);
        for p in policies {
            invocation
                .arg(p.algorithm.as_str())
                .arg(p.limit)
                .arg(p.window * 1000);
        }
    };
    let Outcome {
        value: numbers,
        replayed,
    } = match mode {
        Mode::Check => {
            idempotency
                .run::<Vec<i64>>(state, &scripts::RATE_LIMIT, &index, args)
                .await?
        }
        Mode::Status => {
            let mut invocation = scripts::RATE_LIMIT_STATUS.prepare_invoke();
            args(&mut invocation);
            let mut redis = state.redis.clone();
            Outcome::fresh(invocation.invoke_async(&mut redis).await?)
        }
    };
    if numbers.len() != 1 + 5 * policies.len() {
        return Err(ApiError::Internal(format!(
            "rate_limit.lua answered {} numbers for {} policies",
            numbers.len(),
            policies.len()
        )));
    }
    let allowed = numbers[0] == 1;
    let decisions = policies
        .iter()
        .zip(numbers[1..].chunks_exact(5))
        .map(|(p, n)| decision(p, cost, allowed && mode == Mode::Check, n))
        .collect();
    Ok(Verdict {
        allowed,
        decisions,
        replayed,
    })
}

/// One policy's decision from its five numbers (`fits, current, remaining, reset_ms,
/// retry_ms`). `counted`: the request was admitted and counted.
fn decision(p: &Policy, cost: u64, counted: bool, n: &[i64]) -> RateLimitDecision {
    let fits = n[0] == 1;
    // The script keeps both within 0..=limit (and current may exceed a lowered limit); never
    // let a negative number wrap into a huge unsigned one here either.
    let current = u64::try_from(n[1]).unwrap_or(0);
    let remaining = u64::try_from(n[2]).unwrap_or(0).min(p.limit);
    // Rounded up: a client that waits this long is never refused for being early.
    let reset_in_seconds = secs_ceil(n[3]);
    let retry_after_seconds = if fits { 0 } else { secs_ceil(n[4]).max(1) };
    let message = if counted {
        format!("Request allowed ({current}/{})", p.limit)
    } else if fits {
        format!(
            "A request of cost {cost} would be allowed ({current}/{}, {remaining} left)",
            p.limit
        )
    } else {
        format!(
            "Rate limit exceeded: {} per {} s; retry in {retry_after_seconds} s",
            shared::models::counted(p.limit, "request", "requests"),
            p.window
        )
    };
    RateLimitDecision {
        policy: p.name.clone(),
        allowed: fits,
        current_count: current,
        limit: p.limit,
        window: p.window,
        message,
        remaining,
        reset_in_seconds,
        algorithm: p.algorithm,
        cost,
        retry_after_seconds,
    }
}

/// Milliseconds to whole seconds, rounded up (negative counts as zero).
fn secs_ceil(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).div_ceil(1000)
}

/// The header fields of an answer about `decisions` (see the module header); with
/// `Retry-After` (the longest wait of a violated policy) when the request was refused.
pub(crate) fn headers(decisions: &[RateLimitDecision], refused: bool) -> HeaderMap {
    use std::fmt::Write as _;
    let mut headers = HeaderMap::new();
    // Each field written into one string, handed to the header value without a copy.
    let list = |item: &dyn Fn(&mut String, &RateLimitDecision) -> std::fmt::Result| {
        let mut joined = String::with_capacity(32 * decisions.len());
        for (i, d) in decisions.iter().enumerate() {
            if i > 0 {
                joined.push_str(", ");
            }
            // Writing to a String cannot fail.
            let _ = item(&mut joined, d);
        }
        // Names are checked against POLICY_NAME: always a valid header value.
        HeaderValue::from_maybe_shared(axum::body::Bytes::from(joined))
            .unwrap_or(HeaderValue::from_static("\"default\""))
    };
    headers.insert(
        HeaderName::from_static("ratelimit-policy"),
        list(&|out, d| write!(out, "\"{}\";q={};w={}", d.policy, d.limit, d.window)),
    );
    headers.insert(
        HeaderName::from_static("ratelimit"),
        list(&|out, d| {
            write!(
                out,
                "\"{}\";r={};t={}",
                d.policy, d.remaining, d.reset_in_seconds
            )
        }),
    );
    // The legacy fields can name one policy only: the one with the least room left.
    if let Some(tightest) = decisions
        .iter()
        .min_by_key(|d| (d.remaining, u64::MAX - d.reset_in_seconds))
    {
        headers.insert(
            HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(tightest.limit),
        );
        headers.insert(
            HeaderName::from_static("ratelimit-remaining"),
            HeaderValue::from(tightest.remaining),
        );
        headers.insert(
            HeaderName::from_static("ratelimit-reset"),
            HeaderValue::from(tightest.reset_in_seconds),
        );
    }
    if refused {
        let wait = decisions
            .iter()
            .map(|d| d.retry_after_seconds)
            .max()
            .unwrap_or(1)
            .max(1);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    headers
}

/// The 429 problem for a refused request: type quota-exceeded, `violated-policies`, the
/// wait, and the decisions (`flatten`: the one policy's fields at the top, as the GET's
/// 200 body has them; else a `policies` array).
pub(crate) fn refusal(
    decisions: &[RateLimitDecision],
    flatten: bool,
) -> Result<ApiError, ApiError> {
    let violated: Vec<String> = decisions
        .iter()
        .filter(|d| !d.allowed)
        .map(|d| d.policy.clone())
        .collect();
    let wait = decisions
        .iter()
        .map(|d| d.retry_after_seconds)
        .max()
        .unwrap_or(1);
    let detail = match decisions.iter().find(|d| !d.allowed) {
        Some(d) if violated.len() == 1 => d.message.clone(),
        _ => format!(
            "Rate limit exceeded in policies {}; retry in {wait} s",
            violated.join(", ")
        ),
    };
    let mut problem = ApiError::quota_exceeded(detail, violated);
    if flatten && let Some(d) = decisions.first() {
        if let serde_json::Value::Object(fields) = serde_json::to_value(d)? {
            for (name, value) in fields {
                problem = problem.with(&name, value);
            }
        }
    } else {
        problem = problem
            .with("allowed", false)
            .with("retry_after_seconds", wait)
            .with("policies", serde_json::to_value(decisions)?);
    }
    Ok(problem)
}
