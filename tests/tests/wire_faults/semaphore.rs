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
use redis::AsyncCommands;
use shared::keys::Keys;

use super::{
    checkers::{RESET_P, assert_faults_injected},
    grants::{Contention, Held},
    support::{rounds, seed},
};

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
    let seed = seed();
    let at_start = proxy.stats();
    for round in 0..rounds() {
        let name = format!("s{round}");
        let contention = Contention {
            acquire: format!("/semaphore/{name}/acquire?permits={PERMITS}&ttl=1"),
            release: format!("/semaphore/{name}/release"),
            name: name.clone(),
            contenders: CONTENDERS,
            cycles: CYCLES,
            ttl: Duration::from_secs(1),
            what: "permit",
        };
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
        let mut held = contention.run(api, round).await;
        done.store(true, Ordering::SeqCst);
        sampler.await.unwrap();
        proxy.stop_random_resets();
        let stats = proxy.stats().since(&before);
        let context = format!("seed {seed}, round {round}; proxy {stats:?}");
        assert_eq!(held.len() as u64, CONTENDERS * CYCLES, "{context}");
        held.retain(Held::usable);
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
