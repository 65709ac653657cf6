//! The `local-runner` binary as a user runs it. These live here rather than in `tests/`
//! because only this package's tests know where cargo put the binary (`CARGO_BIN_EXE_*`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, time::Duration};

mod common;

use common::{
    BIN, Hold, free_port, hold_in_flight, http, private_redis, redis_inline, signal, start_runner,
    wait_exit,
};

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
    common::assert_start_up_error(
        ("DEFAULT_TTL", "-3"),
        &["DEFAULT_TTL", "from 1 to 31536000"],
    );
}

#[test]
fn unreachable_explicit_redis_is_a_clear_start_up_error() {
    let out = Command::new(BIN)
        .env("REDIS_URL", "redis://user:hunter2@127.0.0.1:1/0")
        .env("REDIS_CONNECT_TIMEOUT_MS", "200")
        // Every log line there is, on stdout (where logs go), and the fatal error on stderr.
        .env("RUST_LOG", "trace")
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

fn starts_its_own_redis_and_stops_on(signal_name: &str) {
    let mut runner = start_runner(&[("DEFAULT_REDIS_PORT", &free_port().to_string())]);
    let port = runner.port;
    let embedded_port = runner.log.iter().find_map(|line| {
        let rest = line.split("url=redis://127.0.0.1:").nth(1)?;
        rest.split('/').next()?.parse::<u16>().ok()
    });
    let embedded_port = embedded_port.expect("the runner did not start its own redis-server");
    assert!(
        local_runner::redis_process::answers_ping(embedded_port),
        "nothing answers PING on the embedded port {embedded_port}"
    );
    let reply = http(port, "GET", "/cache/definitely-missing", "");
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    assert!(reply.contains("application/problem+json"), "{reply}");
    // The API really runs on the embedded server: what it stores is there.
    let reply = http(port, "POST", "/cache", r#"{"key":"embedded","value":1}"#);
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    assert!(
        redis_inline(embedded_port, "EXISTS demo_api:cache:embedded") == ":1",
        "the entry is not in the embedded redis-server"
    );

    signal(&runner, signal_name);
    let status = wait_exit(&mut runner.child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", embedded_port)).is_err(),
        "embedded redis-server still running on {embedded_port}"
    );
}

#[test]
fn demo_command_tours_a_private_api_and_exits_zero() {
    let out = demo().output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Tour complete."), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}'),
        "colour codes in a log written to a pipe: {stdout}"
    );
}

/// The log is coloured for a person at a terminal (a pseudo-terminal from util-linux's
/// `script`, part of every Debian install) unless `NO_COLOR` is set, and plain text when
/// written to a pipe or a file. (A start-up that fails at once, with its debug lines.)
#[test]
fn the_log_is_coloured_only_at_a_terminal_without_no_color() {
    let cases = [
        (true, None, true),
        (true, Some("1"), false),
        (false, None, false),
    ];
    for (terminal, no_color, coloured) in cases {
        let mut command = if terminal {
            let mut script = Command::new("script");
            // -q: no "Script started" lines; -e: the runner's exit status; the typescript
            // goes nowhere (what the terminal showed comes back on stdout).
            script.args(["-qec", BIN, "/dev/null"]);
            script
        } else {
            Command::new(BIN)
        };
        command
            .env("REDIS_URL", "redis://127.0.0.1:1/0")
            .env("REDIS_CONNECT_TIMEOUT_MS", "200")
            .env("RUST_LOG", "debug")
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let out = command.output().unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        let case = format!("terminal: {terminal}, NO_COLOR={no_color:?}");
        assert_eq!(out.status.code(), Some(1), "{case}: {shown}");
        assert!(shown.contains("connecting to Redis"), "{case}: {shown}");
        assert_eq!(shown.contains('\u{1b}'), coloured, "{case}: {shown}");
    }
}

/// `local-runner demo` on a private Redis (nothing on the default port).
fn demo() -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("demo")
        .env_remove("REDIS_URL")
        .env_remove("NO_COLOR")
        .env("DEFAULT_REDIS_PORT", free_port().to_string());
    command
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let Hold {
        redis: _redis,
        mut runner,
        answer,
    } = hold_in_flight("drain", "processing_time=2");
    let port = runner.port;
    signal(&runner, "TERM");
    // Draining: the listener closes (new connections refused) while the request runs on.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "new connections still accepted 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let answer = answer.join().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the in-flight request was cut: {answer}"
    );
    assert!(answer.contains("\"released\":true"), "{answer}");
    let status = wait_exit(&mut runner.child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[test]
fn an_evicting_redis_is_warned_about_at_start() {
    let redis = private_redis(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let runner = start_runner(&[("REDIS_URL", &redis.url())]);
    assert!(
        runner
            .log
            .iter()
            .any(|l| l.contains("WARN") && l.contains("allkeys-lru") && l.contains("noeviction")),
        "{:?}",
        runner.log
    );
}

#[test]
fn binding_beyond_loopback_is_warned_about() {
    let redis = private_redis(&[]);
    let runner = start_runner(&[("REDIS_URL", &redis.url()), ("BIND", "0.0.0.0")]);
    let log = &runner.log;
    assert!(
        log.iter()
            .any(|l| l.contains("WARN") && l.contains("beyond loopback")),
        "{log:?}"
    );
}

/// The runner serves on one thread per CPU (`shards`), each with a Redis connection of its
/// own, and a new connection goes to the thread with the fewest: every thread answers.
#[test]
fn serves_on_one_thread_per_cpu_each_with_its_own_redis_connection() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let redis = private_redis(&[]);
    let runner = start_runner(&[("REDIS_URL", &redis.url())]);
    let listening = runner.log.last().unwrap();
    assert!(
        listening.contains(&format!("threads={cpus}")),
        "{listening}"
    );
    if cpus < 2 {
        eprintln!("skipped the per-thread checks: this machine has one CPU, so one thread");
        return;
    }
    // Every thread connected at start (and this INFO is one more client).
    let clients = redis_info(redis.port(), "connected_clients");
    assert!(
        clients > cpus as u64,
        "{clients} clients for {cpus} threads"
    );
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", runner.child.id()))
        .unwrap()
        .map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap())
        .map(|name| name.trim().to_owned())
        .collect();
    for i in 1..cpus {
        assert!(threads.contains(&format!("server-{i}")), "{threads:?}");
    }
    // Requests on as many connections as threads, at once: all answered.
    let answers: Vec<String> = (0..cpus * 2)
        .map(|i| {
            let port = runner.port;
            std::thread::spawn(move || http(port, "GET", &format!("/cache/k{i}"), ""))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for answer in answers {
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    }
}

/// One field of `INFO` from the Redis on `port`, as a number.
fn redis_info(port: u16, field: &str) -> u64 {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"INFO clients\r\n").unwrap();
    let reader = BufReader::new(s);
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(value) = line.strip_prefix(&format!("{field}:")) {
            return value.trim().parse().unwrap();
        }
    }
    panic!("no {field} in INFO");
}

/// A stop is not held up by a client that opened an HTTP/2 connection and went quiet (it
/// never reads, never closes): the connection is asked to close, then dropped, and the
/// process exits.
#[test]
fn a_stalled_http2_client_does_not_hold_up_the_stop() {
    use std::io::Write;
    let redis = private_redis(&[]);
    let mut runner = start_runner(&[
        ("REDIS_URL", &redis.url()),
        ("HEADER_READ_TIMEOUT_MS", "500"),
    ]);
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", runner.port)).unwrap();
    // The client preface, then an empty SETTINGS frame; nothing more, and nothing read.
    stalled
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    signal(&runner, "TERM");
    let status = wait_exit(&mut runner.child, Duration::from_secs(20));
    assert!(status.success(), "{status}");
    drop(stalled);
}
