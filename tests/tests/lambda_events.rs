//! Every function's router driven with API Gateway REST (v1, stage `prod`), HTTP API (v2)
//! and Function URL events, parsed by `lambda_http` as the runtime parses them, against a
//! real Redis.

use api_tests::{
    TestApp,
    lambda::{Call, SOURCES, Source, event, function, invoke},
};
use serde_json::json;

#[tokio::test]
async fn cache_function_over_every_event_source() {
    let app = TestApp::new().await;
    let cache = function(&app, cache::router);
    for (i, source) in SOURCES.into_iter().enumerate() {
        let key = format!("a b:ü{i}");
        let body = json!({"key": key, "value": {"n": i}, "ttl": 60}).to_string();
        // Bodies arrive plain or base64-encoded.
        let post = Call {
            body: Some(&body),
            base64: i == 1,
            ..Call::to("POST", "/cache")
        };
        let r = invoke(&cache, event(source, &post)).await;
        assert_eq!(r.status, 201, "{source:?}: {r:?}");
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.body["key"], key);

        // The key travels percent-encoded in the path; an HTTP API decodes it first.
        let path = format!("/cache/a%20b%3A%C3%BC{i}");
        let r = invoke(&cache, event(source, &Call::to("GET", &path))).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.body["value"], json!({"n": i}));
        let r = invoke(
            &cache,
            event(source, &Call::to("GET", &format!("/cache/plain{i}"))),
        )
        .await;
        assert_eq!(r.status, 404, "{source:?}");
        assert_eq!(r.header("content-type"), "application/problem+json");
        assert_eq!(r.body["status"], 404);

        let list = Call {
            query: &[("pattern", "a b*"), ("count", "10")],
            ..Call::to("GET", "/cache")
        };
        let r = invoke(&cache, event(source, &list)).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.body["pattern"], "a b*");
        assert!(r.body["count"].as_u64().unwrap() >= 1);

        let bad = Call {
            body: Some("{not json"),
            ..Call::to("POST", "/cache")
        };
        let r = invoke(&cache, event(source, &bad)).await;
        assert_eq!(r.status, 400, "{source:?}");
        assert_eq!(r.header("content-type"), "application/problem+json");
    }
}

#[tokio::test]
async fn users_function_over_every_event_source() {
    let app = TestApp::new().await;
    let users = function(&app, users::router);
    for source in SOURCES {
        let body =
            json!({"user_id": "alice", "name": "Alice", "email": "alice@example.com"}).to_string();
        let r = invoke(
            &users,
            event(
                source,
                &Call {
                    body: Some(&body),
                    ..Call::to("POST", "/users")
                },
            ),
        )
        .await;
        assert_eq!(r.status, 201, "{source:?}: {r:?}");
        let get = Call {
            query: &[("fields", "name,email")],
            ..Call::to("GET", "/users/alice")
        };
        let r = invoke(&users, event(source, &get)).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(
            r.body["profile"],
            json!({"name": "Alice", "email": "alice@example.com"})
        );
        let patch = Call {
            body: Some(r#"{"city":"Oslo"}"#),
            ..Call::to("PATCH", "/users/alice")
        };
        let r = invoke(&users, event(source, &patch)).await;
        assert_eq!(r.body["profile"]["city"], "Oslo", "{source:?}: {r:?}");
        let r = invoke(&users, event(source, &Call::to("DELETE", "/users/alice"))).await;
        assert_eq!(r.status, 200, "{source:?}");
    }
}

#[tokio::test]
async fn rate_limit_function_over_every_event_source() {
    let app = TestApp::new().await;
    let limiter = function(&app, rate_limit::router);
    for (i, source) in SOURCES.into_iter().enumerate() {
        let user = format!("u{i}");
        let check = Call {
            query: &[("user_id", &user), ("limit", "1"), ("window", "60")],
            ..Call::to("GET", "/rate-limit/check")
        };
        let r = invoke(&limiter, event(source, &check)).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.header("ratelimit-limit"), "1");
        assert_eq!(r.header("ratelimit-remaining"), "0");
        let r = invoke(&limiter, event(source, &check)).await;
        assert_eq!(r.status, 429, "{source:?}: {r:?}");
        assert_eq!(r.body["allowed"], false);
        assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    }
}

