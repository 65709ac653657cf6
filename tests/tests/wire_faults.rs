//! Faults on the wire between the API and Redis, through the fault proxy
//! (`api_tests::proxy`): a command that ran but whose reply was lost, resets at random, a
//! slow or silent link. What must hold: a retry with the same `Idempotency-Key` gets the
//! first outcome instead of acting twice; no task lost or duplicated with claim/ack; no two
//! holders of one lock; fencing tokens only grow; never more than `limit` admitted.
//!
//! The randomized runs print their seed (`FAULT_SEED` replays one; `FAULT_ROUNDS` sets how
//! many rounds each checker runs) and name it in every assertion.

mod wire_faults {
    mod cache_checks;
    pub mod checkers;
    pub mod grants;
    mod proxy_checks;
    mod queue_failures_checks;
    pub mod rate_limits;
    pub mod semaphore;
    pub mod support;
}

use std::time::Duration;

use api_tests::{
    Reply,
    proxy::{
        FaultProxy,
        apps::{Api, Runner, proxied_app},
        resp::arg_bytes,
    },
};
use http::Method;
use redis::AsyncCommands;
use serde_json::json;
use wire_faults::{
    checkers,
    support::{
        assert_applied_or_maybe, assert_replayed, assert_unavailable, until_answered, waiting,
        warmed_app,
    },
};

/// Hang guard only: the API's own bound is REDIS_RESPONSE_TIMEOUT_MS (500 in tests).
const GUARD: Duration = Duration::from_secs(10);

// ---- Regressions: the reproduced breaks, each a reply lost after the command ran ----

/// The claim ran in Redis, its reply was lost. Re-sending it would claim the next task
/// under the same receipt and strand the first in the processing list with no lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_with_lost_reply_is_replayed_and_strands_nothing() {
    let (app, proxy, api) = warmed_app().await;
    for id in ["t1", "t2"] {
        let task = json!({"id": id, "title": id});
        let r = until_answered(&api, Method::POST, "/queue/q", Some(&task), id).await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let [pending, processing, claims, leases, ..] = app.state.keys.queue("q");
    // Only the claim script (of what follows) names the leases key.
    let claim = "/queue/q/claim?visibility=30";
    let (first, again) = lost_reply_then_retry(
        &api,
        &proxy,
        leases.as_bytes(),
        (Method::POST, claim),
        None,
        "k1",
        200,
    )
    .await;
    if first.status == 200 {
        assert_eq!(first.body["task"]["id"], "t1", "{first:?}");
        assert_eq!(again.body["receipt"], first.body["receipt"]);
    }
    assert_eq!(again.body["task"]["id"], "t1", "{again:?}");
    let ack = json!({"receipt": again.body["receipt"]});
    let r = until_answered(&api, Method::POST, "/queue/q/ack", Some(&ack), "a1").await;
    assert_eq!(r.status, 200, "{r:?}");

    let next = until_answered(&api, Method::POST, claim, None, "k2").await;
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(next.body["task"]["id"], "t2", "{next:?}");
    let ack = json!({"receipt": next.body["receipt"]});
    let r = until_answered(&api, Method::POST, "/queue/q/ack", Some(&ack), "a2").await;
    assert_eq!(r.status, 200, "{r:?}");

    let mut redis = app.redis_conn().await;
    let stuck: Vec<String> = redis.lrange(&processing, 0, -1).await.unwrap();
    assert!(stuck.is_empty(), "tasks stranded in processing: {stuck:?}");
    let left: (u64, u64, u64) = (
        redis.llen(&pending).await.unwrap(),
        redis.hlen(&claims).await.unwrap(),
        redis.zcard(&leases).await.unwrap(),
    );
    assert_eq!(left, (0, 0, 0), "(queued, claims, leases) left over");
}

/// The acquire ran (the lock is ours), its reply was lost: the retry must hand us our
/// grant, not a 409 against our own lost token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_with_lost_reply_is_granted_once_not_refused_by_itself() {
    let (app, proxy, api) = warmed_app().await;
    let (lock, fence) = app.state.keys.lock("r");
    let again = acquire_with_lost_reply(&api, &proxy, &fence, "/lock/r/acquire?ttl=30").await;
    let mut redis = app.redis_conn().await;
    let holder: Option<String> = redis.get(&lock).await.unwrap();
    assert_eq!(
        holder.as_deref(),
        again.body["token"].as_str(),
        "the granted token does not hold the lock"
    );
    let release = json!({"token": again.body["token"]});
    let r = until_answered(&api, Method::POST, "/lock/r/release", Some(&release), "u1").await;
    assert_eq!(r.status, 200, "{r:?}");
    let status = api.send(Method::GET, "/lock/r", None, None).await.unwrap();
    assert_eq!(status.body["locked"], false, "{status:?}");
}

