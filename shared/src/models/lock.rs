//! Bodies of the `lock` function.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use utoipa::openapi::schema::ObjectBuilder;

use super::ids::Token;
use crate::validate::{Defaulted, query_parameters};

/// A lock's time to live, seconds (`ttl` of acquire, the demo and extend): at most one
/// day, 30 s when absent.
pub const LOCK_TTL_SECS: Defaulted<u64> = Defaulted::new(1, 86_400, 30);

/// How long a request waits for a held lock, ms (`wait_ms`): not at all when absent.
pub const WAIT_MS: Defaulted<u64> = Defaulted::new(0, 25_000, 0);

/// The demo's `processing_time`, seconds: API Gateway answers 504 after 29 s.
pub const PROCESSING_SECS: Defaulted<f64> = Defaulted::new(0.0, 25.0, 2.0);

query_parameters! {
    /// The schema of `ttl` ([`LOCK_TTL_SECS`]).
    LockTtlParam = LOCK_TTL_SECS;
    /// The schema of `wait_ms` ([`WAIT_MS`]).
    WaitParam = WAIT_MS;
    /// The schema of `processing_time` ([`PROCESSING_SECS`]).
    ProcessingParam = PROCESSING_SECS;
}

/// `POST /lock/{resource}` query: hold the lock while "processing", then release it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HoldQuery {
    /// Seconds of simulated work while holding the lock.
    #[serde(default = "default_processing")]
    #[param(inline, value_type = ProcessingParam)]
    pub processing_time: f64,
    /// Lock TTL in seconds; must exceed `processing_time`.
    #[serde(default = "default_ttl")]
    #[param(inline, value_type = LockTtlParam)]
    pub ttl: u64,
    /// How long to wait for a held lock before answering 409, ms (0 = at once);
    /// `processing_time` + `wait_ms` may not exceed 25 s.
    #[serde(default)]
    #[param(inline, value_type = WaitParam)]
    pub wait_ms: u64,
}

fn default_processing() -> f64 {
    PROCESSING_SECS.default
}

fn default_ttl() -> u64 {
    LOCK_TTL_SECS.default
}

/// `POST /lock/{resource}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LockProcessed {
    /// Human sentence.
    pub message: String,
    /// The resource.
    pub resource: String,
    /// Seconds the lock was held for.
    pub processing_time: f64,
    /// `true`: the work ran under the lock.
    pub locked: bool,
    /// The fencing token the work ran with.
    pub fencing_token: u64,
    /// Whether the release found the lock still ours (`false` only if it expired first).
    pub released: bool,
}

/// `POST /lock/{resource}/acquire` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AcquireQuery {
    /// Lock TTL in seconds.
    #[serde(default = "default_ttl")]
    #[param(inline, value_type = LockTtlParam)]
    pub ttl: u64,
    /// How long to wait for a held lock before answering 409, ms (0 = at once).
    #[serde(default)]
    #[param(inline, value_type = WaitParam)]
    pub wait_ms: u64,
}

/// `POST /lock/{resource}/acquire` answer (201).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LockGrant {
    /// The resource.
    pub resource: String,
    /// The holder's secret: needed to extend or release.
    pub token: String,
    /// Strictly increasing per resource: pass it to the storage you protect, which must
    /// refuse writes carrying a smaller one.
    pub fencing_token: u64,
    /// Milliseconds until the lock expires unless extended.
    pub ttl_ms: u64,
}

/// `POST /lock/{resource}/extend` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendLock {
    // Described by its type.
    #[schema(inline)]
    pub token: Token,
    // The lock's new time to live (described in `extend_ttl_schema`).
    #[serde(default, deserialize_with = "super::integral::opt_u64")]
    #[schema(schema_with = extend_ttl_schema)]
    pub ttl: Option<u64>,
}

/// `ExtendLock::ttl`: [`LOCK_TTL_SECS`].
fn extend_ttl_schema() -> ObjectBuilder {
    super::new_ttl_schema(LOCK_TTL_SECS, "lock", " (so it may shorten the lock)")
}

/// `POST /lock/{resource}/release` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseLock {
    // Described by its type.
    #[schema(inline)]
    pub token: Token,
}

/// Answer of extend and release.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LockChanged {
    /// Human sentence.
    pub message: String,
    /// The resource.
    pub resource: String,
    /// Milliseconds the lock has left (`null` after a release).
    pub ttl_ms: Option<u64>,
}

/// `GET /lock/{resource}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LockStatus {
    /// The resource.
    pub resource: String,
    /// Whether someone holds it.
    pub locked: bool,
    /// Milliseconds until it expires, `null` when free.
    pub ttl_ms: Option<u64>,
}

/// `PUT /lock/{resource}/protected` body: a write to the store the lock protects.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"fencing_token": 1795653973234045_u64, "value": {"balance": 42}}))]
#[serde(deny_unknown_fields)]
pub struct ProtectedWrite {
    /// The fencing token of the writer's grant (`POST /lock/{resource}/acquire`). The write
    /// is stored only if it is at least the highest token this resource's store has seen,
    /// and not above the resource's fencing counter (a token the lock never issued).
    #[serde(deserialize_with = "super::integral::u64")]
    pub fencing_token: u64,
    /// Any JSON value; stored as received.
    #[schema(value_type = serde_json::Value)]
    pub value: Box<RawValue>,
}

/// `PUT` (200) and `GET /lock/{resource}/protected` answer: the stored value and the
/// fencing token that wrote it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProtectedValue {
    /// The resource.
    pub resource: String,
    /// The value, as it was written.
    #[schema(value_type = serde_json::Value)]
    pub value: Box<RawValue>,
    /// The fencing token of the write that stored it: the highest this store has seen.
    pub fencing_token: u64,
    /// Milliseconds until the record expires (it lives as long as the resource's fencing
    /// counter did at the write), `null` if it does not.
    pub ttl_ms: Option<u64>,
}
