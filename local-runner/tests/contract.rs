//! What the README says the `local-runner` binary prints and answers, checked against the
//! binary: the wrong-password message, `BIND` with a host name, and hyper's own refusals
//! (a 100 KB URL) answered with problem+json.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use local_runner::redis_process::RedisProcess;

mod common;

use common::{BIN, Runner, http, private_redis, raw, start_runner};
const README: &str = include_str!("../../README.md");

/// Starts the runner against `redis` with `env`.
fn start(redis: &RedisProcess, env: &[(&str, &str)]) -> Runner {
    let url = redis.url();
    let mut all = vec![("REDIS_URL", url.as_str())];
    all.extend_from_slice(env);
    start_runner(&all)
}

#[test]
fn a_wrong_password_prints_what_the_readme_shows() {
    let redis = private_redis(&["--requirepass", "right-pass"]);
    let url = format!("redis://user:wrong-pass@127.0.0.1:{}/0", redis.port());
    let out = Command::new(BIN).env("REDIS_URL", &url).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let expected = format!(
        "local-runner: cannot reach Redis at redis://user:***@127.0.0.1:{}/0: Redis refused the \
         credentials - AuthenticationFailed: WRONGPASS invalid username-password pair or user \
         is disabled.\n",
        redis.port()
    );
    assert_eq!(err, expected, "Redis's own WRONGPASS text is not passed on");
    // The README shows that very line (for the default port).
    let shown = expected.replace(&format!(":{}/", redis.port()), ":6379/");
    assert!(
        README.contains(shown.trim_end()),
        "the README does not show what the runner prints:\n{shown}"
    );
}

#[test]
fn bind_takes_a_host_name() {
    let redis = private_redis(&[]);
    let runner = start(&redis, &[("BIND", "localhost")]);
    let port = runner.port;
    let answer = http(port, "GET", "/health", "");
    drop(runner);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn an_unresolvable_bind_is_a_clear_start_up_error() {
    common::assert_start_up_error(
        ("BIND", "no-such-host.invalid"),
        &["BIND=\"no-such-host.invalid\"", "host name that resolves"],
    );
}

#[test]
fn requests_hyper_refuses_get_problem_bodies() {
    let redis = private_redis(&[]);
    let runner = start(&redis, &[]);
    let port = runner.port;
    let long_url = format!(
        "GET /cache/{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let huge_head = format!(
        "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let cases: [(&[u8], &str, &str); 3] = [
        (long_url.as_bytes(), "414", "/problems/uri-too-long"),
        (
            huge_head.as_bytes(),
            "431",
            "/problems/request-header-fields-too-large",
        ),
        (
            b"GET /health HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n",
            "400",
            "/problems/bad-request",
        ),
    ];
    for (request, status, kind) in cases {
        let answer = raw(port, request);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {answer}"
        );
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["type"], kind, "{body}");
        assert_eq!(problem["status"].to_string(), status, "{body}");
    }
    // The runner is fine afterwards.
    let answer = raw(
        port,
        b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    drop(runner);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

const KEY: &str = "demo-key-0123456789abcdef";

/// `local-runner demo` with `args` and `env`; its exit status and output.
fn demo(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(BIN);
    command
        .arg("demo")
        .args(args)
        .env_remove("API_KEY")
        .env_remove("REDIS_URL");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_demo_tours_an_api_that_wants_a_key() {
    let redis = private_redis(&[]);
    let runner = start(&redis, &[("API_KEY", KEY)]);
    let port = runner.port;
    let url = format!("http://127.0.0.1:{port}");
    let by_flag = demo(&["--url", &url, "--api-key", KEY], &[]);
    let by_env = demo(&["--url", &url], &[("API_KEY", KEY)]);
    let without = demo(&["--url", &url], &[]);
    drop(runner);
    for (ok, out) in [by_flag, by_env] {
        assert!(ok && out.contains("Tour complete."), "{out}");
    }
    assert!(
        !without.0,
        "a tour without the key went through: {}",
        without.1
    );
    assert!(without.1.contains("401"), "{}", without.1);
}

#[test]
fn the_demo_without_url_uses_a_redis_of_its_own() {
    // A Redis the user named: the tour must leave it alone (it writes keys and resets).
    let users = private_redis(&[]);
    let client = redis::Client::open(users.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    redis::cmd("SET")
        .arg("demo_api:cache:precious")
        .arg("1")
        .query::<()>(&mut conn)
        .unwrap();
    let (ok, out) = demo(
        &["--api-key", KEY],
        &[
            ("REDIS_URL", users.url().as_str()),
            ("DEFAULT_REDIS_PORT", &users.port().to_string()),
        ],
    );
    assert!(ok && out.contains("Tour complete."), "{out}");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    assert_eq!(
        keys,
        ["demo_api:cache:precious"],
        "the tour wrote into the user's Redis"
    );
}
