//! The identifier rule and the event fixtures, door by door: what each front door does to a
//! path (an HTTP API decodes it, a REST API and a Function URL keep it encoded), what
//! `lambda_http` then makes of it, and that every identifier the API stores can be read back
//! through every door, on the functions' routers against a real Redis.

use api_tests::{
    TestApp,
    lambda::{Call, Refused, SOURCES, Source, event, front_door, function, http_api_path, invoke},
};
use axum::Router;
use serde_json::json;

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
                ..Call::to("POST", "/cache")
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
                let r = invoke(&cache, event(reader, &Call::to("GET", &path))).await;
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
        ..Call::to("POST", "/cache")
    };
    assert_eq!(
        invoke(&cache, event(Source::HttpV2, &post)).await.status,
        201
    );
    for path in ["/cache/a%3Fb", "/cache/a%23b"] {
        let r = invoke(&cache, event(Source::HttpV2, &Call::to("GET", path))).await;
        assert_eq!(r.body["key"], "a", "{path}: {r:?}");
        for source in [Source::RestV1, Source::FunctionUrl] {
            let r = invoke(&cache, event(source, &Call::to("GET", path))).await;
            assert_eq!(r.status, 400, "{path} via {source:?}: {r:?}");
        }
    }
    let r = invoke(
        &cache,
        event(Source::HttpV2, &Call::to("GET", "/cache/a%2Fb")),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.header("content-type"), "application/problem+json");
    assert!(front_door(Source::HttpV2, &Call::to("GET", "/cache/a%25")).is_err());
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
            ..Call::to("POST", "/echo/a%20b")
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
