//! Entity tags, conditional requests and XFetch on the cache: `ETag` on every read and
//! write, `If-None-Match` → 304, `If-Match` → compare-and-set (412 when the entry changed),
//! `If-None-Match: *` → create only; `compute_ms` + `beta` → `refresh_recommended`. Against a
//! real Redis, with many concurrent writers where a guarantee is claimed.

use std::sync::Arc;

use api_tests::{Reply, TestApp, proxy::apps::Api};
use http::Method;
use redis::AsyncCommands;
use serde_json::{Value, json};

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    Api::InProcess(app.router.clone())
        .send_with(method, path, body.as_ref(), headers)
        .await
        .unwrap()
}

async fn put(app: &TestApp, key: &str, value: Value, headers: &[(&str, &str)]) -> Reply {
    let body = json!({"key": key, "value": value});
    send(app, Method::POST, "/cache", Some(body), headers).await
}

async fn read(app: &TestApp, key: &str, headers: &[(&str, &str)]) -> Reply {
    send(app, Method::GET, &format!("/cache/{key}"), None, headers).await
}

/// The quoted SHA-1 of `text`, as `ETag` carries it.
fn tag_of(text: &str) -> String {
    format!("\"{}\"", sha1_smol::Sha1::from(text).digest())
}

#[tokio::test]
async fn every_read_and_write_carries_the_etag_and_if_none_match_is_a_304() {
    let app = TestApp::new().await;
    let stored = put(&app, "e", json!({"a": 1}), &[]).await;
    assert_eq!(stored.status, 201, "{stored:?}");
    let etag = stored.header("etag").to_owned();
    // The hash of the value's text exactly as sent (and stored).
    assert_eq!(etag, tag_of(r#"{"a":1}"#));
    let mut conn = app.redis_conn().await;
    let in_redis: String = conn.hget("demo_api:cache:e", "e").await.unwrap();
    assert_eq!(format!("\"{in_redis}\""), etag);

    let r = read(&app, "e", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), etag);
    for matching in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let r = read(&app, "e", &[("if-none-match", &matching)]).await;
        assert_eq!(r.status, 304, "{matching}: {r:?}");
        assert_eq!(r.header("etag"), etag);
        assert_eq!(r.body, json!(""), "a 304 has no body");
    }
    let r = read(&app, "e", &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["value"], json!({"a": 1}));
    // A new value is a new tag.
    let again = put(&app, "e", json!({"a": 2}), &[]).await;
    assert_ne!(again.header("etag"), etag);
    let r = read(&app, "e", &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 200);
    // If-Match on a read: 412 unless it names the current tag.
    read(&app, "e", &[("if-match", &etag)])
        .await
        .assert_problem(412, Some("If-Match"));
    // Preconditions never turn a missing key into anything but a 404.
    read(&app, "nope", &[("if-none-match", "*")])
        .await
        .assert_problem(404, None);
}

#[tokio::test]
async fn if_match_is_a_compare_and_set() {
    let app = TestApp::new().await;
    let first = put(&app, "k", json!(1), &[])
        .await
        .header("etag")
        .to_owned();
    let second = put(&app, "k", json!(2), &[("if-match", &first)]).await;
    assert_eq!(second.status, 201, "{second:?}");
    let current = second.header("etag").to_owned();

    // The tag read before the last write is stale now: refused, nothing written.
    let stale = put(&app, "k", json!(3), &[("if-match", &first)]).await;
    stale.assert_problem(412, Some("If-Match"));
    assert_eq!(stale.body["type"], "/problems/precondition-failed");
    assert_eq!(
        format!("\"{}\"", stale.body["current_etag"].as_str().unwrap()),
        current
    );
    assert_eq!(read(&app, "k", &[]).await.body["value"], 2);
    // A weak tag never matches If-Match (strong comparison), even the current one.
    put(
        &app,
        "k",
        json!(3),
        &[("if-match", &format!("W/{current}"))],
    )
    .await
    .assert_problem(412, Some("If-Match"));
    // `*`: only if it exists.
    assert_eq!(
        put(&app, "k", json!(4), &[("if-match", "*")]).await.status,
        201
    );
    let absent = put(&app, "absent", json!(1), &[("if-match", "*")]).await;
    absent.assert_problem(412, Some("If-Match"));
    assert_eq!(absent.body["current_etag"], Value::Null);
    read(&app, "absent", &[]).await.assert_problem(404, None);
}

