//! `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header): a client that did
//! not get an answer can send the same POST/PUT/PATCH/DELETE again with the same key and
//! get the first outcome, instead of acting twice.
//!
//! - [`fingerprint`] (a middleware in every router) reads the header of a state-changing
//!   request, checks it (1 to 255 visible ASCII characters), and hashes the method, path,
//!   query, preconditions (`If-Match`, `If-None-Match`) and body into the request's
//!   fingerprint.
//! - Handlers take [`Idempotency`] and run their write through [`Idempotency::run`]: with a
//!   key, the route's script runs inside the idempotency envelope (`scripts::WriteScript`),
//!   which records the outcome in the same atomic step as the effect, under
//!   `{prefix}idem:{slot}:{key}` for `IDEMPOTENCY_TTL_SECS`. A retry finds the record and
//!   the handler answers from it, with `Idempotent-Replayed: true`. The same key with a
//!   different request is a 422.
//! - Outcomes that changed nothing (a lock held by someone else, an empty queue, an unknown
//!   receipt) are not recorded: retrying them is harmless, and may succeed.
//! - A request of several steps (the lock demo, the reset) marks itself in progress first
//!   ([`Idempotency::begin`]), so that a retry racing it is a 409 rather than a second run,
//!   and records its outcome with its last step ([`Idempotency::finish`]).

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{FromRequestParts, Request},
    http::{HeaderValue, Method, header, request::Parts},
    response::{IntoResponse, Response},
};
use redis::{FromRedisValue, RedisError, ScriptInvocation, Value};
use sha2::{Digest, Sha256};

use crate::{
    AppState,
    error::ApiError,
    scripts::{self, WriteScript},
};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header set on a replayed outcome.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// A state-changing request's key and fingerprint.
#[derive(Clone, Debug)]
pub struct Keyed {
    key: String,
    fingerprint: String,
}

/// Whether [`fingerprint`] has work to do: a state-changing request that carries
/// `Idempotency-Key` (others pass untouched).
pub fn is_keyed(request: &Request) -> bool {
    request.headers().contains_key(HEADER)
        && matches!(
            *request.method(),
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
}

/// Hashes a state-changing request that carries `Idempotency-Key` (see the module header);
/// others pass untouched. The body is read within `limit` bytes (a larger one is a 413, as
/// it would be anyway) and handed on unchanged. `Err` is the answer to give instead.
pub async fn fingerprint(limit: usize, request: Request) -> Result<Request, Response> {
    if !is_keyed(&request) {
        return Ok(request);
    }
    let Some(value) = request.headers().get(HEADER) else {
        return Ok(request);
    };
    let key = match check(value) {
        Ok(key) => key.to_owned(),
        Err(e) => return Err(e.into_response()),
    };
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err(ApiError::PayloadTooLarge { limit }.into_response());
    };
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str());
    hash.update(b" ");
    hash.update(
        parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |pq| pq.as_str()),
    );
    // The preconditions are part of the request: the same write under another `If-Match`
    // is another request, not a retry.
    for name in [header::IF_MATCH, header::IF_NONE_MATCH] {
        for value in parts.headers.get_all(&name) {
            hash.update(b"\n");
            hash.update(name.as_str());
            hash.update(b": ");
            hash.update(value.as_bytes());
        }
    }
    hash.update(b"\n");
    hash.update(&bytes);
    let fingerprint = hex(&hash.finalize());
    parts
        .extensions
        .insert(Arc::new(Keyed { key, fingerprint }));
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn check(value: &HeaderValue) -> Result<&str, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(
            "Idempotency-Key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters; {why}"),
        )
    };
    // The key is opaque: a quoted structured-field string (`"abc"`) is taken as it is, which
    // is consistent as long as a client retries with the header it sent first.
    let key = value
        .to_str()
        .map_err(|_| bad("this one has other bytes"))?;
    if key.is_empty() || key.len() > MAX_KEY_CHARS {
        return Err(bad(&format!("this one is {} long", key.len())));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("this one has spaces or control characters"));
    }
    Ok(key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The handler's view of the request's `Idempotency-Key`: none, or the key and fingerprint.
#[derive(Clone, Debug, Default)]
pub struct Idempotency(Option<Arc<Keyed>>);

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Arc<Keyed>>().cloned()))
    }
}

/// A write's result, and whether it is the recorded outcome of an earlier request.
#[derive(Debug)]
pub struct Outcome<T> {
    /// What the script returned (then, or the first time).
    pub value: T,
    /// Whether this is a replay.
    pub replayed: bool,
}

impl<T> Outcome<T> {
    /// A result that was not looked up in a record.
    pub fn fresh(value: T) -> Self {
        Self {
            value,
            replayed: false,
        }
    }

    /// `response`, marked `Idempotent-Replayed: true` when this is a replay.
    pub fn respond(&self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        if self.replayed {
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
        }
        response
    }
}

impl Idempotency {
    /// Whether the request carries a key.
    pub fn is_keyed(&self) -> bool {
        self.0.is_some()
    }