#[tokio::test]
async fn lock_and_queue_functions_over_every_event_source() {
    let app = TestApp::new().await;
    let lock = function(&app, lock::router);
    let queue = function(&app, queue::router);
    for (i, source) in SOURCES.into_iter().enumerate() {
        let acquire = format!("/lock/res{i}/acquire");
        let r = invoke(
            &lock,
            event(
                source,
                &Call {
                    query: &[("ttl", "30")],
                    ..Call::to("POST", &acquire)
                },
            ),
        )
        .await;
        assert_eq!(r.status, 201, "{source:?}: {r:?}");
        let r = invoke(&lock, event(source, &Call::to("POST", &acquire))).await;
        assert_eq!(r.status, 409, "{source:?}");
        assert!(r.body["retry_after_ms"].as_u64().unwrap() > 0);
        let r = invoke(
            &lock,
            event(source, &Call::to("GET", &format!("/lock/res{i}"))),
        )
        .await;
        assert_eq!(r.body["locked"], true, "{source:?}");

        let task = json!({"id": format!("t{i}"), "title": "work"}).to_string();
        let r = invoke(
            &queue,
            event(
                source,
                &Call {
                    body: Some(&task),
                    ..Call::to("POST", "/queue/jobs")
                },
            ),
        )
        .await;
        assert_eq!(r.status, 201, "{source:?}: {r:?}");
        let r = invoke(&queue, event(source, &Call::to("GET", "/queue/jobs"))).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.body["task"]["id"], format!("t{i}"));
        let r = invoke(&queue, event(source, &Call::to("GET", "/queue/jobs"))).await;
        assert_eq!(r.status, 404, "{source:?}");
    }
}

#[tokio::test]
async fn stats_and_docs_functions_over_every_event_source() {
    let app = TestApp::new().await;
    let stats = function(&app, stats::router);
    let docs = shared::http::finish(docs::router(), &app.state.config);
    for source in SOURCES {
        let r = invoke(&stats, event(source, &Call::to("GET", "/health"))).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.body["redis"], "up");
        let r = invoke(&stats, event(source, &Call::to("GET", "/stats"))).await;
        assert_eq!(r.body["connected"], true, "{source:?}");
        let r = invoke(&docs, event(source, &Call::to("GET", "/openapi.json"))).await;
        assert_eq!(r.status, 200, "{source:?}");
        assert_eq!(r.body["openapi"], "3.1.0");
        let r = invoke(&docs, event(source, &Call::to("GET", "/docs/"))).await;
        assert_eq!(r.status, 200, "{source:?}");
        assert!(r.header("content-type").starts_with("text/html"));
        // A gzip asset leaves as a base64 binary body, which API Gateway decodes.
        let mut e = event(source, &Call::to("GET", "/docs/swagger-ui.css"));
        e["headers"]["accept-encoding"] = "gzip, deflate".into();
        let r = invoke(&docs, e).await;
        assert_eq!(r.status, 200, "{source:?}");
        assert_eq!(r.header("content-encoding"), "gzip", "{source:?}");
        assert_eq!(r.raw["isBase64Encoded"], true, "{source:?}");
        let gzip = api_tests::lambda::unbase64(r.raw["body"].as_str().unwrap());
        let mut css = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut css)
            .unwrap();
        assert!(css.contains(".swagger-ui"), "{source:?}");
    }
}

/// A handler never hands the runtime an `Err` (API Gateway would answer an opaque 502):
/// with Redis down, every function answers a 503 problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_a_503_problem_not_a_runtime_error() {
    let mut app = TestApp::new().await;
    let cache = function(&app, cache::router);
    let stats = function(&app, stats::router);
    app.redis.stop();
    for source in SOURCES {
        let r = invoke(&cache, event(source, &Call::to("GET", "/cache/k"))).await;
        assert_eq!(r.status, 503, "{source:?}: {r:?}");
        assert_eq!(r.header("retry-after"), "1");
        assert_eq!(r.header("content-type"), "application/problem+json");
        let r = invoke(&stats, event(source, &Call::to("GET", "/stats"))).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.body["connected"], false);
    }
}

/// A route of another function is a 404 problem here: each function serves only its own.
#[tokio::test]
async fn a_function_serves_only_its_own_routes() {
    let app = TestApp::new().await;
    let cache = function(&app, cache::router);
    let r = invoke(
        &cache,
        event(Source::HttpV2, &Call::to("GET", "/users/alice")),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("no endpoint")
    );
}
