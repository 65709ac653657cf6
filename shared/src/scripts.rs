//! The Lua scripts, each loaded once per process (`Script` hashes its source once) and run
//! by `EVALSHA`, falling back to loading it on `NOSCRIPT` (after a Redis restart or a
//! `SCRIPT FLUSH`). Each `.lua` file is headed by its `KEYS`, `ARGV` and return value.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($(#[$doc:meta])* $name:ident = $($file:literal)+) => {
        $(#[$doc])*
        pub static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(concat!($(include_str!($file)),+)));
    };
}

script!(
    /// Fixed-window counter (the original's INCR + EXPIRE), refusals not counted.
    RATE_LIMIT_FIXED_WINDOW = "scripts/rate_limit_fixed_window.lua"
);
script!(
    /// Sliding-window log in a sorted set.
    RATE_LIMIT_SLIDING_WINDOW = "scripts/rate_limit_sliding_window.lua"
);
script!(
    /// Token bucket in a hash.
    RATE_LIMIT_TOKEN_BUCKET = "scripts/rate_limit_token_bucket.lua"
);
script!(
    /// `SET NX PX` plus the next fencing token.
    LOCK_ACQUIRE = "scripts/lock_acquire.lua"
);
script!(
    /// Compare-and-delete.
    LOCK_RELEASE = "scripts/lock_release.lua"
);
script!(
    /// Compare-and-expire.
    LOCK_EXTEND = "scripts/lock_extend.lua"
);
script!(
    /// Field-level profile update keeping the TTL.
    USER_UPDATE = "scripts/user_update.lua"
);
script!(
    /// Requeue expired claims, then pop.
    QUEUE_POP = "scripts/queue_requeue_expired.lua" "scripts/queue_pop.lua"
);
script!(
    /// Requeue expired claims, then claim the head (LMOVE to processing).
    QUEUE_CLAIM = "scripts/queue_requeue_expired.lua" "scripts/queue_claim.lua"
);
script!(
    /// Requeue expired claims, then one page of the queue.
    QUEUE_PEEK = "scripts/queue_requeue_expired.lua" "scripts/queue_peek.lua"
);
script!(
    /// Acknowledge a claim.
    QUEUE_ACK = "scripts/queue_ack.lua"
);
script!(
    /// Delete a queue with its claims.
    QUEUE_CLEAR = "scripts/queue_clear.lua"
);
