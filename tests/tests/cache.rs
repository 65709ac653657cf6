//! Cache endpoints (README "Cache"), against a real redis-server per test.

use std::collections::BTreeSet;

use api_tests::{TestApp, reply_of};
use axum::body::Body;
use http::{Method, Request};
use redis::AsyncCommands;
use serde_json::{Value, json};

#[tokio::test]
async fn any_json_value_round_trips_exactly() {
    let app = TestApp::new().await;
    let values = [
        json!("world"),
        json!(42),
        json!(-1.5e300),
        json!(true),
        json!(null),
        json!([1, "two", {"three": [3]}]),
        json!({"nested": {"unicode": "héllo ✓ 🦀", "empty": {}, "list": []}}),
        json!(""),
    ];
    for (i, value) in values.iter().enumerate() {
        let key = format!("k{i}");
        let r = app
            .post("/cache", json!({"key": key, "value": value, "ttl": 300}))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.body["key"], key);
        assert_eq!(r.body["ttl_seconds"], 300);
        assert!(r.body["message"].is_string());

        let r = app.get(&format!("/cache/{key}")).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(&r.body["value"], value, "{r:?}");
        assert_eq!(r.body["key"], key);
        let ttl = r.body["ttl_seconds"].as_u64().unwrap();
        assert!((299..=300).contains(&ttl), "{r:?}");
    }
}

#[tokio::test]
async fn ttl_defaults_to_config_and_is_set_in_redis() {
    let app = TestApp::new().await;
    let r = app.post("/cache", json!({"key": "d", "value": 1})).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["ttl_seconds"], 3600);
    let mut conn = app.redis_conn().await;
    let pttl: i64 = conn.pttl("demo_api:cache:d").await.unwrap();
    assert!((3_599_000..=3_600_000).contains(&pttl), "{pttl}");

    app.post("/cache", json!({"key": "e", "value": 1, "ttl": 31_536_000}))
        .await;
    let pttl: i64 = conn.pttl("demo_api:cache:e").await.unwrap();
    assert!(pttl > 31_535_000_000, "{pttl}");
    // Stored as JSON text under the prefixed key: the hash's `v`.
    let raw: String = conn.hget("demo_api:cache:e", "v").await.unwrap();
    assert_eq!(raw, "1");
}

#[tokio::test]
async fn configured_default_ttl_and_prefix_are_used() {
    let app = TestApp::with_config(|c| {
        c.default_ttl = 77;
        c.key_prefix = "other_app:".into();
    })
    .await;
    let r = app.post("/cache", json!({"key": "x", "value": 1})).await;
    assert_eq!(r.body["ttl_seconds"], 77);
    let mut conn = app.redis_conn().await;
    let pttl: i64 = conn.pttl("other_app:cache:x").await.unwrap();
    assert!((76_000..=77_000).contains(&pttl), "{pttl}");
    let exists: bool = conn.exists("demo_api:cache:x").await.unwrap();
    assert!(!exists);
}

#[tokio::test]
async fn missing_key_is_404_problem() {
    let app = TestApp::new().await;
    let r = app.get("/cache/nope").await;
    r.assert_problem(404, None);
    assert!(r.body["detail"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn delete_removes_then_404s() {
    let app = TestApp::new().await;
    app.post("/cache", json!({"key": "gone", "value": "x"}))
        .await;
    let r = app.delete("/cache/gone").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["key"], "gone");
    assert!(r.body["message"].is_string());
    app.get("/cache/gone").await.assert_problem(404, None);
    app.delete("/cache/gone").await.assert_problem(404, None);
}

#[tokio::test]
async fn entry_really_expires() {
    let app = TestApp::new().await;
    let r = app
        .post("/cache", json!({"key": "brief", "value": "x", "ttl": 1}))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(app.get("/cache/brief").await.status, 200);
    // The one end-to-end expiry test: everything else reads PTTL.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut tries = 0;
    while app.get("/cache/brief").await.status == 200 && tries < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tries += 1;
    }
    app.get("/cache/brief").await.assert_problem(404, None);
}

#[tokio::test]
async fn key_that_never_expires_reports_null_ttl() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let () = conn.set("demo_api:cache:forever", "\"v\"").await.unwrap();
    let r = app.get("/cache/forever").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["value"], "v");
    assert_eq!(r.body["ttl_seconds"], Value::Null);
    // A value some other client stored that is not JSON comes back as a string.
    let () = conn.set("demo_api:cache:raw", "not json").await.unwrap();
    assert_eq!(app.get("/cache/raw").await.body["value"], "not json");
}

