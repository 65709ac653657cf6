//! HEAD, OPTIONS and unknown methods never change state: a GET that pops, counts or
//! requeues answers HEAD with a 405 (and `Allow`) instead of running, its answers are never
//! cached (`Cache-Control: no-store`), and OPTIONS or `PURGE` on any route is a 405 that
//! runs nothing. Checked through the runner's router and through a Lambda handler.

use std::collections::{BTreeMap, BTreeSet};

use api_tests::{
    ROUTES, RawRedis, Reply, TestApp,
    lambda::{Call, SOURCES, event, invoke},
};
use http::Method;
use redis::AsyncCommands;
use serde_json::json;

/// The GET routes whose handler changes Redis: pops, hit/miss counters, rate-limit counts,
/// lapsed claims moved back.
const STATE_CHANGING_GETS: [&str; 7] = [
    "/queue",
    "/queue/{name}",
    "/queue/{name}/batch",
    "/queue/{name}/all",
    "/queue/{name}/dead",
    "/rate-limit/check",
    "/users/{user_id}",
];

/// A concrete request path for a route template, with the query its GET needs.
fn concrete(template: &str) -> String {
    let path = template
        .replace("{key}", "k1")
        .replace("{user_id}", "u1")
        .replace("{resource}", "r1")
        .replace("{name}", "q");
    match template {
        "/rate-limit/check" | "/rate-limit/status" => format!("{path}?user_id=h&limit=5&window=60"),
        "/queue/{name}/batch" => format!("{path}?count=2"),
        _ => path,
    }
}

/// Every path of `ROUTES` with the methods it serves (upper case).
fn paths() -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut paths: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (method, path) in ROUTES {
        paths.entry(path).or_default().insert(method.to_uppercase());
    }
    paths
}

/// The methods an `Allow` header names.
fn allowed(reply_allow: &str) -> BTreeSet<String> {
    reply_allow
        .split(',')
        .map(|m| m.trim().to_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

/// A key prefix of this file's own: snapshots look at its keys only, so data a test server
/// did not get from this test (another test's, loaded at start) cannot make them differ.
const PREFIX: &str = "http_methods:";

/// The app on a fresh Redis, with [`PREFIX`], seeded ([`seed`]).
async fn app() -> TestApp {
    let app = TestApp::with_config(|c| c.key_prefix = PREFIX.into()).await;
    seed(&app).await;
    app
}

/// [`app`], a connection to its Redis, and the [`snapshot`] of what it holds.
async fn app_and_snapshot() -> (TestApp, RawRedis, BTreeMap<String, String>) {
    let app = app().await;
    let mut conn = app.redis_conn().await;
    let before = snapshot(&mut conn).await;
    (app, conn, before)
}

/// Everything the app stored, key by key (type and content; TTLs left out, they tick).
async fn snapshot(conn: &mut RawRedis) -> BTreeMap<String, String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}*"))
        .query_async(conn)
        .await
        .unwrap();
    let mut all = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap();
        let content = match kind.as_str() {
            "string" => format!("{:?}", conn.get::<_, String>(&key).await.unwrap()),
            "list" => format!(
                "{:?}",
                conn.lrange::<_, Vec<String>>(&key, 0, -1).await.unwrap()
            ),
            "hash" => format!(
                "{:?}",
                conn.hgetall::<_, BTreeMap<String, String>>(&key)
                    .await
                    .unwrap()
            ),
            "zset" => format!(
                "{:?}",
                conn.zrange_withscores::<_, Vec<(String, String)>>(&key, 0, -1)
                    .await
                    .unwrap()
            ),
            other => format!("unexpected type {other}"),
        };
        all.insert(key, format!("{kind} {content}"));
    }
    all
}

