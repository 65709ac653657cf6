//! The Lua scripts, each loaded once per process (`Script` hashes its source once) and run
//! by `EVALSHA`, falling back to loading it on `NOSCRIPT` (after a Redis restart or a
//! `SCRIPT FLUSH`). Each `.lua` file is headed by its `KEYS`, `ARGV` and return value.
//!
//! A script that changes state on behalf of a POST/PUT/PATCH/DELETE is a [`WriteScript`]:
//! it exists plain, and wrapped in the idempotency envelope (`idempotency_open.lua` +
//! script + `idempotency_close.lua`) for requests that carry an `Idempotency-Key`, so that
//! the effect and the record of its outcome are one atomic step (see
//! [`crate::idempotency`]).

use std::{collections::HashMap, sync::LazyLock};

use redis::Script;

/// Declared before every script, plain or wrapped: a script that changed nothing sets it to
/// `false` so that the envelope does not record that outcome.
macro_rules! plain {
    ($($file:literal)+) => {
        concat!("local idem_record = true\n", $(include_str!($file)),+)
    };
}

macro_rules! script {
    ($(#[$doc:meta])* $name:ident = $($file:literal)+) => {
        $(#[$doc])*
        pub static $name: LazyLock<Script> = LazyLock::new(|| Script::new(plain!($($file)+)));
    };
}

macro_rules! write_script {
    ($(#[$doc:meta])* $name:ident = $($file:literal)+) => {
        $(#[$doc])*
        pub static $name: LazyLock<WriteScript> = LazyLock::new(|| WriteScript {
            plain: Script::new(plain!($($file)+)),
            idempotent: Script::new(concat!(
                include_str!("scripts/idempotency_open.lua"),
                $(include_str!($file)),+,
                include_str!("scripts/idempotency_close.lua")
            )),
        });
    };
}

/// A script that changes state, in its two forms.
pub struct WriteScript {
    /// As it is: returns the script's own result.
    pub plain: Script,
    /// Inside the idempotency envelope: takes the record key as its last key and the
    /// request's fingerprint and the record's TTL (ms) as its last two arguments, and returns
    /// `{replayed (1|0), result}`.
    pub idempotent: Script,
}

write_script!(
    /// Every rate-limit algorithm, one or more policies of one caller, all or nothing, in
    /// `check` mode (counts). Plain, not safe to resend: a second run counts again; inside
    /// the envelope (a keyed `POST /rate-limit/check`), an admission is recorded and replayed.
    RATE_LIMIT = "scripts/rate_limit.lua"
);
/// The same rate-limit script in `status` mode, declared `no-writes` (a Redis 7 script
/// flag): Redis itself refuses any write it attempts, so a status can never count.
pub static RATE_LIMIT_STATUS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "#!lua flags=no-writes\nlocal idem_record = true\n",
        include_str!("scripts/rate_limit.lua")
    ))
});
script!(
    /// One page of a caller's rate-limit reset (keys listed in its index).
    RATE_LIMIT_RESET = "scripts/rate_limit_reset.lua"
);
write_script!(
    /// `SET NX PX` plus the next fencing token; idempotent per holder token.
    LOCK_ACQUIRE = "scripts/lock_acquire.lua"
);
write_script!(
    /// Compare-and-delete.
    LOCK_RELEASE = "scripts/lock_release.lua"
);
write_script!(
    /// Compare-and-expire.
    LOCK_EXTEND = "scripts/lock_extend.lua"
);
write_script!(
    /// The end of the lock demo's hold: compare-and-delete, and the demo's outcome.
    LOCK_HOLD_DONE = "scripts/lock_hold_done.lua"
);
write_script!(
    /// The fencing demo's write: compare-and-set on the fencing token.
    LOCK_PROTECTED_WRITE = "scripts/lock_protected_write.lua"
);
write_script!(
    /// Semaphore acquire: expired holders out, then a permit if one is free; idempotent per
    /// holder token.
    SEMAPHORE_ACQUIRE = "scripts/semaphore_expire.lua" "scripts/semaphore_acquire.lua"
);
write_script!(
    /// Semaphore release: compare-and-remove of one holder.
    SEMAPHORE_RELEASE = "scripts/semaphore_expire.lua" "scripts/semaphore_release.lua"
);
write_script!(
    /// Semaphore extend: compare-and-rescore of one holder.
    SEMAPHORE_EXTEND = "scripts/semaphore_expire.lua" "scripts/semaphore_extend.lua"
);
script!(
    /// Semaphore status: the live holders and permits (reads only).
    SEMAPHORE_STATUS = "scripts/semaphore_status.lua"
);
write_script!(
    /// Field-level profile update keeping the TTL.
    USER_UPDATE = "scripts/user_update.lua"
);
write_script!(
    /// Profile create/replace with its TTL (with an Idempotency-Key; else MULTI).
    USER_CREATE = "scripts/user_create.lua"
);
write_script!(
    /// Cache entry store, a hash of value, ETag and compute time; compare-and-set under
    /// `If-Match` / `If-None-Match`.
    CACHE_PUT = "scripts/cache_condition.lua" "scripts/cache_put.lua"
);
write_script!(
    /// Cache entry delete under `If-Match` / `If-None-Match` (compare-and-delete).
    CACHE_DELETE = "scripts/cache_condition.lua" "scripts/cache_delete.lua"
);
write_script!(
    /// One key deleted (with an Idempotency-Key; else `UNLINK`).
    UNLINK = "scripts/unlink.lua"
);
write_script!(
    /// Tasks appended (with an Idempotency-Key; else `RPUSH`).
    QUEUE_PUSH = "scripts/queue_push.lua"
);
write_script!(
    /// Records (or, with no arguments, looks up) the outcome of a multi-step operation.
    OUTCOME = "scripts/outcome.lua"
);
script!(
    /// Requeue expired claims, then pop.
    QUEUE_POP = "scripts/queue_requeue_expired.lua" "scripts/queue_pop.lua"
);
write_script!(
    /// Requeue expired claims (dead-letter final ones, release due scheduled tasks), then
    /// claim the head (LMOVE to processing); idempotent per receipt.
    QUEUE_CLAIM = "scripts/queue_requeue_expired.lua" "scripts/queue_claim.lua"
);
script!(
    /// Requeue expired claims, then one page of the queue (or of its dead letters).
    QUEUE_PEEK = "scripts/queue_requeue_expired.lua" "scripts/queue_peek.lua"
);
write_script!(
    /// Acknowledge a claim.
    QUEUE_ACK = "scripts/queue_end_claim.lua" "scripts/queue_ack.lua"
);
write_script!(
    /// Delete a queue with its claims, scheduled tasks and dead letters.
    QUEUE_CLEAR = "scripts/queue_clear.lua"
);
write_script!(
    /// Give a claimed task back: now, later, or to the dead letters.
    QUEUE_NACK = "scripts/queue_end_claim.lua" "scripts/queue_nack.lua"
);
write_script!(
    /// Schedule tasks for later.
    QUEUE_SCHEDULE = "scripts/queue_schedule.lua"
);
write_script!(
    /// Requeue expired claims (dead-letter final ones), then dead letters back to the queue.
    QUEUE_REPLAY = "scripts/queue_requeue_expired.lua" "scripts/queue_replay.lua"
);
write_script!(
    /// Requeue expired claims (dead-letter final ones), then delete the dead letters.
    QUEUE_DEAD_CLEAR = "scripts/queue_requeue_expired.lua" "scripts/queue_dead_clear.lua"
);

