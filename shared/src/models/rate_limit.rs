//! Bodies of the `rate-limit` function.

use serde::{Deserialize, Serialize};

use super::ids::RateLimitUser;
use crate::validate::{Bounds, Defaulted, query_parameters};

/// Requests per window (`limit`), 10 when absent.
pub const LIMIT: Defaulted<u64> = Defaulted::new(1, 1_000_000, 10);

/// A window's length, seconds (`window`): at most one day, a minute when absent.
pub const WINDOW_SECS: Defaulted<u64> = Defaulted::new(1, 86_400, 60);

/// Units a request weighs (`cost`), 1 when absent; also at most each policy's `limit`.
pub const COST: Defaulted<u64> = Defaulted::new(1, 1_000_000, 1);

/// Most units one request may weigh in a `sliding_window` policy: the log holds one entry
/// per unit, so a request's work grows with its cost (a cost of 1,000,000 would add a
/// million entries in one script, blocking Redis for about a second).
pub const SLIDING_WINDOW_MAX_COST: u64 = 1000;

/// Policies in one `POST /rate-limit/check`: each is one more key in the one script.
pub const POLICIES: Bounds<usize> = Bounds::new(1, 8);

/// Longest policy `name`, characters.
pub const MAX_POLICY_NAME_CHARS: usize = 32;

/// A policy `name`: a letter, then letters, digits, `_`, `-` or `.` (nothing a structured
/// field String must escape, and readable in logs).
pub const POLICY_NAME: &str = "^[A-Za-z][A-Za-z0-9_.-]*$";

/// The name of the one policy of `GET /rate-limit/check` and `/rate-limit/status`.
pub const DEFAULT_POLICY: &str = "default";

query_parameters! {
    /// The schema of `limit` ([`LIMIT`]).
    LimitParam = LIMIT;
    /// The schema of `window` ([`WINDOW_SECS`]).
    WindowParam = WINDOW_SECS;
    /// The schema of `cost` ([`COST`]).
    CostParam = COST;
}

/// Which algorithm decides.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// `limit` per window that starts at the first request (the classic INCR + EXPIRE).
    #[default]
    FixedWindow,
    /// `limit` in any `window`-long interval (sorted-set log; exact).
    SlidingWindow,
    /// Bursts up to `limit`, refilled at `limit` per `window`.
    TokenBucket,
    /// Generic cell rate algorithm (as redis-cell): bursts up to `limit`, then one request
    /// per `window / limit`; one timestamp per caller.
    Gcra,
}

impl Algorithm {
    /// The name used in answers and keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FixedWindow => "fixed_window",
            Self::SlidingWindow => "sliding_window",
            Self::TokenBucket => "token_bucket",
            Self::Gcra => "gcra",
        }
    }
}

/// `GET /rate-limit/check` and `GET /rate-limit/status` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// Who is limited (any identifier: it is never read back through a path).
    #[param(inline, example = "user123")]
    pub user_id: RateLimitUser,
    /// Requests per window.
    #[serde(default = "default_limit")]
    #[param(inline, value_type = LimitParam)]
    pub limit: u64,
    /// Window in seconds.
    #[serde(default = "default_window")]
    #[param(inline, value_type = WindowParam)]
    pub window: u64,
    /// `fixed_window` (default), `sliding_window`, `token_bucket` or `gcra`.
    #[serde(default)]
    #[param(inline)]
    pub algorithm: Algorithm,
    /// Units this request weighs (at most `limit`).
    #[serde(default = "default_cost")]
    #[param(inline, value_type = CostParam)]
    pub cost: u64,
}

/// One policy of a `POST /rate-limit/check`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Its name in the answer and the headers: 1 to 32 characters, a letter first, then
    /// letters, digits, `_`, `.` or `-`; `p1`, `p2`... by position when absent.
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = "^[A-Za-z][A-Za-z0-9_.-]*$",
        example = "per_second"
    )]
    pub name: Option<String>,
    /// Requests per window.
    #[serde(default = "default_limit")]
    // Bounds as literals (the attribute takes no constants); openapi_bounds.rs checks them
    // against LIMIT.
    #[schema(minimum = 1, maximum = 1_000_000, default = 10)]
    pub limit: u64,
    /// Window in seconds.
    #[serde(default = "default_window")]
    #[schema(minimum = 1, maximum = 86_400, default = 60)]
    pub window: u64,
    /// `fixed_window` (default), `sliding_window`, `token_bucket` or `gcra`.
    #[serde(default)]
    pub algorithm: Algorithm,
}

/// `POST /rate-limit/check` body: several policies of one caller, checked together.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": "user123", "policies": [
    {"name": "per_second", "limit": 10, "window": 1, "algorithm": "gcra"},
    {"name": "daily", "limit": 1000, "window": 86400, "algorithm": "sliding_window"}]}))]
pub struct MultiCheck {
    // Described by its type.
    #[schema(inline)]
    pub user_id: RateLimitUser,
    /// The policies (1 to 8); no two with the same algorithm and window (they would be one
    /// counter) or the same name: a 422 names the second.
    #[schema(min_items = 1, max_items = 8)]
    pub policies: Vec<Policy>,
    /// Units this request weighs in every policy (at most the smallest `limit`).
    #[serde(default = "default_cost")]
    #[schema(minimum = 1, maximum = 1_000_000, default = 1)]
    pub cost: u64,
}

fn default_cost() -> u64 {
    COST.default
}

fn default_limit() -> u64 {
    LIMIT.default
}

fn default_window() -> u64 {
    WINDOW_SECS.default
}

/// One policy's answer: the body of a `GET /rate-limit/check` or `/rate-limit/status`,
/// and the members of a 429 problem.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateLimitDecision {
    /// The policy's name (`default` for the GET routes).
    pub policy: String,
    /// Whether this request may proceed (for a status: whether a check now would).
    pub allowed: bool,
    /// Requests counted in the current window (tokens in use for the token bucket).
    pub current_count: u64,
    /// The limit asked for.
    pub limit: u64,
    /// The window asked for, seconds.
    pub window: u64,
    /// Human sentence.
    pub message: String,
    /// Requests left in this window.
    pub remaining: u64,
    /// Seconds until the window resets (or the next slot or token frees), rounded up.
    pub reset_in_seconds: u64,
    /// The algorithm that decided.
    pub algorithm: Algorithm,
    /// Units this request weighs.
    pub cost: u64,
    /// Seconds to wait before this request's `cost` fits this policy (rounded up; 0 when
    /// it fits now).
    pub retry_after_seconds: u64,
}

/// The answer of an allowed `POST /rate-limit/check`: every policy's decision.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MultiDecision {
    /// Always true here (a refusal is a 429 problem).
    pub allowed: bool,
    /// One decision per policy, in the request's order.
    pub policies: Vec<RateLimitDecision>,
}

/// The answer of `DELETE /rate-limit/{user_id}`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"user_id": "user123", "deleted_keys": 3,
    "message": "Rate limits of 'user123' reset (3 keys deleted)"}))]
pub struct RateLimitReset {
    /// Whose limits were reset.
    pub user_id: String,
    /// Limiter keys deleted (every algorithm and window the caller had counts in).
    pub deleted_keys: u64,
    /// Human sentence.
    pub message: String,
}
