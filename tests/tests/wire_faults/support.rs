//! What every wire-fault test shares: the seed and round count, retrying like a careful
//! client (same `Idempotency-Key` until a real answer), checks of the 503 contract, and a
//! warm-up that loads every script so a dropped reply is never a mere `NOSCRIPT`.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use api_tests::{Reply, proxy::apps::Api};
use http::Method;
use serde_json::{Value, json};

/// The run's seed: `FAULT_SEED`, else random; printed once so a failure can be replayed.
pub fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = std::env::var("FAULT_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(rand::random);
        eprintln!("wire_faults: FAULT_SEED={seed} (set it to replay this run's faults)");
        seed
    })
}

/// Rounds per randomized checker: `FAULT_ROUNDS`, else 2 (keeps the file well under a minute).
pub fn rounds() -> u64 {
    std::env::var("FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(2)
}

/// How long one logical request may keep being retried before the test gives up.
pub const RETRY_BOUND: Duration = Duration::from_secs(20);

/// Sends `method path` with `key` until the answer is neither a 503 nor a transport failure
/// (a client retrying with the same key, as the API asks), and returns that answer. Each
/// 503 on the way must be the documented problem. Bounded by [`RETRY_BOUND`].
pub async fn until_answered(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<&Value>,
    key: &str,
) -> Reply {
    until_answered_with(api, method, path, body, &[("idempotency-key", key)]).await
}

/// [`until_answered`] with any request headers (the `Idempotency-Key` among them).
pub async fn until_answered_with(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let started = Instant::now();
    let mut last = String::new();
    let mut pause = Duration::from_millis(5);
    while started.elapsed() < RETRY_BOUND {
        match api.send_with(method.clone(), path, body, headers).await {
            Ok(r) if r.status != 503 => return r,
            Ok(r) => {
                assert_unavailable(&r);
                last = format!("{r:?}");
            }
            Err(e) => last = e,
        }
        // Back-off between retries, not an ordering device.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    panic!(
        "seed {}: {method} {path} ({headers:?}) still unanswered after {RETRY_BOUND:?}; \
         last: {last}",
        seed()
    );
}

/// A 503 is a problem+json with `Retry-After`.
pub fn assert_unavailable(r: &Reply) {
    assert_eq!(r.status, 503, "seed {}: {r:?}", seed());
    assert_eq!(
        r.header("content-type"),
        "application/problem+json",
        "seed {}: {r:?}",
        seed()
    );
    assert!(
        !r.header("retry-after").is_empty(),
        "seed {}: 503 without Retry-After: {r:?}",
        seed()
    );
}

/// The first answer to a request whose reply from Redis was lost: success, or a 503 saying
/// the request may have been applied (it was).
pub fn assert_applied_or_maybe(r: &Reply, success: u16) {
    if r.status == 503 {
        assert_unavailable(r);
        let detail = r.body["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains("may have been applied"),
            "seed {}: a lost reply must be a 503 saying the request may have been applied: {r:?}",
            seed()
        );
    } else {
        assert_eq!(
            r.status,
            success,
            "seed {}: the command ran in Redis, its reply was lost; the API answered {r:?}",
            seed()
        );
    }
}

/// A retry answered from the record of the first outcome.
pub fn assert_replayed(r: &Reply) {
    assert_eq!(
        r.header("idempotent-replayed"),
        "true",
        "seed {}: a retry with the same Idempotency-Key must be the recorded outcome: {r:?}",
        seed()
    );
}

/// An app behind a fault proxy, driven in-process, [`warm_up`]ed.
pub async fn warmed_app() -> (api_tests::TestApp, api_tests::proxy::FaultProxy, Api) {
    let (app, proxy) = api_tests::proxy::apps::proxied_app(|_| {}).await;
    let api = Api::InProcess(app.router.clone());
    warm_up(&api).await;
    (app, proxy, api)
}

/// The tasks waiting in queue `name`, as Redis holds them.
pub async fn waiting(app: &api_tests::TestApp, name: &str) -> Vec<String> {
    let [pending, ..] = app.state.keys.queue(name);
    let mut redis = app.redis_conn().await;
    redis::AsyncCommands::lrange(&mut redis, &pending, 0, -1)
        .await
        .expect("LRANGE")
}

/// Runs every write this file drops a reply of once, on names of its own, with an
/// `Idempotency-Key`: Redis then has each script loaded, so the command whose reply a test
/// drops really runs (a `NOSCRIPT` answer would be dropped instead, and the command re-sent).
pub async fn warm_up(api: &Api) {
    let task = json!({"id": "warm", "title": "warm"});
    warm(api, (Method::POST, "/queue/warm"), Some(&task), 201).await;
    let claim = (Method::POST, "/queue/warm/claim?visibility=30");
    let r = warm(api, claim, None, 200).await;
    let ack = json!({"receipt": r.body["receipt"]});
    warm(api, (Method::POST, "/queue/warm/ack"), Some(&ack), 200).await;
    let r = warm(api, (Method::POST, "/lock/warm/acquire?ttl=30"), None, 201).await;
    let release = json!({"token": r.body["token"]});
    warm(
        api,
        (Method::POST, "/lock/warm/release"),
        Some(&release),
        200,
    )
    .await;
    let entry = json!({"key": "warm", "value": 1});
    warm(api, (Method::POST, "/cache"), Some(&entry), 201).await;
    warm(api, (Method::DELETE, "/cache/warm"), None, 200).await;
}

/// One warm-up request (a key of its own), which must be answered `status`; the answer.
async fn warm(
    api: &Api,
    (method, path): (Method, &str),
    body: Option<&Value>,
    status: u16,
) -> Reply {
    let key = format!("warm-{method}-{path}");
    let r = until_answered(api, method.clone(), path, body, &key).await;
    assert_eq!(r.status, status, "warm-up {method} {path}: {r:?}");
    r
}