/// A semaphore acquire ran (a permit is ours), its reply was lost: the retry with the same
/// Idempotency-Key must hand us that grant, not take a second permit (leaked for a whole
/// TTL) nor be refused by its own lost grant (permits=1: it holds the only one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_acquire_with_lost_reply_is_granted_once() {
    let (app, proxy, api) = warmed_app().await;
    let [holders, _, fence] = app.state.keys.semaphore("s");
    let again = acquire_with_lost_reply(
        &api,
        &proxy,
        &fence,
        "/semaphore/s/acquire?permits=1&ttl=30",
    )
    .await;
    let mut redis = app.redis_conn().await;
    let members: Vec<String> = redis.zrange(&holders, 0, -1).await.unwrap();
    assert_eq!(
        members,
        [again.body["token"].as_str().unwrap()],
        "one permit taken, by the granted token"
    );
    let release = json!({"token": again.body["token"]});
    let r = until_answered(
        &api,
        Method::POST,
        "/semaphore/s/release",
        Some(&release),
        "u1",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let status = api
        .send(Method::GET, "/semaphore/s", None, None)
        .await
        .unwrap();
    assert_eq!(status.body["holders"], json!([]), "{status:?}");
}

/// A protected write ran, its reply was lost: the retry (same token, same value) must be
/// answered 200, with or without an Idempotency-Key: an equal token is accepted, so the
/// holder is not refused by its own write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_write_with_lost_reply_is_accepted_on_retry() {
    let (app, proxy, api) = warmed_app().await;
    let grant = until_answered(&api, Method::POST, "/lock/p/acquire?ttl=30", None, "g").await;
    assert_eq!(grant.status, 201, "{grant:?}");
    let record = app.state.keys.lock_protected("p");
    let path = "/lock/p/protected";
    for (key, value) in [(Some("w1"), "keyed"), (None, "plain")] {
        let body = json!({"fencing_token": grant.body["fencing_token"], "value": value});
        // Only the write script names the record.
        proxy.drop_reply_of_next(&arg_bytes(record.as_bytes()));
        let first = tokio::time::timeout(GUARD, api.send(Method::PUT, path, Some(&body), key))
            .await
            .unwrap()
            .unwrap();
        assert!(!proxy.drop_armed(), "the write never reached Redis");
        assert_applied_or_maybe(&first, 200);
        let again = match key {
            Some(key) => until_answered(&api, Method::PUT, path, Some(&body), key).await,
            None => api
                .send(Method::PUT, path, Some(&body), None)
                .await
                .unwrap(),
        };
        assert_eq!(again.status, 200, "refused by its own write: {again:?}");
        if key.is_some() {
            assert_replayed(&again);
        }
        let read = api.send(Method::GET, path, None, None).await.unwrap();
        assert_eq!(read.body["value"], value, "{read:?}");
        assert_eq!(read.body["fencing_token"], grant.body["fencing_token"]);
    }
}

/// The push ran, its reply was lost: the retry must not queue a second copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_with_lost_reply_is_queued_once() {
    let (app, proxy, api) = warmed_app().await;
    let [pending, ..] = app.state.keys.queue("q");
    let task = json!({"id": "only", "title": "once"});
    lost_reply_then_retry(
        &api,
        &proxy,
        pending.as_bytes(),
        (Method::POST, "/queue/q"),
        Some(&task),
        "p1",
        201,
    )
    .await;
    let queued = waiting(&app, "q").await;
    assert_eq!(queued.len(), 1, "copies queued: {queued:?}");
}

