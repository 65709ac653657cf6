//! The lock demo's hold when the runner binary is stopped: SIGTERM cuts the hold short and
//! releases the lock before the server drains, instead of leaving it held for its TTL (or
//! keeping the process alive for the whole `processing_time`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

mod common;

use common::{hold_in_flight, lock_held, signal, wait_exit};

#[test]
fn sigterm_ends_a_hold_in_flight_and_releases_its_lock() {
    let mut hold = hold_in_flight("held", "processing_time=20&ttl=30");
    let stopped_at = Instant::now();
    signal(&hold.runner, "TERM");
    let reply = hold.answer.join().unwrap();
    assert!(
        stopped_at.elapsed() < Duration::from_secs(10),
        "the hold ran on after SIGTERM"
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"released\":true"), "{reply}");
    assert!(!lock_held(hold.redis.port(), "held"), "lock left behind");
    let status = wait_exit(&mut hold.runner.child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}
