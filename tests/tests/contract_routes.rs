//! The README's contract for routes, in the runner and through the Lambda functions alike:
//! the `Authorization` scheme in any case, one rule for unknown query parameters, reserved
//! queue names, what the `/stats` counters count, and the request-parameter table.

use std::collections::BTreeSet;

use api_tests::{
    TestApp,
    lambda::{Call, SOURCES, event, invoke},
    raw,
};
use axum::{Router, body::Body};
use http::{Method, Request};
use redis::AsyncCommands;

#[tokio::test]
async fn the_authorization_scheme_is_case_insensitive() {
    const KEY: &str = "a-key-of-sixteen-or-more";
    let app = TestApp::with_config(|c| c.api_key = Some(KEY.to_owned())).await;
    let cache = shared::http::finish(cache::router(app.state.clone()), &app.state.config);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {KEY}");
        let request = Request::builder()
            .uri("/cache/nothing")
            .header("authorization", &value)
            .body(Body::empty())
            .unwrap();
        let r = app.request(request).await;
        assert_eq!(r.status, 404, "{value}: {r:?}");
        for source in SOURCES {
            let call = Call {
                method: "GET",
                path: "/cache/nothing",
                headers: &[("authorization", &value)],
                ..Call::default()
            };
            let r = invoke(&cache, event(source, &call)).await;
            assert_eq!(r.status, 404, "{source:?} {value}: {r:?}");
        }
    }
    // Another scheme, or the key wrong, is still a 401.
    for value in [
        format!("Basic {KEY}"),
        "Bearer nope".to_owned(),
        KEY.to_owned(),
    ] {
        let request = Request::builder()
            .uri("/cache/nothing")
            .header("authorization", &value)
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.request(request).await.status, 401, "{value}");
    }
}

/// `ROUTES` with every path parameter filled in.

#[tokio::test]
async fn unknown_query_parameters_are_refused_on_every_route() {
    let app = TestApp::new().await;
    let mut redis = app.redis_conn().await;
    let _: () = redis.set("demo_api:cache:keep", "1").await.unwrap();
    for (method, path) in api_tests::ROUTES {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let path = api_tests::concrete(path);
        let r = app
            .call(method.clone(), &format!("{path}?zzz=1"), None)
            .await;
        r.assert_problem(422, Some("zzz"));
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains("unknown query parameter `zzz`"),
            "{method} {path}: {r:?}"
        );
    }
    // No handler ran: the reset deleted nothing.
    let kept: Option<String> = redis.get("demo_api:cache:keep").await.unwrap();
    assert_eq!(kept.as_deref(), Some("1"), "POST /stats/reset?zzz=1 ran");
    // Declared parameters still work, on GET and POST alike.
    assert_eq!(app.get("/cache?count=5").await.status, 200);
    let r = app.call(Method::POST, "/lock/r/acquire?ttl=5", None).await;
    assert_eq!(r.status, 201, "{r:?}");
}

/// A function's `router`.
type FunctionRouter = fn(shared::AppState) -> Router;

#[tokio::test]
async fn unknown_query_parameters_are_refused_through_lambda() {
    let app = TestApp::new().await;
    let functions: [(FunctionRouter, &str, &str); 6] = [
        (stats::router, "POST", "/stats/reset"),
        (stats::router, "GET", "/health"),
        (lock::router, "POST", "/lock/r/acquire"),
        (cache::router, "GET", "/cache/k"),
        (queue::router, "POST", "/queue/q/claim"),
        (users::router, "DELETE", "/users/u"),
    ];
    for (router, method, path) in functions {
        let router = shared::http::finish(router(app.state.clone()), &app.state.config);
        for source in SOURCES {
            let call = Call {
                method,
                path,
                query: &[("zzz", "1")],
                ..Call::default()
            };
            let r = invoke(&router, event(source, &call)).await;
            assert_eq!(r.status, 422, "{source:?} {method} {path}: {r:?}");
            assert_eq!(r.body["field"], "zzz", "{source:?} {method} {path}: {r:?}");
        }
    }
}

