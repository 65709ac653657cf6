//! The OpenAPI document and the docs routes (README "Interactive docs"). The browser test is in
//! `docs_browser.rs`.

use api_tests::{ROUTES, TestApp};
use http::Method;
use serde_json::Value;

fn documented(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.push((method.clone(), path.clone()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn openapi_documents_exactly_the_routes_of_the_contract() {
    let app = TestApp::new().await;
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"], "3.1.0");
    assert_eq!(r.body["info"]["title"], "Redis Cache API");
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(documented(&r.body), expected);
}

#[tokio::test]
async fn every_operation_has_schemas_examples_and_problem_errors() {
    let app = TestApp::new().await;
    let doc = app.get("/openapi.json").await.body;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(op["summary"].is_string(), "{at}: no summary");
            assert!(op["tags"][0].is_string(), "{at}: no tag");
            let responses = op["responses"].as_object().unwrap();
            let success = responses.iter().find(|(code, _)| code.starts_with('2'));
            let (_, success) = success.unwrap_or_else(|| panic!("{at}: no 2xx"));
            assert!(
                success["content"]["application/json"]["schema"].is_object(),
                "{at}: 2xx without a JSON schema"
            );
            let errors: Vec<_> = responses
                .iter()
                .filter(|(c, _)| c.starts_with('4') || c.starts_with('5'))
                .collect();
            assert!(!errors.is_empty(), "{at}: no error responses");
            for (code, response) in errors {
                if code == "429" {
                    continue; // the rate limiter's refusal has the decision's body
                }
                assert!(
                    response["content"]["application/problem+json"]["schema"].is_object(),
                    "{at} {code}: not a problem+json"
                );
            }
            assert!(
                responses.contains_key("503"),
                "{at}: Redis-down answer undocumented"
            );
            assert!(
                responses["503"]["headers"]["Retry-After"].is_object(),
                "{at}: the 503's Retry-After undocumented"
            );
            if let Some(body) = op.get("requestBody") {
                assert!(
                    body["content"]["application/json"]["schema"].is_object(),
                    "{at}"
                );
            }
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(
        schemas["PutEntry"]["example"].is_object(),
        "request examples"
    );
    assert!(schemas.contains_key("Problem"));
}

/// The document and the router agree: every documented operation reaches a handler.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::new().await;
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{key}", "k")
            .replace("{user_id}", "u")
            .replace("{resource}", "r")
            .replace("{name}", "n");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app.call(method.clone(), &concrete, None).await;
        assert_ne!(r.status, 405, "{method} {concrete}: {r:?}");
        let detail = r.body["detail"].as_str().unwrap_or("");
        assert!(
            !detail.starts_with("no endpoint"),
            "{method} {concrete}: {r:?}"
        );
    }
}

#[tokio::test]
async fn root_lists_the_endpoints_and_docs_pages_are_served() {
    let app = TestApp::new().await;
    let r = app.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["docs"], "/docs");
    assert_eq!(r.body["redoc"], "/redoc");
    assert_eq!(r.body["dashboard"], "/dashboard");
    assert_eq!(r.body["openapi"], "/openapi.json");
    assert_eq!(r.body["endpoints"].as_array().unwrap().len(), ROUTES.len());
    assert!(r.body["endpoints"][0]["summary"].is_string());

    let r = app.get("/docs").await;
    assert!(r.status.is_redirection(), "{r:?}");
    // Relative, so it also works under an API Gateway stage path.
    assert_eq!(r.header("location"), "docs/");
    let r = app.get("/docs/").await;
    assert_eq!(r.status, 200);
    assert!(r.body.as_str().unwrap().contains("swagger-ui-bundle.js"));
    assert!(
        r.header("content-security-policy")
            .contains("default-src 'self'")
    );
    let r = app.get("/docs/swagger-initializer.js").await;
    assert!(r.body.as_str().unwrap().contains("../openapi.json"));
    let r = app.get("/redoc").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-security-policy")
            .contains("default-src 'self'")
    );
    assert!(
        r.body
            .as_str()
            .unwrap()
            .contains("redoc/redoc.standalone.js")
    );
    let r = app.get("/redoc/redoc.standalone.js").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").starts_with("text/javascript"));
}

