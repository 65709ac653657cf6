//! Helpers shared by the tests of the `local-runner` binary: running it, a private Redis,
//! free ports. Each test file uses some of them.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use local_runner::redis_process::{RedisProcess, redis_server_bin};

/// The binary cargo built for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_local-runner");

/// Runs the binary with `setting` (and a Redis nobody answers at) and asserts that it stops
/// at start-up with status 2, saying each of `said` on stderr.
pub(crate) fn assert_start_up_error(setting: (&str, &str), said: &[&str]) {
    let out = Command::new(BIN)
        .env(setting.0, setting.1)
        .env("REDIS_URL", "redis://127.0.0.1:1/0")
        .output()
        .expect("run local-runner");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for words in said {
        assert!(err.contains(words), "{words:?} not in: {err}");
    }
}

/// A port nobody listens on (until someone takes it).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `redis-server` of the test's own, with `extra` arguments.
pub(crate) fn private_redis(extra: &[&str]) -> RedisProcess {
    RedisProcess::start(redis_server_bin().expect("redis-server"), extra).expect("redis-server")
}

/// A runner child, killed on drop.
pub(crate) struct Runner {
    pub(crate) child: Child,
    pub(crate) port: u16,
    /// Its log (stdout) up to the line saying it listens.
    pub(crate) log: Vec<String>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the runner on a free port with `env` (over `RUST_LOG=info` and no
/// `REDIS_URL`) and returns once it logs that it listens; its later log is drained so that
/// it never blocks on a full pipe.
pub(crate) fn start_runner(env: &[(&str, &str)]) -> Runner {
    let port = free_port();
    let mut child = Command::new(BIN)
        .env_remove("REDIS_URL")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run local-runner");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("log line");
        let listening = line.contains("Redis Cache API listening");
        log.push(line);
        if listening {
            std::thread::spawn(move || lines.for_each(drop));
            return Runner { child, port, log };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the runner stopped before listening: {log:?}");
}

/// Waits up to `limit` for `child` to exit (killing it and failing past that).
pub(crate) fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the runner did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `request` raw to 127.0.0.1:`port` and reads the answer until the server closes
/// (10 s at most).
pub(crate) fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // The server may answer and close before it has read it all.
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(10) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// `method path` with `body` (JSON) on a connection of its own; the whole answer.
pub(crate) fn http(port: u16, method: &str, path: &str, body: &str) -> String {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw(port, request.as_bytes())
}

/// Sends one inline Redis command to 127.0.0.1:`port`; the first reply line (`:1`).
pub(crate) fn redis_inline(port: u16, command: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to Redis");
    write!(s, "{command}\r\n").expect("send to Redis");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("Redis reply");
    line.trim_end().to_owned()
}

/// Whether the lock demo's lock on `resource` is held, in the Redis on `port`.
pub(crate) fn lock_held(port: u16, resource: &str) -> bool {
    redis_inline(port, &format!("EXISTS demo_api:lock:{{{resource}}}")) == ":1"
}

/// Sends `signal` (`TERM`, `INT`) to the runner.
pub(crate) fn signal(runner: &Runner, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &runner.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{signal} failed");
}

/// A lock demo hold in flight on a runner of its own, with its Redis.
pub(crate) struct Hold {
    pub(crate) redis: RedisProcess,
    pub(crate) runner: Runner,
    /// The hold's answer, once it comes.
    pub(crate) answer: std::thread::JoinHandle<String>,
}

/// Starts `POST /lock/{resource}?{query}` and returns once its lock is taken.
pub(crate) fn hold_in_flight(resource: &str, query: &str) -> Hold {
    let redis = private_redis(&[]);
    let runner = start_runner(&[("REDIS_URL", &redis.url())]);
    let (port, path) = (runner.port, format!("/lock/{resource}?{query}"));
    let answer = std::thread::spawn(move || http(port, "POST", &path, ""));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lock_held(redis.port(), resource) {
        assert!(Instant::now() < deadline, "the hold never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    Hold {
        redis,
        runner,
        answer,
    }
}
