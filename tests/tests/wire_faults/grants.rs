//! Contenders for a lock or a semaphore through the resetting proxy: each acquires, holds a
//! few ms and releases, again and again, and reports its grants as it saw them. The lock
//! and semaphore checkers differ only in what they then assert about those grants.

use std::time::{Duration, Instant};

use api_tests::proxy::apps::Api;
use http::Method;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use tokio::task::JoinSet;

use super::support::{seed, until_answered};

/// A grant as the client saw it: held for sure from `start` (the 201 arrived) to `end` (the
/// earlier of the release being first sent and the TTL counted from the acquire's first
/// send, before which Redis cannot have granted it).
#[derive(Debug)]
pub struct Held {
    pub who: String,
    pub start: Instant,
    pub end: Instant,
    pub fencing: u64,
}

impl Held {
    /// Whether the client held anything usable: a grant whose TTL lapsed before its 201
    /// arrived did not.
    pub fn usable(&self) -> bool {
        self.start < self.end
    }
}

/// One round of contention on one lock or semaphore.
pub struct Contention {
    /// The resource or semaphore name; prefixes every grant's `who`.
    pub name: String,
    /// The acquire path (with its `ttl`, matching [`Contention::ttl`]).
    pub acquire: String,
    /// The release path.
    pub release: String,
    pub contenders: u64,
    /// Grants each contender takes, one after the other.
    pub cycles: u64,
    /// The TTL `acquire` asks for.
    pub ttl: Duration,
    /// What a grant is, for messages: "lock" or "permit".
    pub what: &'static str,
}

impl Contention {
    /// Runs every contender of round `round` to the end; their grants. A release answered
    /// 409 before the grant's TTL could have lapsed (a false "not the holder") fails.
    pub async fn run(&self, api: &Api, round: u64) -> Vec<Held> {
        let seed = seed();
        let mut contenders = JoinSet::new();
        for c in 0..self.contenders {
            let api = api.clone();
            let (name, what, ttl, cycles) = (self.name.clone(), self.what, self.ttl, self.cycles);
            let (acquire, release) = (self.acquire.clone(), self.release.clone());
            contenders.spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed ^ (round << 32) ^ c);
                let mut held = Vec::new();
                for k in 0..cycles {
                    let who = format!("{name}-c{c}-{k}");
                    let (sent, granted) = acquire_until_granted(&api, &acquire, &who, what).await;
                    let start = Instant::now();
                    let fencing = granted.body["fencing_token"].as_u64().unwrap_or_else(|| {
                        panic!("seed {seed}: {who}: no fencing token: {granted:?}")
                    });
                    tokio::time::sleep(Duration::from_millis(rng.random_range(1..=5))).await;
                    let release_sent = Instant::now();
                    let body = json!({"token": granted.body["token"]});
                    let key = format!("release-{who}");
                    let r = until_answered(&api, Method::POST, &release, Some(&body), &key).await;
                    let lapsed_by = sent + ttl;
                    match r.status.as_u16() {
                        200 => {}
                        409 => assert!(
                            // Margin for the Redis clock's millisecond steps.
                            Instant::now() + Duration::from_millis(50) >= lapsed_by,
                            "seed {seed}: {who}'s release answered 409 while its {what} could \
                             not have lapsed yet (a false 'not the holder'): {r:?}"
                        ),
                        _ => panic!("seed {seed}: release {who}: {r:?}"),
                    }
                    held.push(Held {
                        who,
                        start,
                        end: release_sent.min(lapsed_by),
                        fencing,
                    });
                }
                held
            });
        }
        contenders.join_all().await.into_iter().flatten().collect()
    }
}

/// Acquires until granted: a 409 (all held, or the replayed grant lapsed) is polled again
/// shortly with a new key (a new attempt). When the granted attempt was first sent, and its
/// 201.
async fn acquire_until_granted(
    api: &Api,
    acquire: &str,
    who: &str,
    what: &str,
) -> (Instant, api_tests::Reply) {
    let seed = seed();
    let began = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "seed {seed}: {who} never got a {what}"
        );
        let key = format!("acquire-{who}-{attempt}");
        let sent = Instant::now();
        let r = until_answered(api, Method::POST, acquire, None, &key).await;
        match r.status.as_u16() {
            201 => return (sent, r),
            409 => tokio::time::sleep(Duration::from_millis(5)).await,
            _ => panic!("seed {seed}: acquire {who}: {r:?}"),
        }
    }
}
