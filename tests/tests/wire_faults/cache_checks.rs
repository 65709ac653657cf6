//! Compare-and-set on the cache through the fault proxy: clients increment one counter by
//! the optimistic-concurrency loop (read the value and its `ETag`, write `n + 1` with
//! `If-Match`, start again on 412) while connections are reset at random, before and after
//! commands. Each write attempt carries its own `Idempotency-Key` and is retried with it
//! through 503s, so a write that ran but whose reply was lost is answered by its record
//! (201), not run again, and not refused as a 412 against itself. What must hold: the
//! counter ends at exactly the number of increments the clients were told succeeded.

use std::time::Instant;

use api_tests::proxy::apps::{Api, proxied_app};
use http::Method;
use serde_json::json;

use super::{
    checkers::{RESET_P, assert_faults_injected},
    support::{rounds, seed, until_answered_with},
};

/// One increment, done: the attempts it took.
async fn increment(api: &Api, key: &str, series: &str) -> u32 {
    let seed = seed();
    let path = format!("/cache/{key}");
    for attempt in 1..=200 {
        let read = until_answered_with(api, Method::GET, &path, None, &[]).await;
        assert_eq!(read.status, 200, "seed {seed}: read: {read:?}");
        let n = read.body["value"].as_u64().unwrap();
        let etag = read.header("etag").to_owned();
        let body = json!({"key": key, "value": n + 1});
        let idem = format!("{series}-{attempt}");
        let headers = [
            ("if-match", etag.as_str()),
            ("idempotency-key", idem.as_str()),
        ];
        let w = until_answered_with(api, Method::POST, "/cache", Some(&body), &headers).await;
        match w.status.as_u16() {
            201 => return attempt,
            412 => continue,
            _ => panic!("seed {seed}: write {n} → {}: {w:?}", n + 1),
        }
    }
    panic!("seed {seed}: {series}: no increment in 200 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_set_under_random_resets_loses_no_update_and_applies_none_twice() {
    const CLIENTS: usize = 4;
    const EACH: u64 = 6;
    let (app, proxy) = proxied_app(|_| {}).await;
    let api = Api::InProcess(app.router.clone());
    let seed = seed();
    let at_start = proxy.stats();
    for round in 0..rounds() {
        let key = format!("counter{round}");
        let body = json!({"key": key, "value": 0});
        let r = until_answered_with(&api, Method::POST, "/cache", Some(&body), &[]).await;
        assert_eq!(r.status, 201, "{r:?}");
        let before = proxy.stats();
        proxy.set_random_resets(RESET_P, seed.wrapping_add(round));
        let started = Instant::now();
        let mut clients = tokio::task::JoinSet::new();
        for c in 0..CLIENTS {
            let (api, key) = (api.clone(), key.clone());
            clients.spawn(async move {
                let mut attempts = 0;
                for i in 0..EACH {
                    attempts += increment(&api, &key, &format!("{key}-{c}-{i}")).await;
                }
                attempts
            });
        }
        let attempts: u32 = clients.join_all().await.into_iter().sum();
        proxy.stop_random_resets();
        let stats = proxy.stats().since(&before);
        let r = until_answered_with(&api, Method::GET, &format!("/cache/{key}"), None, &[]).await;
        assert_eq!(
            r.body["value"],
            CLIENTS as u64 * EACH,
            "seed {seed}, round {round}: {attempts} attempts; proxy {stats:?}"
        );
        eprintln!(
            "cache CAS round {round}: {} increments in {attempts} attempts, {:?}, {stats:?}",
            CLIENTS as u64 * EACH,
            started.elapsed()
        );
    }
    assert_faults_injected(&proxy, &at_start, seed);
}