/// Data every state-changing GET would change: tasks in the default and `q` queues, a
/// claim of `q` whose lease has lapsed (a `/all` page would move it back), a profile.
async fn seed(app: &TestApp) {
    for queue in ["/queue", "/queue/q"] {
        for id in ["1", "2", "3"] {
            let r = app.post(queue, json!({"id": id, "title": "t"})).await;
            assert_eq!(r.status, 201, "{r:?}");
        }
    }
    let r = app.call(Method::POST, "/queue/q/claim", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let leases = app.state.keys.queue("q")[3].clone();
    let receipt = r.body["receipt"].as_str().unwrap().to_owned();
    let mut conn = app.redis_conn().await;
    let () = conn.zadd(&leases, receipt, 0).await.unwrap();
    let r = app
        .post(
            "/users",
            json!({"user_id": "u1", "name": "U", "email": "u@example.com"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = app.get("/cache").await;
    assert_eq!(r.status, 200, "{r:?}");
    // A lock with a write in its protected store, and a semaphore with a live holder and a
    // lapsed one (which any write to the semaphore would remove).
    let r = app.post("/lock/r1/acquire?ttl=60", json!(null)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let write = json!({"fencing_token": r.body["fencing_token"], "value": "v"});
    let r = app
        .call(Method::PUT, "/lock/r1/protected", Some(write))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app
        .post("/semaphore/q/acquire?permits=2&ttl=60", json!(null))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let holders = app.state.keys.semaphore("q")[0].clone();
    let () = conn.zadd(&holders, "lapsed-holder", 1).await.unwrap();
}

fn assert_405_with_allow(r: &Reply, what: &str, expected: &BTreeSet<String>) {
    assert_eq!(r.status, 405, "{what}: {r:?}");
    let allow = allowed(r.header("allow"));
    assert_eq!(&allow, expected, "{what}: Allow {:?}", r.header("allow"));
}

#[tokio::test]
async fn head_changes_nothing_and_is_405_on_state_changing_gets() {
    let (app, mut conn, before) = app_and_snapshot().await;
    let paths = paths();
    for (_, template) in ROUTES.into_iter().filter(|(m, _)| *m == "get") {
        let path = concrete(template);
        let r = app.call(Method::HEAD, &path, None).await;
        assert_eq!(
            snapshot(&mut conn).await,
            before,
            "HEAD {path} changed state"
        );
        if STATE_CHANGING_GETS.contains(&template) {
            // Allow names the route's real methods: HEAD is not one of them.
            assert_405_with_allow(&r, &format!("HEAD {path}"), &paths[template]);
            assert_eq!(r.header("content-type"), "application/problem+json");
            assert_eq!(r.header("cache-control"), "no-store", "HEAD {path}");
        } else {
            assert!(
                r.status == 200 || r.status == 404,
                "HEAD {path} on a read-only GET: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn state_changing_gets_are_never_cached() {
    let app = app().await;
    // Each route's GET answers with a success (first: the seed has tasks for every pop) and
    // with a problem: both carry no-store.
    for path in STATE_CHANGING_GETS.map(concrete) {
        let r = app.get(&path).await;
        assert!(r.status.is_success(), "GET {path}: {r:?}");
        assert_eq!(r.header("cache-control"), "no-store", "GET {path}: {r:?}");
    }
    let problems = [
        "/queue/q/batch?count=0",
        "/queue/q/all?limit=0",
        "/rate-limit/check?user_id=h&limit=0",
        "/users/u1?fields=nope",
        "/users/nobody",
        "/queue/empty",
        "/queue/empty/batch",
    ];
    for path in problems {
        let r = app.get(path).await;
        assert!(r.status.is_client_error(), "GET {path}: {r:?}");
        assert_eq!(r.header("cache-control"), "no-store", "GET {path}: {r:?}");
    }
}

/// Every problem, on any route and of any status, is `no-store`: it is about a moment.
#[tokio::test]
async fn problems_are_never_cached() {
    let app = app().await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let problems = [
        (Method::GET, "/cache/absent", 404),
        (Method::GET, "/rate-limit/status?user_id=h&limit=0", 422),
        (Method::GET, "/cache/k?ttl=abc", 422),
        (Method::GET, "/no/such/route", 404),
        (purge, "/cache/k", 405),
    ];
    for (method, path, status) in problems {
        let r = app.call(method.clone(), path, None).await;
        assert_eq!(r.status, status, "{method} {path}: {r:?}");
        assert_eq!(
            r.header("cache-control"),
            "no-store",
            "{method} {path}: {r:?}"
        );
    }
}

#[tokio::test]
async fn options_and_unknown_methods_change_nothing_on_every_route() {
    let (app, mut conn, before) = app_and_snapshot().await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    for (template, methods) in paths() {
        let path = concrete(template);
        let mut expected = methods.clone();
        if methods.contains("GET") && !STATE_CHANGING_GETS.contains(&template) {
            expected.insert("HEAD".into());
        }
        for method in [Method::OPTIONS, purge.clone()] {
            let r = app.call(method.clone(), &path, None).await;
            assert_eq!(snapshot(&mut conn).await, before, "{method} {path}");
            assert_405_with_allow(&r, &format!("{method} {path}"), &expected);
            r.assert_problem(405, None);
            // The detail names what the route takes, and for OPTIONS (CORS is off here)
            // what turns preflights on.
            let detail = r.body["detail"].as_str().unwrap_or_default();
            let takes = format!("it takes {}", r.header("allow"));
            assert!(detail.contains(&takes), "{method} {path}: {detail}");
            assert_eq!(
                detail.contains("CORS_ALLOW_ORIGINS"),
                method == Method::OPTIONS,
                "{method} {path}: {detail}"
            );
        }
    }
}

#[tokio::test]
async fn head_on_the_lambda_functions_changes_nothing() {
    let (app, mut conn, before) = app_and_snapshot().await;
    let function = |router: fn(shared::AppState) -> axum::Router| {
        shared::http::finish(router(app.state.clone()), &app.state.config)
    };
    let cases = [
        (function(queue::router), "/queue/q", &[][..]),
        (function(queue::router), "/queue/q/all", &[][..]),
        (function(users::router), "/users/u1", &[][..]),
        (
            function(rate_limit::router),
            "/rate-limit/check",
            &[("user_id", "h")][..],
        ),
    ];
    for (router, path, query) in &cases {
        for source in SOURCES {
            let head = Call {
                method: "HEAD",
                path,
                query,
                ..Call::default()
            };
            let r = invoke(router, event(source, &head)).await;
            assert_eq!(r.status, 405, "{source:?} HEAD {path}: {r:?}");
            assert!(!r.header("allow").is_empty(), "{source:?} {path}: {r:?}");
            assert_eq!(r.header("cache-control"), "no-store", "{source:?} {path}");
            assert_eq!(
                snapshot(&mut conn).await,
                before,
                "{source:?} HEAD {path} changed state"
            );
        }
    }
}