/// The identifier rule (README "Identifiers"): every key the API stores can be read back
/// by its path; a character some front door would change is refused at the write already,
/// naming the character (422 in a body, 400 in a path), instead of being stored and then
/// unreachable on AWS.
#[tokio::test]
async fn keys_round_trip_through_the_path_or_are_refused_naming_the_character() {
    let app = TestApp::new().await;
    for key in [
        "sp ace",
        "ü:é@x",
        "*",
        "{x}",
        "a.b",
        "...",
        "a;b=c&d",
        "[|^`\"<>]",
    ] {
        let r = app.post("/cache", json!({"key": key, "value": key})).await;
        assert_eq!(r.status, 201, "{r:?}");
        let path = format!("/cache/{}", percent(key));
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "{key}: {r:?}");
        assert_eq!(r.body["key"], key);
        assert_eq!(r.body["value"], key);
    }
    for (key, named) in [
        ("a/b", "'/'"),
        ("a?b", "'?'"),
        ("a#b", "'#'"),
        ("100%", "'%'"),
        ("a\\b", "'\\\\'"),
        ("a+b", "'+'"),
        ("a\nb", "'\\n'"),
        ("..", "\"..\""),
    ] {
        let r = app.post("/cache", json!({"key": key, "value": 1})).await;
        assert_eq!(r.status, 422, "{key:?}: {r:?}");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{key:?}: {detail}");
        assert_eq!(r.body["field"], "key", "{r:?}");
        let r = app.get(&format!("/cache/{}", percent(key))).await;
        assert_eq!(r.status, 400, "{key:?}: {r:?}");
        assert!(r.body["detail"].as_str().unwrap().contains(named), "{r:?}");
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn listing_shows_keys_with_ttl_and_filters_by_pattern() {
    let app = TestApp::new().await;
    for key in ["user:1", "user:2", "session:1"] {
        app.post("/cache", json!({"key": key, "value": 1, "ttl": 100}))
            .await;
    }
    let r = app.get("/cache").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["pattern"], "*");
    assert_eq!(r.body["cursor"], 0);
    assert_eq!(r.body["count"], 3);
    let keys = keys_of(&r.body);
    assert_eq!(
        keys,
        BTreeSet::from(["user:1".into(), "user:2".into(), "session:1".into()])
    );
    for k in r.body["keys"].as_array().unwrap() {
        let ttl = k["ttl_seconds"].as_u64().unwrap();
        assert!((99..=100).contains(&ttl));
    }

    let r = app.get("/cache?pattern=user:*").await;
    assert_eq!(
        keys_of(&r.body),
        BTreeSet::from(["user:1".into(), "user:2".into()])
    );
    assert_eq!(r.body["pattern"], "user:*");
    let r = app.get("/cache?pattern=user%3A%3F").await;
    assert_eq!(r.body["count"], 2, "{r:?}");
}

fn keys_of(body: &Value) -> BTreeSet<String> {
    api_tests::strings(&body["keys"], "key")
        .into_iter()
        .collect()
}

#[tokio::test]
async fn listing_pages_by_cursor_until_zero() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.set_ex(format!("demo_api:cache:k{i}"), "1", 100);
    }
    let () = pipe.query_async(&mut conn).await.unwrap();

    let (listed, pages) = app.list_cache("count=50").await;
    assert!(pages > 1, "1000 keys at count=50 should take several pages");
    assert_eq!(listed.iter().collect::<BTreeSet<_>>().len(), 1000);
}

