//! Slow and abusive clients against the runner binary: half-sent request heads and idle
//! keep-alive connections are closed after `HEADER_READ_TIMEOUT_MS` while `/health` keeps
//! answering; past `MAX_CLIENT_CONNECTIONS` new connections wait until one closes; past
//! `MAX_IN_FLIGHT_REQUESTS` requests get a 503 problem with `Retry-After`, and a flood of
//! large bodies then does not grow the runner's memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use local_runner::redis_process::RedisProcess;

mod common;

use common::{Runner, lock_held, private_redis, start_runner};

/// The runner against `redis`, with `env`, logging only its own `info` lines.
fn runner(redis: &RedisProcess, env: &[(&str, &str)]) -> Runner {
    let url = redis.url();
    let mut all = vec![
        ("REDIS_URL", url.as_str()),
        ("RUST_LOG", "warn,local_runner=info"),
    ];
    all.extend_from_slice(env);
    start_runner(&all)
}

fn request(port: u16, head: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{head}Host: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until the server closes `s` (EOF or reset); returns how long that took, or `None`
/// when it was still open after `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            // An answer (e.g. 408) before the close is fine: keep reading until it closes.
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// 200 connections each send half a request head and stop; one more sits idle after a
/// complete request. All are closed within the header-read timeout (1 s here) plus a
/// margin for a loaded machine, and `/health` answers all along.
#[test]
fn half_sent_heads_and_idle_keep_alive_connections_are_closed() {
    let redis = private_redis(&[]);
    let runner = runner(&redis, &[("HEADER_READ_TIMEOUT_MS", "1000")]);
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", runner.port)).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let mut idle = TcpStream::connect(("127.0.0.1", runner.port)).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    let health = request(runner.port, "GET /health HTTP/1.1\r\n", b"");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // The bound is the timeout (1 s); the margin only absorbs a busy machine.
    let limit = Duration::from_secs(10);
    for (i, s) in slow.iter_mut().enumerate() {
        // Keep trickling: bytes arriving do not extend the deadline.
        let _ = s.write_all(b"a");
        assert!(
            closed_within(s, limit).is_some(),
            "slow connection {i} still open {limit:?} after a 1 s header-read timeout"
        );
    }
    assert!(
        closed_within(&mut idle, limit).is_some(),
        "an idle keep-alive connection still open {limit:?} after a 1 s timeout"
    );
    let health = request(runner.port, "GET /health HTTP/1.1\r\n", b"");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

/// At `MAX_CLIENT_CONNECTIONS` a new connection is not served until one of the others
/// closes; then it is.
#[test]
fn past_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let redis = private_redis(&[]);
    let runner = runner(
        &redis,
        &[
            ("MAX_CLIENT_CONNECTIONS", "4"),
            ("HEADER_READ_TIMEOUT_MS", "60000"),
        ],
    );
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", runner.port)).unwrap())
        .collect();
    // A fifth connection: the kernel completes the handshake, the runner does not serve it.
    let mut waiting = TcpStream::connect(("127.0.0.1", runner.port)).unwrap();
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 12];
    match waiting.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("a fifth connection was served past a cap of 4: {other:?} {buf:?}"),
    }
    // One of the four goes: the waiting one is accepted and answered.
    drop(held.pop());
    waiting
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = String::new();
    waiting.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// At `MAX_IN_FLIGHT_REQUESTS` (2 here, both held by slow lock demos) further requests get
