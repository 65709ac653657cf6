//! Every function's router driven with API Gateway REST (v1, stage `prod`), HTTP API (v2)
//! and Function URL events, parsed by `lambda_http` as the runtime parses them, against a
//! real Redis.

use api_tests::{
    TestApp,
    lambda::{Call, Refused, SOURCES, Source, event, front_door, http_api_path, invoke},
};
use axum::Router;
use serde_json::json;

/// One function's router, as its `main` builds it.
fn function(app: &TestApp, router: fn(shared::AppState) -> Router) -> Router {
    shared::http::finish(router(app.state.clone()), &app.state.config)
}

fn call<'a>(method: &'a str, path: &'a str) -> Call<'a> {
    Call {
        method,
        path,
        ..Call::default()
    }
}

#[tokio::test]
async fn cache_function_over_every_event_source() {
    let app = TestApp::new().await;
    let cache = function(&app, cache::router);
    for (i, source) in SOURCES.into_iter().enumerate() {
        let key = format!("a b:ü{i}");
        let body = json!({"key": key, "value": {"n": i}, "ttl": 60}).to_string();
        // Bodies arrive plain or base64-encoded.
        let post = Call {
            body: Some(&body),
            base64: i == 1,
            ..call("POST", "/cache")
        };
        let r = invoke(&cache, event(source, &post)).await;
        assert_eq!(r.status, 201, "{source:?}: {r:?}");
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.body["key"], key);

        // The key travels percent-encoded in the path; an HTTP API decodes it first.
        let path = format!("/cache/a%20b%3A%C3%BC{i}");
        let r = invoke(&cache, event(source, &call("GET", &path))).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.body["value"], json!({"n": i}));
        let r = invoke(
            &cache,
            event(source, &call("GET", &format!("/cache/plain{i}"))),
        )
        .await;
        assert_eq!(r.status, 404, "{source:?}");
        assert_eq!(r.header("content-type"), "application/problem+json");
        assert_eq!(r.body["status"], 404);

        let list = Call {
            query: &[("pattern", "a b*"), ("count", "10")],
            ..call("GET", "/cache")
        };
        let r = invoke(&cache, event(source, &list)).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.body["pattern"], "a b*");
        assert!(r.body["count"].as_u64().unwrap() >= 1);

        let bad = Call {
            body: Some("{not json"),
            ..call("POST", "/cache")
        };
        let r = invoke(&cache, event(source, &bad)).await;
        assert_eq!(r.status, 400, "{source:?}");
        assert_eq!(r.header("content-type"), "application/problem+json");
    }
}

#[tokio::test]
async fn users_function_over_every_event_source() {
    let app = TestApp::new().await;
    let users = function(&app, users::router);
    for source in SOURCES {
        let body =
            json!({"user_id": "alice", "name": "Alice", "email": "alice@example.com"}).to_string();
        let r = invoke(
            &users,
            event(
                source,
                &Call {
                    body: Some(&body),
                    ..call("POST", "/users")
                },
            ),
        )
        .await;
        assert_eq!(r.status, 201, "{source:?}: {r:?}");
        let get = Call {
            query: &[("fields", "name,email")],
            ..call("GET", "/users/alice")
        };
        let r = invoke(&users, event(source, &get)).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(
            r.body["profile"],
            json!({"name": "Alice", "email": "alice@example.com"})
        );
        let patch = Call {
            body: Some(r#"{"city":"Oslo"}"#),
            ..call("PATCH", "/users/alice")
        };
        let r = invoke(&users, event(source, &patch)).await;
        assert_eq!(r.body["profile"]["city"], "Oslo", "{source:?}: {r:?}");
        let r = invoke(&users, event(source, &call("DELETE", "/users/alice"))).await;
        assert_eq!(r.status, 200, "{source:?}");
    }
}

#[tokio::test]
async fn rate_limit_function_over_every_event_source() {
    let app = TestApp::new().await;
    let limiter = function(&app, rate_limit::router);
    for (i, source) in SOURCES.into_iter().enumerate() {
        let user = format!("u{i}");
        let check = Call {
            query: &[("user_id", &user), ("limit", "1"), ("window", "60")],
            ..call("GET", "/rate-limit/check")
        };
        let r = invoke(&limiter, event(source, &check)).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.header("ratelimit-limit"), "1");
        assert_eq!(r.header("ratelimit-remaining"), "0");
        let r = invoke(&limiter, event(source, &check)).await;
        assert_eq!(r.status, 429, "{source:?}: {r:?}");
        assert_eq!(r.body["allowed"], false);
        assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    }
}