#[tokio::test]
async fn listing_never_shows_keys_outside_the_namespace() {
    // A prefix full of glob characters: if it were not escaped, "t?x" would match "tAx".
    let app = TestApp::with_config(|c| c.key_prefix = "t?x[*]\\:".into()).await;
    let mut conn = app.redis_conn().await;
    for outside in [
        "tAx[*]\\:cache:intruder",
        "tax*\\:cache:intruder",
        "other:cache:intruder",
        "t?x[*]\\:user:intruder",
        "t?x[*]\\:cachex",
        "demo_api:cache:intruder",
    ] {
        let () = conn.set(outside, "1").await.unwrap();
    }
    app.post("/cache", json!({"key": "mine", "value": 1})).await;
    for pattern in [
        "*",
        "*intruder*",
        "../*",
        "\\*",
        "[a-z]*",
        "?*",
        "*:*",
        "**",
        "[",
        "\\",
    ] {
        let r = app
            .get(&format!("/cache?pattern={}", percent(pattern)))
            .await;
        assert_eq!(r.status, 200, "{pattern}: {r:?}");
        let keys = keys_of(&r.body);
        assert!(
            keys.iter().all(|k| k == "mine"),
            "{pattern} leaked {keys:?}"
        );
    }
    let r = app.get("/cache").await;
    assert_eq!(keys_of(&r.body), BTreeSet::from(["mine".into()]));
}

