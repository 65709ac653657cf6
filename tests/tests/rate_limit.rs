//! Rate limiting (API.md "Rate limiting"), against a real redis-server per test.

use std::sync::Arc;

use api_tests::TestApp;
use redis::AsyncCommands;

const ALGORITHMS: [&str; 3] = ["fixed_window", "sliding_window", "token_bucket"];

fn check(user: &str, limit: u64, window: u64, algorithm: &str) -> String {
    format!("/rate-limit/check?user_id={user}&limit={limit}&window={window}&algorithm={algorithm}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_limit_admitted_with_64_concurrent_callers() {
    let app = Arc::new(TestApp::new().await);
    for algorithm in ALGORITHMS {
        let limit = 50;
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let app = app.clone();
            callers.spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..4 {
                    // A long window: the token bucket refills < 0.1 token during the test.
                    let r = app.get(&check("crowd", limit, 3600, algorithm)).await;
                    statuses.push(r.status.as_u16());
                }
                statuses
            });
        }
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
            assert_eq!(r.status, 429, "{algorithm} {r:?}");
            assert_eq!(r.header("content-type"), "application/json");
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
        let key = format!("demo_api:ratelimit:{algorithm}:30:late");
        let pttl: i64 = conn.pttl(&key).await.unwrap();
        assert!(pttl > 0, "{algorithm}: key without TTL ({pttl})");
        assert!(pttl <= 30_000, "{algorithm}: {pttl}");
        if algorithm != "token_bucket" {
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
        .get("demo_api:ratelimit:fixed_window:30:late")
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
    let key = "demo_api:ratelimit:sliding_window:10:s";
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
    let key = "demo_api:ratelimit:token_bucket:60:t";
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
        ("/rate-limit/check?user_id=u&colour=red", "colour"),
    ];
    for (path, field) in cases {
        app.get(path).await.assert_problem(422, Some(field));
    }
}
