//! A Lambda function's figures: each invocation's share written to stdout as CloudWatch
//! embedded metric format (EMF) lines, which CloudWatch Logs turns into metrics with no
//! agent or API call ("a JSON specification used to instruct CloudWatch Logs to
//! automatically extract metric values embedded in structured log events",
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
//!
//! [`scoped`] runs one invocation with a task-local collector that the HTTP layer and the
//! Redis handle add to, then writes:
//! - one line with dimensions `function` and `route`: the request's duration, whether it was
//!   a 503, and the Redis errors by kind (`method`, `status` and `version` ride along as
//!   plain members, searchable in Logs Insights, not dimensions);
//! - one line per Redis command the invocation sent, with dimensions `function`, `route`
//!   and `command`: its durations, as an array (the spec's "array of numerical values").
//!
//! Task-local, not process-wide: it holds even where one process serves several
//! invocations at once.

use std::{cell::RefCell, future::Future, io::Write as _, time::Duration};

use serde_json::{Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "RedisCacheApi";

/// Most values in one metric's array ("the array MUST NOT contain more than 100 values",
/// spec above); more go in further lines.
const MAX_VALUES: usize = 100;

/// What one invocation did.
#[derive(Debug, Default)]
struct Invocation {
    request: Option<Request>,
    commands: Vec<(&'static str, Vec<f64>)>,
    errors: [u64; super::ERROR_KINDS.len()],
}

#[derive(Debug)]
struct Request {
    route: &'static str,
    method: &'static str,
    status: u16,
    seconds: f64,
}

tokio::task_local! {
    static INVOCATION: RefCell<Invocation>;
}

/// The answered request (from the HTTP layer); nothing outside [`scoped`].
pub(crate) fn note_request(route: &'static str, method: &'static str, status: u16, took: Duration) {
    let _ = INVOCATION.try_with(|invocation| {
        invocation.borrow_mut().request = Some(Request {
            route,
            method,
            status,
            seconds: took.as_secs_f64(),
        });
    });
}

/// One Redis command; nothing outside [`scoped`].
pub(crate) fn note_command(command: &'static str, took: Duration) {
    let _ = INVOCATION.try_with(|invocation| {
        let commands = &mut invocation.borrow_mut().commands;
        let seconds = took.as_secs_f64();
        match commands.iter_mut().find(|(name, _)| *name == command) {
            Some((_, values)) => values.push(seconds),
            None => commands.push((command, vec![seconds])),
        }
    });
}

/// One Redis error, by index into the kinds; nothing outside [`scoped`].
pub(crate) fn note_error(kind: usize) {
    let _ = INVOCATION.try_with(|invocation| invocation.borrow_mut().errors[kind] += 1);
}

/// Runs `invocation`, then writes its EMF lines for `function` to stdout.
pub async fn scoped<F: Future>(function: &str, invocation: F) -> F::Output {
    let (output, figures) = INVOCATION
        .scope(RefCell::new(Invocation::default()), async {
            let output = invocation.await;
            (output, INVOCATION.with(RefCell::take))
        })
        .await;
    let mut out = std::io::stdout().lock();
    for line in lines(function, &figures, now_ms()) {
        // One write per line, so that log lines from other threads cannot split it.
        let _ = out.write_all(format!("{line}\n").as_bytes());
    }
    let _ = out.flush();
    output
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The metadata member: one directive of `dimensions` naming `metrics` (name, unit).
fn aws(timestamp: u64, dimensions: &[&str], metrics: &[(&str, &str)]) -> Value {
    let metrics: Vec<Value> = metrics
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    json!({
        "Timestamp": timestamp,
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": [dimensions],
            "Metrics": metrics,
        }],
    })
}

/// The lines of one invocation (none when no request was answered).
fn lines(function: &str, figures: &Invocation, timestamp: u64) -> Vec<Value> {
    let Some(request) = &figures.request else {
        return Vec::new();
    };
    let mut lines = Vec::with_capacity(1 + figures.commands.len());
    let [timeouts, refused, other] = figures.errors;
    lines.push(json!({
        "_aws": aws(timestamp, &["function", "route"], &[
            ("http_server_request_duration_seconds", "Seconds"),
            ("http_server_unavailable_responses", "Count"),
            ("redis_errors_timeout", "Count"),
            ("redis_errors_refused", "Count"),
            ("redis_errors_other", "Count"),
        ]),
        "function": function,
        "route": request.route,
        "method": request.method,
        "status": request.status,
        "version": env!("CARGO_PKG_VERSION"),
        "http_server_request_duration_seconds": request.seconds,
        "http_server_unavailable_responses": u64::from(request.status == 503),
        "redis_errors_timeout": timeouts,
        "redis_errors_refused": refused,
        "redis_errors_other": other,
    }));
    for (command, values) in &figures.commands {
        for chunk in values.chunks(MAX_VALUES) {
            lines.push(json!({
                "_aws": aws(timestamp, &["function", "route", "command"], &[
                    ("redis_command_duration_seconds", "Seconds"),
                ]),
                "function": function,
                "route": request.route,
                "command": command,
                "redis_command_duration_seconds": chunk,
            }));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_invocation_makes_a_request_line_and_one_per_command() {
        let figures = Invocation {
            request: Some(Request {
                route: "/cache/{key}",
                method: "GET",
                status: 503,
                seconds: 0.5,
            }),
            commands: vec![("GET", vec![0.1; 101]), ("PING", vec![0.2])],
            errors: [1, 0, 0],
        };
        let written = lines("cache", &figures, 7);
        assert_eq!(
            written.len(),
            4,
            "request, GET in two lines (101 values), PING"
        );
        assert_eq!(written[0]["route"], "/cache/{key}");
        assert_eq!(written[0]["http_server_unavailable_responses"], 1);
        assert_eq!(written[0]["redis_errors_timeout"], 1);
        assert_eq!(written[0]["_aws"]["Timestamp"], 7);
        assert_eq!(
            written[1]["redis_command_duration_seconds"]
                .as_array()
                .unwrap()
                .len(),
            100
        );
        assert_eq!(written[3]["command"], "PING");
        assert!(lines("cache", &Invocation::default(), 7).is_empty());
    }
}