/// Ack, release and delete ran, their replies were lost: the retry must answer the
/// recorded 200, not a false 404/409 ("unknown receipt", "not the holder", "no such key").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_release_delete_with_lost_reply_answer_the_recorded_200() {
    let (app, proxy, api) = warmed_app().await;

    // Ack: the receipt names exactly that ack.
    let task = json!({"id": "t", "title": "t"});
    let r = until_answered(&api, Method::POST, "/queue/q", Some(&task), "p").await;
    assert_eq!(r.status, 201, "{r:?}");
    let claimed = until_answered(
        &api,
        Method::POST,
        "/queue/q/claim?visibility=30",
        None,
        "c",
    )
    .await;
    assert_eq!(claimed.status, 200, "{claimed:?}");
    let receipt = claimed.body["receipt"].as_str().unwrap().to_owned();
    let ack = json!({"receipt": receipt});
    lost_reply_then_retry(
        &api,
        &proxy,
        receipt.as_bytes(),
        (Method::POST, "/queue/q/ack"),
        Some(&ack),
        "ack",
        200,
    )
    .await;
    let [_, processing, ..] = app.state.keys.queue("q");
    let mut redis = app.redis_conn().await;
    let left: u64 = redis.llen(&processing).await.unwrap();
    assert_eq!(left, 0, "the acked task is still in processing");

    // Release: the token names exactly that release.
    let grant = until_answered(&api, Method::POST, "/lock/r/acquire?ttl=30", None, "g").await;
    assert_eq!(grant.status, 201, "{grant:?}");
    let token = grant.body["token"].as_str().unwrap().to_owned();
    let release = json!({"token": token});
    lost_reply_then_retry(
        &api,
        &proxy,
        token.as_bytes(),
        (Method::POST, "/lock/r/release"),
        Some(&release),
        "rel",
        200,
    )
    .await;
    let (lock, _) = app.state.keys.lock("r");
    let held: bool = redis.exists(&lock).await.unwrap();
    assert!(!held, "released, yet still locked");

    // Delete: the full cache key as one argument.
    let entry = json!({"key": "doomed", "value": 1});
    let r = until_answered(&api, Method::POST, "/cache", Some(&entry), "s").await;
    assert_eq!(r.status, 201, "{r:?}");
    let key = app.state.keys.cache("doomed");
    lost_reply_then_retry(
        &api,
        &proxy,
        key.as_bytes(),
        (Method::DELETE, "/cache/doomed"),
        None,
        "del",
        200,
    )
    .await;
}

/// Acquires at `acquire` (a lock's or a semaphore's) with the reply of the script, which
/// alone names the fencing counter `fence`, dropped; the retry with the same key must hand
/// over that grant (the same token and fencing token), not be refused by it. The grant.
async fn acquire_with_lost_reply(
    api: &Api,
    proxy: &FaultProxy,
    fence: &str,
    acquire: &str,
) -> Reply {
    let (first, again) = lost_reply_then_retry(
        api,
        proxy,
        fence.as_bytes(),
        (Method::POST, acquire),
        None,
        "g1",
        201,
    )
    .await;
    if first.status == 201 {
        assert_eq!(again.body["token"], first.body["token"]);
        assert_eq!(again.body["fencing_token"], first.body["fencing_token"]);
    }
    again
}

/// Sends `method path` with `key` and the reply of the command carrying `needle` dropped,
/// then retries with the same key: the first answer is `success` or "may have been
/// applied", the retry `success`, replayed. Both answers.
async fn lost_reply_then_retry(
    api: &Api,
    proxy: &FaultProxy,
    needle: &[u8],
    (method, path): (Method, &str),
    body: Option<&serde_json::Value>,
    key: &str,
    success: u16,
) -> (Reply, Reply) {
    proxy.drop_reply_of_next(&arg_bytes(needle));
    let first = tokio::time::timeout(GUARD, api.send(method.clone(), path, body, Some(key)))
        .await
        .unwrap()
        .unwrap();
    assert!(!proxy.drop_armed(), "{method} {path} never reached Redis");
    assert_applied_or_maybe(&first, success);
    let again = until_answered(api, method.clone(), path, body, key).await;
    assert_eq!(
        again.status, success,
        "{method} {path} ran, its reply was lost; the retry got: {again:?}"
    );
    assert_replayed(&again);
    (first, again)
}

