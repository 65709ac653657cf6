//! What the README promises, byte for byte, in the runner and through the Lambda functions
//! alike: a cache value comes back as the very text sent, a body must be one JSON document,
//! `MAX_BODY_BYTES` binds every route, and `count` bounds a listing page. (The routes'
//! contract is in `contract_routes.rs`.)

use std::collections::BTreeSet;

use api_tests::{
    TestApp,
    lambda::{Call, SOURCES, event, invoke},
    raw,
};
use axum::body::Body;
use http::{Method, Request};
use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

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
    let stored: Option<String> = redis.hget("demo_api:cache:k", "v").await.unwrap();
    assert_eq!(stored.as_deref(), Some("1"), "only the clean body stored");
}

#[tokio::test]
async fn a_compressed_body_is_refused_as_unsupported() {
    let app = TestApp::new().await;
    for (method, path, body) in BODY_ROUTES {
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = app.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&bytes);
        assert_eq!(status, 415, "{method} {path}: {answer}");
        assert!(answer.contains("Content-Encoding gzip"), "{answer}");
    }
    let mut redis = app.redis_conn().await;
    let stored: Option<String> = redis.hget("demo_api:cache:k", "v").await.unwrap();
    assert_eq!(stored, None, "a refused body was stored");
}

/// Routes that read no body, each with a way to tell whether its handler ran.
const BODYLESS_POSTS: [&str; 3] = ["/stats/reset", "/lock/x/acquire", "/queue/q/claim"];

/// A request whose body never arrives whole changes nothing, on a route that reads no body
/// too (its handler would otherwise act as soon as the head arrived): the time limit's 503.
#[tokio::test]
async fn a_request_stalled_mid_body_changes_nothing() {
    let app =
        TestApp::with_config(|c| c.request_timeout = std::time::Duration::from_millis(300)).await;
    let mut redis = app.redis_conn().await;
    let _: () = redis.set("demo_api:cache:keep", "1").await.unwrap();
    let pushed = app
        .post("/queue/q", serde_json::json!({"id": "t", "title": "kept"}))
        .await;
    assert_eq!(pushed.status, 201, "{pushed:?}");
    let server = app.serve().await;
    for (method, path) in [
        ("DELETE", "/cache/keep"),
        ("GET", "/queue/q"),
        ("POST", "/stats/reset"),
    ] {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        // Ten bytes promised, three sent, then nothing.
        let head = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
        socket.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut answer))
            .await
            .expect("no hang")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(
            answer.starts_with("HTTP/1.1 503"),
            "{method} {path}: {answer}"
        );
        assert!(answer.contains("request-timeout"), "{answer}");
    }
    let kept: Option<String> = redis.get("demo_api:cache:keep").await.unwrap();
    assert_eq!(kept.as_deref(), Some("1"), "the delete ran");
    let queued: u64 = redis.llen("demo_api:queue:{q}").await.unwrap();
    assert_eq!(queued, 1, "the pop ran");
}

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
    let stored: Option<String> = redis.hget("demo_api:cache:chunked", "v").await.unwrap();
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
