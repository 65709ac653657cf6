//! CORS, configured once (`CORS_ALLOW_ORIGINS`) and applied alike by the runner, the Lambda
//! functions (any front door) and the template's `CorsConfiguration`: off by default
//! (preflight is then a 405 problem like every undeclared method), and when on, preflight
//! answered for allowed origins only, before the API key is asked for.

use api_tests::{
    TestApp,
    lambda::{Call, Source, event, invoke},
};
use axum::body::Body;
use http::{Method, Request};

const ORIGIN: &str = "https://app.example.com";

fn preflight(origin: &str, path: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,idempotency-key",
        )
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn without_cors_allow_origins_preflight_is_a_405_problem() {
    let app = TestApp::new().await;
    let r = app.request(preflight(ORIGIN, "/cache")).await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("content-type"), "application/problem+json");
    assert_eq!(r.header("access-control-allow-origin"), "");
    let get = Request::get("/health")
        .header("origin", ORIGIN)
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.request(get).await.header("access-control-allow-origin"),
        ""
    );
}

#[tokio::test]
async fn allowed_origins_get_preflight_and_readable_answers() {
    let app = TestApp::with_config(|c| {
        c.cors_allow_origins = vec![ORIGIN.to_owned()];
        c.api_key = Some("k".repeat(32));
    })
    .await;
    // The preflight carries no credentials, and needs none.
    let r = app.request(preflight(ORIGIN, "/cache")).await;
    assert!(r.status.is_success(), "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), ORIGIN);
    let allowed = r.header("access-control-allow-headers").to_lowercase();
    for h in [
        "content-type",
        "authorization",
        "x-api-key",
        "idempotency-key",
    ] {
        assert!(allowed.contains(h), "{h} not in {allowed}");
    }
    assert!(r.header("access-control-allow-methods").contains("POST"));
    assert_eq!(r.header("access-control-max-age"), "600");

    // Another origin learns nothing.
    let r = app
        .request(preflight("https://evil.example", "/cache"))
        .await;
    assert_eq!(r.header("access-control-allow-origin"), "");

    // Real answers, errors included, say the origin may read them and which headers.
    let get = Request::get("/cache/missing")
        .header("origin", ORIGIN)
        .header("x-api-key", "k".repeat(32))
        .body(Body::empty())
        .unwrap();
    let r = app.request(get).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), ORIGIN);
    let exposed = r.header("access-control-expose-headers").to_lowercase();
    for h in [
        "idempotent-replayed",
        "retry-after",
        "ratelimit-remaining",
        "ratelimit-policy",
    ] {
        assert!(exposed.contains(h), "{h} not in {exposed}");
    }
}

/// A function behind a Function URL (no API Gateway to answer preflights) does the same.
#[tokio::test]
async fn lambda_functions_answer_preflight_the_same_way() {
    let app = TestApp::with_config(|c| c.cors_allow_origins = vec![ORIGIN.to_owned()]).await;
    let cache = shared::http::finish(cache::router(app.state.clone()), &app.state.config);
    let call = Call {
        method: "OPTIONS",
        path: "/cache",
        headers: &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
        ],
        ..Call::default()
    };
    let r = invoke(&cache, event(Source::FunctionUrl, &call)).await;
    assert!((200..300).contains(&r.status), "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), ORIGIN);

    let off = shared::http::finish(cache::router(app.state.clone()), &{
        let mut c = (*app.state.config).clone();
        c.cors_allow_origins.clear();
        c
    });
    let r = invoke(&off, event(Source::FunctionUrl, &call)).await;
    assert_eq!(r.status, 405, "{r:?}");
}

#[test]
fn bad_origins_are_refused_at_start() {
    for bad in [
        "app.example.com",
        "https://app.example.com/",
        "*,https://a.b",
        "ftp://x",
    ] {
        let e = shared::Config::from_lookup(|n| (n == "CORS_ALLOW_ORIGINS").then(|| bad.into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CORS_ALLOW_ORIGINS"), "{bad}: {e}");
    }
    let ok = shared::Config::from_lookup(|n| {
        (n == "CORS_ALLOW_ORIGINS").then(|| "https://a.example, http://localhost:3000".into())
    })
    .unwrap();
    assert_eq!(
        ok.cors_allow_origins,
        ["https://a.example", "http://localhost:3000"]
    );
}

/// Every method of the OpenAPI document (`PUT /lock/{resource}/protected` among them) is one
/// a browser may use cross-origin, and every request header it documents may be sent.
#[test]
fn every_documented_method_and_header_is_allowed_cross_origin() {
    let doc = docs::openapi_json();
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let upper = method.to_ascii_uppercase();
            assert!(
                shared::http::CORS_METHODS.contains(&upper.as_str()),
                "{upper} {path} is not in CORS_METHODS"
            );
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "header" {
                    let name = p["name"].as_str().unwrap().to_ascii_lowercase();
                    assert!(
                        shared::http::CORS_ALLOW_HEADERS.contains(&name.as_str()),
                        "{name} ({upper} {path}) is not in CORS_ALLOW_HEADERS"
                    );
                }
            }
        }
    }
}
