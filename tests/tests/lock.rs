//! Distributed locks (README "Distributed locking"), against a real redis-server per test.
//! The fencing demo's protected store is in `lock/fencing.rs`.

mod lock {
    mod fencing;
}

use std::{collections::BTreeSet, sync::Arc};

use api_tests::TestApp;
use redis::AsyncCommands;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_20_concurrent_holders_exactly_one_wins() {
    let app = Arc::new(TestApp::new().await);
    let set = api_tests::spawn_each(&app, 20, |app, _| async move {
        app.post("/lock/payment_gateway?processing_time=1", json!(null))
            .await
    });
    let replies = set.join_all().await;
    let winners: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    let losers: Vec<_> = replies.iter().filter(|r| r.status == 409).collect();
    assert_eq!(winners.len(), 1, "{replies:?}");
    assert_eq!(losers.len(), 19, "{replies:?}");
    let w = &winners[0].body;
    assert_eq!(w["locked"], true);
    assert_eq!(w["resource"], "payment_gateway");
    assert_eq!(w["processing_time"], 1.0);
    assert!(w["fencing_token"].as_u64().unwrap() > 0, "{w}");
    assert_eq!(w["released"], true);
    assert!(w["message"].is_string());
    for l in losers {
        l.assert_problem(409, None);
        let retry = l.body["retry_after_ms"].as_u64().unwrap();
        assert!(retry > 0 && retry <= 30_000, "{l:?}");
    }
    // Released afterwards: free again.
    let r = app.get("/lock/payment_gateway").await;
    assert_eq!(r.body["locked"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_holder_gets_the_lock_after_release() {
    let app = Arc::new(TestApp::new().await);
    let first = {
        let app = app.clone();
        tokio::spawn(async move { app.post("/lock/r?processing_time=0.5", json!(null)).await })
    };
    // The second asks only once the first holds the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.get("/lock/r").await.body["locked"] != true {
        assert!(
            std::time::Instant::now() < deadline,
            "the first never took the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let second = app
        .post("/lock/r?processing_time=0&wait_ms=5000", json!(null))
        .await;
    let first = first.await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200, "{second:?}");
    assert!(second.body["fencing_token"].as_u64() > first.body["fencing_token"].as_u64());
}

#[tokio::test]
async fn explicit_acquire_extend_release_with_tokens() {
    let app = TestApp::new().await;
    let r = app.post("/lock/doc/acquire?ttl=30", json!(null)).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["resource"], "doc");
    assert_eq!(r.body["ttl_ms"], 30_000);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    let fence1 = r.body["fencing_token"].as_u64().unwrap();

    let r = app.get("/lock/doc").await;
    assert_eq!(r.body["locked"], true);
    assert!(r.body["ttl_ms"].as_u64().unwrap() <= 30_000);

    // Held: a second acquire is refused.
    let r = app.post("/lock/doc/acquire", json!(null)).await;
    r.assert_problem(409, None);
    assert!(r.body["retry_after_ms"].as_u64().unwrap() > 0);

    // A wrong token can neither release nor extend.
    app.post("/lock/doc/release", json!({"token": "not-mine"}))
        .await
        .assert_problem(409, None);
    app.post("/lock/doc/extend", json!({"token": "not-mine", "ttl": 100}))
        .await
        .assert_problem(409, None);
    let mut conn = app.redis_conn().await;
    let pttl: i64 = conn.pttl("demo_api:lock:{doc}").await.unwrap();
    assert!(
        pttl > 0 && pttl <= 30_000,
        "wrong token changed the lock: {pttl}"
    );

    // The holder extends it.
    let r = app
        .post("/lock/doc/extend", json!({"token": token, "ttl": 100}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["ttl_ms"], 100_000);
    let pttl: i64 = conn.pttl("demo_api:lock:{doc}").await.unwrap();
    assert!(pttl > 99_000, "{pttl}");

    // The holder releases it; a second release is a 409.
    let r = app.post("/lock/doc/release", json!({"token": token})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(app.get("/lock/doc").await.body["locked"], false);
    app.post("/lock/doc/release", json!({"token": token}))
        .await
        .assert_problem(409, None);

    // The next grant has a larger fencing token.
    let r = app.post("/lock/doc/acquire", json!(null)).await;
    assert!(r.body["fencing_token"].as_u64().unwrap() > fence1);
}

#[tokio::test]
async fn an_expired_lock_can_be_taken_again_and_its_old_token_is_void() {
    let app = TestApp::new().await;
    let r = app.post("/lock/job/acquire?ttl=60", json!(null)).await;
    let old_token = r.body["token"].as_str().unwrap().to_owned();
    let old_fence = r.body["fencing_token"].as_u64().unwrap();
    // The holder "crashes"; make its TTL run out now instead of sleeping a minute.
    let mut conn = app.redis_conn().await;
    let () = conn.pexpire("demo_api:lock:{job}", 1).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.get("/lock/job").await.body["locked"] != false {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let r = app.post("/lock/job/acquire?ttl=60", json!(null)).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(
        r.body["fencing_token"].as_u64().unwrap() > old_fence,
        "{r:?}"
    );
    app.post("/lock/job/release", json!({"token": old_token}))
        .await
        .assert_problem(409, None);
    app.post("/lock/job/extend", json!({"token": old_token}))
        .await
        .assert_problem(409, None);
    assert_eq!(app.get("/lock/job").await.body["locked"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fencing_tokens_strictly_increase_under_contention() {
    let app = Arc::new(TestApp::new().await);
    let set = api_tests::spawn_each(&app, 16, |app, _| async move {
        let mut tokens = Vec::new();
        for _ in 0..10 {
            let r = app
                .post("/lock/hot/acquire?ttl=5&wait_ms=10000", json!(null))
                .await;
            assert_eq!(r.status, 201, "{r:?}");
            tokens.push(r.body["fencing_token"].as_u64().unwrap());
            let token = r.body["token"].as_str().unwrap().to_owned();
            let r = app.post("/lock/hot/release", json!({"token": token})).await;
            assert_eq!(r.status, 200, "{r:?}");
        }
        tokens
    });
    let per_client = set.join_all().await;
    for tokens in &per_client {
        assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
    }
    let all: BTreeSet<u64> = per_client.into_iter().flatten().collect();
    assert_eq!(all.len(), 160, "every grant got its own token");
}

#[tokio::test]
async fn bad_parameters_are_422_saying_why() {
    let app = TestApp::new().await;
    let r = app.post("/lock/r?processing_time=26", json!(null)).await;
    r.assert_problem(422, Some("processing_time"));
    assert!(r.body["detail"].as_str().unwrap().contains("25"));
    let r = app
        .post("/lock/r?processing_time=5&ttl=5", json!(null))
        .await;
    r.assert_problem(422, Some("ttl"));
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("longer than processing_time")
    );
    app.assert_422s(
        r#"
        POST /lock/r?processing_time=-1 | null | processing_time
        POST /lock/r?processing_time=NaN | null | processing_time
        POST /lock/r?processing_time=20&wait_ms=6000 | null | wait_ms
        POST /lock/r?processing_time=soon | null | processing_time
        POST /lock/r?ttl=0 | null | ttl
        POST /lock/r?wait_ms=25001 | null | wait_ms
        POST /lock/r/acquire?ttl=86401 | null | ttl
        POST /lock/r/release | {} | token
        POST /lock/r/release | {"token": ""} | token
        POST /lock/r/extend | {"token": "t", "ttl": 0} | ttl
        "#,
    )
    .await;
    let long = "r".repeat(513);
    app.get(&format!("/lock/{long}"))
        .await
        .assert_problem(400, Some("resource"));
    // Nothing was locked by any of them.
    assert_eq!(app.get("/lock/r").await.body["locked"], false);
}

#[tokio::test]
async fn extend_sets_the_remaining_ttl_and_says_so() {
    let app = TestApp::new().await;
    let grant = app.post("/lock/lease/acquire?ttl=100", json!(null)).await;
    assert_eq!(grant.status, 201, "{grant:?}");
    let token = grant.body["token"].as_str().unwrap().to_owned();
    // A shorter ttl shortens the lock: the TTL is set, not added to.
    let r = app
        .post("/lock/lease/extend", json!({"token": token, "ttl": 5}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["ttl_ms"], 5000);
    let message = r.body["message"].as_str().unwrap();
    assert!(message.contains("now expires in 5 s"), "{message}");
    assert!(!message.contains("extended by"), "{message}");
    let status = app.get("/lock/lease").await;
    let left = status.body["ttl_ms"].as_u64().unwrap();
    assert!((1..=5000).contains(&left), "{status:?}");
}