#[tokio::test]
async fn lock_and_queue_functions_over_every_event_source() {
    let app = TestApp::new().await;
    let lock = function(&app, lock::router);
    let queue = function(&app, queue::router);
    for (i, source) in SOURCES.into_iter().enumerate() {
        let acquire = format!("/lock/res{i}/acquire");
        let r = invoke(
            &lock,
            event(
                source,
                &Call {
                    query: &[("ttl", "30")],
                    ..call("POST", &acquire)
                },
            ),
        )
        .await;
        assert_eq!(r.status, 201, "{source:?}: {r:?}");
        let r = invoke(&lock, event(source, &call("POST", &acquire))).await;
        assert_eq!(r.status, 409, "{source:?}");
        assert!(r.body["retry_after_ms"].as_u64().unwrap() > 0);
        let r = invoke(&lock, event(source, &call("GET", &format!("/lock/res{i}")))).await;
        assert_eq!(r.body["locked"], true, "{source:?}");

        let task = json!({"id": format!("t{i}"), "title": "work"}).to_string();
        let r = invoke(
            &queue,
            event(
                source,
                &Call {
                    body: Some(&task),
                    ..call("POST", "/queue/jobs")
                },
            ),
        )
        .await;
        assert_eq!(r.status, 201, "{source:?}: {r:?}");
        let r = invoke(&queue, event(source, &call("GET", "/queue/jobs"))).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.body["task"]["id"], format!("t{i}"));
        let r = invoke(&queue, event(source, &call("GET", "/queue/jobs"))).await;
        assert_eq!(r.status, 404, "{source:?}");
    }
}

#[tokio::test]
async fn stats_and_docs_functions_over_every_event_source() {
    let app = TestApp::new().await;
    let stats = function(&app, stats::router);
    let docs = shared::http::finish(docs::router(), &app.state.config);
    for source in SOURCES {
        let r = invoke(&stats, event(source, &call("GET", "/health"))).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.body["redis"], "up");
        let r = invoke(&stats, event(source, &call("GET", "/stats"))).await;
        assert_eq!(r.body["connected"], true, "{source:?}");
        let r = invoke(&docs, event(source, &call("GET", "/openapi.json"))).await;
        assert_eq!(r.status, 200, "{source:?}");
        assert_eq!(r.body["openapi"], "3.1.0");
        let r = invoke(&docs, event(source, &call("GET", "/docs/"))).await;
        assert_eq!(r.status, 200, "{source:?}");
        assert!(r.header("content-type").starts_with("text/html"));
        // A gzip asset leaves as a base64 binary body, which API Gateway decodes.
        let mut e = event(source, &call("GET", "/docs/swagger-ui.css"));
        e["headers"]["accept-encoding"] = "gzip, deflate".into();
        let r = invoke(&docs, e).await;
        assert_eq!(r.status, 200, "{source:?}");
        assert_eq!(r.header("content-encoding"), "gzip", "{source:?}");
        assert_eq!(r.raw["isBase64Encoded"], true, "{source:?}");
        let gzip = api_tests::lambda::unbase64(r.raw["body"].as_str().unwrap());
        let mut css = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut css)
            .unwrap();
        assert!(css.contains(".swagger-ui"), "{source:?}");
    }
}