/// Whether a script may be sent again after its reply was lost: running it twice has the
/// effect of running it once and answers the same. True of the scripts that only read (or
/// only move lapsed claims back, which a second run finds done), of the claim and the
/// acquire (idempotent per receipt and per token), and of every script inside the
/// idempotency envelope (a second run replays the record the first one wrote).
pub fn safe_to_resend(sha: &[u8]) -> bool {
    static SAFE: LazyLock<Vec<String>> = LazyLock::new(|| {
        let mut safe: Vec<String> = [
            &*QUEUE_PEEK,
            &*RATE_LIMIT_STATUS,
            &*RATE_LIMIT_RESET,
            &QUEUE_CLAIM.plain,
            &LOCK_ACQUIRE.plain,
            &LOCK_EXTEND.plain,
            &SEMAPHORE_ACQUIRE.plain,
            &SEMAPHORE_EXTEND.plain,
            &*SEMAPHORE_STATUS,
        ]
        .iter()
        .map(|s| s.get_hash().to_owned())
        .collect();
        safe.extend(
            [
                &*LOCK_ACQUIRE,
                &*LOCK_RELEASE,
                &*LOCK_EXTEND,
                &*LOCK_HOLD_DONE,
                &*LOCK_PROTECTED_WRITE,
                &*SEMAPHORE_ACQUIRE,
                &*SEMAPHORE_RELEASE,
                &*SEMAPHORE_EXTEND,
                &*USER_UPDATE,
                &*USER_CREATE,
                &*CACHE_PUT,
                &*CACHE_DELETE,
                &*UNLINK,
                &*QUEUE_PUSH,
                &*OUTCOME,
                &*QUEUE_CLAIM,
                &*QUEUE_ACK,
                &*QUEUE_CLEAR,
                &*QUEUE_NACK,
                &*QUEUE_SCHEDULE,
                &*QUEUE_REPLAY,
                &*QUEUE_DEAD_CLEAR,
                &*RATE_LIMIT,
            ]
            .iter()
            .map(|s| s.idempotent.get_hash().to_owned()),
        );
        safe
    });
    SAFE.iter().any(|hash| hash.as_bytes() == sha)
}

