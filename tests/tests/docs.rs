//! The OpenAPI document and the docs routes (API.md "Docs"). The browser test is in
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
async fn openapi_documents_exactly_the_routes_of_api_md() {
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
    assert_eq!(r.body["openapi"], "/openapi.json");
    assert_eq!(r.body["endpoints"].as_array().unwrap().len(), ROUTES.len());
    assert!(r.body["endpoints"][0]["summary"].is_string());

    let r = app.get("/docs").await;
    assert!(r.status.is_redirection(), "{r:?}");
    assert_eq!(r.header("location"), "/docs/");
    let r = app.get("/docs/").await;
    assert_eq!(r.status, 200);
    assert!(r.body.as_str().unwrap().contains("swagger-ui"));
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
    assert!(
        r.header("content-type")
            .starts_with("application/javascript")
    );
}
