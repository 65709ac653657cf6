//! The lock demo's hold when the runner binary is stopped: SIGTERM cuts the hold short and
//! releases the lock before the server drains, instead of leaving it held for its TTL (or
//! keeping the process alive for the whole `processing_time`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::Command,
    time::{Duration, Instant},
};

mod common;

use common::{private_redis, start_runner, wait_exit};

/// Sends one raw Redis command (inline) and returns the first reply line.
fn redis(port: u16, command: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "{command}\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

#[test]
fn sigterm_ends_a_hold_in_flight_and_releases_its_lock() {
    let redis_server = private_redis(&[]);
    let mut runner = start_runner(&[("REDIS_URL", &redis_server.url())]);
    let port = runner.port;

    let hold = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /lock/held?processing_time=20&ttl=30 HTTP/1.1\r\nHost: localhost\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    });
    let lock = "demo_api:lock:{held}";
    let started = Instant::now();
    while redis(redis_server.port(), &format!("EXISTS {lock}")) != ":1" {
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
    assert_eq!(
        redis(redis_server.port(), &format!("EXISTS {lock}")),
        ":0",
        "lock left behind"
    );
    let status = wait_exit(&mut runner.child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}
