//! Failing tasks through the fault proxy: producers push (a third of them delayed), consumers
//! claim with `max_deliveries=2` and ack good tasks but nack poison ones (now or delayed),
//! while connections are reset at random; then, faults off, the queue is drained until
//! nothing is queued, scheduled or leased. Every request is retried with its own
//! `Idempotency-Key` through 503s. What must hold: every task ends exactly once either acked
//! or in the dead letters (a good task may die when faults made its claims lapse twice), a
//! poison task is never acked, and nothing is left queued, scheduled, in processing or
//! counted.

use std::{collections::BTreeMap, time::Instant};

use api_tests::proxy::apps::{Api, proxied_app};
use http::Method;
use serde_json::json;

use super::{
    checkers::{RESET_P, assert_faults_injected},
    support::{rounds, seed, until_answered},
};

const PRODUCERS: usize = 3;
const PER_PRODUCER: usize = 8;

fn poison(id: &str) -> bool {
    id.ends_with('0') || id.ends_with('4')
}

/// One claim and its ack (good task) or nack (poison); the id when acked.
async fn consume(api: &Api, name: &str, series: &str) -> Option<Result<String, ()>> {
    let seed = seed();
    let path = format!("/queue/{name}/claim?visibility=1&max_deliveries=2");
    let claimed = until_answered(api, Method::POST, &path, None, &format!("c-{series}")).await;
    match claimed.status.as_u16() {
        200 => {}
        404 => return None,
        _ => panic!("seed {seed}: claim {series}: {claimed:?}"),
    }
    let id = claimed.body["task"]["id"].as_str()?.to_owned();
    let receipt = &claimed.body["receipt"];
    let (path, body) = if poison(&id) {
        let delay = if series.len().is_multiple_of(2) {
            0
        } else {
            100
        };
        let body = json!({"receipt": receipt, "delay_ms": delay});
        (format!("/queue/{name}/nack"), body)
    } else {
        (format!("/queue/{name}/ack"), json!({"receipt": receipt}))
    };
    let r = until_answered(
        api,
        Method::POST,
        &path,
        Some(&body),
        &format!("a-{series}"),
    )
    .await;
    match (r.status.as_u16(), poison(&id)) {
        (200, false) => Some(Ok(id)),
        (200, true) => Some(Err(())),
        // Lapsed: the lease ran out while faults slowed us (visibility is 1 s).
        (404, _) => Some(Err(())),
        _ => panic!("seed {seed}: {path} {series}: {r:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_tasks_under_random_resets_end_acked_or_dead_exactly_once() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let api = Api::InProcess(app.router.clone());
    let mut redis = app.redis_conn().await;
    let seed = seed();
    let at_start = proxy.stats();
    for round in 0..rounds() {
        let name = format!("f{round}");
        let keys = app.state.keys.queue(&name);
        let before = proxy.stats();
        proxy.set_random_resets(RESET_P, seed.wrapping_add(round));
        let mut producers = tokio::task::JoinSet::new();
        for p in 0..PRODUCERS {
            let (api, name) = (api.clone(), name.clone());
            producers.spawn(async move {
                for j in 0..PER_PRODUCER {
                    let id = format!("p{p}-{j}");
                    let delay = if j % 3 == 0 { 200 } else { 0 };
                    let path = format!("/queue/{name}?delay_ms={delay}");
                    let task = json!({"id": id, "title": "checked"});
                    let r = until_answered(&api, Method::POST, &path, Some(&task), &id).await;
                    assert!(matches!(r.status.as_u16(), 201 | 202), "seed {seed}: {r:?}");
                }
            });
        }
        let mut consumers = tokio::task::JoinSet::new();
        for c in 0..3 {
            let (api, name) = (api.clone(), name.clone());
            consumers.spawn(async move {
                let mut acked = Vec::new();
                for n in 0..40 {
                    match consume(&api, &name, &format!("{name}-{c}-{n}")).await {
                        Some(Ok(id)) => acked.push(id),
                        Some(Err(())) => {}
                        None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    }
                }
                acked
            });
        }
        producers.join_all().await;
        let mut acked: Vec<String> = consumers.join_all().await.into_iter().flatten().collect();
        proxy.stop_random_resets();
        let stats = proxy.stats().since(&before);

        // Drain, faults off, until nothing is queued, scheduled or leased.
        let started = Instant::now();
        let mut n = 0;
        loop {
            n += 1;
            match consume(&api, &name, &format!("{name}-drain-{n}")).await {
                Some(Ok(id)) => acked.push(id),
                Some(Err(())) => {}
                None => {
                    let [pending, _, _, leases, _, _, _, scheduled] = &keys;
                    let left: (u64, u64, u64) = redis::pipe()
                        .llen(pending)
                        .zcard(leases)
                        .zcard(scheduled)
                        .query_async(&mut redis)
                        .await
                        .unwrap();
                    if left == (0, 0, 0) || started.elapsed().as_secs() > 15 {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        let dead: Vec<String> = redis::AsyncCommands::lrange(&mut redis, &keys[6], 0, -1)
            .await
            .unwrap();
        let dead: Vec<String> = dead
            .iter()
            .map(|t| {
                serde_json::from_str::<serde_json::Value>(t).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let mut times: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for id in &acked {
            times.entry(id.clone()).or_default().0 += 1;
        }
        for id in &dead {
            times.entry(id.clone()).or_default().1 += 1;
        }
        let expected: Vec<String> = (0..PRODUCERS)
            .flat_map(|p| (0..PER_PRODUCER).map(move |j| format!("p{p}-{j}")))
            .collect();
        let wrong: Vec<(&String, Option<&(usize, usize)>)> = expected
            .iter()
            .map(|id| (id, times.get(id)))
            .filter(|(id, t)| !matches!(t, Some((1, 0)) if !poison(id)) && *t != Some(&(0, 1)))
            .collect();
        let poison_acked: Vec<&String> = acked.iter().filter(|id| poison(id)).collect();
        let left: (u64, u64, u64, u64, u64) = redis::pipe()
            .llen(&keys[0])
            .llen(&keys[1])
            .hlen(&keys[2])
            .zcard(&keys[7])
            .hlen(&keys[4])
            .query_async(&mut redis)
            .await
            .unwrap();
        let context = format!(
            "seed {seed}, round {round}; proxy {stats:?}; ids not (acked once | dead once): \
             {wrong:?}; poison acked {poison_acked:?}; left (queued, processing, claims, \
             scheduled, counted) {left:?}"
        );
        assert!(wrong.is_empty() && poison_acked.is_empty(), "{context}");
        assert_eq!(left, (0, 0, 0, 0, 0), "{context}");
        eprintln!(
            "queue failures round {round}: {} acked, {} dead, {stats:?}",
            acked.len(),
            dead.len()
        );
    }
    assert_faults_injected(&proxy, &at_start, seed);
}
