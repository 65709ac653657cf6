//! Bodies of the `stats` function (monitoring).

use serde::{Deserialize, Serialize};

use super::cache::CursorParam;
use crate::validate::{Defaulted, query_parameters};

/// Keys one SCAN step of `GET /stats/patterns` is asked to look at (`count`), 1000 when
/// absent. At most [`PATTERNS_STEPS`] steps are made per request.
pub const PATTERNS_COUNT: Defaulted<u64> = Defaulted::new(1, 1000, 1000);

/// SCAN steps one `GET /stats/patterns` request makes before it answers with a cursor: the
/// work per request is bounded however many keys the prefix holds.
pub const PATTERNS_STEPS: usize = 10;

query_parameters! {
    /// The schema of `GET /stats/patterns`'s `count` ([`PATTERNS_COUNT`]).
    PatternsCountParam = PATTERNS_COUNT;
}

/// `GET /stats/patterns` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PatternsQuery {
    /// Keys each SCAN step looks at (a hint to Redis); a request makes at most 10 steps.
    #[serde(default = "default_patterns_count")]
    #[param(inline, value_type = PatternsCountParam)]
    pub count: u64,
    /// Where to continue: 0 to start, then the `cursor` of the previous answer.
    #[serde(default)]
    #[param(inline, value_type = CursorParam)]
    pub cursor: u64,
}

fn default_patterns_count() -> u64 {
    PATTERNS_COUNT.default
}

/// `GET /stats/patterns` answer: the queues, locks and semaphores whose keys one bounded
/// stretch of a SCAN of the prefix met.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Patterns {
    /// Queues, by name.
    pub queues: Vec<QueueLengths>,
    /// Locks held now, by resource.
    pub locks: Vec<LockHeld>,
    /// Semaphores with a live holder, by name.
    pub semaphores: Vec<SemaphoreHeld>,
    /// Pass it back for the rest; 0 when the walk is complete. A name whose keys fall in
    /// two stretches may appear in both answers (the later figures are the fresher).
    pub cursor: u64,
}

/// One queue's lengths.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueLengths {
    /// The queue's name.
    pub name: String,
    /// Tasks waiting to be claimed.
    pub pending: u64,
    /// Tasks claimed and not yet acknowledged.
    pub processing: u64,
    /// Dead letters.
    pub dead: u64,
    /// Delayed tasks not yet due.
    pub scheduled: u64,
}

/// One lock held.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LockHeld {
    /// The locked resource.
    pub resource: String,
    /// Milliseconds until the lock lapses.
    pub ttl_ms: u64,
    /// The fencing token of the latest acquisition (the holder's).
    pub fencing_token: Option<u64>,
}

/// One semaphore with holders.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SemaphoreHeld {
    /// The semaphore's name.
    pub name: String,
    /// Live holders.
    pub holders: u64,
    /// Permits it counts.
    pub permits: u64,
}

/// `GET /stats` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Count the prefix's keys exactly, however many there are (a full SCAN: O(keys)).
    /// By default the count is bounded and `prefix_keys` is `null` past the bound.
    #[serde(default)]
    #[param(default = false)]
    pub exact: bool,
}

/// `GET /stats` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stats {
    /// Redis answered.
    pub connected: bool,
    /// `standalone`, `cluster` or `sentinel` (`REDIS_MODE`).
    #[schema(example = "standalone")]
    pub mode: String,
    /// Servers these figures come from: the cluster's primaries, else 1. Counts and memory
    /// are summed over them, uptime is the shortest, version and policy the first's.
    pub nodes: usize,
    /// Keys in the database (DBSIZE), ours and others'.
    pub total_keys: u64,
    /// Memory used, human-readable (`1.05M`).
    pub memory_used: String,
    /// Redis uptime.
    pub uptime_seconds: u64,
    /// Commands per second, as Redis measures them.
    pub operations_per_second: u64,
    /// Server version.
    pub redis_version: String,
    /// Keys under the prefix; `null` when there are more than a bounded scan counts (ask
    /// with `?exact=true`).
    pub prefix_keys: Option<u64>,
    /// Memory used, bytes.
    pub used_memory_bytes: u64,
    /// The `maxmemory` limit, bytes (0: none).
    pub maxmemory_bytes: u64,
    /// What Redis does at `maxmemory`. Locks and queues need `noeviction`.
    pub maxmemory_policy: Option<String>,
    /// Clients connected.
    pub connected_clients: u64,
    /// Profile lookups that found the profile: `GET /users/{user_id}` only (counted in
    /// Redis under the prefix, by every instance; reset by `POST /stats/reset`).
    /// `GET /cache/{key}` is not counted here: see `keyspace_hits`.
    pub cache_hits: u64,
    /// Profile lookups (`GET /users/{user_id}`) that found none.
    pub cache_misses: u64,
    /// Of the profile lookups, the share that hit: cache_hits / (cache_hits + cache_misses);
    /// `null` before the first lookup.
    pub hit_rate: Option<f64>,
    /// Redis's own count of key lookups that found their key (`INFO stats`,
    /// `keyspace_hits`, summed over the primaries): every read counts, `GET /cache/{key}`
    /// included, and so do other clients' and the API's own internal reads. Since the
    /// server started or `CONFIG RESETSTAT`; `POST /stats/reset` does not reset it.
    pub keyspace_hits: u64,
    /// Redis's own count of key lookups that found no key (`keyspace_misses`), as above.
    pub keyspace_misses: u64,
    /// Things an operator should fix (e.g. an evicting memory policy).
    pub warnings: Vec<String>,
}

/// `POST /stats/reset` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResetDone {
    /// Human sentence.
    pub message: String,
    /// Keys deleted (all under the prefix, none elsewhere).
    pub keys_deleted: u64,
}

/// `GET /health` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// `up`.
    pub redis: String,
    /// Round trip of a PING, milliseconds.
    pub latency_ms: f64,
}
