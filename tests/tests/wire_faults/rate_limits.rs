//! Rate limits through the resetting proxy beyond one policy: GCRA's count as Redis holds
//! it, and several policies in one request (all or nothing). A check whose reply was lost
//! may have counted (the client saw a 503): allowed. Admitting more than the limit, or a
//! request counted in some policies and not others, is not.

use api_tests::{
    RawRedis,
    proxy::{FaultProxy, apps::Api},
};
use http::Method;
use redis::AsyncCommands;
use serde_json::json;
use shared::keys::Keys;
use tokio::task::JoinSet;

use super::{
    checkers::{RESET_P, assert_faults_injected},
    support::{rounds, seed},
};

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
        let mut clients = JoinSet::new();
        for _ in 0..CLIENTS {
            let (api, body) = (api.clone(), body.clone());
            clients.spawn(async move {
                let (mut allowed, mut answered, mut tries) = (0u64, 0u64, 0u64);
                while answered < ANSWERS_EACH && tries < 500 {
                    tries += 1;
                    match api
                        .send(Method::POST, "/rate-limit/check", Some(&body), None)
                        .await
                    {
                        Ok(r) if r.status == 200 => {
                            (allowed, answered) = (allowed + 1, answered + 1)
                        }
                        Ok(r) if r.status == 429 => {
                            assert_eq!(r.body["violated-policies"], json!(["tight"]), "{r:?}");
                            answered += 1;
                        }
                        Ok(r) if r.status == 503 => {}
                        Ok(r) => panic!("seed {seed}: {r:?}"),
                        Err(_) => {}
                    }
                }
                allowed
            });
        }
        let allowed: u64 = clients.join_all().await.into_iter().sum();
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
