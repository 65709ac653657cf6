//! What the README promises, byte for byte, in the runner and through the Lambda functions
//! alike: a cache value comes back as the very text sent, a body must be one JSON document,
//! `MAX_BODY_BYTES` binds every route, and `count` bounds a listing page.

use std::collections::BTreeSet;

use api_tests::{
    TestApp,
    lambda::{Call, SOURCES, event, invoke},
};
use axum::{Router, body::Body};
use http::{Method, Request};
use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// The status and the body's text, untouched (no JSON parsing in between).
async fn raw(router: &Router, method: Method, path: &str, body: &str) -> (u16, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Values whose text a parse-and-reprint changes (a float for a big integer, `100.0` for
/// `1E2`, `-0.0`, escapes resolved, whitespace dropped).
const VALUES: [&str; 8] = [
    "123456789012345678901234567890",
    "1E2",
    "-0",
    "1.50",
    "2e-3",
    r#""a\u00e9\/b""#,
    r#"{ "x" : [1.0, -0.0, 1e400] }"#,
    "[ ]",
];

#[tokio::test]
async fn a_cache_value_comes_back_as_the_text_sent() {
    let app = TestApp::new().await;
    for (i, value) in VALUES.iter().enumerate() {
        let body = format!(r#"{{"key": "v{i}", "value": {value}, "ttl": 60}}"#);
        let (status, answer) = raw(&app.router, Method::POST, "/cache", &body).await;
        assert_eq!(status, 201, "{value}: {answer}");
        let (status, answer) = raw(&app.router, Method::GET, &format!("/cache/v{i}"), "").await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer,
            format!(r#"{{"key":"v{i}","value":{value},"ttl_seconds":60}}"#),
            "the value's text changed on the way"
        );
    }
}

#[tokio::test]
async fn a_cache_value_comes_back_as_the_text_sent_through_lambda() {
    let app = TestApp::new().await;
    let cache = shared::http::finish(cache::router(app.state.clone()), &app.state.config);
    for source in SOURCES {
        for (i, value) in VALUES.iter().enumerate() {
            let body = format!(r#"{{"key": "v{i}", "value": {value}}}"#);
            let post = Call {
                method: "POST",
                path: "/cache",
                body: Some(&body),
                ..Call::default()
            };
            let r = invoke(&cache, event(source, &post)).await;
            assert_eq!(r.status, 201, "{source:?} {value}: {r:?}");
            let path = format!("/cache/v{i}");
            let get = Call {
                method: "GET",
                path: &path,
                ..Call::default()
            };
            let r = invoke(&cache, event(source, &get)).await;
            assert_eq!(r.status, 200, "{source:?}: {r:?}");
            let text = r.raw["body"].as_str().unwrap();
            assert!(
                text.starts_with(&format!(r#"{{"key":"v{i}","value":{value},"#)),
                "{source:?}: {text}"
            );
        }
    }
}

/// Every route that reads a JSON body, with a valid body for it.
const BODY_ROUTES: [(&str, &str, &str); 8] = [
    ("POST", "/cache", r#"{"key":"k","value":1}"#),
    (
        "POST",
        "/users",
        r#"{"user_id":"u","name":"N","email":"n@example.com"}"#,
    ),
    ("PATCH", "/users/u", r#"{"city":"Oslo"}"#),
    ("POST", "/lock/r/extend", r#"{"token":"t","ttl":5}"#),
    ("POST", "/lock/r/release", r#"{"token":"t"}"#),
    ("POST", "/queue/q", r#"{"id":"1","title":"a"}"#),
    ("POST", "/queue/q/batch", r#"[{"id":"1","title":"a"}]"#),
    ("POST", "/queue/q/ack", r#"{"receipt":"r"}"#),
];

#[tokio::test]
async fn a_body_followed_by_anything_but_whitespace_is_refused() {
    let app = TestApp::new().await;
    for (method, path, body) in BODY_ROUTES {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for garbage in [" xyz", "{}", " 1", "]"] {
            let (status, answer) = raw(
                &app.router,
                method.clone(),
                path,
                &format!("{body}{garbage}"),
            )
            .await;
            assert_eq!(status, 400, "{method} {path} {body}{garbage}: {answer}");
            assert!(
                answer.contains("trailing characters"),
                "{method} {path}: {answer}"
            );
        }
        // Whitespace after the document is fine (the route then answers what it answers).
        let (status, answer) =
            raw(&app.router, method.clone(), path, &format!("{body} \r\n\t")).await;
        assert!(
            !answer.contains("trailing characters") && status != 400,
            "{method} {path}: {status} {answer}"
        );
    }
    // Nothing was stored by a refused POST /cache.
    let mut redis = app.redis_conn().await;
    let stored: Option<String> = redis.get("demo_api:cache:k").await.unwrap();
    assert_eq!(stored.as_deref(), Some("1"), "only the clean body stored");
}

/// Routes that read no body, each with a way to tell whether its handler ran.
const BODYLESS_POSTS: [&str; 3] = ["/stats/reset", "/lock/x/acquire", "/queue/q/claim"];

#[tokio::test]
async fn max_body_bytes_binds_routes_that_read_no_body() {
    let app = TestApp::with_config(|c| c.max_body_bytes = 1024).await;
    let mut redis = app.redis_conn().await;
    let _: () = redis.set("demo_api:cache:keep", "1").await.unwrap();
    let big = "x".repeat(2048);
    for path in BODYLESS_POSTS {
        let (status, answer) = raw(&app.router, Method::POST, path, &big).await;
        assert_eq!(status, 413, "{path}: {answer}");
        assert!(answer.contains("payload-too-large"), "{answer}");
    }
    // No handler ran: the reset deleted nothing, the lock is free.
    let kept: Option<String> = redis.get("demo_api:cache:keep").await.unwrap();
    assert_eq!(kept.as_deref(), Some("1"));
    let lock = app.get("/lock/x").await;
    assert_eq!(lock.body["locked"], false, "{lock:?}");

    // The same over real HTTP with a chunked body (no Content-Length to refuse up front).
    let server = app.serve().await;
    for path in BODYLESS_POSTS {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..4 {
            let chunk = format!("{:x}\r\n{}\r\n", 512, "y".repeat(512));
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
    }
    let kept: Option<String> = redis.get("demo_api:cache:keep").await.unwrap();
    assert_eq!(kept.as_deref(), Some("1"));
    assert_eq!(app.get("/lock/x").await.body["locked"], false);
    // A body in several chunks within the limit arrives whole.
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(
            b"POST /cache HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    for part in [r#"{"key":"chunked","#, r#""value":[1,"#, r#"2]}"#] {
        let chunk = format!("{:x}\r\n{part}\r\n", part.len());
        socket.write_all(chunk.as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
    }
    socket.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let stored: Option<String> = redis.get("demo_api:cache:chunked").await.unwrap();
    assert_eq!(stored.as_deref(), Some("[1,2]"));
    // A body within the limit is still fine on those routes.
    let (status, answer) = raw(&app.router, Method::POST, "/lock/x/acquire", "{}").await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test]
async fn max_body_bytes_binds_routes_that_read_no_body_through_lambda() {
    let app = TestApp::with_config(|c| c.max_body_bytes = 1024).await;
    let mut redis = app.redis_conn().await;
    let _: () = redis.set("demo_api:cache:keep", "1").await.unwrap();
    let stats = shared::http::finish(stats::router(app.state.clone()), &app.state.config);
    let lock = shared::http::finish(lock::router(app.state.clone()), &app.state.config);
    let big = "x".repeat(2048);
    for source in SOURCES {
        for (router, path) in [(&stats, "/stats/reset"), (&lock, "/lock/x/acquire")] {
            let call = Call {
                method: "POST",
                path,
                body: Some(&big),
                ..Call::default()
            };
            let r = invoke(router, event(source, &call)).await;
            assert_eq!(r.status, 413, "{source:?} {path}: {r:?}");
            assert_eq!(r.header("content-type"), "application/problem+json");
        }
    }
    let kept: Option<String> = redis.get("demo_api:cache:keep").await.unwrap();
    assert_eq!(kept.as_deref(), Some("1"));
}

#[tokio::test]
async fn count_bounds_every_listing_page() {
    let app = TestApp::new().await;
    let mut redis = app.redis_conn().await;
    let all: BTreeSet<String> = (0..300).map(|i| format!("k{i}")).collect();
    for key in &all {
        let _: () = redis
            .set(format!("demo_api:cache:{key}"), "1")
            .await
            .unwrap();
    }
    // Let Redis finish growing its table (every lookup moves a rehash along): a page of 1 or
    // 2 splits a hash bucket, and a bucket that a rehash reshapes between two pages may
    // repeat or miss a key (see `scan_page`).
    let mut settle = redis::pipe();
    for _ in 0..4 {
        for key in &all {
            settle.exists(format!("demo_api:cache:{key}"));
        }
    }
    let _: Vec<bool> = settle.query_async(&mut redis).await.unwrap();
    for count in [1, 2, 5, 7, 100, 1000] {
        let mut cursor = 0u64;
        let mut seen = Vec::new();
        for _ in 0..2000 {
            let r = app
                .get(&format!("/cache?count={count}&cursor={cursor}"))
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            let keys = r.body["keys"].as_array().unwrap();
            assert!(keys.len() <= count, "count={count}: {} keys", keys.len());
            assert_eq!(r.body["count"], keys.len());
            seen.extend(keys.iter().map(|k| k["key"].as_str().unwrap().to_owned()));
            cursor = r.body["cursor"].as_u64().unwrap();
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(cursor, 0, "count={count}: the listing never ended");
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique, all, "count={count}: keys missing");
        assert_eq!(seen.len(), all.len(), "count={count}: keys listed twice");
    }
}

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
fn concrete(path: &str) -> String {
    path.replace("{key}", "k")
        .replace("{user_id}", "u")
        .replace("{resource}", "r")
        .replace("{name}", "q")
}

#[tokio::test]
async fn unknown_query_parameters_are_refused_on_every_route() {
    let app = TestApp::new().await;
    let mut redis = app.redis_conn().await;
    let _: () = redis.set("demo_api:cache:keep", "1").await.unwrap();
    for (method, path) in api_tests::ROUTES {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let path = concrete(path);
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
const QUEUE_ROUTES: [(&str, &str, Option<&str>); 9] = [
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
];

#[tokio::test]
async fn queue_names_that_name_routes_are_reserved() {
    let app = TestApp::new().await;
    let queue = shared::http::finish(queue::router(app.state.clone()), &app.state.config);
    for reserved in ["all", "batch", "claim", "ack"] {
        for (method, path, body) in QUEUE_ROUTES {
            let path = path.replace("{name}", reserved);
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let (status, answer) = raw(&app.router, m, &path, body.unwrap_or("")).await;
            assert_eq!(status, 422, "{method} {path}: {answer}");
            let problem: serde_json::Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(problem["field"], "name", "{answer}");
            let detail = problem["detail"].as_str().unwrap();
            assert!(
                detail.contains("all, batch, claim, ack"),
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
        let default: f64 = cells[2].trim_matches('`').parse().unwrap();
        let bounds = cells[3].split([' ', ':', ',']).next().unwrap();
        let (min, max) = bounds.split_once("..=").unwrap();
        let operation = &document["paths"][path][method.to_lowercase()];
        let schema = operation["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI document"))
            .iter()
            .find(|p| p["name"] == name && p["in"] == "query")
            .unwrap_or_else(|| panic!("{method} {path} has no query parameter {name}"))["schema"]
            .clone();
        let number = |field: &str| schema[field].as_f64();
        assert_eq!(number("default"), Some(default), "{line}");
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
