//! Sentinel mode on real servers: a primary, its replica and three Sentinels. The primary is
//! killed under light traffic; the API must answer 503 (never hang) during the switch and
//! recover by itself once the Sentinels promote the replica, without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use api_tests::{TestApp, topology::SentinelGroup};
use redis::AsyncCommands;
use serde_json::json;
use shared::{AppState, Config};

const PASSWORD: &str = "sentinel-test-pw";

fn sentinel_config(group: &SentinelGroup) -> Config {
    let sentinels = group.sentinel_addresses();
    Config::from_lookup(move |name| match name {
        // Only the password and the database count: the Sentinels say where the primary is.
        "REDIS_URL" => Some(format!("redis://:{PASSWORD}@sentinel-named-primary:6379/0")),
        "REDIS_MODE" => Some("sentinel".into()),
        "REDIS_SENTINELS" => Some(sentinels.clone()),
        "REDIS_SENTINEL_MASTER" => Some(SentinelGroup::MASTER.into()),
        "REDIS_CONNECT_TIMEOUT_MS" => Some("250".into()),
        "REDIS_RESPONSE_TIMEOUT_MS" => Some("500".into()),
        _ => None,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_recovers_by_itself_and_answers_503_meanwhile() {
    let group = tokio::task::spawn_blocking(|| SentinelGroup::start(Some(PASSWORD)))
        .await
        .unwrap();
    let old_primary = group.primary.port();
    let state = AppState::connect(sentinel_config(&group)).await.unwrap();
    let app = TestApp::from_state(state);
    let server = app.serve().await;

    // Acknowledged writes, confirmed on the replica (WAIT) so a failover cannot lose them.
    for i in 0..20 {
        let r = server
            .post("/cache", json!({"key": format!("before{i}"), "value": i}))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let mut primary = redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{old_primary}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let acked: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut primary)
        .await
        .unwrap();
    assert_eq!(acked, 1, "the replica confirmed the writes");
    drop(primary);

    // Light traffic (a write and a read every 20 ms) across the failover.
    let mut group = group;
    group.primary.stop();
    let killed = Instant::now();
    let mut unavailable = 0;
    let recovered = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no recovery within 60 s of killing the primary ({unavailable} answers were 503)"
        );
        // A hang would fail here: each request is bounded by REDIS_RESPONSE_TIMEOUT_MS.
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            server.post("/cache", json!({"key": "during", "value": unavailable})),
        )
        .await
        .expect("a request hung during the failover");
        match r.status.as_u16() {
            201 => break killed.elapsed(),
            503 => {
                r.assert_problem(503, None);
                assert!(!r.header("retry-after").is_empty(), "{r:?}");
                unavailable += 1;
            }
            _ => panic!("during the failover: {r:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let new_primary = group.primary_port().unwrap();
    assert_eq!(
        new_primary,
        group.replica.port(),
        "the replica was promoted"
    );
    eprintln!(
        "sentinel failover: API recovered {:.1} s after the primary was killed ({unavailable} \
         answers were 503 meanwhile; Sentinel down-after-milliseconds 1000)",
        recovered.as_secs_f64()
    );
    report("sentinel_failover_recovery_s", recovered.as_secs_f64());

    // Everything acknowledged before the failover is still there, and the API works on.
    for i in 0..20 {
        let r = server.get(&format!("/cache/before{i}")).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["value"], i);
    }
    let r = server.get("/rate-limit/check?user_id=after").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = server.get("/stats").await;
    assert_eq!(r.body["mode"], "sentinel", "{r:?}");

    let mut promoted =
        redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{new_primary}/0"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
    let stored: String = promoted.hget("demo_api:cache:during", "v").await.unwrap();
    assert!(!stored.is_empty());
}

#[tokio::test]
async fn a_wrong_master_name_or_a_plain_redis_is_named_at_start() {
    let group = tokio::task::spawn_blocking(|| SentinelGroup::start(None))
        .await
        .unwrap();
    // Standalone mode pointed at a Sentinel.
    let url = format!("redis://127.0.0.1:{}/0", group.sentinels[0].port());
    let e = AppState::connect(api_tests::test_config(&url))
        .await
        .err()
        .expect("a Sentinel is not a data server");
    assert!(e.to_string().contains("REDIS_MODE=sentinel"), "{e}");

    // Sentinel mode with a name the Sentinels do not monitor.
    let sentinels = group.sentinel_addresses();
    let config = Config::from_lookup(move |name| match name {
        "REDIS_MODE" => Some("sentinel".into()),
        "REDIS_SENTINELS" => Some(sentinels.clone()),
        "REDIS_SENTINEL_MASTER" => Some("nosuchmaster".into()),
        _ => None,
    })
    .unwrap();
    let e = AppState::connect(config.clone())
        .await
        .err()
        .expect("no such master");
    assert!(e.to_string().contains("REDIS_SENTINEL_MASTER"), "{e}");
    // Without the start-up check (as on Lambda), requests are 503s, not hangs.
    let app = TestApp::from_state(AppState::new(config).unwrap());
    app.get("/cache/x").await.assert_problem(503, None);
}

/// Appends a measured figure to `target/scale-out.json` lines (read for the README).
fn report(name: &str, value: f64) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scale-out.jsonl");
    let line = format!(
        "{}\n",
        json!({ "figure": name, "value": (value * 10.0).round() / 10.0 })
    );
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
}
