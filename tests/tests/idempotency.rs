//! `Idempotency-Key` on every state-changing route, and the scripts that are idempotent by
//! themselves (a claim per receipt, an acquire per token): a retry after a lost answer gets
//! the first outcome and changes nothing more. Also the fencing tokens across resets and
//! fence expiry, and the lock demo's hold ending with the process or the invocation.

use std::time::Duration;

use api_tests::TestApp;
use http::Method;
use redis::AsyncCommands;
use serde_json::{Value, json};

#[tokio::test]
async fn a_retried_write_with_the_same_key_answers_its_first_outcome_once() {
    let app = TestApp::new().await;
    let put = json!({"key": "k", "value": 1, "ttl": 60});
    let r = app
        .twice(Method::POST, "/cache", Some(put.clone()), "put-1")
        .await;
    assert_eq!(r.status, 201, "{r:?}");

    // The same key for another request is refused, and changes nothing.
    let other = json!({"key": "k", "value": 2, "ttl": 60});
    app.keyed(Method::POST, "/cache", Some(other), "put-1")
        .await
        .assert_problem(422, Some("Idempotency-Key"));
    assert_eq!(app.get("/cache/k").await.body["value"], 1);

    // The record lives in the namespace, with a TTL.
    let mut conn = app.redis_conn().await;
    let records = app.keys("demo_api:idem:*").await;
    if !app.on_cluster() {
        assert_eq!(records.len(), 1, "{records:?}");
        let pttl: i64 = conn.pttl(&records[0]).await.unwrap();
        assert!(pttl > 0 && pttl <= 86_400_000, "{pttl}");
    }

    // A delete retried is the first 200 again, not a false 404.
    let r = app.twice(Method::DELETE, "/cache/k", None, "del-1").await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn every_state_changing_route_replays_and_acts_once() {
    let app = TestApp::new().await;
    let profile = json!({"user_id": "u1", "name": "A", "email": "a@example.com"});
    assert_eq!(
        app.twice(Method::POST, "/users", Some(profile), "u-c")
            .await
            .status,
        201
    );
    let patch = json!({"city": "Oslo"});
    assert_eq!(
        app.twice(Method::PATCH, "/users/u1", Some(patch), "u-p")
            .await
            .status,
        200
    );
    assert_eq!(
        app.twice(Method::DELETE, "/users/u1", None, "u-d")
            .await
            .status,
        200
    );

    let task = json!({"id": "t1", "title": "one"});
    let r = app
        .twice(Method::POST, "/queue/q", Some(task), "q-push")
        .await;
    assert_eq!(r.body["queue_length"], 1, "{r:?}");
    let batch = json!([{"id": "t2", "title": "two"}, {"id": "t3", "title": "three"}]);
    let r = app
        .twice(Method::POST, "/queue/q/batch", Some(batch), "q-batch")
        .await;
    assert_eq!(r.body["queue_length"], 3, "{r:?}");
    let r = app
        .twice(
            Method::POST,
            "/queue/q/claim?visibility=30",
            None,
            "q-claim",
        )
        .await;
    assert_eq!(r.body["task"]["id"], "t1", "{r:?}");
    assert_eq!(r.body["remaining_tasks"], 2, "claimed once: {r:?}");
    let receipt = r.body["receipt"].clone();
    let r = app
        .twice(
            Method::POST,
            "/queue/q/ack",
            Some(json!({"receipt": receipt})),
            "q-ack",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app.twice(Method::DELETE, "/queue/q", None, "q-clear").await;
    assert_eq!(r.body["deleted_count"], 2, "{r:?}");
    let r = app
        .twice(
            Method::POST,
            "/queue",
            Some(json!({"id": "d", "title": "d"})),
            "qd",
        )
        .await;
    assert_eq!(r.body["queue_length"], 1, "{r:?}");
    assert_eq!(
        app.twice(Method::DELETE, "/queue", None, "qd-clear")
            .await
            .status,
        200
    );

    let r = app
        .twice(Method::POST, "/lock/r/acquire?ttl=30", None, "l-acq")
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let token = r.body["token"].clone();
    let body = json!({"token": token, "ttl": 40});
    assert_eq!(
        app.twice(Method::POST, "/lock/r/extend", Some(body), "l-ext")
            .await
            .status,
        200
    );
    let body = json!({"token": token});
    assert_eq!(
        app.twice(Method::POST, "/lock/r/release", Some(body), "l-rel")
            .await
            .status,
        200
    );
    let r = app
        .twice(Method::POST, "/lock/demo?processing_time=0", None, "l-hold")
        .await;
    assert_eq!(r.body["released"], true, "{r:?}");

    app.post("/cache", json!({"key": "x", "value": 1})).await;
    let r = app.twice(Method::POST, "/stats/reset", None, "reset").await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_a_400_naming_it() {
    let app = TestApp::new().await;
    let put = Some(json!({"key": "k", "value": 1}));
    for bad in ["", "has space", &"x".repeat(256)] {
        app.keyed(Method::POST, "/cache", put.clone(), bad)
            .await
            .assert_problem(400, Some("Idempotency-Key"));
    }
    assert_eq!(app.get("/cache/k").await.status, 404, "nothing stored");
}

/// What the internal resend relies on: the same EVALSHA twice (as after a lost reply) claims
/// one task, not two, and acquires one grant, not "held by another".
#[tokio::test]
async fn the_claim_and_the_acquire_are_idempotent_per_receipt_and_token() {
    let app = TestApp::new().await;
    for id in ["a", "b"] {
        app.post("/queue/q", json!({"id": id, "title": id})).await;
    }
    let keys = app.state.keys.queue("q");
    let mut conn = app.redis_conn().await;
    let claim = || {
        let mut i = shared::scripts::QUEUE_CLAIM.plain.prepare_invoke();
        i.key(&keys).arg("receipt-1").arg(30_000).arg(5);
        i
    };
    let first: (String, u64, u64, String, u64) = claim().invoke_async(&mut conn).await.unwrap();
    let again: (String, u64, u64, String, u64) = claim().invoke_async(&mut conn).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first.4, 1, "one delivery, counted once");
    let pending: u64 = conn.llen(&keys[0]).await.unwrap();
    assert_eq!(pending, 1, "the second run claimed nothing more");

    let (lock, fence) = app.state.keys.lock("r");
    let acquire = || {
        let mut i = shared::scripts::LOCK_ACQUIRE.plain.prepare_invoke();
        i.key(&lock).key(&fence).arg("token-1").arg(30_000);
        i
    };
    let first: (i64, u64, String) = acquire().invoke_async(&mut conn).await.unwrap();
    let again: (i64, u64, String) = acquire().invoke_async(&mut conn).await.unwrap();
    assert_eq!(first.0, 1);
    assert_eq!(first, again, "the same grant, not 'held by another'");
}

/// Acquires and releases `res`, returning the grant's fencing token.
async fn grant(app: &TestApp) -> u64 {
    let r = app.post("/lock/res/acquire?ttl=5", json!(null)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let fence = r.body["fencing_token"].as_u64().unwrap();
    let token = r.body["token"].clone();
    let r = app.post("/lock/res/release", json!({"token": token})).await;
    assert_eq!(r.status, 200, "{r:?}");
    fence
}

#[tokio::test]
async fn fencing_tokens_only_grow_across_reset_and_fence_expiry_and_no_key_is_forever() {
    let app = TestApp::new().await;
    let f1 = grant(&app).await;
    let f2 = grant(&app).await;
    assert!(f2 > f1, "{f1} {f2}");
    let (_, fence_key) = app.state.keys.lock("res");
    let mut conn = app.redis_conn().await;
    let pttl: i64 = conn.pttl(&fence_key).await.unwrap();
    assert!(pttl > 0, "the fence key expires (PTTL {pttl})");

    assert_eq!(app.post("/stats/reset", json!(null)).await.status, 200);
    let f3 = grant(&app).await;
    assert!(f3 > f2, "after a reset: {f2} {f3}");
    // As if the fence key had expired.
    let () = conn.del(&fence_key).await.unwrap();
    let f4 = grant(&app).await;
    assert!(f4 > f3, "after the fence key expired: {f3} {f4}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_in_flight_is_released_when_the_process_stops() {
    let app = TestApp::new().await;
    let server = app.serve().await;
    let url = server.url("/lock/held?processing_time=20&ttl=30");
    let hold = tokio::spawn(async move { reqwest::Client::new().post(url).send().await });
    let (lock, _) = app.state.keys.lock("held");
    let mut conn = app.redis_conn().await;
    let mut held = false;
    for _ in 0..200 {
        if conn.exists::<_, bool>(&lock).await.unwrap() {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held, "the demo never took the lock");
    app.state.shutdown.trigger();
    let response = tokio::time::timeout(Duration::from_secs(5), hold)
        .await
        .expect("the hold did not end with the process")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["released"], true, "{body}");
    assert!(body["processing_time"].as_f64().unwrap() < 20.0, "{body}");
    assert!(
        !conn.exists::<_, bool>(&lock).await.unwrap(),
        "lock left behind"
    );
}

/// Long enough for any lock-demo invocation here (each ends by its deadline or hold).
const LIMIT: Duration = Duration::from_secs(5);

/// The lock demo `POST path?query` through the Lambda adapter, in an invocation whose
/// deadline is `deadline_ms` (milliseconds since the epoch, as the runtime gives it): the
/// answer's body, once it came (within `limit`).
async fn lock_demo_on_lambda(
    app: &TestApp,
    path: &str,
    query: &[(&str, &str)],
    deadline_ms: u64,
    limit: Duration,
) -> Value {
    use lambda_http::{Adapter, LambdaEvent, request::LambdaRequest};
    use tower::Service;
    let event = api_tests::lambda::event(
        api_tests::lambda::Source::HttpV2,
        &api_tests::lambda::Call {
            method: "POST",
            path,
            query,
            ..Default::default()
        },
    );
    let request: LambdaRequest = serde_json::from_value(event).unwrap();
    let mut context = lambda_http::Context::default();
    context.deadline = deadline_ms;
    let mut adapter = Adapter::from(shared::lambda::handler(app.router.clone()));
    let response = tokio::time::timeout(limit, adapter.call(LambdaEvent::new(request, context)))
        .await
        .expect("the hold ran past the invocation's deadline")
        .unwrap();
    let raw = serde_json::to_value(&response).unwrap();
    serde_json::from_str(raw["body"].as_str().unwrap()).unwrap()
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `cargo lambda watch` sends a fixed deadline of 600000 ms after the epoch (1970): that is
/// no deadline, and the lock demo holds for the `processing_time` asked (README: the seed's
/// curls work on port 9000 as on the runner).
#[tokio::test]
async fn a_deadline_in_the_past_does_not_cut_the_hold() {
    let app = TestApp::new().await;
    let started = std::time::Instant::now();
    let query = [("processing_time", "0.4"), ("ttl", "30")];
    let body = lock_demo_on_lambda(&app, "/lock/watched", &query, 600_000, LIMIT).await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the hold was cut short: {:?}",
        started.elapsed()
    );
    assert_eq!(body["processing_time"], 0.4, "{body}");
    assert_eq!(body["released"], true, "{body}");
}

#[tokio::test]
async fn on_lambda_a_hold_never_outlives_the_invocation() {
    let app = TestApp::new().await;
    let started = std::time::Instant::now();
    let query = [("processing_time", "20"), ("ttl", "30")];
    let deadline = epoch_ms() + 1_500;
    let body = lock_demo_on_lambda(&app, "/lock/frozen", &query, deadline, LIMIT).await;
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert_eq!(body["released"], true, "{body}");
    let (lock, _) = app.state.keys.lock("frozen");
    let mut conn = app.redis_conn().await;
    assert!(
        !conn.exists::<_, bool>(&lock).await.unwrap(),
        "lock left behind"
    );
}

/// As after a frozen Lambda container: the server closed the idle connection. A write (which
/// is never resent blindly) must still succeed: the idle check reopens the connection first.
#[tokio::test]
async fn a_write_after_the_idle_connection_was_closed_succeeds() {
    let app = TestApp::new().await;
    if app.skip_on_cluster(
        "CLIENT KILL would need every node; the single-server run covers the idle check",
    ) {
        return;
    }
    assert_eq!(
        app.post("/queue/q", json!({"id": "1", "title": "a"}))
            .await
            .status,
        201
    );
    assert!(app.kill_clients().await >= 1);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let r = app.post("/queue/q", json!({"id": "2", "title": "b"})).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["queue_length"], 2, "pushed once: {r:?}");
}

/// Redis paused past the deadline: the push answers 503 saying it may have been applied.
/// The client's retry with the same key applies it once in all: it replays the outcome when
/// the paused push ran, or applies it when the paused push never did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_write_says_it_may_have_been_applied_and_a_keyed_retry_is_safe() {
    let app = TestApp::new().await;
    if app.skip_on_cluster("CLIENT PAUSE applies to one node; the single-server run covers it") {
        return;
    }
    let mut admin = app.redis_conn().await;
    // Warm the connection and the script cache first (a script Redis has not seen yet would
    // answer NOSCRIPT after the pause, to a request that has stopped waiting: not applied).
    let warm = json!({"id": "0", "title": "warm"});
    app.keyed(Method::POST, "/queue/q", Some(warm), "warm")
        .await;
    let () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "1500", "WRITE"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let task = json!({"id": "1", "title": "paused"});
    let r = app
        .keyed(Method::POST, "/queue/q", Some(task.clone()), "push-1")
        .await;
    r.assert_problem(503, None);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("may have been applied"), "{detail}");
    assert_eq!(r.body["outcome"], "unknown", "{r:?}");
    assert_eq!(r.header("retry-after"), "1");
    // Once Redis resumes, the push it had received runs; the retry replays it.
    let mut replay = None;
    for _ in 0..100 {
        let r = app
            .keyed(Method::POST, "/queue/q", Some(task.clone()), "push-1")
            .await;
        if r.status == 201 {
            replay = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The paused push either ran when Redis resumed (the retry replays it) or never ran,
    // its connection having been replaced and closed at the deadline while Redis held it
    // (the retry applies it): once either way.
    let replay = replay.expect("the retry never succeeded");
    let len: u64 = admin.llen(&app.state.keys.queue("q")[0]).await.unwrap();
    assert_eq!(len, 2, "the push applied once: {replay:?}");
}

#[tokio::test]
async fn a_replayed_grant_whose_lock_went_to_another_is_a_409_not_a_second_holder() {
    let app = TestApp::new().await;
    let first = app
        .keyed(Method::POST, "/lock/stale/acquire?ttl=60", None, "g")
        .await;
    assert_eq!(first.status, 201, "{first:?}");
    // The grant lapses (as after its TTL) and someone else takes the lock.
    let (lock, _) = app.state.keys.lock("stale");
    let mut conn = app.redis_conn().await;
    let () = conn.del(&lock).await.unwrap();
    let other = app.post("/lock/stale/acquire?ttl=60", json!(null)).await;
    assert_eq!(other.status, 201, "{other:?}");
    let retry = app
        .keyed(Method::POST, "/lock/stale/acquire?ttl=60", None, "g")
        .await;
    retry.assert_problem(409, None);
    assert_eq!(
        retry.body["fencing_token"], first.body["fencing_token"],
        "{retry:?}"
    );
    let detail = format!(
        "this Idempotency-Key's grant on 'stale' (fencing token {}) has expired or was \
         released; acquire again with a new key",
        first.body["fencing_token"]
    );
    assert_eq!(retry.body["detail"], detail.as_str(), "{retry:?}");
    assert_eq!(retry.body["resource"], "stale", "{retry:?}");
    // While the recorded grant still holds, the retry is a plain replay.
    let again = app
        .keyed(Method::POST, "/lock/held/acquire?ttl=60", None, "h")
        .await;
    let replay = app
        .keyed(Method::POST, "/lock/held/acquire?ttl=60", None, "h")
        .await;
    assert_eq!(again.body, replay.body);
    assert_eq!(replay.header("idempotent-replayed"), "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_racing_the_running_demo_is_a_409_then_replays_its_outcome() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let path = "/lock/race?processing_time=1&wait_ms=3000";
    let first = {
        let app = app.clone();
        tokio::spawn(async move { app.keyed(Method::POST, path, None, "demo").await })
    };
    let (lock, _) = app.state.keys.lock("race");
    let mut conn = app.redis_conn().await;
    for _ in 0..200 {
        if conn.exists::<_, bool>(&lock).await.unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let racing = app.keyed(Method::POST, path, None, "demo").await;
    racing.assert_problem(409, None);
    assert!(
        racing.body["detail"]
            .as_str()
            .unwrap()
            .contains("in progress"),
        "{racing:?}"
    );
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    let after = app.keyed(Method::POST, path, None, "demo").await;
    assert_eq!(
        after.body, first.body,
        "the retry answers the first outcome"
    );
    assert_eq!(after.header("idempotent-replayed"), "true");
    // One demo ran: a second would have left a later fence.
    let (_, fence) = app.state.keys.lock("race");
    let last: u64 = conn.get(&fence).await.unwrap();
    assert_eq!(last, first.body["fencing_token"].as_u64().unwrap());
}

#[tokio::test]
async fn a_reset_keeps_idempotency_records_so_retries_still_replay() {
    let app = TestApp::new().await;
    let task = json!({"id": "1", "title": "a"});
    let r = app
        .keyed(Method::POST, "/queue/rq", Some(task.clone()), "push")
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(app.post("/stats/reset", json!(null)).await.status, 200);
    let retry = app
        .keyed(Method::POST, "/queue/rq", Some(task), "push")
        .await;
    assert_eq!(retry.header("idempotent-replayed"), "true", "{retry:?}");
    assert_eq!(
        app.get("/queue/rq/all").await.body["queue_length"],
        0,
        "not queued again"
    );
    // A delete of something missing changed nothing: not recorded, so not replayed.
    let first = app
        .keyed(Method::DELETE, "/cache/missing", None, "del")
        .await;
    first.assert_problem(404, None);
    let second = app
        .keyed(Method::DELETE, "/cache/missing", None, "del")
        .await;
    second.assert_problem(404, None);
    assert_eq!(second.header("idempotent-replayed"), "");
}

/// The cap covers the wait for the lock as well as the hold.
#[tokio::test]
async fn on_lambda_a_hold_after_a_wait_still_ends_before_the_deadline() {
    let app = TestApp::new().await;
    let other = app.post("/lock/busy/acquire?ttl=1", json!(null)).await;
    assert_eq!(other.status, 201, "{other:?}");
    let started = std::time::Instant::now();
    let query = [("processing_time", "3"), ("wait_ms", "2000"), ("ttl", "10")];
    let deadline = epoch_ms() + 2_500;
    let body = lock_demo_on_lambda(&app, "/lock/busy", &query, deadline, LIMIT).await;
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "ran {:?}, past the invocation's deadline",
        started.elapsed()
    );
    assert_eq!(body["released"], true, "{body}");
}