/// The dashboard: its page and script from the docs function (the runner serves the same
/// bytes), a policy that keeps every request on the page's origin, and no address elsewhere
/// in either file (the SVG namespace is a name, never fetched).
#[tokio::test]
async fn the_dashboard_is_one_page_and_one_script_with_nothing_from_elsewhere() {
    let router = docs::router();
    let page = fetch(&router, "/dashboard", &[]).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    // No other site may frame it (clickjacking the key field) or rebase its script.
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("base-uri 'none'"), "{csp}");
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("src=\"dashboard/dashboard.js\""), "{html}");
    let script = fetch(&router, "/dashboard/dashboard.js", &[]).await;
    assert_eq!(script.status, 200);
    assert!(script.header("content-type").starts_with("text/javascript"));
    let js = String::from_utf8(script.body).unwrap();
    for text in [&html, &js] {
        let elsewhere = text.replace("http://www.w3.org/2000/svg", "");
        for scheme in ["http://", "https://", "//cdn", "@import", "url("] {
            assert!(!elsewhere.contains(scheme), "{scheme} in the dashboard");
        }
    }
    // The routes it polls, relative to the page (so under a stage path too).
    for path in [
        "\"metrics\"",
        "\"stats\"",
        "`stats/patterns?",
        "`rate-limit/status?",
    ] {
        assert!(js.contains(path), "the dashboard does not poll {path}");
    }
}

/// What the `docs` function (not the runner) answers, byte for byte.
async fn fetch(router: &axum::Router, path: &str, headers: &[(&str, &str)]) -> Fetched {
    use tower::ServiceExt;
    let mut request = http::Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Fetched {
        status,
        headers,
        body: body.to_vec(),
    }
}

struct Fetched {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut plain)
        .unwrap();
    plain
}

/// The embedded Swagger UI and ReDoc files: gzip to a client that accepts it, the same bytes
/// inflated to one that does not, and 304 for a cached copy.
#[tokio::test]
async fn docs_assets_are_served_compressed_or_plain_as_the_client_accepts() {
    let router = docs::router();
    for path in [
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui-standalone-preset.js",
        "/docs/swagger-ui.css",
        "/docs/index.css",
        "/redoc/redoc.standalone.js",
    ] {
        let plain = fetch(&router, path, &[]).await;
        assert_eq!(plain.status, 200, "{path}");
        assert_eq!(plain.header("content-encoding"), "", "{path}");
        assert_eq!(plain.header("vary"), "accept-encoding", "{path}");
        assert_eq!(plain.header("cache-control"), "public, max-age=86400");
        assert!(plain.body.len() > 100, "{path}");

        let gzip = fetch(&router, path, &[("accept-encoding", "gzip, deflate, br")]).await;
        assert_eq!(gzip.status, 200, "{path}");
        assert_eq!(gzip.header("content-encoding"), "gzip", "{path}");
        assert!(gzip.body.len() < plain.body.len(), "{path}");
        assert_eq!(gunzip(&gzip.body), plain.body, "{path}");
        assert_eq!(gzip.header("etag"), plain.header("etag"));

        let refused = fetch(&router, path, &[("accept-encoding", "br, gzip;q=0")]).await;
        assert_eq!(refused.header("content-encoding"), "", "{path}");
        assert_eq!(refused.body, plain.body, "{path}");

        let etag = plain.header("etag");
        assert!(etag.starts_with("W/\""), "{path}: {etag}");
        let cached = fetch(&router, path, &[("if-none-match", etag)]).await;
        assert_eq!(cached.status, 304, "{path}");
        assert!(cached.body.is_empty());
        assert_eq!(cached.header("etag"), etag);
    }
    let icon = fetch(
        &router,
        "/docs/favicon-32x32.png",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), "image/png");
    assert_eq!(icon.header("content-encoding"), "");
    assert!(icon.body.starts_with(b"\x89PNG"));
}

/// The function serves the committed document; the runner the one generated at start. They
/// are the same document (the docs crate's unit test keeps the file current).
#[tokio::test]
async fn docs_function_serves_the_document_the_runner_generates() {
    let app = TestApp::new().await;
    let live = app.get("/openapi.json").await.body;
    let committed = fetch(&docs::router(), "/openapi.json", &[]).await;
    assert_eq!(committed.status, 200);
    assert_eq!(committed.header("content-type"), "application/json");
    let committed: Value = serde_json::from_slice(&committed.body).unwrap();
    assert_eq!(committed, live);
    let index = fetch(&docs::router(), "/", &[]).await;
    let index: Value = serde_json::from_slice(&index.body).unwrap();
    assert_eq!(index, app.get("/").await.body);
}
