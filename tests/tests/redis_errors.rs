//! What Redis can answer besides a value, and what the API makes of it: out of memory under
//! `noeviction`, `BUSY` (a long script), `LOADING` (a dataset being loaded), `READONLY` (a
//! demoted primary), `WRONGTYPE` (a key someone else wrote); invalid UTF-8 in a query; and a
//! handler that panics, in the runner and through the Lambda adapter. Each is an RFC 9457
//! problem, never a dropped connection.

use std::time::{Duration, Instant};

use api_tests::{
    PANIC_PATH, Server, TestApp,
    lambda::{Call, Source, event, invoke},
    start_redis, with_panicking_route,
};
use axum::{Router, body::Body};
use http::Request;
use redis::AsyncCommands;
use serde_json::{Value, json};

const GUARD: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_in_the_runner() {
    let app = TestApp::new().await;
    let router = with_panicking_route(Router::new(), &app.state.config);
    let server = Server::start(router).await;
    let r = server.get(PANIC_PATH).await;
    r.assert_problem(500, None);
    assert_eq!(r.body["type"], "/problems/internal-error", "{r:?}");
    // The bug's text is for the log, not the client.
    assert!(!r.body.to_string().contains("deliberate"), "{r:?}");
    // The server lives on.
    let again = server.get(PANIC_PATH).await;
    again.assert_problem(500, None);
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_through_the_lambda_adapter() {
    let app = TestApp::new().await;
    let router = with_panicking_route(Router::new(), &app.state.config);
    for source in [Source::HttpV2, Source::RestV1] {
        let call = Call {
            method: "GET",
            path: PANIC_PATH,
            ..Call::default()
        };
        // `invoke` fails the test if the handler returns an Err to the runtime (which API
        // Gateway would turn into an opaque 502).
        let r = invoke(&router, event(source, &call)).await;
        assert_eq!(r.status, 500, "{source:?}: {r:?}");
        assert_eq!(r.header("content-type"), "application/problem+json");
        assert_eq!(r.body["type"], "/problems/internal-error", "{r:?}");
    }
}

#[tokio::test]
async fn redis_out_of_memory_under_noeviction_is_a_503_with_retry_after() {
    let redis = start_redis(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let app = TestApp::with_redis(redis).await;
    let value = "x".repeat(200_000);
    let mut refused = None;
    for i in 0..100 {
        let r = app
            .post("/cache", json!({"key": format!("big{i}"), "value": value}))
            .await;
        if r.status != 201 {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("4 MB of maxmemory never ran out");
    r.assert_problem(503, None);
    assert_eq!(r.header("retry-after"), "1", "{r:?}");
    assert!(
        r.body["detail"].as_str().unwrap().contains("out of memory"),
        "{r:?}"
    );
    // Reads still work; deleting frees room and writes work again.
    assert_eq!(app.get("/cache/big0").await.status, 200);
    let mut conn = app.redis_conn().await;
    let () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let r = app
        .post("/cache", json!({"key": "small", "value": 1}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
}

/// A primary that wants replicas in sync before it writes (`min-replicas-to-write`) and has
/// none refuses every write with NOREPLICAS: a passing state, answered 503 "nothing was
/// applied", for a plain command, a MULTI and a script alike; reads still work.
#[tokio::test]
async fn too_few_replicas_in_sync_is_a_503_nothing_applied() {
    let redis = start_redis(&["--min-replicas-to-write", "1"]);
    let app = TestApp::with_redis(redis).await;
    let writes = [
        ("POST", "/cache", json!({"key": "k", "value": 1})),
        (
            "POST",
            "/users",
            json!({"user_id": "u", "name": "U", "email": "u@example.com"}),
        ),
        ("GET", "/rate-limit/check?user_id=u", Value::Null),
        ("POST", "/queue/q", json!({"id": "1", "title": "t"})),
    ];
    for (method, path, body) in writes {
        let r = if method == "GET" {
            app.get(path).await
        } else {
            app.post(path, body).await
        };
        r.assert_problem(503, None);
        assert_eq!(r.header("retry-after"), "1", "{path}: {r:?}");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains("replicas"), "{path}: {r:?}");
        assert_eq!(r.body["outcome"], "not_applied", "{path}: {r:?}");
    }
    assert_eq!(app.get("/cache/k").await.status, 404);
}

/// The `i`th body of a kind of write.
type NthBody = fn(usize) -> serde_json::Value;

/// Scripted writes (every write with an `Idempotency-Key`, every cache write) obey
/// `maxmemory` too: Redis checks it on a script's first write only, so a script that starts
/// with a `DEL` writes past the limit. Each kind of write, with a key, until refused.
#[tokio::test]
async fn scripted_writes_are_refused_out_of_memory_too() {
    let redis = start_redis(&["--maxmemory-policy", "noeviction"]);
    let app = TestApp::with_redis(redis).await;
    let mut conn = app.redis_conn().await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    // Room for a few hundred small writes, no more.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + 200_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let writes: [(&str, NthBody); 2] = [
        (
            "/users",
            |i: usize| json!({"user_id": format!("u{i}"), "name": "N", "email": "n@example.com"}),
        ),
        (
            "/cache",
            |i: usize| json!({"key": format!("c{i}"), "value": "x".repeat(500)}),
        ),
    ];
    for (path, body) in writes {
        let mut refused = None;
        for i in 0..5000 {
            let request = Request::post(path)
                .header("content-type", "application/json")
                .header("idempotency-key", format!("{path}-{i}"))
                .body(Body::from(body(i).to_string()))
                .unwrap();
            let r = app.request(request).await;
            if r.status != 201 {
                refused = Some(r);
                break;
            }
        }
        let r =
            refused.unwrap_or_else(|| panic!("{path}: 5000 writes, maxmemory never refused one"));
        r.assert_problem(503, None);
        assert!(
            r.body["detail"].as_str().unwrap().contains("out of memory"),
            "{r:?}"
        );
        let () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    }
}

/// `GET /cache/k`, answered within [`GUARD`]: a 200, or a 503 problem with `Retry-After: 1`.
async fn read_k(app: &TestApp) -> api_tests::Reply {
    let r = tokio::time::timeout(GUARD, app.get("/cache/k"))
        .await
        .expect("no hang");
    if r.status == 503 {
        r.assert_problem(503, None);
        assert_eq!(r.header("retry-after"), "1", "{r:?}");
    } else {
        assert_eq!(r.status, 200, "{r:?}");
    }
    r
}

/// The app on a Redis started with `args`, holding the cache entry `k`.
async fn app_holding_k(args: &[&str]) -> TestApp {
    let app = TestApp::with_redis(start_redis(args)).await;
    let r = app.post("/cache", json!({"key": "k", "value": 1})).await;
    assert_eq!(r.status, 201, "{r:?}");
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_busy_with_a_script_is_a_503_then_recovers() {
    let app = app_holding_k(&["--busy-reply-threshold", "100"]).await;
    let mut busy = app.redis_conn().await;
    let script = tokio::spawn(async move {
        let _: redis::RedisResult<()> = redis::cmd("EVAL")
            .arg("while true do end")
            .arg(0)
            .query_async(&mut busy)
            .await;
    });
    let deadline = Instant::now() + GUARD;
    loop {
        let r = read_k(&app).await;
        if r.status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "never saw BUSY");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A script that only read can be killed; then Redis answers again.
    let port = app.redis.port();
    let mut admin = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("KILL")
        .query_async(&mut admin)
        .await
        .unwrap();
    script.await.unwrap();
    let deadline = Instant::now() + GUARD;
    while app.get("/cache/k").await.status != 200 {
        assert!(Instant::now() < deadline, "no recovery after SCRIPT KILL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_primary_answering_readonly_is_a_503_then_recovers() {
    let primary = start_redis(&[]);
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port())
        .query_async(&mut conn)
        .await
        .unwrap();
    let r = app.post("/cache", json!({"key": "k", "value": 1})).await;
    r.assert_problem(503, None);
    assert_eq!(r.header("retry-after"), "1", "{r:?}");
    let () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut conn)
        .await
        .unwrap();
    let r = app.post("/cache", json!({"key": "k", "value": 1})).await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test]
async fn a_key_of_the_wrong_type_is_a_409_naming_it_not_a_crash() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    // Someone else wrote a list where the cache keeps hashes (or strings), and a string where
    // a profile (a hash) belongs: each read is a 409 naming it (tests/cache_conditional.rs
    // has the cache's other cases), never Redis's own words, and DELETE removes it.
    let () = conn.rpush("demo_api:cache:k", "v").await.unwrap();
    let () = conn.set("demo_api:user:u", "not a hash").await.unwrap();
    let r = app.get("/cache/k").await;
    r.assert_problem(409, None);
    assert!(!r.body.to_string().contains("WRONGTYPE"), "{r:?}");
    for path in ["/users/u", "/users/u?fields=name"] {
        let r = app.get(path).await;
        r.assert_problem(409, None);
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("holds a Redis string, not a profile"),
            "{r:?}"
        );
    }
    assert_eq!(app.delete("/users/u").await.status, 200);
    app.get("/users/u").await.assert_problem(404, None);
    // The lookup counters' key broken instead: not the profile's fault, a 500.
    let () = conn.set("demo_api:stats:profiles", "broken").await.unwrap();
    let () = conn.hset("demo_api:user:u2", "name", "x").await.unwrap();
    app.get("/users/u2").await.assert_problem(500, None);
    let () = conn.del("demo_api:stats:profiles").await.unwrap();
    // The API goes on.
    let r = app
        .post("/cache", json!({"key": "other", "value": 1}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test]
async fn invalid_utf8_in_a_query_is_a_400_problem() {
    let app = TestApp::new().await;
    for path in [
        "/cache?pattern=%FF",
        "/rate-limit/check?user_id=%C3%28",
        "/users/u?fields=%80",
    ] {
        let r = app.get(path).await;
        r.assert_problem(400, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_loading_its_dataset_is_a_503_then_recovers() {
    let app = app_holding_k(&["--enable-debug-command", "yes"]).await;
    let mut admin = app.redis_conn().await;
    // A dataset that takes a while to load (Redis answers LOADING meanwhile).
    // In steps: each answers well within the client's response time-out.
    for step in 0..10 {
        let () = redis::cmd("DEBUG")
            .arg("POPULATE")
            .arg(50_000)
            .arg(format!("filler{step}"))
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let mut saw_loading = None;
    for _ in 0..10 {
        let mut reloader = admin.clone();
        let reload = tokio::spawn(async move {
            let _: redis::RedisResult<()> = redis::cmd("DEBUG")
                .arg("RELOAD")
                .query_async(&mut reloader)
                .await;
        });
        while !reload.is_finished() {
            let r = read_k(&app).await;
            if r.status == 503 {
                // DEBUG RELOAD first saves, blocking Redis: those answers are time-outs.
                // LOADING comes back at once, as "not reachable".
                if !r.body["detail"].as_str().unwrap_or("").contains("in time") {
                    saw_loading = Some(r);
                    break;
                }
            }
        }
        reload.await.unwrap();
        if saw_loading.is_some() {
            break;
        }
    }
    let r = saw_loading.expect("never caught Redis loading in 10 reloads");
    r.assert_problem(503, None);
    assert_eq!(r.header("retry-after"), "1", "{r:?}");
    let deadline = Instant::now() + GUARD;
    while app.get("/cache/k").await.status != 200 {
        assert!(Instant::now() < deadline, "no recovery after the load");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
