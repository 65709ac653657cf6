//! Counting semaphores (README "Distributed locking", semaphores), against a real
//! redis-server per test.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use api_tests::{TestApp, proxy::apps::Api};
use http::Method;
use redis::AsyncCommands;
use serde_json::{Value, json};

/// `POST /semaphore/{name}/acquire?permits=&ttl=`.
async fn acquire(app: &TestApp, name: &str, permits: u64, ttl: u64) -> api_tests::Reply {
    app.post(
        &format!("/semaphore/{name}/acquire?permits={permits}&ttl={ttl}"),
        json!(null),
    )
    .await
}

fn fencing_tokens(status: &Value) -> BTreeSet<u64> {
    status["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["fencing_token"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_64_concurrent_contenders_for_3_permits_exactly_3_win() {
    let app = Arc::new(TestApp::new().await);
    let set = api_tests::spawn_each(&app, 64, |app, _| async move {
        acquire(&app, "pool", 3, 30).await
    });
    let replies = set.join_all().await;
    let winners: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(winners.len(), 3, "{replies:?}");
    for r in replies.iter().filter(|r| r.status != 201) {
        r.assert_problem(409, None);
        let retry = r.body["retry_after_ms"].as_u64().unwrap();
        assert!(retry > 0 && retry <= 30_000, "{r:?}");
        assert_eq!(r.body["permits"], 3, "{r:?}");
    }
    let granted: BTreeSet<u64> = winners
        .iter()
        .map(|r| r.body["fencing_token"].as_u64().unwrap())
        .collect();
    assert_eq!(granted.len(), 3, "fencing tokens are per grant");
    let mut left: Vec<u64> = winners
        .iter()
        .map(|r| r.body["permits_left"].as_u64().unwrap())
        .collect();
    left.sort_unstable();
    assert_eq!(left, [0, 1, 2], "{winners:?}");
    for w in &winners {
        assert_eq!(w.body["name"], "pool");
        assert_eq!(w.body["permits"], 3);
        assert_eq!(w.body["ttl_ms"], 30_000);
        assert_eq!(w.body["token"].as_str().unwrap().len(), 32);
        assert!(
            w.body["expires_at_ms"].as_u64().unwrap() > 1_700_000_000_000,
            "{w:?}"
        );
    }
    // GET lists the three holders (by fencing token, never by their secret token).
    let status = app.get("/semaphore/pool").await;
    assert_eq!(status.status, 200, "{status:?}");
    assert_eq!(fencing_tokens(&status.body), granted, "{status:?}");
    assert_eq!(status.body["permits"], 3);
    assert_eq!(status.body["permits_left"], 0);
    for h in status.body["holders"].as_array().unwrap() {
        let ttl = h["ttl_ms"].as_u64().unwrap();
        assert!(ttl > 0 && ttl <= 30_000, "{h}");
        assert!(h.get("token").is_none(), "{h}");
    }
    // A released permit is taken by the next contender, and only one.
    let token = winners[0].body["token"].as_str().unwrap();
    let r = app
        .post("/semaphore/pool/release", json!({"token": token}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let set = api_tests::spawn_each(&app, 64, |app, _| async move {
        acquire(&app, "pool", 3, 30).await.status
    });
    let statuses = set.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn holders_expire_after_their_ttl_and_the_keys_live_as_long_as_the_longest() {
    let app = TestApp::new().await;
    let short = acquire(&app, "s", 2, 3).await;
    assert_eq!(short.status, 201, "{short:?}");
    let long = acquire(&app, "s", 2, 50).await;
    assert_eq!(long.status, 201, "{long:?}");
    acquire(&app, "s", 2, 50).await.assert_problem(409, None);
    let mut conn = app.redis_conn().await;
    for key in ["demo_api:semaphore:{s}", "demo_api:semaphore:{s}:info"] {
        let pttl: i64 = conn.pttl(key).await.unwrap();
        assert!((45_000..=50_000).contains(&pttl), "{key}: {pttl}");
    }
    // The short holder "dies": its permit is free once its TTL (3 s) has run out.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = app.get("/semaphore/s").await;
        if status.body["holders"].as_array().unwrap().len() == 1 {
            assert_eq!(status.body["permits_left"], 1, "{status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never expired: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = acquire(&app, "s", 2, 1).await;
    assert_eq!(r.status, 201, "the lapsed permit was not freed: {r:?}");
    // The lapsed holder's token holds nothing any more.
    let old = json!({"token": short.body["token"]});
    app.post("/semaphore/s/release", old.clone())
        .await
        .assert_problem(409, None);
    app.post("/semaphore/s/extend", old)
        .await
        .assert_problem(409, None);
}

#[tokio::test]
async fn release_and_extend_need_the_holders_token() {
    let app = TestApp::new().await;
    let grant = acquire(&app, "w", 2, 10).await;
    assert_eq!(grant.status, 201, "{grant:?}");
    let token = grant.body["token"].as_str().unwrap().to_owned();
    for action in ["release", "extend"] {
        let r = app
            .post(
                &format!("/semaphore/w/{action}"),
                json!({"token": "not-mine"}),
            )
            .await;
        r.assert_problem(409, None);
        assert!(
            r.body["detail"].as_str().unwrap().contains("holds none"),
            "{r:?}"
        );
    }
    let r = app
        .post("/semaphore/w/extend", json!({"token": token, "ttl": 100}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["ttl_ms"], 100_000);
    let status = app.get("/semaphore/w").await;
    assert!(
        status.body["holders"][0]["ttl_ms"].as_u64().unwrap() > 99_000,
        "{status:?}"
    );
    let mut conn = app.redis_conn().await;
    let pttl: i64 = conn.pttl("demo_api:semaphore:{w}").await.unwrap();
    assert!(
        pttl > 99_000,
        "the key's TTL did not follow the extension: {pttl}"
    );
    let r = app
        .post("/semaphore/w/release", json!({"token": token}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    app.post("/semaphore/w/release", json!({"token": token}))
        .await
        .assert_problem(409, None);
    let status = app.get("/semaphore/w").await;
    assert_eq!(status.body["holders"], json!([]), "{status:?}");
    assert_eq!(status.body["permits"], Value::Null, "{status:?}");
    // Nothing is left behind but the fencing counter (which has a TTL).
    let keys = app.keys("demo_api:semaphore:*").await;
    assert_eq!(keys, ["demo_api:semaphore:{w}:fence"], "{keys:?}");
}

#[tokio::test]
async fn the_semaphore_keeps_its_permits_while_held() {
    let app = TestApp::new().await;
    let grant = acquire(&app, "p", 2, 30).await;
    assert_eq!(grant.status, 201, "{grant:?}");
    for other in [1, 5] {
        let r = acquire(&app, "p", other, 30).await;
        r.assert_problem(409, None);
        assert_eq!(r.body["permits"], 2, "{r:?}");
    }
    let token = grant.body["token"].as_str().unwrap();
    let r = app
        .post("/semaphore/p/release", json!({"token": token}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Free again: the next acquire sets the count.
    let r = acquire(&app, "p", 5, 30).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["permits_left"], 4, "{r:?}");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_grant_and_never_a_lapsed_one() {
    let app = TestApp::new().await;
    let api = Api::InProcess(app.router.clone());
    let path = "/semaphore/i/acquire?permits=1&ttl=30";
    let first = api
        .send(Method::POST, path, None, Some("k1"))
        .await
        .unwrap();
    assert_eq!(first.status, 201, "{first:?}");
    let again = api
        .send(Method::POST, path, None, Some("k1"))
        .await
        .unwrap();
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.body["token"], first.body["token"]);
    assert_eq!(again.body["fencing_token"], first.body["fencing_token"]);
    assert_eq!(
        app.get("/semaphore/i").await.body["holders"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Extended since: a replay tells the permit's time as it is now.
    let extend = json!({"token": first.body["token"], "ttl": 100});
    let r = app.post("/semaphore/i/extend", extend).await;
    assert_eq!(r.status, 200, "{r:?}");
    let extended = api
        .send(Method::POST, path, None, Some("k1"))
        .await
        .unwrap();
    assert_eq!(extended.status, 201, "{extended:?}");
    assert!(
        extended.body["ttl_ms"].as_u64().unwrap() > 99_000,
        "{extended:?}"
    );
    assert_eq!(
        extended.body["expires_at_ms"], r.body["expires_at_ms"],
        "{extended:?}"
    );
    let status = app.get("/semaphore/i").await;
    assert_eq!(
        status.body["holders"][0]["expires_at_ms"],
        r.body["expires_at_ms"]
    );
    let r = app
        .post(
            "/semaphore/i/release",
            json!({"token": first.body["token"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let stale = api
        .send(Method::POST, path, None, Some("k1"))
        .await
        .unwrap();
    stale.assert_problem(409, None);
    assert!(
        stale.body["detail"].as_str().unwrap().contains("released"),
        "{stale:?}"
    );
}

#[tokio::test]
async fn bad_parameters_are_422_saying_why() {
    let app = TestApp::new().await;
    app.assert_422s(
        r#"
        POST /semaphore/s/acquire | null | permits
        POST /semaphore/s/acquire?permits=0 | null | permits
        POST /semaphore/s/acquire?permits=1001 | null | permits
        POST /semaphore/s/acquire?permits=2&ttl=0 | null | ttl
        POST /semaphore/s/acquire?permits=2&ttl=86401 | null | ttl
        POST /semaphore/s/acquire?permits=two | null | permits
        POST /semaphore/s/release | {} | token
        POST /semaphore/s/release | {"token": ""} | token
        POST /semaphore/s/extend | {"token": "t", "ttl": 0} | ttl
        "#,
    )
    .await;
    let long = "s".repeat(513);
    app.get(&format!("/semaphore/{long}"))
        .await
        .assert_problem(400, Some("name"));
    let status = app.get("/semaphore/s").await;
    assert_eq!(status.body["holders"], json!([]), "{status:?}");
}

/// A semaphore of one permit: its refusals read right ("its only one", "1 permit").
#[tokio::test]
async fn refusals_of_a_single_permit_read_right() {
    let app = TestApp::new().await;
    assert_eq!(acquire(&app, "solo", 1, 30).await.status, 201);
    let detail = |r: &api_tests::Reply| r.body["detail"].as_str().unwrap_or_default().to_owned();
    let full = acquire(&app, "solo", 1, 30).await;
    full.assert_problem(409, None);
    assert!(detail(&full).contains("(its only one is held)"), "{full:?}");
    let other = acquire(&app, "solo", 2, 30).await;
    other.assert_problem(409, None);
    assert!(
        detail(&other).contains("is held with 1 permit, not 2"),
        "{other:?}"
    );
}
