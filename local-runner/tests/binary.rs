//! The `local-runner` binary as a user runs it. These live here rather than in `tests/`
//! because only this package's tests know where cargo put the binary (`CARGO_BIN_EXE_*`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Command, Stdio},
    time::Duration,
};

mod common;

use common::BIN;

#[test]
fn help_lists_every_setting() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // The shared settings come from one list; the runner's own three are its own flags.
    let runner_only = ["PORT", "BIND", "DEFAULT_REDIS_PORT"];
    let shared = shared::config::SETTINGS.iter().map(|s| s.variable);
    for setting in shared.chain(runner_only) {
        assert!(
            help.contains(&format!("[env: {setting}")),
            "--help lacks {setting}:\n{help}"
        );
    }
}

#[test]
fn bad_setting_stops_start_up_naming_the_variable() {
    let err = common::start_up_error(("DEFAULT_TTL", "-3"));
    assert!(
        err.contains("DEFAULT_TTL") && err.contains("from 1 to 31536000"),
        "{err}"
    );
}

#[test]
fn unreachable_explicit_redis_is_a_clear_start_up_error() {
    let out = Command::new(BIN)
        .env("REDIS_URL", "redis://user:hunter2@127.0.0.1:1/0")
        .env("REDIS_CONNECT_TIMEOUT_MS", "200")
        // Every log line there is, on stdout (where logs go), and the fatal error on stderr.
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let log = String::from_utf8(out.stdout).unwrap();
    assert!(err.contains("cannot reach Redis"), "{err}");
    // Both streams name the URL, redacted: the check below looks where the URL is written.
    assert!(err.contains("redis://user:***@127.0.0.1:1"), "{err}");
    assert!(
        log.contains("user:***@"),
        "the log never names the URL: {log}"
    );
    assert!(!err.contains("hunter2"), "password leaked on stderr: {err}");
    assert!(
        !log.contains("hunter2"),
        "password leaked in the log: {log}"
    );
}

/// With no REDIS_URL and nothing answering at the default address (`DEFAULT_REDIS_PORT`,
/// pointed here at a port nobody listens on, so a Redis on 6379 cannot hide the case), the
/// runner starts a private redis-server and serves on it; the signal stops it cleanly, the
/// private redis-server with it. SIGTERM (what systemd and Docker send) and SIGINT (Ctrl-C).
#[test]
fn starts_without_configuration_and_stops_on_sigterm() {
    starts_its_own_redis_and_stops_on("TERM");
}

#[test]
fn starts_without_configuration_and_stops_on_sigint() {
    starts_its_own_redis_and_stops_on("INT");
}

fn starts_its_own_redis_and_stops_on(signal: &str) {
    let port = free_port();
    let mut child = Command::new(BIN)
        .env_remove("REDIS_URL")
        .env("DEFAULT_REDIS_PORT", free_port().to_string())
        .env("PORT", port.to_string())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut embedded_port = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("url=redis://127.0.0.1:").nth(1) {
            embedded_port = rest.split('/').next().and_then(|p| p.parse::<u16>().ok());
        }
        if line.contains("listening") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let embedded_port = embedded_port.expect("the runner did not start its own redis-server");
    assert!(
        local_runner::redis_process::answers_ping(embedded_port),
        "nothing answers PING on the embedded port {embedded_port}"
    );
    let reply = http_get(port, "/cache/definitely-missing");
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    assert!(reply.contains("application/problem+json"), "{reply}");
    // The API really runs on the embedded server: what it stores is there.
    let reply = http_post(port, "/cache", r#"{"key":"embedded","value":1}"#);
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    assert!(
        redis_command(embedded_port, "EXISTS", "demo_api:cache:embedded").starts_with(":1"),
        "the entry is not in the embedded redis-server"
    );

    Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", embedded_port)).is_err(),
        "embedded redis-server still running on {embedded_port}"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_post(port: u16, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// One Redis command with one argument, in plain RESP; the raw reply.
fn redis_command(port: u16, command: &str, arg: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "*2\r\n${}\r\n{command}\r\n${}\r\n{arg}\r\n",
        command.len(),
        arg.len()
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("runner did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn demo_command_tours_a_private_api_and_exits_zero() {
    let out = Command::new(BIN)
        .arg("demo")
        .env_remove("REDIS_URL")
        .env("DEFAULT_REDIS_PORT", free_port().to_string())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Tour complete."), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}'),
        "NO_COLOR must strip the colours"
    );
}

/// Starts the runner on a free port against `redis_url`; returns it and its port once it
/// listens. Its log goes to the returned lines.
fn start_runner(redis_url: &str) -> (std::process::Child, u16, Vec<String>) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .env("REDIS_URL", redis_url)
        .env("PORT", port.to_string())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let listening = line.contains("listening");
        seen.push(line);
        if listening {
            break;
        }
    }
    // Keep draining the pipe so the runner never blocks on a full stdout.
    std::thread::spawn(move || for _ in lines {});
    (child, port, seen)
}

fn private_redis(extra: &[&str]) -> local_runner::redis_process::RedisProcess {
    local_runner::redis_process::RedisProcess::start(
        local_runner::redis_process::redis_server_bin().expect("redis-server"),
        extra,
    )
    .unwrap()
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let redis = private_redis(&[]);
    let (mut child, port, _) = start_runner(&redis.url());
    let in_flight = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /lock/drain?processing_time=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    });
    // In flight once its lock exists.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !redis_command(redis.port(), "EXISTS", "demo_api:lock:{drain}").starts_with(":1") {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    // Draining: the listener closes (new connections refused) while the request runs on.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "new connections still accepted 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let answer = in_flight.join().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the in-flight request was cut: {answer}"
    );
    assert!(answer.contains("\"released\":true"), "{answer}");
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[test]
fn an_evicting_redis_is_warned_about_at_start() {
    let redis = private_redis(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let (mut child, _, log) = start_runner(&redis.url());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log.iter()
            .any(|l| l.contains("WARN") && l.contains("allkeys-lru") && l.contains("noeviction")),
        "{log:?}"
    );
}

#[test]
fn binding_beyond_loopback_is_warned_about() {
    let redis = private_redis(&[]);
    let port = free_port();
    let mut child = Command::new(BIN)
        .env("REDIS_URL", redis.url())
        .env("BIND", "0.0.0.0")
        .env("PORT", port.to_string())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut log = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let listening = line.contains("Redis Cache API listening");
        log.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log.iter()
            .any(|l| l.contains("WARN") && l.contains("beyond loopback")),
        "{log:?}"
    );
}
