//! Bodies of the `rate-limit` function.

use serde::{Deserialize, Serialize};

use super::ids::RateLimitUser;
use crate::validate::{Defaulted, query_parameters};

/// Requests per window (`limit`), 10 when absent.
pub const LIMIT: Defaulted<u64> = Defaulted::new(1, 1_000_000, 10);

/// A window's length, seconds (`window`): at most one day, a minute when absent.
pub const WINDOW_SECS: Defaulted<u64> = Defaulted::new(1, 86_400, 60);

query_parameters! {
    /// The schema of `limit` ([`LIMIT`]).
    LimitParam = LIMIT;
    /// The schema of `window` ([`WINDOW_SECS`]).
    WindowParam = WINDOW_SECS;
}

/// Which algorithm decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// `limit` per window that starts at the first request (the classic INCR + EXPIRE).
    #[default]
    FixedWindow,
    /// `limit` in any `window`-long interval (sorted-set log; exact).
    SlidingWindow,
    /// Bursts up to `limit`, refilled at `limit` per `window`.
    TokenBucket,
}

impl Algorithm {
    /// The name used in answers and keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FixedWindow => "fixed_window",
            Self::SlidingWindow => "sliding_window",
            Self::TokenBucket => "token_bucket",
        }
    }
}

/// `GET /rate-limit/check` query.
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
    /// `fixed_window` (default), `sliding_window` or `token_bucket`.
    #[serde(default)]
    #[param(inline)]
    pub algorithm: Algorithm,
}

fn default_limit() -> u64 {
    LIMIT.default
}

fn default_window() -> u64 {
    WINDOW_SECS.default
}

/// The answer, with status 200 (allowed) or 429 (refused).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateLimitDecision {
    /// Whether this request may proceed.
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
}
