//! `GET /metrics` of the runner, read with a Prometheus text-format parser
//! (`openmetrics-parser`'s Prometheus grammar) as a scraper would: every family the README's Observability section
//! names, labelled by route template (never the raw path), behind the API key when one is
//! set, and absent with `METRICS=off`.
//!
//! The figures are process-wide, so the tests here only look for what their own requests
//! must have added (other tests in this binary add to the same counters).

use std::collections::HashMap;

use api_tests::TestApp;
use axum::{
    body::Body,
    http::{Method, Request},
};
use openmetrics_parser::{MetricNumber, PrometheusValue, prometheus::parse_prometheus};
use serde_json::json;
use tower::ServiceExt;

/// `GET /metrics` through `app`'s router, with `key` as a bearer token when given: the
/// status, the content type and the text.
async fn scrape(app: &TestApp, key: Option<&str>) -> (u16, String, String) {
    let mut request = Request::get("/metrics");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = app
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// One series: its family's name, its labels, its value.
struct Sample {
    family: String,
    labels: HashMap<String, String>,
    value: PrometheusValue,
}

/// Every series of a scrape, as the parser reads them (a parse failure fails the test).
fn parse(text: &str) -> Vec<Sample> {
    let exposition = parse_prometheus(text)
        .unwrap_or_else(|e| panic!("not the Prometheus text format: {e:?}\n{text}"));
    let mut samples = Vec::new();
    for (name, family) in &exposition.families {
        for sample in family.iter_samples() {
            let labels = sample
                .get_labelset()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            samples.push(Sample {
                family: name.clone(),
                labels,
                value: sample.value.clone(),
            });
        }
    }
    samples
}

/// The series of `family` whose labels include every pair of `labels`.
fn find<'a>(samples: &'a [Sample], family: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.family == family)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The value of a counter or gauge.
fn number(sample: &Sample) -> f64 {
    match &sample.value {
        PrometheusValue::Counter(c) => c.value.as_f64(),
        PrometheusValue::Gauge(v) => v.as_f64(),
        other => panic!("{} is not a counter or gauge: {other:?}", sample.family),
    }
}

/// The count of a histogram.
fn histogram_count(sample: &Sample) -> f64 {
    match &sample.value {
        PrometheusValue::Histogram(h) => h
            .buckets
            .iter()
            .find(|b| b.upper_bound.is_infinite())
            .map(|b| match b.count {
                MetricNumber::Int(n) => n as f64,
                MetricNumber::Float(n) => n,
            })
            .expect("a +Inf bucket"),
        other => panic!("{} is not a histogram: {other:?}", sample.family),
    }
}

