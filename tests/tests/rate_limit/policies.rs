//! The header fields (parsed), `cost`, `GET /rate-limit/status`, `DELETE /rate-limit/{user_id}`,
//! GCRA in real time, and several policies in one `POST /rate-limit/check`, all or nothing,
//! under 64 concurrent callers.

use std::{collections::BTreeMap, sync::Arc};

use api_tests::{Reply, TestApp};
use serde_json::{Value, json};

use crate::{ALGORITHMS, QUOTA_EXCEEDED, check};

/// One Item of a Structured Field List as these fields use it: a String and its Integer
/// parameters.
type Item = (String, BTreeMap<String, i64>);

/// Parses `RateLimit-Policy` / `RateLimit` strictly (RFC 8941 List of Items whose value is
/// a String and whose parameters are Integers; draft-ietf-httpapi-ratelimit-headers-10),
/// panicking on anything else.
fn parse_list(field: &str) -> Vec<Item> {
    let item = regex::Regex::new(
        r#"^"([A-Za-z][A-Za-z0-9_.-]*)"((?:;[a-z*][a-z0-9_.*-]*=-?[0-9]{1,15})*)$"#,
    )
    .unwrap();
    assert!(!field.is_empty(), "empty field");
    field
        .split(',')
        .map(|member| {
            let member = member.trim_matches([' ', '\t']);
            let caps = item.captures(member).unwrap_or_else(|| {
                panic!("not an sf-string item with integer parameters: {member:?} in {field:?}")
            });
            let params = caps[2]
                .split(';')
                .skip(1)
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_owned(), v.parse().unwrap())
                })
                .collect();
            (caps[1].to_owned(), params)
        })
        .collect()
}