/// a 503 problem with `Retry-After` at once, without their bodies being read: 100 clients
/// sending 1 MiB each do not grow the runner's peak memory by anything like 100 MiB.
#[test]
fn past_the_in_flight_cap_requests_get_503_and_memory_stays_bounded() {
    let redis = private_redis(&[]);
    let runner = runner(
        &redis,
        &[
            ("MAX_IN_FLIGHT_REQUESTS", "2"),
            ("CORS_ALLOW_ORIGINS", "https://app.example"),
        ],
    );
    let port = runner.port;
    let holders: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|r| {
            std::thread::spawn(move || {
                request(
                    port,
                    &format!("POST /lock/{r}?processing_time=3 HTTP/1.1\r\n"),
                    b"",
                )
            })
        })
        .collect();
    // Both hold their slot once both locks exist in Redis.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(lock_held(redis.port(), "a") && lock_held(redis.port(), "b")) {
        assert!(
            Instant::now() < deadline,
            "the two lock demos never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The cap is the process's, whichever server thread a connection lands on: each of
    // these (a new connection each, spread over the threads) finds it full.
    // Its 503s carry the CORS headers, so a browser's page can read them (and back off).
    for _ in 0..4 {
        let answer = request(
            port,
            "GET /health HTTP/1.1\r\nOrigin: https://app.example\r\n",
            b"",
        );
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains("access-control-allow-origin: https://app.example"),
            "{answer}"
        );
        assert!(lower.contains("access-control-expose-headers"), "{answer}");
    }
    // A preflight is answered without a slot.
    let preflight = request(
        port,
        "OPTIONS /cache HTTP/1.1\r\nOrigin: https://app.example\r\n\
         Access-Control-Request-Method: POST\r\n",
        b"",
    );
    assert!(preflight.starts_with("HTTP/1.1 200"), "{preflight}");
    let peak_before = peak_rss_kib(&runner);
    let body = vec![b'x'; 1 << 20];
    let flood: Vec<_> = (0..100)
        .map(|i| {
            let body = body.clone();
            std::thread::spawn(move || {
                request(
                    port,
                    &format!(
                        "POST /cache HTTP/1.1\r\nContent-Type: application/json\r\nX-N: {i}\r\n"
                    ),
                    &body,
                )
            })
        })
        .collect();
    let answers: Vec<String> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    let peak_after = peak_rss_kib(&runner);
    let grown_mib = (peak_after.saturating_sub(peak_before)) / 1024;
    assert!(
        grown_mib < 40,
        "peak memory grew by {grown_mib} MiB under 100 refused 1 MiB bodies"
    );
    let mut shed = 0;
    for answer in &answers {
        if answer.starts_with("HTTP/1.1 503") {
            let lower = answer.to_ascii_lowercase();
            assert!(lower.contains("retry-after: 1"), "{answer}");
            assert!(lower.contains("application/problem+json"), "{answer}");
            assert!(answer.contains("/problems/overloaded"), "{answer}");
            shed += 1;
        }
    }
    // The holders last 3 s; a request that came after they ended may have run.
    assert!(
        shed >= 50,
        "only {shed} of 100 requests were refused past the cap"
    );
    for holder in holders {
        let answer = holder.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let after = request(port, "GET /health HTTP/1.1\r\n", b"");
    assert!(after.starts_with("HTTP/1.1 200"), "{after}");
}

/// Connections that never get as far as a request head — nothing sent, half the HTTP/2
/// preface, an HTTP/2 connection with no stream — are closed too (after at most twice the
/// header-read timeout: asked to close, then dropped), so they cannot hold the connection cap
/// for good: at a cap of 3 held by three of them, a fourth client gets its answer.
#[test]
fn connections_that_never_send_a_request_are_closed_and_free_their_slot() {
    let redis = private_redis(&[]);
    let runner = runner(
        &redis,
        &[
            ("HEADER_READ_TIMEOUT_MS", "500"),
            ("MAX_CLIENT_CONNECTIONS", "3"),
        ],
    );
    let connect = || TcpStream::connect(("127.0.0.1", runner.port)).unwrap();
    let silent = connect();
    let mut half_preface = connect();
    half_preface.write_all(b"PRI * HT").unwrap();
    let mut idle_h2 = connect();
    // The client preface, then an empty SETTINGS frame (length 0, type 4, no flags, stream 0).
    idle_h2
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    // The fourth waits in the listen queue until one of the three is closed.
    let waiting = std::thread::spawn({
        let port = runner.port;
        move || request(port, "GET /health HTTP/1.1\r\n", b"")
    });
    for (what, mut s) in [
        ("silent", silent),
        ("half preface", half_preface),
        ("idle HTTP/2", idle_h2),
    ] {
        let closed = closed_within(&mut s, Duration::from_secs(20));
        assert!(closed.is_some(), "the {what} connection was never closed");
    }
    let answer = waiting.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Whether the lock on `resource` exists, asked of Redis in plain RESP.
/// The runner's peak resident memory (`VmHWM`), KiB.
fn peak_rss_kib(runner: &Runner) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", runner.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
