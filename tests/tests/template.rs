//! `template.yaml` (AWS SAM) and the routers agree: every function's events are exactly
//! the routes its router documents, and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;

type Routes = BTreeSet<(String, String)>;

/// `{function binary: {(METHOD, path)}}` from the template's HttpApi events. The template
/// is written in a fixed shape (see the file), which this reads line by line.
fn template_routes() -> BTreeMap<String, Routes> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let mut out: BTreeMap<String, Routes> = BTreeMap::new();
    let mut function = None;
    let mut path = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(dir) = trimmed.strip_prefix("CodeUri: target/lambda/") {
            function = Some(dir.trim_end_matches('/').to_owned());
        } else if let Some(p) = trimmed.strip_prefix("Path: ") {
            path = Some(p.to_owned());
        } else if let Some(m) = trimmed.strip_prefix("Method: ") {
            let f = function.clone().expect("events belong to a function");
            out.entry(f)
                .or_default()
                .insert((m.to_uppercase(), path.take().expect("Path before Method")));
        }
    }
    out
}

fn documented(api: utoipa_axum::router::OpenApiRouter<shared::AppState>) -> Routes {
    let doc = serde_json::to_value(api.into_openapi()).unwrap();
    let mut out = Routes::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn template_events_are_exactly_the_routers_routes() {
    let template = template_routes();
    let expected: BTreeMap<String, Routes> = [
        ("cache", documented(cache::api())),
        ("users", documented(users::api())),
        ("rate-limit", documented(rate_limit::api())),
        ("lock", documented(lock::api())),
        ("queue", documented(queue::api())),
        ("stats", documented(stats::api())),
        (
            "docs",
            [
                "/",
                "/openapi.json",
                "/docs",
                "/docs/{proxy+}",
                "/redoc",
                "/redoc/redoc.standalone.js",
            ]
            .iter()
            .map(|p| ("GET".to_owned(), (*p).to_owned()))
            .collect(),
        ),
    ]
    .into_iter()
    .map(|(f, r)| (f.to_owned(), r))
    .collect();
    assert_eq!(template, expected);
}

/// The docs function really serves what the template routes to it.
#[tokio::test]
async fn docs_function_serves_its_template_routes() {
    let router: Router = docs::router();
    for path in [
        "/",
        "/openapi.json",
        "/docs",
        "/docs/swagger-ui.css",
        "/redoc",
        "/redoc/redoc.standalone.js",
    ] {
        use tower::ServiceExt;
        let response = router
            .clone()
            .oneshot(
                http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(
            response.status().is_success() || response.status().is_redirection(),
            "{path}: {}",
            response.status()
        );
    }
}
