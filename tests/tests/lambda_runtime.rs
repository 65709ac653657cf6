//! End to end through the real Lambda runtime loop: the cache function's bootstrap, as the
//! Deploy build makes it, runs as a process against an emulated Runtime API
//! (`api_tests::runtime_api`), is invoked with API Gateway events, and answers through the
//! runtime, as on AWS. Ignored by a plain `cargo test` (the build compiles seven release
//! binaries): scripts/test.sh runs it in its Lambda step, after `lambda_build`.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use api_tests::{
    TestApp,
    lambda::{Call, Source, event},
    runtime_api::RuntimeApi,
};
use serde_json::{Value, json};

/// A function's binary as it ships: the README's Deploy build (scripts/lambda-build.sh,
/// cargo-lambda, the `lambda-release` profile) run once per test process (a no-op when the
/// Lambda step of scripts/test.sh has just built it), and its target/lambda/<function>/bootstrap.
fn release_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| api_tests::binary::lambda_build("the functions as they ship"));
    api_tests::binary::bootstrap(name)
}

/// The function process, killed on drop; its stdout lines are collected.
struct Function {
    child: Child,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Function {
    fn start(binary: &PathBuf, runtime: &RuntimeApi, redis_url: &str) -> Self {
        let mut child = Command::new(binary)
            .env("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "cache")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/cache")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("REDIS_URL", redis_url)
            .env("REDIS_RESPONSE_TIMEOUT_MS", "500")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the function binary");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = logs.clone();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, logs }
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Lambda build: scripts/test.sh runs it in its Lambda step"]
async fn cache_function_binary_answers_through_the_runtime_api() {
    let binary = tokio::task::spawn_blocking(|| release_binary("cache"))
        .await
        .unwrap();
    let size = std::fs::metadata(&binary).unwrap().len();
    let mut app = TestApp::new().await;
    let runtime = RuntimeApi::start().await;
    let limit = Duration::from_secs(10);

    // Cold start: process start to the first response, Redis connection included.
    let started = Instant::now();
    let function = Function::start(&binary, &runtime, &app.redis.url());
    let body = json!({"key": "hello", "value": "world", "ttl": 300}).to_string();
    let post = Call {
        method: "POST",
        path: "/cache",
        body: Some(&body),
        ..Call::default()
    };
    let r = runtime
        .invoke(event(Source::HttpV2, &post), limit)
        .await
        .expect("a response");
    let cold_start = started.elapsed();
    assert_eq!(r["statusCode"], 201, "{r}");
    let answer: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["ttl_seconds"], 300);
    eprintln!(
        "cache function: release binary {:.2} MB, cold start to first response {:.1} ms",
        size as f64 / 1e6,
        cold_start.as_secs_f64() * 1e3
    );

    // Warm invocations, through each front door.
    let get = Call {
        method: "GET",
        path: "/cache/hello",
        ..Call::default()
    };
    for source in api_tests::lambda::SOURCES {
        let r = runtime
            .invoke(event(source, &get), limit)
            .await
            .expect("a response");
        assert_eq!(r["statusCode"], 200, "{source:?}: {r}");
        let answer: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(answer["value"], "world");
    }
    let bad = Call {
        method: "POST",
        path: "/cache",
        body: Some("{oops"),
        ..Call::default()
    };
    let r = runtime
        .invoke(event(Source::HttpV2, &bad), limit)
        .await
        .expect("a response, not an error");
    assert_eq!(r["statusCode"], 400, "{r}");

    // Redis gone: still an HTTP answer (503), never an invocation error; logged as JSON
    // lines carrying the invocation's request id.
    app.redis.stop();
    let r = runtime
        .invoke(event(Source::HttpV2, &get), limit)
        .await
        .expect("a response, not an error");
    assert_eq!(r["statusCode"], 503, "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let found = function
            .logs
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("redis unavailable"))
            .cloned();
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no log line for the 503: {:?}",
            function.logs.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let log: Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
    assert_eq!(log["level"], "WARN", "{log}");
    assert!(
        line.contains("req-"),
        "the log line lacks the request id: {line}"
    );

    // Back again: the same process recovers without a restart.
    app.redis.restart().unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        let r = runtime
            .invoke(event(Source::HttpV2, &post), limit)
            .await
            .expect("a response");
        if r["statusCode"] == 201 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the function did not recover after Redis came back"
    );
}

/// Checks `line` against the embedded metric format specification
/// (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
/// an `_aws` member with a millisecond `Timestamp` and `CloudWatchMetrics` directives, each
/// with a `Namespace`, `Dimensions` (arrays of at most 30 names, each a string member of the
/// root) and `Metrics` (at most 100, each `Name` a root member holding a number or an array
/// of at most 100 numbers, `Unit` one CloudWatch knows). Returns the parsed line.
fn parse_emf(line: &str) -> Value {
    const UNITS: &[&str] = &[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Count",
        "Percent",
        "None",
    ];
    let root: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let aws = &root["_aws"];
    let timestamp = aws["Timestamp"].as_u64().expect("a Timestamp in ms");
    assert!(
        timestamp > 1_600_000_000_000,
        "not epoch milliseconds: {line}"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert!(!directives.is_empty(), "{line}");
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("a Namespace");
        assert!(!namespace.is_empty(), "{line}");
        for set in directive["Dimensions"].as_array().expect("Dimensions") {
            let set = set.as_array().expect("a dimension set");
            assert!(set.len() <= 30, "{line}");
            for name in set {
                let name = name.as_str().expect("a dimension name");
                assert!(
                    root[name].is_string(),
                    "dimension {name} is no string member: {line}"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics");
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{line}");
        for metric in metrics {
            let name = metric["Name"].as_str().expect("a metric Name");
            if let Some(unit) = metric.get("Unit") {
                assert!(UNITS.contains(&unit.as_str().unwrap()), "{line}");
            }
            match &root[name] {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(!values.is_empty() && values.len() <= 100, "{line}");
                    assert!(values.iter().all(Value::is_number), "{line}");
                }
                other => panic!("metric {name} has no numeric member ({other}): {line}"),
            }
        }
    }
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Lambda build: scripts/test.sh runs it in its Lambda step"]
async fn each_invocation_writes_emf_lines() {
    let binary = tokio::task::spawn_blocking(|| release_binary("cache"))
        .await
        .unwrap();
    let app = TestApp::new().await;
    let runtime = RuntimeApi::start().await;
    let limit = Duration::from_secs(10);
    let function = Function::start(&binary, &runtime, &app.redis.url());
    let body = json!({"key": "emf", "value": "v", "ttl": 300}).to_string();
    let post = Call {
        method: "POST",
        path: "/cache",
        body: Some(&body),
        ..Call::default()
    };
    let get = Call {
        method: "GET",
        path: "/cache/emf",
        ..Call::default()
    };
    for call in [&post, &get] {
        let r = runtime
            .invoke(event(Source::HttpV2, call), limit)
            .await
            .expect("a response");
        assert!(r["statusCode"] == 201 || r["statusCode"] == 200, "{r}");
    }

    // The lines are written after each answer: wait for the GET's.
    let emf = |logs: &[String]| -> Vec<Value> {
        logs.iter()
            .filter(|l| l.contains("\"_aws\""))
            .map(|l| parse_emf(l))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let lines = emf(&function.logs.lock().unwrap());
        if lines.iter().any(|l| l["route"] == "/cache/{key}") {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "no EMF line for GET /cache/{{key}}: {:?}",
            function.logs.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("http_server_request_duration_seconds").is_some())
        .collect();
    assert_eq!(
        requests.len(),
        2,
        "one request line per invocation: {lines:?}"
    );
    for (line, route, status) in [
        (requests[0], "/cache", 201),
        (requests[1], "/cache/{key}", 200),
    ] {
        assert_eq!(line["function"], "cache", "{line}");
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["http_server_unavailable_responses"], 0, "{line}");
        let dimensions = &line["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
        assert_eq!(dimensions, &json!([["function", "route"]]), "{line}");
    }
    let commands: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("redis_command_duration_seconds").is_some())
        .collect();
    assert!(
        commands
            .iter()
            .any(|l| l["route"] == "/cache/{key}" && l["command"].is_string()),
        "no Redis command line for the GET: {lines:?}"
    );
}