/// The parsed `RateLimit-Policy` and `RateLimit` of `r`, checked against its decisions
/// (`policies`: the body's, or the one of a GET).
fn assert_fields(r: &Reply, decisions: &[Value]) {
    let policy = parse_list(r.header("ratelimit-policy"));
    let limit = parse_list(r.header("ratelimit"));
    assert_eq!(policy.len(), decisions.len(), "{r:?}");
    assert_eq!(limit.len(), decisions.len(), "{r:?}");
    for ((p, l), d) in policy.iter().zip(&limit).zip(decisions) {
        assert_eq!(p.0, d["policy"], "{r:?}");
        assert_eq!(l.0, d["policy"], "{r:?}");
        let keys: Vec<&str> = p.1.keys().map(String::as_str).collect();
        assert_eq!(keys, ["q", "w"], "{r:?}");
        assert_eq!(p.1["q"], d["limit"].as_i64().unwrap(), "{r:?}");
        assert_eq!(p.1["w"], d["window"].as_i64().unwrap(), "{r:?}");
        let keys: Vec<&str> = l.1.keys().map(String::as_str).collect();
        assert_eq!(keys, ["r", "t"], "{r:?}");
        assert_eq!(l.1["r"], d["remaining"].as_i64().unwrap(), "{r:?}");
        assert_eq!(l.1["t"], d["reset_in_seconds"].as_i64().unwrap(), "{r:?}");
        assert!(
            (0..=d["window"].as_i64().unwrap()).contains(&l.1["t"]),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn header_fields_parse_on_200_and_429() {
    let app = TestApp::new().await;
    for algorithm in ALGORITHMS {
        let r = app.get(&check("h", 2, 60, algorithm)).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_fields(&r, std::slice::from_ref(&r.body));
        assert_eq!(r.header("ratelimit-policy"), "\"default\";q=2;w=60");
        assert!(
            r.header("ratelimit").starts_with("\"default\";r=1;t="),
            "{r:?}"
        );
        assert_eq!(r.header("ratelimit-limit"), "2");
        assert_eq!(r.header("cache-control"), "no-store");
        app.get(&check("h", 2, 60, algorithm)).await;
        let r = app.get(&check("h", 2, 60, algorithm)).await;
        r.assert_problem(429, None);
        assert_eq!(r.body["type"], QUOTA_EXCEEDED, "{r:?}");
        assert_fields(&r, std::slice::from_ref(&r.body));
        assert!(
            r.header("ratelimit").starts_with("\"default\";r=0;t="),
            "{r:?}"
        );
        let retry: u64 = r.header("retry-after").parse().unwrap();
        assert_eq!(r.body["retry_after_seconds"], retry, "{r:?}");
        assert_eq!(r.header("cache-control"), "no-store");
    }
}

#[tokio::test]
async fn cost_weighs_the_request_in_every_algorithm() {
    let app = TestApp::new().await;
    for algorithm in ALGORITHMS {
        let at = |cost: u64| format!("{}&cost={cost}", check("c", 10, 3600, algorithm));
        let r = app.get(&at(4)).await;
        assert_eq!(r.status, 200, "{algorithm}: {r:?}");
        assert_eq!(r.body["remaining"], 6, "{algorithm}: {r:?}");
        assert_eq!(r.body["cost"], 4);
        // Does not fit: refused, and nothing of it counted.
        let r = app.get(&at(7)).await;
        assert_eq!(r.status, 429, "{algorithm}: {r:?}");
        assert_eq!(r.body["remaining"], 6, "{algorithm}: {r:?}");
        let r = app.get(&at(6)).await;
        assert_eq!(r.status, 200, "{algorithm}: {r:?}");
        assert_eq!(r.body["remaining"], 0, "{algorithm}: {r:?}");
        assert_eq!(app.get(&at(1)).await.status, 429, "{algorithm}");
    }
}

/// `GET /rate-limit/status` for the same policy as [`check`].
fn status(user: &str, limit: u64, window: u64, algorithm: &str) -> String {
    check(user, limit, window, algorithm).replace("/check?", "/status?")
}

#[tokio::test]
async fn status_answers_like_a_check_without_counting() {
    let app = TestApp::new().await;
    for algorithm in ALGORITHMS {
        // A caller never seen: status writes nothing at all.
        let r = app.get(&status("s0", 3, 3600, algorithm)).await;
        assert_eq!(r.status, 200, "{algorithm}: {r:?}");
        assert_eq!(r.body["remaining"], 3, "{algorithm}: {r:?}");
        assert!(
            app.keys("*{s0}*").await.is_empty(),
            "{algorithm}: status wrote"
        );
        for _ in 0..2 {
            assert_eq!(app.get(&check("s", 3, 3600, algorithm)).await.status, 200);
        }
        for _ in 0..5 {
            let r = app.get(&status("s", 3, 3600, algorithm)).await;
            assert_eq!(r.status, 200, "{algorithm}: {r:?}");
            assert_eq!(r.body["allowed"], true, "{algorithm}: {r:?}");
            assert_eq!(r.body["current_count"], 2, "{algorithm}: {r:?}");
            assert_eq!(r.body["remaining"], 1, "{algorithm}: {r:?}");
            assert_eq!(r.header("cache-control"), "no-store");
            assert_fields(&r, std::slice::from_ref(&r.body));
        }
        assert_eq!(app.get(&check("s", 3, 3600, algorithm)).await.status, 200);
        // Full: a check would be refused; the status says so, with 200 and the wait.
        let r = app.get(&status("s", 3, 3600, algorithm)).await;
        assert_eq!(r.status, 200, "{algorithm}: {r:?}");
        assert_eq!(r.body["allowed"], false, "{algorithm}: {r:?}");
        assert!(
            r.body["retry_after_seconds"].as_u64().unwrap() >= 1,
            "{r:?}"
        );
        assert_eq!(r.body["current_count"], 3, "{algorithm}: {r:?}");
    }
}

#[tokio::test]
async fn delete_resets_every_algorithm_and_window_and_only_that_caller() {
    let app = TestApp::new().await;
    let windows = [60, 3600];
    for user in ["a", "b"] {
        for algorithm in ALGORITHMS {
            for window in windows {
                assert_eq!(
                    app.get(&check(user, 1, window, algorithm)).await.status,
                    200
                );
                assert_eq!(
                    app.get(&check(user, 1, window, algorithm)).await.status,
                    429
                );
            }
        }
    }
    let r = app.delete("/rate-limit/a").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["deleted_keys"], 8, "{r:?}");
    assert_eq!(r.header("cache-control"), "no-store");
    assert!(app.keys("*{a}*").await.is_empty(), "keys of a left");
    for algorithm in ALGORITHMS {
        for window in windows {
            let r = app.get(&check("a", 1, window, algorithm)).await;
            assert_eq!(r.status, 200, "a, {algorithm} {window}: {r:?}");
            let r = app.get(&check("b", 1, window, algorithm)).await;
            assert_eq!(
                r.status, 429,
                "b was reset too: {algorithm} {window}: {r:?}"
            );
        }
    }
    // Nothing left to do is still a reset; an id a URL cannot carry is a 400.
    let r = app.delete("/rate-limit/nobody").await;
    assert_eq!(
        (r.status.as_u16(), &r.body["deleted_keys"]),
        (200, &json!(0))
    );
    app.delete("/rate-limit/a%2Fb")
        .await
        .assert_problem(400, Some("user_id"));
}

#[tokio::test]
async fn delete_takes_several_bounded_pages_for_a_caller_with_many_keys() {
    let app = TestApp::new().await;
    // 17 requests of 8 policies: 136 keys, more than one page of 100.
    for round in 0..17u64 {
        let policies: Vec<Value> = (0..8u64)
            .map(|i| json!({"limit": 5, "window": round * 8 + i + 1, "algorithm": "fixed_window"}))
            .collect();
        let r = app
            .post(
                "/rate-limit/check",
                json!({"user_id": "many", "policies": policies}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = app.delete("/rate-limit/many").await;
    assert_eq!(r.body["deleted_keys"], 136, "{r:?}");
    assert!(app.keys("*{many}*").await.is_empty());
}

#[tokio::test]
async fn gcra_waiting_retry_after_in_real_time_is_enough() {
    // Two per 2 s: a burst of two, then one per second. Waiting exactly what Retry-After
    // said (real time, on Redis's clock) always gets the next request in.
    let app = TestApp::new().await;
    let path = check("g", 2, 2, "gcra");
    for _ in 0..2 {
        assert_eq!(app.get(&path).await.status, 200);
    }
    for round in 0..2 {
        let r = app.get(&path).await;
        assert_eq!(r.status, 429, "round {round}: {r:?}");
        let retry: u64 = r.header("retry-after").parse().unwrap();
        assert_eq!(retry, 1, "round {round}: {r:?}");
        tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "round {round}, after {retry} s: {r:?}");
    }
}

/// The body of a multi-policy check of `user`.
fn multi(user: &str, policies: Value) -> Value {
    json!({"user_id": user, "policies": policies})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_policies_admit_exactly_the_tightest_limit_and_refusals_count_nowhere() {
    let app = Arc::new(TestApp::new().await);
    // The tightest policy first, then last: 64 callers, two requests each.
    let cases = [
        (
            json!([
                {"name": "burst", "limit": 5, "window": 60},
                {"name": "daily", "limit": 1000, "window": 86400, "algorithm": "sliding_window"},
                {"limit": 50, "window": 3600, "algorithm": "gcra"}
            ]),
            5,
            "burst",
        ),
        (
            json!([
                {"limit": 100, "window": 3600, "algorithm": "token_bucket"},
                {"limit": 100, "window": 3600, "algorithm": "fixed_window"},
                {"limit": 3, "window": 3600, "algorithm": "gcra"}
            ]),
            3,
            "p3",
        ),
    ];
    for (case, (policies, tightest, name)) in cases.into_iter().enumerate() {
        let user = format!("multi{case}");
        let body = multi(&user, policies.clone());
        let callers = api_tests::spawn_each(&app, 64, move |app, _| {
            let body = body.clone();
            async move {
                let mut replies = Vec::new();
                for _ in 0..2 {
                    replies.push(app.post("/rate-limit/check", body.clone()).await);
                }
                replies
            }
        });
        let replies: Vec<Reply> = callers.join_all().await.into_iter().flatten().collect();
        let allowed = replies.iter().filter(|r| r.status == 200).count();
        assert_eq!(allowed, tightest, "case {case}");
        for r in &replies {
            if r.status == 200 {
                assert_eq!(r.body["allowed"], true);
                assert_fields(r, r.body["policies"].as_array().unwrap());
            } else {
                r.assert_problem(429, None);
                assert_eq!(r.body["violated-policies"], json!([name]), "{r:?}");
                assert_fields(r, r.body["policies"].as_array().unwrap());
                assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
            }
        }
        // Every policy counted the admitted requests only (status reads without counting).
        for (i, p) in policies.as_array().unwrap().iter().enumerate() {
            let algorithm = p["algorithm"].as_str().unwrap_or("fixed_window");
            let (limit, window) = (p["limit"].as_u64().unwrap(), p["window"].as_u64().unwrap());
            let r = app.get(&status(&user, limit, window, algorithm)).await;
            assert_eq!(
                r.body["current_count"], tightest,
                "case {case}, policy {i} ({algorithm}) counted refusals: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn multi_policy_bad_bodies_are_422_naming_the_field() {
    let app = TestApp::new().await;
    let one = json!({"limit": 5, "window": 60});
    let nine: Vec<Value> = (1..=9).map(|w| json!({"window": w})).collect();
    let cases = [
        (multi("u", json!([])), "policies"),
        (multi("u", json!(nine)), "policies"),
        (multi("u", json!([{"name": "9lives"}])), "policies[0].name"),
        (multi("u", json!([{"name": "a b"}])), "policies[0].name"),
        (
            multi("u", json!([{"name": "x".repeat(33)}])),
            "policies[0].name",
        ),
        (
            multi(
                "u",
                json!([{"name": "a", "window": 1}, {"name": "a", "window": 2}]),
            ),
            "policies[1].name",
        ),
        (
            multi("u", json!([one, {"limit": 9, "window": 60}])),
            "policies[1].window",
        ),
        (multi("u", json!([{"limit": 0}])), "policies[0].limit"),
        (multi("u", json!([{"window": 86401}])), "policies[0].window"),
        (
            json!({"user_id": "u", "policies": [one], "cost": 6}),
            "cost",
        ),
        (
            json!({"user_id": "u", "policies": [one], "cost": 0}),
            "cost",
        ),
        (json!({"policies": [one]}), "user_id"),
    ];
    for (body, field) in cases {
        let r = app.post("/rate-limit/check", body.clone()).await;
        r.assert_problem(422, Some(field));
    }
    // Nothing of those was counted.
    assert!(app.keys("*ratelimit*").await.is_empty());
}

/// The reset finds a caller's keys through its index, so every limiter key must stay listed
/// there, scored no earlier than the key expires, and the index must outlive its entries —
/// also while use keeps pushing the keys' expiries forward (the script rewrites an entry only
/// when a key's expiry could pass it, not on every call). Checked after every call, for 2.5
/// windows of one second, with every algorithm at once.
#[tokio::test]
async fn the_index_keeps_listing_keys_whose_expiry_moves_forward() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let index = app.state.keys.rate_limit_index("mover");
    let started = std::time::Instant::now();
    let mut calls = 0;
    while started.elapsed() < std::time::Duration::from_millis(2500) {
        for algorithm in ALGORITHMS {
            let r = app.get(&check("mover", 1000, 1, algorithm)).await;
            assert_eq!(r.status, 200, "{r:?}");
            let key = app.state.keys.rate_limit(algorithm, 1, "mover");
            let expires: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let score: Option<f64> = redis::cmd("ZSCORE")
                .arg(&index)
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let index_expires: i64 = redis::cmd("PEXPIRETIME")
                .arg(&index)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_ne!(expires, -1, "{algorithm}: the key has no deadline");
            if expires == -2 {
                continue; // already gone (a token bucket full again after 1 ms)
            }
            let score = score.unwrap_or_else(|| panic!("{algorithm}: {key} is not in the index"));
            assert!(
                score >= expires as f64,
                "{algorithm}, call {calls}: listed until {score}, the key lives until {expires}"
            );
            assert!(
                index_expires as f64 >= score,
                "{algorithm}, call {calls}: the index goes at {index_expires}, before its entry ({score})"
            );
        }
        calls += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(calls > 10, "only {calls} rounds in 2.5 s");
    let r = app.delete("/rate-limit/mover").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(app.keys("*{mover}*").await.is_empty(), "keys of mover left");
}

#[tokio::test]
async fn a_refused_request_leaves_no_fixed_window_key_behind() {
    // A fixed window counts first and takes the units back when another policy refuses: a
    // counter born in the refused call must go again (no window opened, no key without TTL).
    let app = TestApp::new().await;
    let tight = json!({"limit": 1, "window": 3600, "algorithm": "gcra"});
    let r = app
        .post("/rate-limit/check", multi("refusee", json!([tight])))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let both = json!([tight, {"name": "fresh", "limit": 10, "window": 60}]);
    let r = app.post("/rate-limit/check", multi("refusee", both)).await;
    r.assert_problem(429, None);
    assert_eq!(r.body["violated-policies"], json!(["p1"]), "{r:?}");
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("Rate limit exceeded: 1 request per 3600 s; retry in "),
        "{r:?}"
    );
    let key = app.state.keys.rate_limit("fixed_window", 60, "refusee");
    assert!(
        !app.keys("*{refusee}*").await.contains(&key),
        "{key} was left behind by a refusal"
    );
    let r = app.get(&status("refusee", 10, 60, "fixed_window")).await;
    assert_eq!(r.body["current_count"], 0, "{r:?}");
    assert_eq!(r.body["reset_in_seconds"], 60, "{r:?}");
}

#[tokio::test]
async fn a_check_that_fails_midway_counts_nowhere() {
    // Redis does not undo a failed script's writes: a key another client broke must fail the
    // call before anything is counted, wherever it sits among the policies. Text fails the
    // read; "1.5" reads as a number in Lua but fails INCRBY; a string index fails ZSCORE.
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let gcra = json!({"limit": 5, "window": 60, "algorithm": "gcra"});
    let fixed = |window: u64| json!({"limit": 5, "window": window});
    let cases = [
        (
            "text",
            "fixed_window:120",
            "abc",
            json!([fixed(60), fixed(120)]),
        ),
        (
            "decimal",
            "fixed_window:120",
            "1.5",
            json!([gcra, fixed(60), fixed(120)]),
        ),
        ("index", "index", "abc", json!([fixed(60)])),
    ];
    for (user, broken, value, policies) in cases {
        let broken = format!("demo_api:ratelimit:{{{user}}}:{broken}");
        let () = redis::cmd("SET")
            .arg(&broken)
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
        for _ in 0..3 {
            let r = app
                .post("/rate-limit/check", multi(user, policies.clone()))
                .await;
            assert_eq!(r.status, 500, "{user}: {r:?}");
        }
        assert_eq!(
            app.keys(&format!("*{{{user}}}*")).await,
            [broken],
            "{user}: calls that failed counted somewhere"
        );
    }
}

#[tokio::test]
async fn a_lost_index_is_rebuilt_so_a_reset_still_finds_the_counter() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    assert_eq!(
        app.get(&check("lost", 3, 60, "fixed_window")).await.status,
        200
    );
    let index = app.state.keys.rate_limit_index("lost");
    let () = redis::cmd("DEL")
        .arg(&index)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        app.get(&check("lost", 3, 60, "fixed_window")).await.status,
        200
    );
    let r = app.delete("/rate-limit/lost").await;
    assert_eq!(r.body["deleted_keys"], 1, "{r:?}");
    assert!(app.keys("*{lost}*").await.is_empty(), "keys of lost left");
    assert_eq!(
        app.get(&check("lost", 3, 60, "fixed_window")).await.status,
        200
    );
}

#[tokio::test]
async fn every_key_a_multi_policy_check_writes_expires() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let policies: Vec<Value> = ALGORITHMS
        .iter()
        .map(|a| json!({"limit": 5, "window": 60, "algorithm": a}))
        .collect();
    let r = app
        .post("/rate-limit/check", multi("mortal", json!(policies)))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let keys = app.keys("*{mortal}*").await;
    assert_eq!(keys.len(), ALGORITHMS.len() + 1, "{keys:?}");
    for key in keys {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(pttl > 0, "{key} has no TTL ({pttl})");
    }
}
