//! `GET /stats/patterns` (README "Observability"): the queues' lengths, the locks held and
//! the semaphores' holders, found by a bounded SCAN walked with a cursor. Also run on a
//! cluster (`API_TEST_REDIS=cluster`, scripts/test.sh), where the cursor visits every primary.

use std::collections::BTreeMap;

use api_tests::TestApp;
use redis::AsyncCommands;
use serde_json::{Value, json};

/// Walks `/stats/patterns` with `count` to the end: every answer's queues, locks and
/// semaphores by name (a later answer's figures replace an earlier one's), and how many
/// answers it took.
async fn walk(app: &TestApp, count: u64) -> (BTreeMap<String, Value>, usize) {
    let mut found = BTreeMap::new();
    let mut cursor = 0u64;
    for page in 1..=10_000 {
        let r = app
            .get(&format!("/stats/patterns?count={count}&cursor={cursor}"))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        for (list, name) in [
            ("queues", "name"),
            ("locks", "resource"),
            ("semaphores", "name"),
        ] {
            for item in r.body[list].as_array().unwrap() {
                let key = format!("{list}/{}", item[name].as_str().unwrap());
                found.insert(key, item.clone());
            }
        }
        cursor = r.body["cursor"].as_u64().unwrap();
        if cursor == 0 {
            return (found, page);
        }
    }
    panic!("the cursor walk did not end");
}

#[tokio::test]
async fn queues_locks_and_semaphores_are_reported_with_their_figures() {
    let app = TestApp::new().await;
    for id in ["a", "b", "c", "d", "e", "f", "g"] {
        let r = app
            .post("/queue/jobs", json!({"id": id, "title": id}))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    // Two claimed (processing), one claimed on its last delivery and nacked (dead), three
    // scheduled for later, four left pending: every figure differs from the others.
    for _ in 0..2 {
        let r = app.post("/queue/jobs/claim", json!(null)).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = app
        .post("/queue/jobs/claim?max_deliveries=1", json!(null))
        .await;
    let r = app
        .post("/queue/jobs/nack", json!({"receipt": r.body["receipt"]}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for id in ["s1", "s2", "s3"] {
        let r = app
            .post(
                "/queue/jobs?delay_ms=600000",
                json!({"id": id, "title": id}),
            )
            .await;
        assert_eq!(r.status, 202, "{r:?}");
    }
    let r = app
        .post("/queue/a:dead", json!({"id": "x", "title": "x"}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");

    let r = app.post("/lock/ledger/acquire?ttl=60", json!(null)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let fencing_token = r.body["fencing_token"].clone();
    // Acquired and released: its fencing counter stays, but it is not held.
    let r = app.post("/lock/gone/acquire?ttl=60", json!(null)).await;
    app.post("/lock/gone/release", json!({"token": r.body["token"]}))
        .await;
    let r = app
        .post("/semaphore/pool/acquire?permits=3&ttl=60", json!(null))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    // Keys of another prefix that look like ours are never reported.
    let mut conn = app.redis_conn().await;
    let () = conn.rpush("other:queue:{jobs}", "x").await.unwrap();
    let () = conn.set("other:lock:{ledger}", "x").await.unwrap();

    let (found, _) = walk(&app, 1000).await;
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        [
            "locks/ledger",
            "queues/a:dead",
            "queues/jobs",
            "semaphores/pool"
        ],
        "{found:#?}"
    );
    let jobs = &found["queues/jobs"];
    assert_eq!(
        (
            &jobs["pending"],
            &jobs["processing"],
            &jobs["dead"],
            &jobs["scheduled"]
        ),
        (&json!(4), &json!(2), &json!(1), &json!(3)),
        "{jobs}"
    );
    assert_eq!(found["queues/a:dead"]["pending"], 1);
    let ledger = &found["locks/ledger"];
    let ttl = ledger["ttl_ms"].as_u64().unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ledger}");
    assert_eq!(ledger["fencing_token"], fencing_token);
    let pool = &found["semaphores/pool"];
    assert_eq!((&pool["holders"], &pool["permits"]), (&json!(1), &json!(3)));
}

#[tokio::test]
async fn a_small_count_walks_every_key_by_cursor() {
    let app = TestApp::new().await;
    for i in 0..60 {
        let r = app
            .post(&format!("/queue/q{i}"), json!({"id": "t", "title": "t"}))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    for i in 0..30 {
        let r = app
            .post("/cache", json!({"key": format!("k{i}"), "value": i}))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let (found, pages) = walk(&app, 1).await;
    assert_eq!(found.len(), 60, "{found:#?}");
    assert!(
        pages > 1,
        "one answer covered everything: the walk was not bounded"
    );
    let (all_at_once, _) = walk(&app, 1000).await;
    assert_eq!(found, all_at_once);
}

#[tokio::test]
async fn bad_parameters_are_problems_naming_them() {
    let app = TestApp::new().await;
    for (query, field) in [
        ("cursor=x", "cursor"),
        ("cursor=-1", "cursor"),
        ("cursor=9223372036854775808", "cursor"),
        ("count=0", "count"),
        ("count=1001", "count"),
    ] {
        let r = app.get(&format!("/stats/patterns?{query}")).await;
        assert!(matches!(r.status.as_u16(), 400 | 422), "{query}: {r:?}");
        assert_eq!(r.body["field"], field, "{query}: {r:?}");
    }
}

/// A key under the prefix of a type the API never writes there (another client's) spoils only
/// its own name: that name is left out, every other one is reported, the answer is a 200.
#[tokio::test]
async fn a_key_of_another_type_leaves_out_only_its_name() {
    let app = TestApp::new().await;
    for queue in ["good", "evil"] {
        let r = app
            .post(&format!("/queue/{queue}"), json!({"id": "1", "title": "t"}))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    for resource in ["good", "evil"] {
        let r = app
            .post(&format!("/lock/{resource}/acquire?ttl=60"), json!(null))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    for name in ["good", "evil"] {
        let r = app
            .post(&format!("/semaphore/{name}/acquire?permits=2"), json!(null))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let mut conn = app.redis_conn().await;
    let [_, processing, ..] = app.state.keys.queue("evil");
    let () = conn.set(&processing, "not a list").await.unwrap();
    let (lock, _) = app.state.keys.lock("evil");
    let () = conn.del(&lock).await.unwrap();
    let () = conn.hset(&lock, "not", "a string").await.unwrap();
    let [holders, ..] = app.state.keys.semaphore("evil");
    let () = conn.del(&holders).await.unwrap();
    let () = conn.set(&holders, "not a sorted set").await.unwrap();

    let (found, _) = walk(&app, 1000).await;
    let names: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["locks/good", "queues/good", "semaphores/good"],
        "{found:?}"
    );
}
