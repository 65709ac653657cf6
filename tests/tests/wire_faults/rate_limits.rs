//! Rate limits through the resetting proxy beyond one policy: GCRA's count as Redis holds
//! it, and several policies in one request (all or nothing). A check whose reply was lost
//! may have counted (the client saw a 503): allowed. Admitting more than the limit, or a
//! request counted in some policies and not others, is not.

use api_tests::{
    RawRedis, Reply,
    proxy::{FaultProxy, apps::Api},
};
use http::Method;
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::keys::Keys;
use tokio::task::JoinSet;

use super::{
    checkers::{RESET_P, assert_faults_injected},
    support::{rounds, seed},
};

/// `clients` clients each send `method path` (with `body`) until `answers` of their checks
/// are decided, 200 or 429 (a 503 or a dropped connection, the proxy's doing, is tried again;
/// at most 500 tries each). Every 429 must pass `refused`. How many were admitted.
pub async fn admitted(
    api: &Api,
    (method, path): (Method, String),
    body: Option<Value>,
    (clients, answers): (u64, u64),
    refused: fn(&Reply),
) -> u64 {
    let seed = seed();
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let (api, method, path, body) = (api.clone(), method.clone(), path.clone(), body.clone());
        tasks.spawn(async move {
            let (mut allowed, mut answered, mut tries) = (0u64, 0u64, 0u64);
            while answered < answers && tries < 500 {
                tries += 1;
                match api.send(method.clone(), &path, body.as_ref(), None).await {
                    Ok(r) if r.status == 200 => (allowed, answered) = (allowed + 1, answered + 1),
                    Ok(r) if r.status == 429 => {
                        refused(&r);
                        answered += 1;
                    }
                    Ok(r) if r.status == 503 => {}
                    Ok(r) => panic!("seed {seed}: {method} {path}: {r:?}"),
                    Err(_) => {}
                }
            }
            allowed
        });
    }
    tasks.join_all().await.into_iter().sum()
}

/// Units a GCRA limiter holds, as its stored TAT says: how many emission intervals it is
/// ahead of Redis's clock, rounded up (no unit can hide in a fraction).
pub async fn gcra_counted(redis: &mut RawRedis, key: &str, limit: u64, window: u64) -> u64 {
    let tat: Option<i64> = redis.get(key).await.unwrap();
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(redis).await.unwrap();
    let now = secs * 1_000_000 + micros;
    let interval = (window * 1_000_000).div_ceil(limit) as i64;
    let ahead = tat.map_or(0, |tat| (tat - now).max(0));
    u64::try_from((ahead + interval - 1) / interval).unwrap()
}

/// Concurrent multi-policy checks of one user through the resetting proxy: at most the
/// tightest limit admitted, and every policy holds the same count (one script counted each
/// admission in all of them, or in none).
pub async fn multi_policy(api: &Api, proxy: &FaultProxy, mut redis: RawRedis, keys: &Keys) {
    const TIGHT: u64 = 15;
    const CLIENTS: u64 = 8;
    const ANSWERS_EACH: u64 = 6;
    let seed = seed();
    let at_start = proxy.stats();
    for round in 0..rounds() {
        let user = format!("m{round}");
        // A day for the GCRA and a day for the windows: nothing refills during the run.
        let body = json!({"user_id": user, "policies": [
            {"name": "tight", "limit": TIGHT, "window": 86_400, "algorithm": "gcra"},
            {"name": "log", "limit": 1000, "window": 86_400, "algorithm": "sliding_window"},
            {"name": "count", "limit": 1000, "window": 86_400}
        ]});
        let before = proxy.stats();
        proxy.set_random_resets(RESET_P, seed.wrapping_add(1000 + round));
        let check = (Method::POST, "/rate-limit/check".to_owned());
        let allowed = admitted(api, check, Some(body), (CLIENTS, ANSWERS_EACH), |r| {
            assert_eq!(r.body["violated-policies"], json!(["tight"]), "{r:?}");
        })
        .await;
        proxy.stop_random_resets();
        let tight = keys.rate_limit("gcra", 86_400, &user);
        let tight = gcra_counted(&mut redis, &tight, TIGHT, 86_400).await;
        let log: u64 = redis
            .zcard(keys.rate_limit("sliding_window", 86_400, &user))
            .await
            .unwrap();
        let count: Option<u64> = redis
            .get(keys.rate_limit("fixed_window", 86_400, &user))
            .await
            .unwrap();
        let count = count.unwrap_or(0);
        let context = format!(
            "seed {seed}, round {round}: {allowed} allowed; counted: gcra {tight}, sliding \
             {log}, fixed {count}; limit {TIGHT}; proxy {:?}",
            proxy.stats().since(&before)
        );
        assert!(allowed <= TIGHT, "more admitted than the limit: {context}");
        assert!(tight <= TIGHT, "Redis counted past the limit: {context}");
        assert!(
            allowed <= count,
            "an admission Redis did not count: {context}"
        );
        assert_eq!(log, count, "policies counted differently: {context}");
        assert_eq!(tight, count, "policies counted differently: {context}");
        eprintln!("multi-policy rate limit: {context}");
    }
    assert_faults_injected(proxy, &at_start, seed);
}