#[tokio::test]
async fn bad_inputs_are_4xx_problems_naming_the_field() {
    let app = TestApp::new().await;
    let long = "x".repeat(513);
    let post_cases: Vec<(Value, u16, &str)> = vec![
        (json!({"value": 1}), 422, "key"),
        (json!({"key": "a"}), 422, "value"),
        (json!({"key": "a", "value": 1, "ttl": 0}), 422, "ttl"),
        (
            json!({"key": "a", "value": 1, "ttl": 31_536_001}),
            422,
            "ttl",
        ),
        (json!({"key": "a", "value": 1, "ttl": -5}), 422, "ttl"),
        (json!({"key": "a", "value": 1, "ttl": "60"}), 422, "ttl"),
        (json!({"key": "a", "value": 1, "ttl": 1.5}), 422, "ttl"),
        (json!({"key": "", "value": 1}), 422, "key"),
        (json!({"key": long, "value": 1}), 422, "key"),
        (json!({"key": 5, "value": 1}), 422, "key"),
        (json!({"key": "a", "value": 1, "extra": true}), 422, "extra"),
        (json!("just a string"), 422, "body"),
    ];
    for (body, status, field) in post_cases {
        let r = app.post("/cache", body.clone()).await;
        r.assert_problem(status, Some(field));
        assert!(!r.body["detail"].as_str().unwrap().is_empty(), "{body}");
    }

    let get_cases = [
        ("/cache?count=0", 422, Some("count")),
        ("/cache?count=1001", 422, Some("count")),
        ("/cache?count=lots", 422, Some("count")),
        ("/cache?cursor=-1", 422, Some("cursor")),
        ("/cache?bogus=1", 422, Some("bogus")),
        ("/cache/", 400, Some("key")),
        ("/cache/%FF", 400, Some("key")),
        ("/nowhere", 404, None),
    ];
    for (path, status, field) in get_cases {
        app.get(path).await.assert_problem(status, field);
    }
    app.get(&format!("/cache/{long}"))
        .await
        .assert_problem(400, Some("key"));
    app.delete(&format!("/cache/{long}"))
        .await
        .assert_problem(400, Some("key"));
    app.delete("/cache/").await.assert_problem(400, Some("key"));
    app.call(Method::PUT, "/cache/x", None)
        .await
        .assert_problem(405, None);

    let raw = |body: &'static str, content_type: Option<&str>| {
        let mut b = Request::builder().method("POST").uri("/cache");
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(Body::from(body)).unwrap()
    };
    app.request(raw("{\"key\":", Some("application/json")))
        .await
        .assert_problem(400, None);
    app.request(raw("", Some("application/json")))
        .await
        .assert_problem(400, None);
    app.request(raw(
        "key=a&value=b",
        Some("application/x-www-form-urlencoded"),
    ))
    .await
    .assert_problem(415, None);
    // No Content-Type at all is read as JSON, as FastAPI does.
    let r = app.request(raw(r#"{"key":"nct","value":1}"#, None)).await;
    assert_eq!(r.status, 201, "{r:?}");

    let huge = json!({"key": "big", "value": "x".repeat(1 << 20)});
    app.post("/cache", huge).await.assert_problem(413, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_503_with_retry_after_then_recovers() {
    let mut app = TestApp::new().await;
    if app.skip_on_cluster("it stops the one Redis") {
        return;
    }
    app.post("/cache", json!({"key": "k", "value": 1})).await;
    app.redis.stop();

    // The guard only catches a hang; the deadline itself is REDIS_RESPONSE_TIMEOUT_MS (500).
    let guard = std::time::Duration::from_secs(10);
    for path in ["/cache/k", "/cache"] {
        let r = tokio::time::timeout(guard, app.get(path))
            .await
            .expect("no hang");
        r.assert_problem(503, None);
        assert_eq!(r.header("retry-after"), "1");
    }
    let r = tokio::time::timeout(guard, app.post("/cache", json!({"key": "k", "value": 2})))
        .await
        .expect("no hang");
    r.assert_problem(503, None);
    // Many at once: every one answers, none hangs.
    let all = futures_join(&app, 32).await;
    assert!(all.iter().all(|s| *s == 503), "{all:?}");

    app.redis.restart().unwrap();
    let recovered = app
        .until_status("POST /cache", r#"{"key": "k", "value": 3}"#, 201, 100)
        .await;
    assert!(recovered, "requests did not succeed after Redis came back");
    assert_eq!(app.get("/cache/k").await.body["value"], 3);
}

async fn futures_join(app: &TestApp, n: usize) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let router = app.router.clone();
        set.spawn(async move {
            use tower::ServiceExt;
            let req = Request::get(format!("/cache/k{i}"))
                .body(Body::empty())
                .unwrap();
            let res = tokio::time::timeout(std::time::Duration::from_secs(10), router.oneshot(req))
                .await
                .expect("no hang")
                .unwrap();
            res.status().as_u16()
        });
    }
    set.join_all().await
}

#[tokio::test]
async fn seed_curl_commands_work_over_http() {
    let app = TestApp::new().await;
    let server = app.serve().await;
    let http = reqwest::Client::new();

    // curl -X POST http://localhost:8002/cache -H "Content-Type: application/json" \
    //   -d '{"key": "hello", "value": "world", "ttl": 300}'
    let r = reply_of(
        http.post(server.url("/cache"))
            .header("Content-Type", "application/json")
            .body(r#"{"key": "hello", "value": "world", "ttl": 300}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["ttl_seconds"], 300);
    assert!(
        !r.header("x-request-id").is_empty(),
        "every answer carries a request id"
    );

    // curl http://localhost:8002/cache/hello
    let r = reply_of(http.get(server.url("/cache/hello")).send().await.unwrap()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["value"], "world");

    // curl http://localhost:8002/cache
    let r = reply_of(http.get(server.url("/cache")).send().await.unwrap()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["keys"][0]["key"], "hello");

    // curl -X DELETE http://localhost:8002/cache/hello
    let r = reply_of(
        http.delete(server.url("/cache/hello"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["key"], "hello");

    // A request id sent by the client is echoed back.
    let r = http
        .get(server.url("/cache/hello"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = reply_of(r).await;
    r.assert_problem(404, None);
    server.shutdown().await;
}
