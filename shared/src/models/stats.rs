//! Bodies of the `stats` function (monitoring).

use serde::{Deserialize, Serialize};

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
