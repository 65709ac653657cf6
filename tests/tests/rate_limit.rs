//! Rate limiting, against a real redis-server (or cluster) per test: the answers, exactness
//! under concurrency, counts and `Retry-After` when the limit is lowered between calls,
//! microsecond timing (scripts run inside one `MULTI`), and bounded work per call. The
//! header fields, `cost`, status, reset and several policies at once are in
//! `rate_limit/policies.rs`; `Idempotency-Key` on them in `rate_limit/retries.rs`.

use std::sync::Arc;

use api_tests::{RawRedis, TestApp};

/// The problem type of a refusal (draft-ietf-httpapi-ratelimit-headers-10).
const QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";
use redis::AsyncCommands;
use shared::{models::random_token, scripts};

mod rate_limit {
    pub mod policies;
    pub mod retries;
}

const ALGORITHMS: [&str; 4] = ["fixed_window", "sliding_window", "token_bucket", "gcra"];

fn check(user: &str, limit: u64, window: u64, algorithm: &str) -> String {
    format!("/rate-limit/check?user_id={user}&limit={limit}&window={window}&algorithm={algorithm}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_limit_admitted_with_64_concurrent_callers() {
    let app = Arc::new(TestApp::new().await);
    for algorithm in ALGORITHMS {
        let limit = 50;
        let callers = api_tests::spawn_each(&app, 64, |app, _| async move {
            let mut statuses = Vec::new();
            for _ in 0..4 {
                // A long window: the token bucket refills < 0.1 token during the test.
                let r = app.get(&check("crowd", limit, 3600, algorithm)).await;
                statuses.push(r.status.as_u16());
            }
            statuses
        });
        let statuses: Vec<u16> = callers.join_all().await.into_iter().flatten().collect();
        let allowed = statuses.iter().filter(|s| **s == 200).count();
        let refused = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!(allowed, limit as usize, "{algorithm}: {statuses:?}");
        assert_eq!(refused, 256 - limit as usize, "{algorithm}");
    }
}

#[tokio::test]
async fn answers_200_then_429_with_body_and_headers() {
    let app = TestApp::new().await;
    for algorithm in ALGORITHMS {
        for i in 1..=3u64 {
            let r = app.get(&check("u", 3, 60, algorithm)).await;
            assert_eq!(r.status, 200, "{algorithm} {r:?}");
            let b = &r.body;
            assert_eq!(b["allowed"], true);
            assert_eq!(b["current_count"], i, "{algorithm}");
            assert_eq!(b["limit"], 3);
            assert_eq!(b["window"], 60);
            assert_eq!(b["remaining"], 3 - i);
            assert_eq!(b["algorithm"], algorithm);
            assert!(b["message"].is_string());
            assert!(b["reset_in_seconds"].as_u64().unwrap() <= 60);
            assert_eq!(r.header("ratelimit-limit"), "3");
            assert_eq!(r.header("ratelimit-remaining"), (3 - i).to_string());
            assert!(!r.header("ratelimit-reset").is_empty());
            assert_eq!(r.header("retry-after"), "", "no Retry-After on 200");
        }
        for _ in 0..2 {
            let r = app.get(&check("u", 3, 60, algorithm)).await;
            // A problem of the draft's quota-exceeded type, with the decision's fields.
            r.assert_problem(429, None);
            assert_eq!(r.body["type"], QUOTA_EXCEEDED, "{r:?}");
            assert_eq!(r.body["violated-policies"], serde_json::json!(["default"]));
            assert_eq!(r.body["allowed"], false);
            // A refused request is not counted.
            assert_eq!(r.body["current_count"], 3, "{algorithm}");
            assert_eq!(r.body["remaining"], 0);
            assert_eq!(r.header("ratelimit-remaining"), "0");
            let retry: u64 = r.header("retry-after").parse().unwrap();
            assert!((1..=60).contains(&retry), "{algorithm}: {retry}");
        }
    }
}

#[tokio::test]
async fn retry_after_is_never_too_early_and_every_key_expires() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    for algorithm in ALGORITHMS {
        let mut last = None;
        for _ in 0..3 {
            last = Some(app.get(&check("late", 2, 30, algorithm)).await);
        }
        let r = last.unwrap();
        assert_eq!(r.status, 429);
        let retry_ms: i64 = r.header("retry-after").parse::<i64>().unwrap() * 1000;
        let key = app.state.keys.rate_limit(algorithm, 30, "late");
        let pttl: i64 = conn.pttl(&key).await.unwrap();
        assert!(pttl > 0, "{algorithm}: key without TTL ({pttl})");
        // Deadlines computed from microseconds are rounded up to the next millisecond.
        assert!(pttl <= 30_001, "{algorithm}: {pttl}");
        if algorithm == "fixed_window" || algorithm == "sliding_window" {
            // The window (fixed) or the oldest admission (sliding) ends no later than this.
            assert!(
                retry_ms >= pttl.min(30_000) - 1000 && retry_ms >= 1000,
                "{algorithm}"
            );
        }
        assert!(retry_ms <= 30_000, "{algorithm}: {retry_ms}");
    }
    // Fixed window: the counter holds exactly the limit, refusals not counted.
    let n: u64 = conn
        .get(app.state.keys.rate_limit("fixed_window", 30, "late"))
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn sliding_window_admits_again_once_old_requests_slide_out() {
    let app = TestApp::new().await;
    for _ in 0..2 {
        assert_eq!(
            app.get(&check("s", 2, 10, "sliding_window")).await.status,
            200
        );
    }
    assert_eq!(
        app.get(&check("s", 2, 10, "sliding_window")).await.status,
        429
    );
    // Age the log instead of sleeping: move both admissions 11 s into the past.
    let mut conn = app.redis_conn().await;
    let key = &app.state.keys.rate_limit("sliding_window", 10, "s");
    let members: Vec<(String, f64)> = conn.zrange_withscores(key, 0, -1).await.unwrap();
    for (m, score) in members {
        let () = conn.zadd(key, m, score - 11_000_000.0).await.unwrap();
    }
    let r = app.get(&check("s", 2, 10, "sliding_window")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["current_count"], 1);
}

#[tokio::test]
async fn token_bucket_refills_over_time() {
    let app = TestApp::new().await;
    for _ in 0..3 {
        app.get(&check("t", 3, 60, "token_bucket")).await;
    }
    assert_eq!(
        app.get(&check("t", 3, 60, "token_bucket")).await.status,
        429
    );
    // Pretend the last refill was 20 s ago: 20 s at 3 per 60 s is one token.
    let mut conn = app.redis_conn().await;
    let key = &app.state.keys.rate_limit("token_bucket", 60, "t");
    let ts: f64 = conn.hget(key, "ts").await.unwrap();
    let () = conn
        .hset(key, "ts", (ts - 20_500_000.0).to_string())
        .await
        .unwrap();
    assert_eq!(
        app.get(&check("t", 3, 60, "token_bucket")).await.status,
        200
    );
    assert_eq!(
        app.get(&check("t", 3, 60, "token_bucket")).await.status,
        429
    );
}

#[tokio::test]
async fn scripts_survive_a_script_flush() {
    let app = TestApp::new().await;
    for algorithm in ALGORITHMS {
        assert_eq!(app.get(&check("f", 5, 60, algorithm)).await.status, 200);
    }
    let mut conn = app.redis_conn().await;
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    for algorithm in ALGORITHMS {
        let r = app.get(&check("f", 5, 60, algorithm)).await;
        assert_eq!(r.status, 200, "{algorithm} after SCRIPT FLUSH: {r:?}");
        assert_eq!(r.body["current_count"], 2);
    }
}

#[tokio::test]
async fn bad_parameters_are_422_naming_the_field() {
    let app = TestApp::new().await;
    let long = "u".repeat(513);
    let cases = [
        ("/rate-limit/check", "user_id"),
        ("/rate-limit/check?user_id=", "user_id"),
        (&*format!("/rate-limit/check?user_id={long}"), "user_id"),
        ("/rate-limit/check?user_id=u&limit=0", "limit"),
        ("/rate-limit/check?user_id=u&limit=1000001", "limit"),
        ("/rate-limit/check?user_id=u&limit=ten", "limit"),
        ("/rate-limit/check?user_id=u&window=0", "window"),
        ("/rate-limit/check?user_id=u&window=86401", "window"),
        ("/rate-limit/check?user_id=u&algorithm=leaky", "algorithm"),
        ("/rate-limit/check?user_id=u&cost=0", "cost"),
        ("/rate-limit/check?user_id=u&limit=5&cost=6", "cost"),
        (
            "/rate-limit/check?user_id=u&limit=5000&algorithm=sliding_window&cost=1001",
            "cost",
        ),
        ("/rate-limit/status?user_id=u&limit=5&cost=6", "cost"),
        ("/rate-limit/status?user_id=u&window=0", "window"),
        ("/rate-limit/check?user_id=u&colour=red", "colour"),
    ];
    for (path, field) in cases {
        app.get(path).await.assert_problem(422, Some(field));
    }
}

/// Runs the rate-limit script directly, as the handler does for one policy of cost 1
/// (`key` is `(index, limiter)`).
fn invoke(
    pipe: &mut redis::Pipeline,
    algorithm: &str,
    key: &(String, String),
    limit: u64,
    window_ms: u64,
) {
    pipe.cmd("EVALSHA")
        .arg(scripts::RATE_LIMIT.plain.get_hash())
        .arg(2)
        .arg(&key.0)
        .arg(&key.1)
        .arg("check")
        .arg(random_token())
        .arg(1)
        .arg(algorithm)
        .arg(limit)
        .arg(window_ms);
}

/// Makes sure the script is loaded on the node that holds `key` (a first call, then the
/// keys are deleted), so that an `EVALSHA` inside `MULTI` cannot meet `NOSCRIPT`.
async fn load(conn: &mut RawRedis, algorithm: &str, key: &(String, String)) {
    let _: Vec<i64> = scripts::RATE_LIMIT
        .plain
        .key(&key.0)
        .key(&key.1)
        .arg("check")
        .arg(random_token())
        .arg(1)
        .arg(algorithm)
        .arg(1)
        .arg(1000)
        .invoke_async(conn)
        .await
        .unwrap();
    let () = conn.del(&key.1).await.unwrap();
    let () = conn.del(&key.0).await.unwrap();
}

/// A fresh key of `algorithm` for attempt `attempt` (with its caller's index), the script
/// loaded, and an empty MULTI pipeline to call it in.
async fn fresh_multi(
    app: &TestApp,
    conn: &mut RawRedis,
    algorithm: &str,
    attempt: u32,
) -> ((String, String), redis::Pipeline) {
    let user = format!("m{attempt}");
    let key = (
        app.state.keys.rate_limit_index(&user),
        app.state.keys.rate_limit(algorithm, 60, &user),
    );
    load(conn, algorithm, &key).await;
    let mut pipe = redis::pipe();
    pipe.atomic();
    (key, pipe)
}

#[tokio::test]
async fn sliding_window_never_admits_more_than_limit_within_one_multi() {
    // Scripts inside one MULTI run a few microseconds apart. Times printed at 100 µs
    // resolution made two calls' members equal, so ZADD moved a member instead of adding
    // one and the log stopped growing. Each attempt: two admissions, the oldest removed, then
    // three more calls with limit 2: exactly one of them may pass.
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let sliding = "sliding_window";
    for attempt in 0..40 {
        let (key, mut pipe) = fresh_multi(&app, &mut conn, sliding, attempt).await;
        invoke(&mut pipe, sliding, &key, 2, 60_000);
        invoke(&mut pipe, sliding, &key, 2, 60_000);
        pipe.cmd("ZPOPMIN").arg(&key.1).ignore();
        for _ in 0..3 {
            invoke(&mut pipe, sliding, &key, 2, 60_000);
        }
        let answers: Vec<Vec<i64>> = pipe.query_async(&mut conn).await.unwrap();
        let allowed: Vec<i64> = answers.iter().map(|a| a[0]).collect();
        assert_eq!(allowed, [1, 1, 1, 0, 0], "attempt {attempt}: {answers:?}");
        let stored: u64 = conn.zcard(&key.1).await.unwrap();
        assert_eq!(stored, 2, "attempt {attempt}");
    }
}

#[tokio::test]
async fn token_bucket_counts_stay_in_range_when_the_limit_drops_within_one_multi() {
    // A bucket filled under limit 1000 is checked a few microseconds later with limit 10.
    // Its stored time used to be rounded (up, half the time) to 100 µs, so the later call saw
    // no time passing, skipped the clamp and reported ~990 tokens over a limit of 10.
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let bucket = "token_bucket";
    for attempt in 0..40 {
        let (key, mut pipe) = fresh_multi(&app, &mut conn, bucket, attempt).await;
        invoke(&mut pipe, bucket, &key, 1000, 60_000);
        invoke(&mut pipe, bucket, &key, 10, 60_000);
        let answers: Vec<Vec<i64>> = pipe.query_async(&mut conn).await.unwrap();
        let [allowed, _fits, current, remaining, ..] = answers[1][..] else {
            panic!("{answers:?}");
        };
        assert_eq!(allowed, 1, "attempt {attempt}: {answers:?}");
        assert!(
            (0..=10).contains(&current),
            "attempt {attempt}: {answers:?}"
        );
        assert!(
            (0..=10).contains(&remaining),
            "attempt {attempt}: {answers:?}"
        );
        assert_eq!(current + remaining, 10, "attempt {attempt}: {answers:?}");
    }
}

#[tokio::test]
async fn token_bucket_survives_the_redis_clock_going_back() {
    // A failover to a node whose clock is behind, or an NTP step: the stored time is then in
    // the future. Tokens must still be clamped to the (lowered) limit, and nothing refilled.
    let app = TestApp::new().await;
    let r = app.get(&check("back", 1000, 60, "token_bucket")).await;
    assert_eq!(r.status, 200);
    let mut conn = app.redis_conn().await;
    let key = app.state.keys.rate_limit("token_bucket", 60, "back");
    let ts: f64 = conn.hget(&key, "ts").await.unwrap();
    let () = conn
        .hset(&key, "ts", format!("{}", ts as i64 + 10_000_000))
        .await
        .unwrap();
    for i in 1..=3u64 {
        let r = app.get(&check("back", 2, 60, "token_bucket")).await;
        let body = &r.body;
        assert!(body["current_count"].as_u64().unwrap() <= 2, "{r:?}");
        assert!(body["remaining"].as_u64().unwrap() <= 2, "{r:?}");
        assert_eq!(r.status, if i <= 2 { 200 } else { 429 }, "call {i}: {r:?}");
    }
}

/// Moves a limiter's state `secs` seconds into the past, as if that much time had passed.
async fn age(conn: &mut RawRedis, algorithm: &str, key: &str, secs: u64) {
    let us = secs as f64 * 1e6;
    match algorithm {
        "fixed_window" => {
            let pttl: i64 = conn.pttl(key).await.unwrap();
            let left = pttl - secs as i64 * 1000;
            if left > 0 {
                let () = conn.pexpire(key, left).await.unwrap();
            } else {
                let () = conn.del(key).await.unwrap();
            }
        }
        "sliding_window" => {
            let members: Vec<(String, f64)> = conn.zrange_withscores(key, 0, -1).await.unwrap();
            for (m, score) in members {
                let () = conn.zadd(key, m, score - us).await.unwrap();
            }
        }
        "gcra" => {
            // The TAT moves back; the key's TTL (later) does not matter.
            let tat: Option<i64> = conn.get(key).await.unwrap();
            if let Some(tat) = tat {
                let () = conn.set(key, tat - us as i64).await.unwrap();
            }
        }
        _ => {
            let ts: f64 = conn.hget(key, "ts").await.unwrap();
            let () = conn
                .hset(key, "ts", format!("{}", (ts - us) as i64))
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn lowering_the_limit_keeps_counts_sane_and_retry_after_never_early() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    for algorithm in ALGORITHMS {
        let key = app.state.keys.rate_limit(algorithm, 60, "low");
        for _ in 0..5 {
            let r = app.get(&check("low", 5, 60, algorithm)).await;
            assert_eq!(r.status, 200, "{algorithm}: {r:?}");
        }
        if algorithm == "sliding_window" {
            // Admissions 50, 40, 30, 20 and 10 s ago: with limit 2 the next slot frees when
            // the fourth slides out (in 40 s), not the oldest (in 10 s).
            let members: Vec<(String, f64)> = conn.zrange_withscores(&key, 0, -1).await.unwrap();
            let now = members[4].1;
            for (i, (m, _)) in members.into_iter().enumerate() {
                let at = now - (50.0 - 10.0 * i as f64) * 1e6;
                let () = conn.zadd(&key, m, at).await.unwrap();
            }
        }
        let r = app.get(&check("low", 2, 60, algorithm)).await;
        assert_eq!(r.status, 429, "{algorithm}: {r:?}");
        let current = r.body["current_count"].as_u64().unwrap();
        assert!(current <= 5, "{algorithm}: {r:?}");
        assert_eq!(r.body["remaining"], 0, "{algorithm}: {r:?}");
        let retry: u64 = r.header("retry-after").parse().unwrap();
        assert!((1..=60).contains(&retry), "{algorithm}: {r:?}");
        if algorithm == "sliding_window" {
            assert_eq!(retry, 40, "{r:?}");
        }
        assert!(r.body["reset_in_seconds"].as_u64().unwrap() <= 60, "{r:?}");
        // After Retry-After seconds (on Redis's clock) the next call passes.
        age(&mut conn, algorithm, &key, retry).await;
        let r = app.get(&check("low", 2, 60, algorithm)).await;
        assert_eq!(r.status, 200, "{algorithm} after {retry} s: {r:?}");
        assert!(r.body["current_count"].as_u64().unwrap() <= 2, "{r:?}");
    }
}

#[tokio::test]
async fn retry_after_is_never_early_per_redis_time() {
    // Every algorithm, refused at various points of its window: waiting exactly Retry-After
    // (state aged by that much; real time only adds to it) always gets the next call in.
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    for algorithm in ALGORITHMS {
        for (round, limit) in [1u64, 2, 3, 7].into_iter().enumerate() {
            let user = format!("never-early-{round}");
            let key = app.state.keys.rate_limit(algorithm, 5, &user);
            let mut refused = None;
            for _ in 0..=limit {
                let r = app.get(&check(&user, limit, 5, algorithm)).await;
                if r.status == 429 {
                    refused = Some(r);
                    break;
                }
            }
            let r = refused.unwrap_or_else(|| panic!("{algorithm}: never refused"));
            let retry: u64 = r.header("retry-after").parse().unwrap();
            assert!((1..=5).contains(&retry), "{algorithm}: {r:?}");
            age(&mut conn, algorithm, &key, retry).await;
            let r = app.get(&check(&user, limit, 5, algorithm)).await;
            assert_eq!(r.status, 200, "{algorithm} limit {limit}: {r:?}");
        }
    }
}

#[tokio::test]
async fn sliding_window_work_per_call_is_bounded() {
    // 10,000 expired admissions (as a limit of 1,000,000 leaves behind): one call must not
    // delete them all at once, yet must count only the live ones. A call deletes at most
    // 100 plus its cost (1 here).
    const TRIM_PER_CALL: u64 = 101;
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let key = app.state.keys.rate_limit("sliding_window", 10, "big");
    let r = app.get(&check("big", 2, 10, "sliding_window")).await;
    assert_eq!(r.status, 200);
    let live: Vec<(String, f64)> = conn.zrange_withscores(&key, 0, -1).await.unwrap();
    let old = live[0].1 - 20e6;
    for chunk in 0..10 {
        let members: Vec<(f64, String)> = (0..1000)
            .map(|i| (old + (chunk * 1000 + i) as f64, format!("old{chunk}-{i}")))
            .collect();
        let () = conn.zadd_multiple(&key, &members).await.unwrap();
    }
    let mut stored: u64 = conn.zcard(&key).await.unwrap();
    assert_eq!(stored, 10_001);
    // One live admission: one more call passes, the next is refused; each removes at most
    // TRIM_PER_CALL of the expired ones, oldest first.
    for (i, expected) in [200u16, 429, 429].into_iter().enumerate() {
        let r = app.get(&check("big", 2, 10, "sliding_window")).await;
        assert_eq!(r.status, expected, "call {i}: {r:?}");
        let after: u64 = conn.zcard(&key).await.unwrap();
        let added = u64::from(expected == 200);
        assert!(
            after + TRIM_PER_CALL >= stored + added,
            "call {i} removed {} members",
            stored + added - after
        );
        assert!(after < stored + added, "call {i} removed nothing");
        stored = after;
    }
    assert_eq!(
        app.get(&check("big", 2, 10, "sliding_window")).await.body["current_count"],
        2
    );
}

/// A caller of a large `cost` who keeps calling while old admissions expire: each call
/// deletes at least as many expired entries as it adds, so the log never grows past what is
/// live (it grew by cost - 100 per call before).
#[tokio::test]
async fn sliding_window_log_does_not_grow_under_a_large_cost() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let key = app.state.keys.rate_limit("sliding_window", 10, "heavy");
    let path =
        "/rate-limit/check?user_id=heavy&limit=1000&window=10&algorithm=sliding_window&cost=250";
    assert_eq!(app.get(path).await.status, 200);
    // Age those 250 and add 5,000 more expired ones.
    let live: Vec<(String, f64)> = conn.zrange_withscores(&key, 0, -1).await.unwrap();
    let old = live[0].1 - 20e6;
    let members: Vec<(f64, String)> = (0..5000)
        .map(|i| (old + i as f64, format!("old{i}")))
        .collect();
    let () = conn.zadd_multiple(&key, &members).await.unwrap();
    let ages: Vec<(f64, String)> = live.iter().map(|(m, _)| (old, m.clone())).collect();
    let () = conn.zadd_multiple(&key, &ages).await.unwrap();
    let mut stored: u64 = conn.zcard(&key).await.unwrap();
    for call in 0..4 {
        let r = app.get(path).await;
        assert_eq!(r.status, 200, "call {call}: {r:?}");
        let after: u64 = conn.zcard(&key).await.unwrap();
        assert!(
            after <= stored,
            "call {call}: the log grew from {stored} to {after}"
        );
        stored = after;
    }
    assert_eq!(app.get(path).await.status, 429);
}