/// Every queue route, `{name}` to fill in, with a valid body where it takes one.
const QUEUE_ROUTES: [(&str, &str, Option<&str>); 13] = [
    ("POST", "/queue/{name}", Some(r#"{"id":"1","title":"a"}"#)),
    ("GET", "/queue/{name}", None),
    ("DELETE", "/queue/{name}", None),
    (
        "POST",
        "/queue/{name}/batch",
        Some(r#"[{"id":"1","title":"a"}]"#),
    ),
    ("GET", "/queue/{name}/batch", None),
    ("GET", "/queue/{name}/all", None),
    ("POST", "/queue/{name}/claim", None),
    ("POST", "/queue/{name}/ack", Some(r#"{"receipt":"r"}"#)),
    ("GET", "/queue/{name}/all?offset=0", None),
    ("POST", "/queue/{name}/nack", Some(r#"{"receipt":"r"}"#)),
    ("GET", "/queue/{name}/dead", None),
    ("DELETE", "/queue/{name}/dead", None),
    ("POST", "/queue/{name}/dead/replay", None),
];

#[tokio::test]
async fn queue_names_that_name_routes_are_reserved() {
    let app = TestApp::new().await;
    let queue = shared::http::finish(queue::router(app.state.clone()), &app.state.config);
    for reserved in queue::RESERVED_NAMES {
        for (method, path, body) in QUEUE_ROUTES {
            let path = path.replace("{name}", reserved);
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let (status, answer) = raw(&app.router, m, &path, body.unwrap_or("")).await;
            assert_eq!(status, 422, "{method} {path}: {answer}");
            let problem: serde_json::Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(problem["field"], "name", "{answer}");
            let detail = problem["detail"].as_str().unwrap();
            assert!(
                detail.contains("all, batch, claim, ack, nack, dead"),
                "the words are not listed: {detail}"
            );
            for source in SOURCES {
                let (path, query) = path.split_once('?').unwrap_or((&path, ""));
                let query: Vec<(&str, &str)> = query
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .collect();
                let call = Call {
                    method,
                    path,
                    query: &query,
                    body,
                    ..Call::default()
                };
                let r = invoke(&queue, event(source, &call)).await;
                assert_eq!(r.status, 422, "{source:?} {method} {path}: {r:?}");
            }
        }
    }
    // Nothing was queued under a reserved name.
    let mut redis = app.redis_conn().await;
    let pending = app.state.keys.queue("all")[0].clone();
    let length: u64 = redis.llen(&pending).await.unwrap();
    assert_eq!(length, 0);
    // Other names, and the default queue, work as before.
    let r = app
        .post("/queue/alls", serde_json::json!({"id": "1", "title": "a"}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    // `/all` changes state (lapsed claims go back): never cached, no HEAD.
    let r = app.get("/queue/tasks/all").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), "no-store");
    let r = app.call(Method::HEAD, "/queue/tasks/all", None).await;
    assert_eq!(r.status, 405, "{r:?}");
}

#[tokio::test]
async fn stats_counters_say_what_they_count() {
    let app = TestApp::new().await;
    let before = app.get("/stats").await;
    assert_eq!(before.status, 200, "{before:?}");
    let counter = |r: &api_tests::Reply, name: &str| r.body[name].as_u64().unwrap();
    app.post("/cache", serde_json::json!({"key": "hit", "value": 1}))
        .await;
    for _ in 0..3 {
        assert_eq!(app.get("/cache/hit").await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(app.get("/cache/miss").await.status, 404);
    }
    let after = app.get("/stats").await;
    // The cache's reads are Redis's own keyspace hits and misses ...
    assert!(
        counter(&after, "keyspace_hits") >= counter(&before, "keyspace_hits") + 3,
        "{before:?} {after:?}"
    );
    assert!(
        counter(&after, "keyspace_misses") >= counter(&before, "keyspace_misses") + 2,
        "{before:?} {after:?}"
    );
    // ... and not the profile counters, which count GET /users/{user_id} only.
    assert_eq!(counter(&after, "cache_hits"), 0, "{after:?}");
    assert_eq!(counter(&after, "cache_misses"), 0, "{after:?}");
    assert!(after.body["hit_rate"].is_null(), "{after:?}");
    assert_eq!(app.get("/users/nobody").await.status, 404);
    let profiles = app.get("/stats").await;
    assert_eq!(counter(&profiles, "cache_misses"), 1, "{profiles:?}");
    assert_eq!(profiles.body["hit_rate"], 0.0, "{profiles:?}");
}

#[test]
fn the_readme_request_parameter_table_is_the_openapi_one() {
    let readme = api_tests::binary::readme::text();
    let section = readme
        .split("\n## Request parameters\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a ## Request parameters section in README.md");
    let document: serde_json::Value =
        serde_json::from_str(&docs::openapi_json()).expect("the OpenAPI document");
    let mut listed = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let (method, path) = cells[0].trim_matches('`').split_once(' ').unwrap();
        let name = cells[1].trim_matches('`');
        // A number, or "required" for a parameter without a default.
        let default: Option<f64> = match cells[2] {
            "required" => None,
            cell => Some(cell.trim_matches('`').parse().unwrap()),
        };
        let bounds = cells[3].split([' ', ':', ',']).next().unwrap();
        let (min, max) = bounds.split_once("..=").unwrap();
        let operation = &document["paths"][path][method.to_lowercase()];
        let parameter = operation["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI document"))
            .iter()
            .find(|p| p["name"] == name && p["in"] == "query")
            .unwrap_or_else(|| panic!("{method} {path} has no query parameter {name}"));
        assert_eq!(parameter["required"] == true, default.is_none(), "{line}");
        let schema = parameter["schema"].clone();
        let number = |field: &str| schema[field].as_f64();
        assert_eq!(number("default"), default, "{line}");
        assert_eq!(number("minimum"), Some(min.parse().unwrap()), "{line}");
        assert_eq!(number("maximum"), Some(max.parse().unwrap()), "{line}");
        listed.insert(format!("{method} {path} {name}"));
    }
    // Every query parameter with bounds is in the table.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let bounded = parameter["schema"]["minimum"].is_number()
                    || parameter["schema"]["maximum"].is_number();
                if parameter["in"] == "query" && bounded {
                    let row = format!(
                        "{} {path} {}",
                        method.to_uppercase(),
                        parameter["name"].as_str().unwrap()
                    );
                    assert!(listed.contains(&row), "the README table lacks {row}");
                }
            }
        }
    }
}
