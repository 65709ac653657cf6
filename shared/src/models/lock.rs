//! Bodies of the `lock` function.

use serde::{Deserialize, Serialize};

/// `POST /lock/{resource}` query: hold the lock while "processing", then release it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HoldQuery {
    /// Seconds of simulated work while holding the lock, 0..=25.
    #[serde(default = "default_processing")]
    #[param(default = 2, minimum = 0, maximum = 25)]
    pub processing_time: f64,
    /// Lock TTL in seconds; must exceed `processing_time`.
    #[serde(default = "default_ttl")]
    #[param(default = 30, minimum = 1, maximum = 86_400)]
    pub ttl: u64,
    /// How long to wait for a held lock before answering 409, ms (0 = at once);
    /// `processing_time` + `wait_ms` may not exceed 25 s.
    #[serde(default)]
    #[param(default = 0, minimum = 0, maximum = 25_000)]
    pub wait_ms: u64,
}

fn default_processing() -> f64 {
    2.0
}

fn default_ttl() -> u64 {
    30
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
    #[param(default = 30, minimum = 1, maximum = 86_400)]
    pub ttl: u64,
    /// How long to wait for a held lock before answering 409, ms (0 = at once).
    #[serde(default)]
    #[param(default = 0, minimum = 0, maximum = 25_000)]
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
    /// The holder's token.
    #[schema(min_length = 1, max_length = 512)]
    pub token: String,
    /// The lock's new time to live, seconds from now (default 30): it replaces the time
    /// left, it is not added to it (so it may shorten the lock).
    #[serde(default, deserialize_with = "super::integral::opt_u64")]
    #[schema(minimum = 1, maximum = 86_400)]
    pub ttl: Option<u64>,
}

/// `POST /lock/{resource}/release` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseLock {
    /// The holder's token.
    #[schema(min_length = 1, max_length = 512)]
    pub token: String,
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