    /// Runs `script` with the keys and arguments `args` adds: plain without a key; with
    /// one, inside the envelope, recording the outcome next to `anchor` (the key of the
    /// resource the request changes, which decides the record's cluster slot).
    pub async fn run<T: FromRedisValue>(
        &self,
        state: &AppState,
        script: &WriteScript,
        anchor: &str,
        args: impl FnOnce(&mut ScriptInvocation<'_>),
    ) -> Result<Outcome<T>, ApiError> {
        self.step(state, script, anchor, Step::Run, args).await
    }

    /// The first step of a request made of several (the lock demo, the reset): with a key,
    /// the recorded outcome of an earlier request (`Some`: answer it), or `None` after
    /// marking this one in progress for `expected` (a retry meanwhile is a 409, not a
    /// second run). Without a key, `None`.
    pub async fn begin(
        &self,
        state: &AppState,
        anchor: &str,
        expected: Duration,
    ) -> Result<Option<Outcome<Vec<u64>>>, ApiError> {
        if !self.is_keyed() {
            return Ok(None);
        }
        let earlier: Outcome<Vec<u64>> = self
            .step(
                state,
                &scripts::OUTCOME,
                anchor,
                Step::Begin(expected),
                |_| {},
            )
            .await?;
        Ok(earlier.replayed.then_some(earlier))
    }

    /// The last step of a request [`Idempotency::begin`] started: runs `script` and records
    /// its outcome over the in-progress mark (an outcome that changed nothing removes it).
    pub async fn finish<T: FromRedisValue>(
        &self,
        state: &AppState,
        script: &WriteScript,
        anchor: &str,
        args: impl FnOnce(&mut ScriptInvocation<'_>),
    ) -> Result<Outcome<T>, ApiError> {
        self.step(state, script, anchor, Step::Finish, args).await
    }

    /// Forgets a request [`Idempotency::begin`] started that failed before changing
    /// anything, so that its retry runs (best effort: the mark expires anyway).
    pub async fn abandon(&self, state: &AppState, anchor: &str) {
        if self.is_keyed() {
            let _: Result<Outcome<Vec<u64>>, _> =
                self.finish(state, &scripts::OUTCOME, anchor, |_| {}).await;
        }
    }

    async fn step<T: FromRedisValue>(
        &self,
        state: &AppState,
        script: &WriteScript,
        anchor: &str,
        step: Step,
        args: impl FnOnce(&mut ScriptInvocation<'_>),
    ) -> Result<Outcome<T>, ApiError> {
        let mut redis = state.redis.clone();
        let Some(keyed) = &self.0 else {
            let mut invocation = script.plain.prepare_invoke();
            args(&mut invocation);
            return Ok(Outcome::fresh(invocation.invoke_async(&mut redis).await?));
        };
        let (mode, ttl) = match step {
            Step::Run => ("run", state.config.idempotency_ttl),
            Step::Begin(expected) => ("begin", expected),
            Step::Finish => ("finish", state.config.idempotency_ttl),
        };
        let mut invocation = script.idempotent.prepare_invoke();
        args(&mut invocation);
        invocation
            .key(state.keys.idempotency(anchor, &keyed.key))
            .arg(&keyed.fingerprint)
            .arg(ttl.as_millis().max(1) as u64)
            .arg(mode);
        let (status, value): (i64, Value) = invocation
            .invoke_async(&mut redis)
            .await
            .map_err(mismatch)?;
        if status == 2 {
            return Err(ApiError::conflict(
                "a request with this Idempotency-Key is still in progress; retry once it has \
                 answered to get its outcome",
            ));
        }
        Ok(Outcome {
            value: redis::from_redis_value(value).map_err(RedisError::from)?,
            replayed: status == 1,
        })
    }
}

/// How one call takes part in a request's idempotency record.
enum Step {
    /// One script is the whole request.
    Run,
    /// The first step of several: mark the request in progress for this long.
    Begin(Duration),
    /// The last step: record the outcome over the mark.
    Finish,
}

impl Idempotency {
    /// Deletes `key` (`UNLINK`; its scripted twin with a key, so that a retry answers as the
    /// first call did instead of "not found"). Returns how many keys were removed.
    pub async fn unlink(&self, state: &AppState, key: &str) -> Result<Outcome<u64>, ApiError> {
        if self.is_keyed() {
            return self
                .run(state, &scripts::UNLINK, key, |s| {
                    s.key(key);
                })
                .await;
        }
        let mut redis = state.redis.clone();
        let removed: u64 = redis::cmd("UNLINK")
            .arg(key)
            .query_async(&mut redis)
            .await?;
        Ok(Outcome::fresh(removed))
    }
}

/// The envelope's `IDEMPOTENCY_MISMATCH` error as a 422; other errors as usual.
fn mismatch(e: RedisError) -> ApiError {
    if e.code() == Some("IDEMPOTENCY_MISMATCH") {
        return ApiError::validation(
            "Idempotency-Key",
            "this Idempotency-Key was already used for a different request (another method, \
             path, query or body); use a new key for a new request",
        );
    }
    e.into()
}
