//! Redis Cluster on real servers (3 primaries, 3 replicas, `redis-cli --cluster create`):
//! what only a cluster has. Every endpoint is proven on a cluster by the API tests run with
//! `API_TEST_REDIS=cluster` (scripts/test.sh); here: listing and counting across primaries,
//! a resharding under traffic, a primary killed under traffic, and a mode that does not match
//! the servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use api_tests::{TestApp, start_redis, test_config, topology::RedisCluster};
use serde_json::json;
use shared::{AppState, Config};

async fn cluster_app() -> TestApp {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(Some("pw")))
        .await
        .unwrap();
    TestApp::on_a_cluster(cluster, |_| {})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_counting_and_reset_cover_every_primary() {
    let app = cluster_app().await;
    for i in 0..300 {
        let r = app
            .post("/cache", json!({"key": format!("k{i}"), "value": i}))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    app.post(
        "/users",
        json!({"user_id": "u1", "name": "Ann", "email": "ann@example.com"}),
    )
    .await;
    app.get("/users/u1").await;
    app.get("/users/nobody").await;

    let r = app.get("/stats?exact=true").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["mode"], "cluster");
    assert_eq!(r.body["nodes"], 3, "three primaries: {r:?}");
    // 300 entries, a profile and the hit counters: spread over the three primaries.
    assert_eq!(r.body["total_keys"], 302, "{r:?}");
    assert_eq!(r.body["prefix_keys"], 302, "{r:?}");
    assert_eq!(r.body["cache_hits"], 1);
    assert_eq!(r.body["cache_misses"], 1);

    // Cursor pages walk one primary after the other; every key comes back exactly once.
    let (listed, _) = app.list_cache("count=40").await;
    let seen: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(seen.len(), listed.len(), "a key listed twice: {listed:?}");
    assert_eq!(seen.len(), 300);

    let r = app.post("/stats/reset", json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["keys_deleted"], 302, "{r:?}");
    let mut conn = app.redis_conn().await;
    let left: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(left, 0, "DBSIZE summed over the primaries");
}

/// Moves 2,000 slots from one primary to another (`redis-cli --cluster reshard`: keys
/// migrate one by one, clients meet `ASK` and `MOVED`) while 8 clients write, read, lock,
/// queue and rate-limit. Not one request may fail, and nothing written may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resharding_under_traffic_is_transparent() {
    let app = Arc::new(cluster_app().await);
    for i in 0..500 {
        let r = app
            .post(
                "/cache",
                json!({"key": format!("seed{i}"), "value": "x".repeat(2000)}),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let (from, to) = match &app.redis {
        api_tests::TestRedis::Cluster(c) => (c.node_id(0), c.node_id(1)),
        _ => unreachable!(),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (app, stop, done) = (app.clone(), stop.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) || n < 20 {
                let key = format!("c{c}n{n}");
                let checks = [
                    (
                        app.post("/cache", json!({"key": key, "value": n})).await,
                        201,
                    ),
                    (app.get(&format!("/cache/{key}")).await, 200),
                    (app.get(&format!("/cache/seed{}", n % 500)).await, 200),
                    (
                        app.get(&format!("/rate-limit/check?user_id={key}&limit=100"))
                            .await,
                        200,
                    ),
                    (
                        app.post(&format!("/lock/{key}?processing_time=0"), json!(null))
                            .await,
                        200,
                    ),
                    (
                        app.post(&format!("/queue/q{c}"), json!({"id": key, "title": "t"}))
                            .await,
                        201,
                    ),
                ];
                for (r, want) in checks {
                    if r.status.as_u16() != want {
                        failures.push(format!("{r:?}"));
                    }
                }
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            (n, failures)
        }));
    }

    let before = done.load(Ordering::Relaxed);
    let cluster_app = app.clone();
    let out = tokio::task::spawn_blocking(move || match &cluster_app.redis {
        api_tests::TestRedis::Cluster(c) => c.cli(
            "reshard",
            &[
                "--cluster-from",
                &from,
                "--cluster-to",
                &to,
                "--cluster-slots",
                "2000",
                "--cluster-pipeline",
                "10",
            ],
        ),
        _ => unreachable!(),
    })
    .await
    .unwrap();
    assert!(out.contains("Moving slot"), "{out}");
    let during = done.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    assert!(during > 0, "the traffic ran while the slots moved");
    eprintln!("resharding: {during} rounds of 6 requests ran while 2,000 slots moved");

    let mut rounds = 0;
    for client in clients {
        let (n, failures) = client.await.unwrap();
        rounds += n;
        assert!(
            failures.is_empty(),
            "{} failures, first: {}",
            failures.len(),
            failures[0]
        );
    }
    assert!(rounds >= 160);
    for i in 0..500 {
        assert_eq!(app.get(&format!("/cache/seed{i}")).await.status, 200);
    }
    let r = app.get("/queue/q0").await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn a_mode_that_does_not_match_the_servers_says_what_to_set() {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(None))
        .await
        .unwrap();
    // Standalone settings on a cluster node.
    let e = AppState::connect(test_config(&cluster.url()))
        .await
        .err()
        .expect("a cluster node is refused in standalone mode");
    assert!(e.to_string().contains("REDIS_MODE=cluster"), "{e}");

    // Cluster settings on a plain Redis.
    let plain = start_redis(&[]);
    let url = plain.url();
    let config = Config::from_lookup(move |name| match name {
        "REDIS_URL" => Some(url.clone()),
        "REDIS_MODE" => Some("cluster".into()),
        "REDIS_CONNECT_TIMEOUT_MS" => Some("250".into()),
        "REDIS_RESPONSE_TIMEOUT_MS" => Some("1000".into()),
        _ => None,
    })
    .unwrap();
    let e = AppState::connect(config)
        .await
        .err()
        .expect("a plain Redis is refused in cluster mode");
    assert!(e.to_string().contains("REDIS_MODE=standalone"), "{e}");
}

