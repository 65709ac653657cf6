//! Stats, reset and health (README "Stats and health"), against a real redis-server per test.

use api_tests::{TestApp, start_redis};
use redis::AsyncCommands;
use serde_json::{Value, json};

#[tokio::test]
async fn stats_reports_redis_and_the_profile_hit_rate() {
    let app = TestApp::new().await;
    app.post("/cache", json!({"key": "a", "value": 1})).await;
    app.post(
        "/users",
        json!({"user_id": "u", "name": "U", "email": "u@example.com"}),
    )
    .await;
    for _ in 0..3 {
        app.get("/users/u").await;
    }
    app.get("/users/nobody").await;
    let mut conn = app.redis_conn().await;
    let () = conn.set("someone_else:key", "x").await.unwrap();

    let r = app.get("/stats").await;
    assert_eq!(r.status, 200, "{r:?}");
    let s = &r.body;
    assert_eq!(s["connected"], true);
    // cache:a, user:u, stats:profiles, plus the foreign key.
    assert_eq!(s["total_keys"], 4);
    assert_eq!(s["prefix_keys"], 3);
    assert_eq!(s["cache_hits"], 3);
    assert_eq!(s["cache_misses"], 1);
    assert_eq!(s["hit_rate"], 0.75);
    assert!(
        s["redis_version"]
            .as_str()
            .unwrap()
            .starts_with(char::is_numeric)
    );
    assert!(s["used_memory_bytes"].as_u64().unwrap() > 0);
    assert!(
        s["memory_used"]
            .as_str()
            .unwrap()
            .ends_with(['B', 'K', 'M', 'G'])
    );
    assert!(s["uptime_seconds"].is_u64());
    assert!(s["operations_per_second"].is_u64());
    assert!(s["connected_clients"].as_u64().unwrap() >= 1);
    assert_eq!(s["maxmemory_policy"], "noeviction");
    assert_eq!(s["warnings"], json!([]));
}

#[tokio::test]
async fn hit_rate_is_null_before_any_lookup() {
    let app = TestApp::new().await;
    let r = app.get("/stats").await;
    assert_eq!(r.body["hit_rate"], Value::Null);
    assert_eq!(r.body["cache_hits"], 0);
    assert_eq!(r.body["prefix_keys"], 0);
}

#[tokio::test]
async fn an_evicting_memory_policy_is_flagged() {
    let redis = start_redis(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let app = TestApp::with_redis(redis).await;
    let r = app.get("/stats").await;
    assert_eq!(r.body["maxmemory_policy"], "allkeys-lru");
    assert_eq!(r.body["maxmemory_bytes"], 64 * 1024 * 1024);
    let warnings = r.body["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{r:?}");
    assert!(warnings[0].as_str().unwrap().contains("noeviction"));
}

#[tokio::test]
async fn prefix_count_is_bounded_unless_asked_for_exactly() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let mut pipe = redis::pipe();
    for i in 0..30_000 {
        pipe.set(format!("demo_api:cache:{i}"), "1").ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    let r = app.get("/stats").await;
    assert_eq!(r.body["total_keys"], 30_000);
    assert_eq!(
        r.body["prefix_keys"],
        Value::Null,
        "a default /stats must not scan 30k keys"
    );
    let r = app.get("/stats?exact=true").await;
    assert_eq!(r.body["prefix_keys"], 30_000);
    app.get("/stats?exact=maybe")
        .await
        .assert_problem(422, Some("exact"));
}

#[tokio::test]
async fn reset_deletes_every_key_under_the_prefix_and_nothing_else() {
    // A prefix with glob characters: unescaped, "dem?:*" would also match "demo:x".
    let app = TestApp::with_config(|c| c.key_prefix = "dem?:".into()).await;
    app.post("/cache", json!({"key": "a", "value": 1})).await;
    app.post(
        "/users",
        json!({"user_id": "u", "name": "U", "email": "u@example.com"}),
    )
    .await;
    app.get("/users/u").await;
    app.post("/queue/q", json!({"id": "1", "title": "t"})).await;
    app.post("/lock/r/acquire", json!(null)).await;
    app.get("/rate-limit/check?user_id=u").await;
    let mut conn = app.redis_conn().await;
    let foreign = ["demo:x", "dem:x", "other:dem?:x", "DEM?:x", "dem?x"];
    for key in foreign {
        let () = conn.set(key, "keep me").await.unwrap();
    }
    let mut pipe = redis::pipe();
    for i in 0..2500 {
        pipe.set(format!("dem?:cache:bulk{i}"), "1").ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();

    let r = app.post("/stats/reset", json!(null)).await;
    assert_eq!(r.status, 200, "{r:?}");
    // cache:a, user:u, stats:profiles, queue, lock + fence, rate-limit counter and its
    // caller's index, bulk.
    assert_eq!(r.body["keys_deleted"], 8 + 2500);
    assert!(r.body["message"].is_string());
    let left = app.keys("*").await;
    let mut expected: Vec<String> = foreign.iter().map(|k| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(
        app.post("/stats/reset", json!(null)).await.body["keys_deleted"],
        0
    );
    // A count of one in the singular.
    app.post("/cache", json!({"key": "one", "value": 1})).await;
    let r = app.post("/stats/reset", json!(null)).await;
    let message = r.body["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Deleted 1 key with the "), "{r:?}");
}

#[tokio::test]
async fn health_reports_ping_latency() {
    let app = TestApp::new().await;
    let r = app.get("/health").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["redis"], "up");
    assert!(r.body["latency_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_stats_and_health_are_503_then_recover() {
    let mut app = TestApp::new().await;
    if app.skip_on_cluster("it stops the one Redis") {
        return;
    }
    app.redis.stop();
    let r = app.get("/stats").await;
    r.assert_problem(503, None);
    assert_eq!(r.body["connected"], false);
    assert_eq!(r.header("retry-after"), "1");
    let r = app.get("/health").await;
    r.assert_problem(503, None);
    assert_eq!(r.body["redis"], "down");
    app.post("/stats/reset", json!(null))
        .await
        .assert_problem(503, None);

    app.redis.restart().unwrap();
    let healthy = app.until_status("GET /health", "", 200, 100).await;
    assert!(healthy, "health did not recover");
    assert_eq!(app.get("/stats").await.body["connected"], true);
}