/// A handler never hands the runtime an `Err` (API Gateway would answer an opaque 502):
/// with Redis down, every function answers a 503 problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_a_503_problem_not_a_runtime_error() {
    let mut app = TestApp::new().await;
    let cache = function(&app, cache::router);
    let stats = function(&app, stats::router);
    app.redis.stop();
    for source in SOURCES {
        let r = invoke(&cache, event(source, &call("GET", "/cache/k"))).await;
        assert_eq!(r.status, 503, "{source:?}: {r:?}");
        assert_eq!(r.header("retry-after"), "1");
        assert_eq!(r.header("content-type"), "application/problem+json");
        let r = invoke(&stats, event(source, &call("GET", "/stats"))).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.body["connected"], false);
    }
}

/// A route of another function is a 404 problem here: each function serves only its own.
#[tokio::test]
async fn a_function_serves_only_its_own_routes() {
    let app = TestApp::new().await;
    let cache = function(&app, cache::router);
    let r = invoke(&cache, event(Source::HttpV2, &call("GET", "/users/alice"))).await;
    assert_eq!(r.status, 404);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("no endpoint")
    );
}

/// Every printable ASCII character and a few others, in a key stored through each door and
/// read back by its path through each door: what the identifier rule admits is read back
/// everywhere, what it refuses is refused at the write (so nothing is stored that some door
/// cannot reach). This is what makes the rule the right one for `lambda_http` as it parses
/// each door's event, not only for our model of it.
#[tokio::test]
async fn identifier_rule_holds_through_every_door() {
    let app = TestApp::new().await;
    let cache = function(&app, cache::router);
    let chars: Vec<char> = (0x20u8..0x7f)
        .map(char::from)
        .chain(['ü', '✓', '\u{a0}', '\t'])
        .collect();
    for c in chars {
        let key = format!("k{c}x");
        let allowed = shared::keys::path_identifier("key", &key).is_ok();
        let body = json!({"key": key, "value": c.to_string()}).to_string();
        for writer in SOURCES {
            let post = Call {
                body: Some(&body),
                ..call("POST", "/cache")
            };
            let r = invoke(&cache, event(writer, &post)).await;
            if !allowed {
                assert_eq!(r.status, 422, "{c:?} via {writer:?}: {r:?}");
                assert!(
                    r.body["detail"].as_str().unwrap().contains("must not"),
                    "{r:?}"
                );
                continue;
            }
            assert_eq!(r.status, 201, "{c:?} via {writer:?}: {r:?}");
            let encoded =
                percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            let path = format!("/cache/{encoded}");
            for reader in SOURCES {
                let r = invoke(&cache, event(reader, &call("GET", &path))).await;
                assert_eq!(
                    r.status, 200,
                    "{c:?} written via {writer:?}, read via {reader:?}: {r:?}"
                );
                assert_eq!(r.body["key"], key, "{c:?} via {reader:?}");
            }
        }
    }
}

/// What the HTTP API fixture does to a path, per the AWS page it cites: decoded, cut at a
/// decoded `?`; an escape left after one decoding decoded again; a lone `%` refused.
#[test]
fn http_api_path_decoding() {
    assert_eq!(http_api_path("/cache/a%20b").unwrap(), "/cache/a b");
    assert_eq!(http_api_path("/cache/a%2Fb").unwrap(), "/cache/a/b");
    assert_eq!(http_api_path("/cache/a%3Fb").unwrap(), "/cache/a");
    assert_eq!(http_api_path("/cache/a%23b").unwrap(), "/cache/a#b");
    assert_eq!(http_api_path("/cache/a%252Fb").unwrap(), "/cache/a/b");
    assert_eq!(http_api_path("/cache/a%25"), Err(Refused { status: 400 }));
}