/// A link slower than the response time-out: the push runs, its reply comes too late. The
/// API must say "may have been applied", and the retry must find the first push recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_answered_too_late_is_a_maybe_503_and_the_retry_does_not_repeat_it() {
    let (app, proxy, api) = warmed_app().await;
    // 2 x 300 ms per round trip against a 500 ms deadline.
    proxy.set_latency(Duration::from_millis(300));
    let task = json!({"id": "slow", "title": "slow"});
    let first = tokio::time::timeout(
        GUARD,
        api.send(Method::POST, "/queue/q", Some(&task), Some("late")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_applied_or_maybe(&first, 201);
    assert_eq!(first.status, 503, "{first:?}");
    proxy.set_latency(Duration::ZERO);
    let again = until_answered(&api, Method::POST, "/queue/q", Some(&task), "late").await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_replayed(&again);
    let queued = waiting(&app, "q").await;
    assert_eq!(queued.len(), 1, "copies queued: {queued:?}");
}

/// The connection in use goes silent for good (the host gone without a reset, a partition,
/// an endpoint moved to another node) while new connections work: after a 503 at the
/// deadline the API opens a new connection and answers again, instead of timing out on the
/// dead one until the kernel gives up on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_gone_silent_is_replaced() {
    let (_app, proxy, api) = warmed_app().await;
    let opened = proxy.stats().connections;
    proxy.silence_open_connections();
    let first = tokio::time::timeout(GUARD, api.send(Method::GET, "/cache/gone", None, None))
        .await
        .expect("no answer while the connection is silent")
        .unwrap();
    assert_unavailable(&first);
    // Within a few deadlines (the test configuration's is short), reads answer again.
    let started = std::time::Instant::now();
    loop {
        let r = api
            .send(Method::GET, "/cache/gone", None, None)
            .await
            .unwrap();
        if r.status == 404 {
            break;
        }
        assert_unavailable(&r);
        assert!(
            started.elapsed() < GUARD,
            "still 503 {:?} after the connection went silent: {r:?}",
            started.elapsed()
        );
    }
    assert!(
        proxy.stats().connections > opened,
        "answered without a new connection?"
    );
}

/// Redis silent (a black hole): a 503 within the deadline that says the write may have
/// been applied; once the link is back, the retry gets one outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_redis_is_a_maybe_503_then_the_retry_succeeds() {
    let (app, proxy, api) = warmed_app().await;
    proxy.black_hole(true);
    let entry = json!({"key": "quiet", "value": 7});
    let first = tokio::time::timeout(
        GUARD,
        api.send(Method::POST, "/cache", Some(&entry), Some("q1")),
    )
    .await
    .expect("no answer while Redis is silent")
    .unwrap();
    assert_unavailable(&first);
    assert_applied_or_maybe(&first, 201);
    proxy.black_hole(false);
    let again = until_answered(&api, Method::POST, "/cache", Some(&entry), "q1").await;
    assert_eq!(again.status, 201, "{again:?}");
    let read = until_answered(&api, Method::GET, "/cache/quiet", None, "read").await;
    assert_eq!(read.body["value"], 7, "{read:?}");
    drop(app);
}

// ---- Randomized fault runs with checkers ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_under_random_resets_loses_and_duplicates_nothing() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let api = Api::InProcess(app.router.clone());
    let redis = app.redis_conn().await;
    checkers::queue(&api, &proxy, redis, &app.state.keys, "in-process").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn locks_under_random_resets_never_overlap_and_fence_in_order() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let api = Api::InProcess(app.router.clone());
    checkers::locks(&api, &proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn semaphores_under_random_resets_never_exceed_their_permits() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let api = Api::InProcess(app.router.clone());
    let redis = app.redis_conn().await;
    wire_faults::semaphore::semaphores(&api, &proxy, redis, &app.state.keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_under_random_resets_admit_at_most_the_limit() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let api = Api::InProcess(app.router.clone());
    let redis = app.redis_conn().await;
    checkers::rate_limits(&api, &proxy, redis, &app.state.keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_policy_checks_under_random_resets_admit_at_most_the_tightest_limit() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let api = Api::InProcess(app.router.clone());
    let redis = app.redis_conn().await;
    wire_faults::rate_limits::multi_policy(&api, &proxy, redis, &app.state.keys).await;
}

/// The same queue checker, black-box over HTTP against the `local-runner` binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runner_binary_queue_under_random_resets_loses_and_duplicates_nothing() {
    let redis = api_tests::start_redis(&[]);
    let proxy = FaultProxy::to_port(redis.port()).await;
    let url = proxy.url();
    let runner = tokio::task::spawn_blocking(move || Runner::start(&url))
        .await
        .unwrap();
    let api = Api::http(&runner.base, GUARD);
    let direct = api_tests::RawRedis::Single(
        redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap(),
    );
    // The runner's default prefix.
    let keys = shared::keys::Keys::new(&shared::Config::from_lookup(|_| None).unwrap().key_prefix);
    checkers::queue(&api, &proxy, direct, &keys, "runner binary").await;
    drop(runner);
}