/// A primary killed under traffic: requests for its slots are 503 problems with
/// `Retry-After`, each answered within `REDIS_RESPONSE_TIMEOUT_MS` plus a margin (never a
/// hang, never another 5xx), the other primaries' keys keep working, and once its replica
/// has taken over (node timeout 2 s here) every key is writable again, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_stopped_gives_timely_503s_then_the_failover_recovers() {
    let mut app = cluster_app().await;
    let keys: Vec<String> = (0..60).map(|i| format!("f{i}")).collect();
    for key in &keys {
        let r = app.post("/cache", json!({"key": key, "value": 1})).await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let bound = app.state.config.response_timeout + std::time::Duration::from_millis(1500);
    match &mut app.redis {
        api_tests::TestRedis::Cluster(cluster) => {
            // Its replica must have synced, or it would refuse to take over.
            for node in &cluster.nodes {
                let url = format!("redis://:pw@127.0.0.1:{}/0", node.port());
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                loop {
                    let mut conn = redis::Client::open(url.as_str())
                        .unwrap()
                        .get_multiplexed_async_connection()
                        .await
                        .unwrap();
                    let info: String = redis::cmd("INFO")
                        .arg("replication")
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    if info.contains("role:master") || info.contains("master_link_status:up") {
                        break;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "a replica never synced: {info}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            let node = &mut cluster.nodes[0];
            tokio::task::block_in_place(|| node.stop());
        }
        _ => unreachable!("cluster_app runs on a cluster"),
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut refused, mut served, mut rounds) = (0, 0, 0);
    loop {
        let mut all_ok = true;
        for key in &keys {
            let started = std::time::Instant::now();
            let r = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                app.post("/cache", json!({"key": key, "value": 2})),
            )
            .await
            .expect("a request hung");
            let took = started.elapsed();
            match r.status.as_u16() {
                201 => served += 1,
                503 => {
                    refused += 1;
                    all_ok = false;
                    assert_eq!(r.header("retry-after"), "1", "{r:?}");
                    r.assert_problem(503, None);
                    assert!(took <= bound, "a 503 took {took:?} (bound {bound:?})");
                }
                _ => panic!("with a primary down: {r:?}"),
            }
        }
        rounds += 1;
        if all_ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "keys still refused 60 s after the primary stopped ({refused} refused, {served} served)"
        );
    }
    assert!(
        refused > 0,
        "no request was refused with a primary down ({served} served in {rounds} rounds)"
    );
    assert!(
        served > refused / 10,
        "the other primaries' keys stopped working too"
    );
    // Every key readable after the failover.
    for key in &keys {
        let r = app.get(&format!("/cache/{key}")).await;
        assert!(r.status == 200 || r.status == 404, "{r:?}");
    }
}

/// A command redirected with ASK (its slot migrating, its key not on the old owner yet) is
/// sent as ASKING + the command to the new owner: two replies. Reading only one used to
/// leave the command's reply on that node's connection, where the next request there took
/// it for its own (a SET's `OK` answered to an UNLINK: a 500, or another request's data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_redirect_leaves_no_reply_behind_for_the_next_request() {
    let app = cluster_app().await;
    let api_tests::TestRedis::Cluster(cluster) = &app.redis else {
        unreachable!()
    };
    let on_node = |i: usize, cmd: &mut redis::Cmd| -> redis::RedisResult<redis::Value> {
        let port = cluster.nodes[i].port();
        let mut conn =
            redis::Client::open(format!("redis://:pw@127.0.0.1:{port}/0"))?.get_connection()?;
        cmd.query(&mut conn)
    };
    // The primary that owns a key: the one that does not answer MOVED.
    let owner = |key: &str| {
        (0..3)
            .find(|&i| on_node(i, redis::cmd("EXISTS").arg(key)).is_ok())
            .expect("an owner among the primaries")
    };
    let full = app.state.keys.cache("ask-me");
    let from = owner(&full);
    let to = (from + 1) % 3;
    // Keys the new owner holds already, to delete while the redirected writes are answered.
    let others: Vec<String> = (0..5000)
        .map(|i| format!("there{i}"))
        .filter(|k| owner(&app.state.keys.cache(k)) == to)
        .take(20)
        .collect();
    // Keys of the migrating slot, absent on the old owner: each write is redirected (ASK).
    let slot = shared::keys::slot(full.as_bytes());
    let asked: Vec<String> = (0..400_000)
        .map(|i| format!("ask{i}"))
        .filter(|k| shared::keys::slot(app.state.keys.cache(k).as_bytes()) == slot)
        .take(12)
        .collect();
    assert_eq!(asked.len(), 12);

    let slot = slot.to_string();
    let (from_id, to_id) = (cluster.node_id(from), cluster.node_id(to));
    on_node(
        to,
        redis::cmd("CLUSTER").arg(&["SETSLOT", &slot, "IMPORTING", &from_id]),
    )
    .unwrap();
    on_node(
        from,
        redis::cmd("CLUSTER").arg(&["SETSLOT", &slot, "MIGRATING", &to_id]),
    )
    .unwrap();

    // Redirected writes and deletes on the new owner's connection, all at once: each request
    // gets its own reply (SET's 201, UNLINK's 200), none another's.
    let app = std::sync::Arc::new(app);
    for _round in 0..5 {
        for other in &others {
            let r = app.post("/cache", json!({"key": other, "value": 1})).await;
            assert_eq!(r.status, 201, "{r:?}");
        }
        concurrently(&app, &asked, &others).await;
    }
}

/// Each write of `asked` at the same time as a delete of the matching key of `others`.
async fn concurrently(app: &std::sync::Arc<TestApp>, asked: &[String], others: &[String]) {
    let mut all = tokio::task::JoinSet::new();
    for (key, other) in asked.iter().cloned().zip(others.iter().cloned()) {
        let app = app.clone();
        all.spawn(async move {
            let path = format!("/cache/{other}");
            let (written, deleted) = tokio::join!(
                app.post("/cache", json!({"key": key, "value": 2})),
                app.delete(&path)
            );
            assert_eq!(written.status, 201, "{written:?}");
            assert_eq!(deleted.status, 200, "{deleted:?}");
            assert_eq!(deleted.body["key"], other);
        });
    }
    all.join_all().await;
}
