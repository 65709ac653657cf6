//! The lock demo's hold when the runner binary is stopped: SIGTERM cuts the hold short and
//! releases the lock before the server drains, instead of leaving it held for its TTL (or
//! keeping the process alive for the whole `processing_time`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::Command,
    time::{Duration, Instant},
};

mod common;

use common::{http, lock_held, private_redis, start_runner, wait_exit};

#[test]
fn sigterm_ends_a_hold_in_flight_and_releases_its_lock() {
    let redis_server = private_redis(&[]);
    let mut runner = start_runner(&[("REDIS_URL", &redis_server.url())]);
    let port = runner.port;

    let hold =
        std::thread::spawn(move || http(port, "POST", "/lock/held?processing_time=20&ttl=30", ""));
    let started = Instant::now();
    while !lock_held(redis_server.port(), "held") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the hold never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let stopped_at = Instant::now();
    Command::new("kill")
        .args(["-TERM", &runner.child.id().to_string()])
        .status()
        .unwrap();
    let reply = hold.join().unwrap();
    assert!(
        stopped_at.elapsed() < Duration::from_secs(10),
        "the hold ran on after SIGTERM"
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"released\":true"), "{reply}");
    assert!(!lock_held(redis_server.port(), "held"), "lock left behind");
    let status = wait_exit(&mut runner.child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}
