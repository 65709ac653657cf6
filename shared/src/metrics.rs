//! The service's figures: request durations by route template, requests in flight, Redis
//! command durations and errors, 503s, and the build. The runner serves them at `/metrics`
//! in the Prometheus text format ([`render`]); a Lambda function writes each invocation's
//! share as a CloudWatch embedded-metric-format line instead ([`emf`]).
//!
//! Kept process-wide in one static ([`METRICS`]), in atomics ([`atomic`]): a request adds
//! to counters and takes no lock. The HTTP figures are taken by [`HttpMetricsLayer`], the
//! Redis ones by the Redis handle (`crate::state`), for every command it sends. With
//! `METRICS=off` neither is installed: nothing is counted.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `http_server_request_duration_seconds` | histogram | `method`, `route`, `status_class` |
//! | `http_server_active_requests` | gauge | |
//! | `http_server_unavailable_responses_total` | counter | `route` |
//! | `redis_command_duration_seconds` | histogram | `command` (`EVALSHA <script>`) |
//! | `redis_errors_total` | counter | `kind`: `timeout`, `refused`, `other` |
//! | `redis_cache_api_build_info` | gauge (1) | `version` |

pub mod atomic;
pub mod emf;
mod layer;

use std::{
    sync::{
        LazyLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::http::Method;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};
use redis::{Arg, Cmd, RedisError};

pub use layer::{HttpMetrics, HttpMetricsLayer};

use atomic::{Histogram, Table};

/// The `route` of a request no route matched (the 404 fallback): never the raw path, which
/// would make a new series of every scanner's guess.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The `Content-Type` of [`render`]'s text (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The methods a `method` label names; any other is `_OTHER`, as OpenTelemetry's HTTP
/// conventions have it (so that no client can make new series).
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "_OTHER",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const ERROR_KINDS: [&str; 3] = ["timeout", "refused", "other"];

/// Most route templates and Redis commands kept apart; past them, figures go uncounted
/// (the services have about forty routes and use fewer commands).
const ROUTES: usize = 256;
const COMMANDS: usize = 128;

/// Every figure of one route template.
#[derive(Debug)]
pub struct RouteStats {
    durations: [[Histogram; STATUS_CLASSES.len()]; METHODS.len()],
    unavailable: AtomicU64,
}

impl Default for RouteStats {
    fn default() -> Self {
        Self {
            durations: std::array::from_fn(|_| std::array::from_fn(|_| Histogram::default())),
            unavailable: AtomicU64::new(0),
        }
    }
}

/// The process's figures.
#[derive(Debug)]
pub struct Metrics {
    routes: Table<RouteStats>,
    active: AtomicI64,
    commands: Table<Histogram>,
    errors: [AtomicU64; ERROR_KINDS.len()],
}

/// The one instance.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    routes: Table::new(ROUTES),
    active: AtomicI64::new(0),
    commands: Table::new(COMMANDS),
    errors: std::array::from_fn(|_| AtomicU64::new(0)),
});

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

fn status_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, STATUS_CLASSES.len()) - 1
}

/// Counts one answered request.
pub(crate) fn record_request(route: &RouteStats, method: usize, status: u16, elapsed: Duration) {
    route.durations[method][status_index(status)].observe(elapsed);
    if status == 503 {
        route.unavailable.fetch_add(1, Ordering::Relaxed);
    }
}

/// The `command` label of `cmd`: its name, and for `EVALSHA` the script's
/// ([`crate::scripts::metric_name`]).
pub(crate) fn command_name(cmd: &Cmd) -> &str {
    let mut args = cmd.args_iter();
    let Some(Arg::Simple(name)) = args.next() else {
        return "other";
    };
    if name.eq_ignore_ascii_case(b"EVALSHA")
        && let Some(Arg::Simple(sha)) = args.next()
        && let Some(script) = crate::scripts::metric_name(sha)
    {
        return script;
    }
    std::str::from_utf8(name).unwrap_or("other")
}

/// Counts one Redis command (or pipeline, named `PIPELINE`, or transaction, `MULTI`), and
/// its error by kind.
pub(crate) fn record_command(name: &str, elapsed: Duration, error: Option<&RedisError>) {
    if let Some((name, histogram)) = METRICS.commands.get(name) {
        histogram.observe(elapsed);
        emf::note_command(name, elapsed);
    }
    if let Some(e) = error.filter(|e| counts_as_error(e)) {
        let kind = if e.is_timeout() {
            0
        } else if e.is_connection_refusal() {
            1
        } else {
            2
        };
        METRICS.errors[kind].fetch_add(1, Ordering::Relaxed);
        emf::note_error(kind);
    }
}

/// `NOSCRIPT` is how redis-rs learns to load a script (it then sends `EVAL`): no failure.
fn counts_as_error(e: &RedisError) -> bool {
    e.kind() != redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// Everything, in the Prometheus text format (version 0.0.4).
pub fn render() -> String {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition));
        registry
    });
    let mut text = String::new();
    // Writing to a String cannot fail; an encoder error would only cut the text short.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &REGISTRY);
    text
}

/// Writes [`METRICS`] through prometheus-client's encoder, series that never counted
/// anything left out (each route has 40 method and status combinations, most never seen).
#[derive(Debug)]
struct Exposition;

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let m = &*METRICS;
        {
            let mut family = encoder.encode_descriptor(
                "http_server_request_duration_seconds",
                "Duration of HTTP requests, by method, route template and status class",
                None,
                MetricType::Histogram,
            )?;
            for (route, stats) in m.routes.iter() {
                for (method, by_status) in METHODS.iter().zip(&stats.durations) {
                    for (class, histogram) in STATUS_CLASSES.iter().zip(by_status) {
                        if histogram.count() == 0 {
                            continue;
                        }
                        let labels = [
                            ("method", *method),
                            ("route", route),
                            ("status_class", class),
                        ];
                        histogram.encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        encoder
            .encode_descriptor(
                "http_server_active_requests",
                "HTTP requests being handled",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&m.active.load(Ordering::Relaxed))?;
        {
            let mut family = encoder.encode_descriptor(
                "http_server_unavailable_responses",
                "503 answers, by route template",
                None,
                MetricType::Counter,
            )?;
            for (route, stats) in m.routes.iter() {
                let count = stats.unavailable.load(Ordering::Relaxed);
                if count > 0 {
                    family
                        .encode_family(&[("route", route)])?
                        .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "redis_command_duration_seconds",
                "Duration of Redis commands, resends and reconnects included, by command",
                None,
                MetricType::Histogram,
            )?;
            for (command, histogram) in m.commands.iter() {
                histogram.encode(family.encode_family(&[("command", command)])?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "redis_errors",
                "Failed Redis commands, by kind",
                None,
                MetricType::Counter,
            )?;
            for (kind, count) in ERROR_KINDS.iter().zip(&m.errors) {
                family
                    .encode_family(&[("kind", *kind)])?
                    .encode_counter::<NoLabelSet, _, u64>(&count.load(Ordering::Relaxed), None)?;
            }
        }
        encoder
            .encode_descriptor(
                "redis_cache_api_build_info",
                "The build serving: always 1",
                None,
                MetricType::Gauge,
            )?
            .encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?
            .encode_gauge(&1i64)?;
        Ok(())
    }
}