#[tokio::test]
async fn every_family_is_scraped_with_route_templates() {
    let mut app = TestApp::new().await;
    let put = app
        .post(
            "/cache",
            json!({"key": "metrics-raw-key", "value": "v", "ttl": 60}),
        )
        .await;
    assert_eq!(put.status, 201, "{:?}", put.body);
    assert_eq!(app.get("/cache/metrics-raw-key").await.status, 200);
    let check = app.get("/rate-limit/check?user_id=metrics").await;
    assert_eq!(check.status, 200, "{:?}", check.body);
    assert_eq!(app.get("/nowhere/metrics-raw-path").await.status, 404);
    let bad = app
        .call(Method::from_bytes(b"PURGE").unwrap(), "/cache", None)
        .await;
    assert_eq!(bad.status, 405);
    // Redis gone: a 503, and a Redis error (refused or timed out, depending on how far the
    // reconnect got).
    let on_cluster = app.on_cluster();
    if !on_cluster {
        app.redis.stop();
        assert_eq!(app.get("/cache/metrics-raw-key").await.status, 503);
    }

    let (status, content_type, text) = scrape(&app, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let scrape = parse(&text);
    let families: std::collections::BTreeSet<&str> =
        scrape.iter().map(|s| s.family.as_str()).collect();
    eprintln!("families: {families:?}");

    let duration = "http_server_request_duration_seconds";
    for (method, route, class) in [
        ("POST", "/cache", "2xx"),
        ("GET", "/cache/{key}", "2xx"),
        ("GET", "unmatched", "4xx"),
        ("_OTHER", "/cache", "4xx"),
    ] {
        let found = find(
            &scrape,
            duration,
            &[
                ("method", method),
                ("route", route),
                ("status_class", class),
            ],
        );
        assert_eq!(found.len(), 1, "{method} {route} {class}:\n{text}");
        assert!(histogram_count(found[0]) >= 1.0, "{text}");
    }
    assert!(
        !text.contains("metrics-raw"),
        "a raw path or key reached a label:\n{text}"
    );

    let active = find(&scrape, "http_server_active_requests", &[]);
    assert_eq!(active.len(), 1, "{text}");
    assert!(number(active[0]) >= 1.0, "the scrape itself is in flight");

    let command = "redis_command_duration_seconds";
    let commands: Vec<&Sample> = scrape.iter().filter(|s| s.family == command).collect();
    assert!(
        commands
            .iter()
            .all(|s| matches!(s.value, PrometheusValue::Histogram(_))),
        "{text}"
    );
    // The check ran the rate-limit script: named, not a bare EVALSHA; the POST's
    // transaction is one MULTI.
    assert!(
        commands
            .iter()
            .any(|s| s.labels["command"].starts_with("EVALSHA RATE_LIMIT")),
        "the rate-limit script is not named:\n{text}"
    );
    assert!(
        commands.iter().any(|s| s.labels["command"] == "MULTI"),
        "the cache store transaction is not named MULTI:\n{text}"
    );

    let errors = "redis_errors_total";
    for kind in ["timeout", "refused", "other"] {
        assert_eq!(find(&scrape, errors, &[("kind", kind)]).len(), 1, "{text}");
    }
    let build = find(&scrape, "redis_cache_api_build_info", &[]);
    assert_eq!(build.len(), 1, "{text}");
    assert_eq!(number(build[0]), 1.0);
    assert!(build[0].labels.contains_key("version"), "{text}");

    let unavailable = find(
        &scrape,
        "http_server_unavailable_responses_total",
        &[("route", "/cache/{key}")],
    );
    if on_cluster {
        eprintln!("cluster run: Redis not stopped, so no 503 or Redis error to look for");
        return;
    }
    assert_eq!(unavailable.len(), 1, "{text}");
    assert!(number(unavailable[0]) >= 1.0, "{text}");
    let failed: f64 = ["timeout", "refused"]
        .iter()
        .map(|kind| number(find(&scrape, errors, &[("kind", kind)])[0]))
        .sum();
    assert!(failed >= 1.0, "the stopped Redis left no error:\n{text}");
    assert!(
        find(
            &scrape,
            duration,
            &[("route", "/cache/{key}"), ("status_class", "5xx")]
        )
        .len()
            == 1,
        "{text}"
    );
}

#[tokio::test]
async fn metrics_need_the_api_key_when_one_is_set() {
    let key = "metrics-test-key-0123456789";
    let app = TestApp::with_config(|c| c.api_key = Some(key.to_owned())).await;
    let (status, _, _) = scrape(&app, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = scrape(&app, Some("not-the-key-0123456789")).await;
    assert_eq!(status, 401);
    let (status, _, text) = scrape(&app, Some(key)).await;
    assert_eq!(status, 200);
    assert!(!parse(&text).is_empty());
}

#[tokio::test]
async fn metrics_off_serves_no_metrics_route() {
    let app = TestApp::with_config(|c| c.metrics = false).await;
    let (status, content_type, _) = scrape(&app, None).await;
    assert_eq!(status, 404);
    assert!(content_type.contains("problem+json"), "{content_type}");
}