/// The hazards the identifier rule keeps clients away from, as `lambda_http` meets them on
/// an HTTP API: `GET /cache/a%3Fb` and `GET /cache/a%23b` both read key `a`, and
/// `/cache/a%2Fb` is another route (a 404 problem). A REST API and a Function URL hand the
/// path over encoded, so there the key is refused by the rule (400) instead.
#[tokio::test]
async fn what_an_http_api_does_to_encoded_reserved_characters() {
    let app = TestApp::new().await;
    let cache = function(&app, cache::router);
    let body = json!({"key": "a", "value": "the key a"}).to_string();
    let post = Call {
        body: Some(&body),
        ..call("POST", "/cache")
    };
    assert_eq!(
        invoke(&cache, event(Source::HttpV2, &post)).await.status,
        201
    );
    for path in ["/cache/a%3Fb", "/cache/a%23b"] {
        let r = invoke(&cache, event(Source::HttpV2, &call("GET", path))).await;
        assert_eq!(r.body["key"], "a", "{path}: {r:?}");
        for source in [Source::RestV1, Source::FunctionUrl] {
            let r = invoke(&cache, event(source, &call("GET", path))).await;
            assert_eq!(r.status, 400, "{path} via {source:?}: {r:?}");
        }
    }
    let r = invoke(&cache, event(Source::HttpV2, &call("GET", "/cache/a%2Fb"))).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.header("content-type"), "application/problem+json");
    assert!(front_door(Source::HttpV2, &call("GET", "/cache/a%25")).is_err());
}

/// The fixtures' repeated query parameters, repeated headers, cookies and base64 bodies
/// reach a router the way `lambda_http` delivers each door's event.
#[tokio::test]
async fn fixtures_reach_the_router_as_each_door_delivers() {
    use axum::{
        body::Bytes,
        http::{HeaderMap, Uri},
        routing::post,
    };
    let echo = Router::new().route(
        "/echo/{*rest}",
        post(|uri: Uri, headers: HeaderMap, body: Bytes| async move {
            axum::Json(json!({
                "path": uri.path(),
                "query": uri.query(),
                "cookie": headers.get("cookie").and_then(|v| v.to_str().ok()),
                "accept": headers.get_all("accept").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>(),
                "body": String::from_utf8_lossy(&body),
            }))
        }),
    );
    for source in SOURCES {
        let c = Call {
            query: &[("tag", "a b"), ("tag", "c")],
            headers: &[("accept", "text/plain"), ("accept", "application/json")],
            cookies: &["session=1", "theme=dark"],
            body: Some("{\"x\":1}"),
            base64: true,
            ..call("POST", "/echo/a%20b")
        };
        let r = invoke(&echo, event(source, &c)).await;
        assert_eq!(r.status, 200, "{source:?}: {r:?}");
        assert_eq!(r.body["path"], "/echo/a%20b", "{source:?}");
        assert_eq!(r.body["body"], "{\"x\":1}", "{source:?}");
        let cookie = r.body["cookie"].as_str().unwrap_or_default();
        assert!(
            cookie.contains("session=1") && cookie.contains("theme=dark"),
            "{source:?}: {cookie}"
        );
        // Both values of a repeated query parameter reach the router, whichever the door.
        let query = r.body["query"].as_str().unwrap_or_default();
        assert!(query.contains("tag=c"), "{source:?}: {query}");
        assert!(query.matches("tag=").count() == 2, "{source:?}: {query}");
        let accept = r.body["accept"].to_string();
        if source == Source::RestV1 {
            // lambda_http 1.3 merges v1's `headers` over `multiValueHeaders`
            // (`headers.extend(ag.headers)` in `into_proxy_request`): the single-value map,
            // which holds the last value, wins. A function on a REST API sees one value.
            assert_eq!(accept, r#"["application/json"]"#, "{source:?}");
        } else {
            assert!(
                accept.contains("text/plain") && accept.contains("application/json"),
                "{source:?}: {accept}"
            );
        }
    }
}
