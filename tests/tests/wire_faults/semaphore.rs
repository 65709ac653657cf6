//! The counting semaphore through the resetting proxy: contenders acquire, hold a few ms
//! and release while connections are reset at random. At no instant may more than
//! `permits` grants be held, by the clients' own account (a grant from its 201 to its
//! release, or to its TTL's end if that comes first) and by Redis's (the holders' set,
//! sampled throughout).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use api_tests::{
    RawRedis,
    proxy::{FaultProxy, apps::Api},
};
use http::Method;
use rand::{Rng, SeedableRng, rngs::StdRng};
use redis::AsyncCommands;
use serde_json::json;
use shared::keys::Keys;
use tokio::task::JoinSet;

use super::{
    checkers::{RESET_P, assert_faults_injected},
    support::{rounds, seed, until_answered},
};

/// One held permit, as the client saw it.
struct Held {
    who: String,
    start: Instant,
    end: Instant,
}

/// The most intervals of `held` that cover one instant (an end at the instant another
/// starts is not an overlap), and the grants that were held together then.
fn most_at_once(held: &[Held]) -> (usize, Vec<String>) {
    // (instant, 0 = end before 1 = start at the same instant, index)
    let mut events: Vec<(Instant, u8, usize)> = Vec::new();
    for (i, h) in held.iter().enumerate() {
        events.push((h.start, 1, i));
        events.push((h.end, 0, i));
    }
    events.sort();
    let (mut now, mut most, mut worst) = (Vec::new(), 0, Vec::new());
    for (_, kind, i) in events {
        if kind == 1 {
            now.push(i);
            if now.len() > most {
                most = now.len();
                worst = now.iter().map(|&j| held[j].who.clone()).collect();
            }
        } else {
            now.retain(|&j| j != i);
        }
    }
    (most, worst)
}

/// See the module header.
pub async fn semaphores(api: &Api, proxy: &FaultProxy, redis: RawRedis, keys: &Keys) {
    const PERMITS: u64 = 2;
    const CONTENDERS: u64 = 6;
    const CYCLES: u64 = 5;
    const TTL: Duration = Duration::from_secs(1);
    let seed = seed();
    let at_start = proxy.stats();
    for round in 0..rounds() {
        let name = format!("s{round}");
        let before = proxy.stats();
        proxy.set_random_resets(2.0 * RESET_P, seed.wrapping_add(round));
        // Redis's own count, sampled on a connection that bypasses the proxy.
        let done = Arc::new(AtomicBool::new(false));
        let most_in_redis = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (done, most) = (done.clone(), most_in_redis.clone());
            let [holders, ..] = keys.semaphore(&name);
            let mut redis = redis.clone();
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    let n: u64 = redis.zcard(&holders).await.unwrap_or(0);
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let mut contenders = JoinSet::new();
        for c in 0..CONTENDERS {
            let (api, name) = (api.clone(), name.clone());
            contenders.spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed ^ (round << 32) ^ c);
                let mut held = Vec::new();
                let acquire = format!("/semaphore/{name}/acquire?permits={PERMITS}&ttl=1");
                let release = format!("/semaphore/{name}/release");
                for k in 0..CYCLES {
                    let who = format!("{name}-c{c}-{k}");
                    let began = Instant::now();
                    let mut attempt = 0;
                    let (sent, granted) = loop {
                        attempt += 1;
                        assert!(
                            began.elapsed() < Duration::from_secs(20),
                            "seed {seed}: {who} never got a permit"
                        );
                        let key = format!("acquire-{who}-{attempt}");
                        let sent = Instant::now();
                        let r = until_answered(&api, Method::POST, &acquire, None, &key).await;
                        match r.status.as_u16() {
                            201 => break (sent, r),
                            // All held (or the replayed grant lapsed): a new attempt.
                            409 => tokio::time::sleep(Duration::from_millis(5)).await,
                            _ => panic!("seed {seed}: acquire {who}: {r:?}"),
                        }
                    };
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(rng.random_range(1..=5))).await;
                    let release_sent = Instant::now();
                    let body = json!({"token": granted.body["token"]});
                    let key = format!("release-{who}");
                    let r = until_answered(&api, Method::POST, &release, Some(&body), &key).await;
                    let lapsed_by = sent + TTL;
                    match r.status.as_u16() {
                        200 => {}
                        409 => assert!(
                            // Margin for the Redis clock's millisecond steps.
                            Instant::now() + Duration::from_millis(50) >= lapsed_by,
                            "seed {seed}: {who}'s release answered 409 while its permit \
                             could not have lapsed yet: {r:?}"
                        ),
                        _ => panic!("seed {seed}: release {who}: {r:?}"),
                    }
                    held.push(Held {
                        who,
                        start,
                        end: release_sent.min(lapsed_by),
                    });
                }
                held
            });
        }
        let mut held: Vec<Held> = contenders.join_all().await.into_iter().flatten().collect();
        done.store(true, Ordering::SeqCst);
        sampler.await.unwrap();
        proxy.stop_random_resets();
        let stats = proxy.stats().since(&before);
        let context = format!("seed {seed}, round {round}; proxy {stats:?}");
        assert_eq!(held.len() as u64, CONTENDERS * CYCLES, "{context}");
        // Grants whose TTL lapsed before their 201 arrived held nothing the client could use.
        held.retain(|h| h.start < h.end);
        let (most, together) = most_at_once(&held);
        assert!(
            most as u64 <= PERMITS,
            "{most} held a permit at once, of {PERMITS}: {together:?}; {context}"
        );
        let in_redis = most_in_redis.load(Ordering::SeqCst);
        assert!(
            in_redis <= PERMITS,
            "Redis counted {in_redis} holders of {PERMITS} permits; {context}"
        );
        eprintln!(
            "semaphores round {round}: {} grants, at most {most} at once ({in_redis} in \
             Redis), {stats:?}",
            held.len()
        );
    }
    assert_faults_injected(proxy, &at_start, seed);
}
