//! The runner binary's request log, as the README's Settings section describes it: at the
//! default level a line only for a request that failed on the server's side, was slow or
//! was abandoned by its client (with its request id), and every request with
//! `RUST_LOG=info,access=debug`.

use std::{process::Command, time::Duration};

use api_tests::{binary::Runner, start_redis};

/// `curl` of `method path` against `runner`: the status and the `x-request-id` answered.
fn call(runner: &Runner, method: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-X",
            method,
            &format!("{}{path}", runner.base()),
        ])
        .output()
        .expect("run curl");
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let id = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-request-id:")
                .map(str::to_owned)
        })
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no x-request-id in {head}"));
    (status, id)
}

fn runner(redis_url: &str, rust_log: Option<&str>) -> Runner {
    let mut env = vec![
        ("REDIS_URL".to_owned(), redis_url.to_owned()),
        ("REDIS_RESPONSE_TIMEOUT_MS".to_owned(), "300".to_owned()),
    ];
    if let Some(level) = rust_log {
        env.push(("RUST_LOG".to_owned(), level.to_owned()));
    }
    Runner::start(&env, &[])
}

/// The log lines naming request `id`.
fn lines_of(runner: &Runner, id: &str) -> Vec<String> {
    runner
        .log()
        .lines()
        .filter(|l| l.contains(id))
        .map(str::to_owned)
        .collect()
}

#[test]
fn by_default_only_failed_and_slow_requests_are_logged() {
    let mut redis = start_redis(&[]);
    let runner = runner(&redis.url(), None);

    let quiet: Vec<(u16, String)> = [
        ("GET", "/health"),
        ("GET", "/cache/absent"),
        ("POST", "/cache/absent"),
    ]
    .iter()
    .map(|(method, path)| call(&runner, method, path))
    .collect();
    assert_eq!(
        quiet.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [200, 404, 405]
    );

    // Slow: the lock demo holds for 150 ms (SLOW is 100 ms).
    let (status, slow) = call(&runner, "POST", "/lock/logged?processing_time=0.15");
    assert_eq!(status, 200);
    runner.wait_for_log(&slow, Duration::from_secs(10));
    let line = lines_of(&runner, &slow).join("\n");
    assert!(
        line.contains("served") && line.contains("status=200") && line.contains("/lock/logged"),
        "{line}"
    );

    // Failed on the server's side: Redis is gone.
    redis.stop();
    let (status, failed) = call(&runner, "GET", "/cache/k");
    assert_eq!(status, 503);
    runner.wait_for_log(&failed, Duration::from_secs(10));
    let line = lines_of(&runner, &failed).join("\n");
    assert!(
        line.contains("status=503") && line.contains("method=GET") && line.contains("/cache/k"),
        "{line}"
    );

    for (_, id) in &quiet {
        assert!(
            lines_of(&runner, id).is_empty(),
            "a quick 2xx/4xx was logged at the default level:\n{}",
            runner.log()
        );
    }
}

#[test]
fn a_request_its_client_abandons_is_logged() {
    let redis = start_redis(&[]);
    let runner = runner(&redis.url(), None);
    // The client gives up after 0.3 s on a lock demo that holds for 5 s.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-m",
            "0.3",
            "-X",
            "POST",
            &format!("{}/lock/abandoned?processing_time=5", runner.base()),
        ])
        .output()
        .expect("run curl");
    assert!(!out.status.success(), "curl should have timed out");
    runner.wait_for_log("abandoned", Duration::from_secs(10));
    let log = runner.log();
    let line = log
        .lines()
        .find(|l| l.contains("abandoned"))
        .unwrap_or_default();
    assert!(line.contains("path=/lock/abandoned"), "{line}");
}

#[test]
fn with_the_access_target_at_debug_every_request_is_logged() {
    let redis = start_redis(&[]);
    let runner = runner(&redis.url(), Some("info,access=debug"));
    for (method, path, expected) in [
        ("GET", "/health", 200),
        ("GET", "/cache/absent", 404),
        ("DELETE", "/cache/absent", 404),
    ] {
        let (status, id) = call(&runner, method, path);
        assert_eq!(status, expected, "{method} {path}");
        runner.wait_for_log(&id, Duration::from_secs(10));
        let line = lines_of(&runner, &id).join("\n");
        assert!(
            line.contains("served") && line.contains(&format!("status={expected}")),
            "{line}"
        );
    }
}