#[tokio::test]
async fn if_none_match_star_creates_only() {
    let app = TestApp::new().await;
    let created = put(&app, "once", json!("a"), &[("if-none-match", "*")]).await;
    assert_eq!(created.status, 201, "{created:?}");
    let refused = put(&app, "once", json!("b"), &[("if-none-match", "*")]).await;
    refused.assert_problem(412, Some("If-None-Match"));
    assert_eq!(read(&app, "once", &[]).await.body["value"], "a");
    // With tags: refused when the current one is listed.
    let tag = created.header("etag").to_owned();
    put(&app, "once", json!("c"), &[("if-none-match", &tag)])
        .await
        .assert_problem(412, Some("If-None-Match"));
    assert_eq!(
        put(&app, "once", json!("c"), &[("if-none-match", "\"other\"")])
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn malformed_preconditions_are_400s_naming_the_header() {
    let app = TestApp::new().await;
    put(&app, "m", json!(1), &[]).await;
    for (header, value) in [
        ("if-match", "abc"),
        ("if-match", "\"unterminated"),
        ("if-none-match", "\"a\" \"b\""),
        ("if-none-match", ""),
        ("if-match", "*, \"a\""),
    ] {
        let name = if header == "if-match" {
            "If-Match"
        } else {
            "If-None-Match"
        };
        put(&app, "m", json!(2), &[(header, value)])
            .await
            .assert_problem(400, Some(name));
        read(&app, "m", &[(header, value)])
            .await
            .assert_problem(400, Some(name));
    }
    // Nothing was written by the refused writes.
    assert_eq!(read(&app, "m", &[]).await.body["value"], 1);
}

/// 64 writers read the same tag and each tries to replace the entry with it: exactly one
/// wins, every other one is told the entry changed, and the entry holds the winner's value.
#[tokio::test]
async fn of_many_concurrent_compare_and_sets_exactly_one_wins() {
    let app = Arc::new(TestApp::new().await);
    let etag = put(&app, "race", json!("start"), &[])
        .await
        .header("etag")
        .to_owned();
    let etag = Arc::new(etag);
    let mut writers =
        api_tests::spawn_each(&(app.clone(), etag), 64, |(app, etag), i| async move {
            let r = put(&app, "race", json!(i), &[("if-match", &etag)]).await;
            (i, r.status.as_u16())
        });
    let mut winners = Vec::new();
    while let Some(done) = writers.join_next().await {
        let (i, status) = done.unwrap();
        match status {
            201 => winners.push(i),
            412 => {}
            other => panic!("writer {i}: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(read(&app, "race", &[]).await.body["value"], winners[0]);
}

/// 64 creators of one key with `If-None-Match: *`: one creates it, 63 are refused.
#[tokio::test]
async fn of_many_concurrent_creates_exactly_one_wins() {
    let app = Arc::new(TestApp::new().await);
    let mut creators = api_tests::spawn_each(&app, 64, |app, i| async move {
        put(&app, "fresh", json!(i), &[("if-none-match", "*")])
            .await
            .status
            .as_u16()
    });
    let mut statuses = Vec::new();
    while let Some(done) = creators.join_next().await {
        statuses.push(done.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        63,
        "{statuses:?}"
    );
}

/// The optimistic-concurrency loop (read, compute, write with If-Match, start again on 412)
/// by 16 concurrent clients: no increment is lost.
#[tokio::test]
async fn read_modify_write_with_if_match_loses_no_update() {
    let app = Arc::new(TestApp::new().await);
    put(&app, "counter", json!(0), &[]).await;
    const CLIENTS: usize = 16;
    const EACH: u64 = 5;
    let mut clients = api_tests::spawn_each(&app, CLIENTS, |app, _| async move {
        let mut retries = 0u32;
        for _ in 0..EACH {
            loop {
                let r = read(&app, "counter", &[]).await;
                let n = r.body["value"].as_u64().unwrap();
                let w = put(
                    &app,
                    "counter",
                    json!(n + 1),
                    &[("if-match", r.header("etag"))],
                )
                .await;
                match w.status.as_u16() {
                    201 => break,
                    412 => retries += 1,
                    other => panic!("{other}: {w:?}"),
                }
            }
        }
        retries
    });
    let mut retries = 0;
    while let Some(done) = clients.join_next().await {
        retries += done.unwrap();
    }
    let r = read(&app, "counter", &[]).await;
    assert_eq!(r.body["value"], CLIENTS as u64 * EACH, "{retries} retries");
}

/// A retry with the same Idempotency-Key replays the first 201 (not a 412 against its own
/// write); the same key with another precondition is another request (422).
#[tokio::test]
async fn conditional_writes_replay_with_their_idempotency_key() {
    let app = TestApp::new().await;
    let tag = put(&app, "idem", json!(1), &[])
        .await
        .header("etag")
        .to_owned();
    let headers = [("if-match", tag.as_str()), ("idempotency-key", "k1")];
    let first = put(&app, "idem", json!(2), &headers).await;
    assert_eq!(first.status, 201, "{first:?}");
    let again = put(&app, "idem", json!(2), &headers).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.header("etag"), first.header("etag"));
    put(
        &app,
        "idem",
        json!(2),
        &[("if-match", "\"x\""), ("idempotency-key", "k1")],
    )
    .await
    .assert_problem(422, Some("Idempotency-Key"));
    // A refused conditional write is not recorded: the same key may succeed later.
    let stale = [("if-match", tag.as_str()), ("idempotency-key", "k2")];
    put(&app, "idem", json!(3), &stale)
        .await
        .assert_problem(412, Some("If-Match"));
}

/// Entries stored as plain strings (by an earlier version, or another client) read with a
/// tag, and conditional writes compare against it.
#[tokio::test]
async fn plain_string_entries_have_a_tag_too() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let () = conn
        .set_ex("demo_api:cache:old", "\"v\"", 60)
        .await
        .unwrap();
    let r = read(&app, "old", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("etag"), tag_of("\"v\""));
    assert_eq!(r.body["ttl_seconds"], 60);
    let w = put(&app, "old", json!("w"), &[("if-match", &tag_of("\"v\""))]).await;
    assert_eq!(w.status, 201, "{w:?}");
    assert_eq!(read(&app, "old", &[]).await.body["value"], "w");
}

/// A write with no precondition and no Idempotency-Key (one `MULTI`, no script) replaces
/// whatever the key held — a plain string of an earlier version, another client's list, an
/// entry whose `compute_ms` must not outlive it — and tags the value as a script would: the
/// write's `ETag` is the one reads carry and `If-Match` accepts.
#[tokio::test]
async fn an_unconditional_write_replaces_any_earlier_entry_whole() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let () = conn
        .set("demo_api:cache:was-string", "\"old\"")
        .await
        .unwrap();
    let () = conn.rpush("demo_api:cache:was-list", "x").await.unwrap();
    let timed = json!({"key": "was-timed", "value": 0, "compute_ms": 500});
    assert_eq!(
        send(&app, Method::POST, "/cache", Some(timed), &[])
            .await
            .status,
        201
    );
    for key in ["was-string", "was-list", "was-timed"] {
        let w = put(&app, key, json!({"new": key}), &[]).await;
        assert_eq!(w.status, 201, "{key}: {w:?}");
        let text = serde_json::to_string(&json!({"new": key})).unwrap();
        assert_eq!(w.header("etag"), tag_of(&text), "{key}");
        let r = read(&app, key, &[]).await;
        assert_eq!(r.status, 200, "{key}: {r:?}");
        assert_eq!(r.body["value"], json!({"new": key}), "{key}");
        assert_eq!(r.header("etag"), tag_of(&text), "{key}");
        assert!(r.body.get("compute_ms").is_none(), "{key}: {r:?}");
        assert!(r.body["ttl_seconds"].as_i64().unwrap() > 0, "{key}: {r:?}");
        let w = put(&app, key, json!(2), &[("if-match", &tag_of(&text))]).await;
        assert_eq!(w.status, 201, "{key}: {w:?}");
    }
}

/// The share of reads of `key` (out of `n`) that recommend a refresh.
async fn refresh_share(app: &TestApp, key: &str, beta: &str, n: usize) -> f64 {
    let mut yes = 0;
    for _ in 0..n {
        let r = read(app, &format!("{key}?beta={beta}"), &[]).await;
        assert_eq!(r.status, 200, "{r:?}");
        if r.body["refresh_recommended"] == true {
            yes += 1;
        }
    }
    yes as f64 / n as f64
}

/// XFetch: with `compute_ms` stored, the share of reads told to refresh is about
/// `exp(-ttl_ms / (compute_ms × beta))`: nil far from expiry, rising as expiry nears.
#[tokio::test]
async fn refresh_recommendations_rise_as_expiry_nears() {
    let app = TestApp::new().await;
    let body = json!({"key": "hot", "value": "v", "ttl": 3, "compute_ms": 1000});
    let r = send(&app, Method::POST, "/cache", Some(body), &[]).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = read(&app, "hot", &[]).await;
    assert_eq!(r.body["compute_ms"], 1000);
    // About 3 s left: exp(-3) ≈ 5 %.
    let early = refresh_share(&app, "hot", "1", 200).await;
    // β = 0 never recommends one before expiry.
    assert_eq!(refresh_share(&app, "hot", "0", 50).await, 0.0);
    // Wait for expiry to come near (the entry's own PTTL, not a fixed sleep).
    let mut conn = app.redis_conn().await;
    loop {
        let pttl: i64 = conn.pttl("demo_api:cache:hot").await.unwrap();
        assert!(pttl > 0, "expired before it was read near expiry ({pttl})");
        if pttl <= 700 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Under 0.7 s left: exp(-0.7) ≈ 50 %, more as it goes.
    let late = refresh_share(&app, "hot", "1", 200).await;
    assert!(early < 0.15, "far from expiry: {early}");
    assert!(late > 0.3, "near expiry: {late}");
    assert!(late > early + 0.2, "{early} → {late}");

    // An entry written without compute_ms says nothing about refreshing.
    put(&app, "plain", json!(1), &[]).await;
    let r = read(&app, "plain", &[]).await;
    assert!(r.body.get("refresh_recommended").is_none(), "{r:?}");
    assert!(r.body.get("compute_ms").is_none(), "{r:?}");
    // Far from expiry (an hour) with a second of compute: never.
    let body = json!({"key": "cold", "value": "v", "ttl": 3600, "compute_ms": 1000});
    send(&app, Method::POST, "/cache", Some(body), &[]).await;
    assert_eq!(refresh_share(&app, "cold", "1", 100).await, 0.0);
}

#[tokio::test]
async fn xfetch_parameters_are_checked() {
    let app = TestApp::new().await;
    put(&app, "x", json!(1), &[]).await;
    app.assert_422s(
        "GET /cache/x?beta=-1 |  | beta
         GET /cache/x?beta=101 |  | beta
         GET /cache/x?beta=NaN |  | beta
         GET /cache/x?beta=abc |  | beta
         POST /cache | {\"key\":\"x\",\"value\":1,\"compute_ms\":3600001} | compute_ms
         POST /cache | {\"key\":\"x\",\"value\":1,\"compute_ms\":-1} | compute_ms",
    )
    .await;
}

/// DELETE evaluates its preconditions too (RFC 9110 §13.1.1), in the same script as the
/// delete: a stale tag or a malformed header deletes nothing.
#[tokio::test]
async fn delete_with_if_match_is_a_compare_and_delete() {
    let app = TestApp::new().await;
    let tag = put(&app, "cd", json!(1), &[])
        .await
        .header("etag")
        .to_owned();
    let stale = "\"0000000000000000000000000000000000000000\"";
    let r = send(
        &app,
        Method::DELETE,
        "/cache/cd",
        None,
        &[("if-match", stale)],
    )
    .await;
    r.assert_problem(412, Some("If-Match"));
    assert_eq!(
        format!("\"{}\"", r.body["current_etag"].as_str().unwrap()),
        tag
    );
    send(
        &app,
        Method::DELETE,
        "/cache/cd",
        None,
        &[("if-match", "garbage")],
    )
    .await
    .assert_problem(400, Some("If-Match"));
    assert_eq!(read(&app, "cd", &[]).await.status, 200, "still there");
    let r = send(
        &app,
        Method::DELETE,
        "/cache/cd",
        None,
        &[("if-match", &tag)],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    read(&app, "cd", &[]).await.assert_problem(404, None);
    // Missing: a 404 whatever the preconditions.
    send(
        &app,
        Method::DELETE,
        "/cache/cd",
        None,
        &[("if-match", &tag)],
    )
    .await
    .assert_problem(404, None);
}

/// Reads stay answers while a key turns from a plain string (an earlier version's entry)
/// into this version's hash under them, and a string of non-UTF-8 bytes reads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_strings_read_during_a_rolling_upgrade_and_as_bytes() {
    let app = Arc::new(TestApp::new().await);
    let mut conn = app.redis_conn().await;
    let () = conn
        .set("demo_api:cache:bytes", &b"\xff\xfe"[..])
        .await
        .unwrap();
    let r = read(&app, "bytes", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let () = conn.set("demo_api:cache:flip", "\"old\"").await.unwrap();
    let mut readers = api_tests::spawn_each(&app, 3, |app, _| async move {
        let mut statuses = Vec::new();
        for _ in 0..200 {
            statuses.push(read(&app, "flip", &[]).await.status.as_u16());
        }
        statuses
    });
    for i in 0..200 {
        let () = conn.set("demo_api:cache:flip", "\"old\"").await.unwrap();
        put(&app, "flip", json!(i), &[]).await;
    }
    while let Some(done) = readers.join_next().await {
        let statuses = done.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
}

/// A key the API did not write under a cache key (another client's list, or a hash without
/// the entry's fields): a conditional write or delete is a 412 that says so, reports no tag
/// (not the scripts' stand-in, a NUL), and leaves the data alone (never merges into the
/// hash); a read is a 409 saying the same, not a 500 (a list) or a 404 (the hash).
#[tokio::test]
async fn a_key_the_api_did_not_write_is_named_as_such() {
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    let list = app.state.keys.cache("listed");
    let () = conn.rpush(&list, "someone else's").await.unwrap();
    let hash = app.state.keys.cache("hashed");
    let () = conn.hset(&hash, "name", "bob").await.unwrap();
    let tag = "\"0000000000000000000000000000000000000000\"";
    for key in ["listed", "hashed"] {
        let cases = [
            (Method::POST, "If-None-Match", "*"),
            (Method::POST, "If-Match", tag),
            (Method::DELETE, "If-Match", tag),
        ];
        for (method, header, value) in cases {
            let r = match method {
                Method::POST => put(&app, key, json!(1), &[(header, value)]).await,
                _ => {
                    let path = format!("/cache/{key}");
                    send(&app, method.clone(), &path, None, &[(header, value)]).await
                }
            };
            let case = format!("{key}: {method} {header}: {r:?}");
            r.assert_problem(412, Some(header));
            assert_eq!(r.body["current_etag"], Value::Null, "{case}");
            let detail = r.body["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("not a cache entry"), "{case}");
        }
        for method in [Method::GET, Method::HEAD] {
            let r = send(&app, method.clone(), &format!("/cache/{key}"), None, &[]).await;
            assert_eq!(r.status, 409, "{key}: {method}: {r:?}");
            if method == Method::GET {
                r.assert_problem(409, None);
                let detail = r.body["detail"].as_str().unwrap_or_default();
                assert!(detail.contains("not a cache entry"), "{key}: {r:?}");
            }
        }
    }
    let len: usize = conn.llen(&list).await.unwrap();
    assert_eq!(len, 1, "the list was touched");
    let fields: Vec<String> = conn.hkeys(&hash).await.unwrap();
    assert_eq!(fields, ["name"], "the hash was written into");
    // `If-Match: *` (it exists) replaces the hash whole, as a write without a condition does.
    let r = put(&app, "hashed", json!(2), &[("If-Match", "*")]).await;
    assert_eq!(r.status, 201, "{r:?}");
    let mut fields: Vec<String> = conn.hkeys(&hash).await.unwrap();
    fields.sort();
    assert_eq!(fields, ["e", "v"], "merged into the other client's hash");
}

/// A weak tag in `If-Match`: on a read, the 412 says it is weak (not "another ETag", naming
/// the very tag sent); on a delete, that nothing was deleted, with the current tag, as every
/// other 412 of a write.
#[tokio::test]
async fn a_weak_if_match_says_so_on_a_read_and_a_delete() {
    let app = TestApp::new().await;
    let tag = put(&app, "wk", json!(1), &[])
        .await
        .header("etag")
        .to_owned();
    let r = read(&app, "wk", &[("if-match", &format!("W/{tag}"))]).await;
    r.assert_problem(412, Some("If-Match"));
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("a weak entity tag"), "{r:?}");
    assert!(detail.contains("to read 'wk'"), "{r:?}");
    let r = send(
        &app,
        Method::DELETE,
        "/cache/wk",
        None,
        &[("if-match", &format!("W/{tag}"))],
    )
    .await;
    r.assert_problem(412, Some("If-Match"));
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("nothing was deleted"), "{r:?}");
    assert!(detail.contains("to delete 'wk'"), "{r:?}");
    assert_eq!(
        format!(
            "\"{}\"",
            r.body["current_etag"].as_str().unwrap_or_default()
        ),
        tag
    );
}
