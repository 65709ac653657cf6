//! The fencing demo (README "Fencing, live"): the store the lock protects keeps the highest
//! fencing token it has seen and refuses older ones and tokens the lock never issued.

use std::sync::Arc;

use api_tests::{Reply, TestApp};
use http::Method;
use serde_json::{Value, json};

/// Acquires the lock on `resource` (waiting up to 10 s) and returns (token, fencing token).
async fn grant(app: &TestApp, resource: &str, ttl: u64) -> (String, u64) {
    let r = app
        .post(
            &format!("/lock/{resource}/acquire?ttl={ttl}&wait_ms=10000"),
            json!(null),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let token = r.body["token"].as_str().unwrap().to_owned();
    (token, r.body["fencing_token"].as_u64().unwrap())
}

async fn release(app: &TestApp, resource: &str, token: &str) {
    let r = app
        .post(
            &format!("/lock/{resource}/release"),
            json!({"token": token}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

async fn write(app: &TestApp, resource: &str, fencing_token: u64, value: Value) -> Reply {
    let body = json!({"fencing_token": fencing_token, "value": value});
    app.call(
        Method::PUT,
        &format!("/lock/{resource}/protected"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn protected_writes_take_the_newest_token_and_refuse_stale_and_unissued_ones() {
    let app = TestApp::new().await;
    app.get("/lock/acct/protected")
        .await
        .assert_problem(404, None);
    let (a, older) = grant(&app, "acct", 30).await;
    release(&app, "acct", &a).await;
    let (b, newer) = grant(&app, "acct", 30).await;
    assert!(newer > older);

    // The first write is the highest seen so far, even from the older grant.
    let r = write(&app, "acct", older, json!("a")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["fencing_token"], older);
    let r = write(&app, "acct", newer, json!({"balance": 42})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["value"], json!({"balance": 42}));
    assert!(r.body["ttl_ms"].as_u64().unwrap() > 86_400_000, "{r:?}");

    // Older than the highest seen: refused, naming it.
    let r = write(&app, "acct", older, json!("late")).await;
    r.assert_problem(409, None);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.starts_with("stale fencing token"), "{detail}");
    assert_eq!(r.body["highest_fencing_token"], newer, "{r:?}");
    assert_eq!(r.body["fencing_token"], older, "{r:?}");

    // The same token again (a retry of its write): accepted.
    let r = write(&app, "acct", newer, json!("retried")).await;
    assert_eq!(r.status, 200, "{r:?}");

    // Tokens the lock never issued: above the counter, and 0.
    for never in [newer + 1, 0] {
        let r = write(&app, "acct", never, json!("forged")).await;
        r.assert_problem(409, None);
        assert_eq!(r.body["fencing_counter"], newer, "{r:?}");
        assert!(
            r.body["detail"].as_str().unwrap().contains("never issued"),
            "{r:?}"
        );
    }
    // A resource never locked has no counter: every token is unissued.
    let r = write(&app, "never-locked", older, json!("x")).await;
    r.assert_problem(409, None);
    assert_eq!(r.body["fencing_counter"], 0, "{r:?}");

    let r = app.get("/lock/acct/protected").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["value"], "retried");
    assert_eq!(r.body["fencing_token"], newer);
    assert_eq!(r.body["resource"], "acct");
    release(&app, "acct", &b).await;

    // The record lives as long as the fencing counter: never past it, never forever.
    // (Absolute expiry times: two PTTLs read one after the other differ by the time between.)
    let mut conn = app.redis_conn().await;
    let mut expiry = async |key: &str| -> i64 {
        redis::cmd("PEXPIRETIME")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    let record = expiry("demo_api:lock:{acct}:protected").await;
    let fence = expiry("demo_api:lock:{acct}:fence").await;
    assert!(
        record > 0 && record <= fence,
        "record expires at {record} ms, fence at {fence} ms"
    );
}

#[tokio::test]
async fn protected_write_bodies_are_checked() {
    let app = TestApp::new().await;
    app.assert_422s(
        r#"
        PUT /lock/r/protected | {"value": 1} | fencing_token
        PUT /lock/r/protected | {"fencing_token": 1} | value
        PUT /lock/r/protected | {"fencing_token": -1, "value": 1} | fencing_token
        PUT /lock/r/protected | {"fencing_token": 1.5, "value": 1} | fencing_token
        PUT /lock/r/protected | {"fencing_token": "1", "value": 1} | fencing_token
        PUT /lock/r/protected | {"fencing_token": 1, "value": 1, "x": 2} | x
        "#,
    )
    .await;
}

/// Kleppmann's scenario: holder A pauses past its lock's TTL, B acquires and writes, A
/// wakes up and writes: A's write must be refused.
#[tokio::test]
async fn a_paused_holders_late_write_is_refused() {
    let app = TestApp::new().await;
    let (a, a_fence) = grant(&app, "ledger", 1).await;
    // A pauses (GC, swap): its one-second lock expires meanwhile.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.get("/lock/ledger").await.body["locked"] != false {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (b, b_fence) = grant(&app, "ledger", 30).await;
    assert!(b_fence > a_fence);
    let r = write(&app, "ledger", b_fence, json!("B's write")).await;
    assert_eq!(r.status, 200, "{r:?}");
    // A wakes up, still believing it holds the lock.
    let r = write(&app, "ledger", a_fence, json!("A's late write")).await;
    r.assert_problem(409, None);
    assert_eq!(r.body["highest_fencing_token"], b_fence, "{r:?}");
    app.post("/lock/ledger/release", json!({"token": a}))
        .await
        .assert_problem(409, None);
    let r = app.get("/lock/ledger/protected").await;
    assert_eq!(r.body["value"], "B's write", "{r:?}");
    assert_eq!(r.body["fencing_token"], b_fence, "{r:?}");
    release(&app, "ledger", &b).await;
}

/// 64 writers with 64 grants' tokens, all at once in shuffled order: the newest token's
/// write is accepted and stays; every refusal names a token newer than its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_protected_writes_keep_the_newest() {
    let app = Arc::new(TestApp::new().await);
    let mut tokens = Vec::new();
    for _ in 0..64 {
        let (token, fence) = grant(&app, "hot-store", 30).await;
        release(&app, "hot-store", &token).await;
        tokens.push(fence);
    }
    let newest = *tokens.iter().max().unwrap();
    // A fixed shuffle: odd positions first, then even ones reversed.
    let order: Vec<u64> = tokens
        .iter()
        .skip(1)
        .step_by(2)
        .chain(tokens.iter().step_by(2).rev())
        .copied()
        .collect();
    let order = Arc::new(order);
    let set = api_tests::spawn_each(&app, 64, move |app, i| {
        let token = order[i];
        async move { (token, write(&app, "hot-store", token, json!(token)).await) }
    });
    for (token, r) in set.join_all().await {
        match r.status.as_u16() {
            200 => {}
            409 => assert!(
                r.body["highest_fencing_token"].as_u64().unwrap() > token,
                "{r:?}"
            ),
            _ => panic!("{r:?}"),
        }
        if token == newest {
            assert_eq!(r.status, 200, "the newest token was refused: {r:?}");
        }
    }
    let r = app.get("/lock/hot-store/protected").await;
    assert_eq!(r.body["fencing_token"], newest, "{r:?}");
    assert_eq!(r.body["value"], newest, "{r:?}");
}