/// The name `redis_command_duration_seconds` gives a script's `EVALSHA`: `EVALSHA
/// QUEUE_CLAIM`, and `EVALSHA QUEUE_CLAIM idempotent` for the form inside the idempotency
/// envelope; `None` for a SHA that is none of these scripts.
pub fn metric_name(sha: &[u8]) -> Option<&'static str> {
    METRIC_NAMES.get(std::str::from_utf8(sha).ok()?).copied()
}

/// [`metric_name`]'s table, by SHA.
static METRIC_NAMES: LazyLock<HashMap<String, &'static str>> = LazyLock::new(|| {
    let mut names = HashMap::new();
    macro_rules! plain {
            ($($script:ident),+) => {$(
                names.insert(
                    $script.get_hash().to_owned(),
                    concat!("EVALSHA ", stringify!($script)),
                );
            )+};
        }
    macro_rules! write {
            ($($script:ident),+) => {$(
                names.insert(
                    $script.plain.get_hash().to_owned(),
                    concat!("EVALSHA ", stringify!($script)),
                );
                names.insert(
                    $script.idempotent.get_hash().to_owned(),
                    concat!("EVALSHA ", stringify!($script), " idempotent"),
                );
            )+};
        }
    plain!(
        RATE_LIMIT_STATUS,
        RATE_LIMIT_RESET,
        SEMAPHORE_STATUS,
        QUEUE_POP,
        QUEUE_PEEK
    );
    write!(
        RATE_LIMIT,
        LOCK_ACQUIRE,
        LOCK_RELEASE,
        LOCK_EXTEND,
        LOCK_HOLD_DONE,
        LOCK_PROTECTED_WRITE,
        SEMAPHORE_ACQUIRE,
        SEMAPHORE_RELEASE,
        SEMAPHORE_EXTEND,
        USER_UPDATE,
        USER_CREATE,
        CACHE_PUT,
        CACHE_DELETE,
        UNLINK,
        QUEUE_PUSH,
        OUTCOME,
        QUEUE_CLAIM,
        QUEUE_ACK,
        QUEUE_CLEAR,
        QUEUE_NACK,
        QUEUE_SCHEDULE,
        QUEUE_REPLAY,
        QUEUE_DEAD_CLEAR
    );
    names
});

#[cfg(test)]
mod metric_name_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_script_has_a_metric_name() {
        // Every `script!`/`write_script!` declaration and the hand-written static: a script
        // added without a name in `METRIC_NAMES` would be counted as a bare `EVALSHA`.
        let source = include_str!("scripts.rs");
        let plain = source.matches("\nscript!(").count() + source.matches("\npub static ").count();
        let write = source.matches("\nwrite_script!(").count();
        assert_eq!(METRIC_NAMES.len(), plain + 2 * write, "{:?}", *METRIC_NAMES);
        assert_eq!(
            metric_name(QUEUE_CLAIM.idempotent.get_hash().as_bytes()),
            Some("EVALSHA QUEUE_CLAIM idempotent")
        );
        assert_eq!(
            metric_name(RATE_LIMIT_STATUS.get_hash().as_bytes()),
            Some("EVALSHA RATE_LIMIT_STATUS")
        );
        assert_eq!(metric_name(b"0000"), None);
    }
}
