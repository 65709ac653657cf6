//! The randomized runs: many clients through a proxy that resets connections at random,
//! then a check of the promise as a whole (every task acked exactly once; lock grants
//! disjoint and fenced in order; admissions within the limit). Each round reseeds the
//! proxy from the run's seed; every loop is bounded in count and time.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use api_tests::{
    RawRedis,
    proxy::{FaultProxy, ProxyStats, apps::Api},
};
use http::Method;
use redis::AsyncCommands;
use serde_json::json;
use shared::keys::Keys;
use tokio::task::JoinSet;

use super::{
    grants::{Contention, Held},
    rate_limits::admitted,
    support::{rounds, seed, until_answered},
};

/// Probability that a command resets its connection.
pub(super) const RESET_P: f64 = 0.05;

/// Producers push distinct ids, consumers claim (visibility 1 s) and ack, while the proxy
/// resets connections; then, faults off, the queue is drained once every lease has lapsed.
/// Every id must be acked (200) exactly once, and nothing left queued or in processing.
pub async fn queue(api: &Api, proxy: &FaultProxy, mut redis: RawRedis, keys: &Keys, via: &str) {
    const PRODUCERS: usize = 3;
    const PER_PRODUCER: usize = 12;
    const CONSUMERS: usize = 3;
    let seed = seed();
    let at_start = proxy.stats();
    for round in 0..rounds() {
        let name = format!("q{round}");
        let before = proxy.stats();
        let [pending, processing, claims, leases, ..] = keys.queue(&name);
        proxy.set_random_resets(RESET_P, seed.wrapping_add(round));
        let started = Instant::now();
        let mut producers = JoinSet::new();
        for p in 0..PRODUCERS {
            let (api, name, via) = (api.clone(), name.clone(), via.to_owned());
            producers.spawn(async move {
                for j in 0..PER_PRODUCER {
                    let id = format!("p{p}-{j}");
                    let task = json!({"id": id, "title": "checked"});
                    let path = format!("/queue/{name}");
                    let key = format!("push-{name}-{id}");
                    let r = until_answered(&api, Method::POST, &path, Some(&task), &key).await;
                    assert_eq!(r.status, 201, "seed {seed} ({via}): push {id}: {r:?}");
                }
            });
        }
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut consumers = JoinSet::new();
        for c in 0..CONSUMERS {
            let (api, name, done) = (api.clone(), name.clone(), done.clone());
            consumers.spawn(async move {
                let mut acked = Vec::new();
                let mut n = 0;
                // Bounded: a consumer stops once producers are done and the queue looks
                // empty, or at the time limit (the drain below then finds what is left).
                while started.elapsed() < Duration::from_secs(20) {
                    n += 1;
                    let over = done.load(std::sync::atomic::Ordering::SeqCst);
                    if let Some(id) = claim_and_ack(&api, &name, &format!("{name}-{c}-{n}")).await {
                        acked.push(id);
                    } else if over {
                        break;
                    } else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                acked
            });
        }
        producers.join_all().await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut acked: Vec<String> = consumers.join_all().await.into_iter().flatten().collect();
        proxy.stop_random_resets();
        let stats = proxy.stats().since(&before);

        // Drain: claim and ack until nothing is queued and no lease is left to lapse.
        let drain_started = Instant::now();
        let mut n = 0;
        loop {
            n += 1;
            if let Some(id) = claim_and_ack(api, &name, &format!("{name}-drain-{n}")).await {
                acked.push(id);
                continue;
            }
            let queued: u64 = redis.llen(&pending).await.unwrap();
            let leased: u64 = redis.zcard(&leases).await.unwrap();
            if queued == 0 && leased == 0 {
                break;
            }
            if drain_started.elapsed() > Duration::from_secs(10) {
                break; // The checks below say what is stuck.
            }
            // Poll until the leases lapse (1 s visibility) and a claim requeues them.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stuck: Vec<String> = redis.lrange(&processing, 0, -1).await.unwrap();
        let queued: Vec<String> = redis.lrange(&pending, 0, -1).await.unwrap();
        let open_claims: u64 = redis.hlen(&claims).await.unwrap();
        let mut times: BTreeMap<String, usize> = BTreeMap::new();
        for id in &acked {
            *times.entry(id.clone()).or_default() += 1;
        }
        let expected: Vec<String> = (0..PRODUCERS)
            .flat_map(|p| (0..PER_PRODUCER).map(move |j| format!("p{p}-{j}")))
            .collect();
        let lost: Vec<&String> = expected
            .iter()
            .filter(|id| !times.contains_key(*id))
            .collect();
        let twice: Vec<(&String, &usize)> = times.iter().filter(|(_, n)| **n > 1).collect();
        let unknown: Vec<&String> = times.keys().filter(|id| !expected.contains(id)).collect();
        let context = format!(
            "seed {seed}, round {round} ({via}); proxy {stats:?}; never acked {lost:?}; acked \
             more than once {twice:?}; unknown ids {unknown:?}; left in processing {stuck:?}; \
             left queued {queued:?}; open claims {open_claims}"
        );
        assert!(
            lost.is_empty() && twice.is_empty() && unknown.is_empty(),
            "{context}"
        );
        assert!(
            stuck.is_empty() && queued.is_empty() && open_claims == 0,
            "{context}"
        );
        eprintln!(
            "queue round {round} ({via}): {} acked, {stats:?}",
            acked.len()
        );
    }
    assert_faults_injected(proxy, &at_start, seed);
}

/// A run that injected no fault proved nothing (at 5% a command, over every round, all but
/// impossible unless the proxy is broken).
pub(super) fn assert_faults_injected(proxy: &FaultProxy, at_start: &ProxyStats, seed: u64) {
    let stats = proxy.stats().since(at_start);
    assert!(
        stats.resets() > 0,
        "seed {seed}: no fault was injected in any round: {stats:?}"
    );
}

/// One claim (visibility 1 s) and, when it gets a task, its ack; retried with the same keys
/// through 503s. The task id when acked (200); `None` when the queue was empty or the ack
/// found the claim lapsed (404: the task went back and is someone else's now).
async fn claim_and_ack(api: &Api, name: &str, series: &str) -> Option<String> {
    let seed = seed();
    let path = format!("/queue/{name}/claim?visibility=1");
    let claimed = until_answered(api, Method::POST, &path, None, &format!("claim-{series}")).await;
    match claimed.status.as_u16() {
        200 => {}
        404 => return None,
        _ => panic!("seed {seed}: claim {series}: {claimed:?}"),
    }
    let id = claimed.body["task"]["id"].as_str()?.to_owned();
    let ack = json!({"receipt": claimed.body["receipt"]});
    let path = format!("/queue/{name}/ack");
    let r = until_answered(
        api,
        Method::POST,
        &path,
        Some(&ack),
        &format!("ack-{series}"),
    )
    .await;
    match r.status.as_u16() {
        200 => Some(id),
        // Lapsed: the lease ran out while faults slowed us (visibility is 1 s).
        404 => None,
        _ => panic!("seed {seed}: ack {series}: {r:?}"),
    }
}

/// Contenders acquire (`ttl=1`), hold a few ms and release one resource while the proxy
/// resets connections. No two grants' intervals overlap; fencing tokens strictly increase in
/// grant order; a release answered before the TTL could lapse must be a 200.
pub async fn locks(api: &Api, proxy: &FaultProxy) {
    let seed = seed();
    let at_start = proxy.stats();
    for round in 0..rounds() {
        let resource = format!("r{round}");
        let contention = Contention {
            acquire: format!("/lock/{resource}/acquire?ttl=1"),
            release: format!("/lock/{resource}/release"),
            name: resource,
            contenders: 4,
            cycles: 6,
            ttl: Duration::from_secs(1),
            what: "lock",
        };
        let before = proxy.stats();
        // Twice the rate: releases are few, and a lost release reply is what this run hunts.
        proxy.set_random_resets(2.0 * RESET_P, seed.wrapping_add(round));
        let mut grants = contention.run(api, round).await;
        proxy.stop_random_resets();
        let stats = proxy.stats().since(&before);
        let context = format!("seed {seed}, round {round}; proxy {stats:?}");
        let mut tokens: Vec<u64> = grants.iter().map(|g| g.fencing).collect();
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(
            tokens.len(),
            grants.len(),
            "a fencing token granted twice: {context}"
        );
        grants.retain(Held::usable);
        grants.sort_by_key(|g| g.start);
        for pair in grants.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(
                a.end <= b.start,
                "{} and {} held the lock at once ({:?} overlap): {context}",
                a.who,
                b.who,
                a.end - b.start
            );
            assert!(
                a.fencing < b.fencing,
                "fencing went backwards: {} got {} before {} got {}: {context}",
                a.who,
                a.fencing,
                b.who,
                b.fencing
            );
        }
        eprintln!("locks round {round}: {} grants, {stats:?}", grants.len());
    }
    assert_faults_injected(proxy, &at_start, seed);
}

/// Concurrent checks of one user through the resetting proxy, per algorithm: no more 200s
/// than `limit`, and Redis's own count within it too.
pub async fn rate_limits(api: &Api, proxy: &FaultProxy, mut redis: RawRedis, keys: &Keys) {
    const LIMIT: u64 = 20;
    const CLIENTS: u64 = 8;
    const ANSWERS_EACH: u64 = 8;
    let seed = seed();
    let at_start = proxy.stats();
    for round in 0..rounds() {
        // A window of a day for the bucket: no token refills while the test runs, so its
        // bound is exactly `limit` as for the windows.
        for (i, (algorithm, window)) in [
            ("fixed_window", 60),
            ("sliding_window", 60),
            ("token_bucket", 86_400),
            ("gcra", 86_400),
        ]
        .into_iter()
        .enumerate()
        {
            let user = format!("u{round}");
            let before = proxy.stats();
            proxy.set_random_resets(RESET_P, seed.wrapping_add(round * 4 + i as u64));
            let path = format!(
                "/rate-limit/check?user_id={user}&limit={LIMIT}&window={window}&algorithm={algorithm}"
            );
            let check = (Method::GET, path);
            let allowed = admitted(api, check, None, (CLIENTS, ANSWERS_EACH), |_| {}).await;
            proxy.stop_random_resets();
            let key = keys.rate_limit(algorithm, window, &user);
            let counted = match algorithm {
                "fixed_window" => redis
                    .get::<_, Option<u64>>(&key)
                    .await
                    .unwrap()
                    .unwrap_or(0),
                "sliding_window" => redis.zcard::<_, u64>(&key).await.unwrap(),
                "gcra" => super::rate_limits::gcra_counted(&mut redis, &key, LIMIT, window).await,
                _ => {
                    let tokens: Option<f64> = redis.hget(&key, "tokens").await.unwrap();
                    let tokens = tokens.unwrap_or(LIMIT as f64);
                    assert!(tokens >= 0.0, "seed {seed}: {algorithm}: {tokens} tokens");
                    // Spent tokens, rounded up: a refill of a fraction cannot hide one.
                    (LIMIT as f64 - tokens).ceil() as u64
                }
            };
            let context = format!(
                "seed {seed}, round {round}, {algorithm}: {allowed} allowed, {counted} counted in \
                 Redis, limit {LIMIT}; proxy {:?}",
                proxy.stats().since(&before)
            );
            assert!(allowed <= LIMIT, "more admitted than the limit: {context}");
            assert!(counted <= LIMIT, "Redis counted past the limit: {context}");
            assert!(
                allowed <= counted,
                "an admission Redis did not count: {context}"
            );
            eprintln!("rate limit: {context}");
        }
    }
    assert_faults_injected(proxy, &at_start, seed);
}
