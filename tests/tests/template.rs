//! `template.yaml` (AWS SAM) and the routers agree, and a deploy with the defaults is safe:
//! every function's events are exactly the paths its router documents (each with `ANY`, so
//! the function itself answers undeclared methods with its 405 problem, as the runner does),
//! the docs function is the `$default` route (unknown paths get the 404 problem, not API
//! Gateway's own body), no secret sits in an environment variable, an API key is required,
//! the parameters' patterns accept what the functions accept, and CORS is the runner's. The
//! `cargo lambda watch` router table in the workspace `Cargo.toml` routes the same paths.

use std::collections::{BTreeMap, BTreeSet};

use api_tests::lambda::{Call, SOURCES, event, invoke};
use axum::Router;

type Routes = BTreeSet<(String, String)>;

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap()
}

/// `{crate: {(METHOD, path)}}` from the template's HttpApi events; the `DefaultRoute` event
/// (no Path, no Method: SAM's `$default` route) is `("ANY", "$default")`. The template is
/// written in a fixed shape (see its head), which this reads line by line.
fn template_routes() -> BTreeMap<String, Routes> {
    let mut out: BTreeMap<String, Routes> = BTreeMap::new();
    let mut function = None;
    let mut path = None;
    for line in template().lines() {
        let trimmed = line.trim();
        if let Some(dir) = trimmed.strip_prefix("CodeUri: functions/") {
            function = Some(dir.trim_end_matches('/').to_owned());
        } else if trimmed == "DefaultRoute:" {
            let f = function.clone().expect("events belong to a function");
            out.entry(f)
                .or_default()
                .insert(("ANY".to_owned(), "$default".to_owned()));
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
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|path| ("ANY".to_owned(), path.clone()))
        .collect()
}

/// `{crate: {("ANY", path)}}` of every function's router, the docs function's being `docs`
/// (its paths as the router table at hand spells them, its catch-all included).
fn router_routes(docs: &[&str]) -> BTreeMap<String, Routes> {
    let docs: Routes = docs
        .iter()
        .map(|p| ("ANY".to_owned(), (*p).to_owned()))
        .collect();
    [
        ("cache", documented(cache::api())),
        ("users", documented(users::api())),
        ("rate-limit", documented(rate_limit::api())),
        ("lock", documented(lock::api())),
        ("queue", documented(queue::api())),
        ("stats", documented(stats::api())),
        ("docs", docs),
    ]
    .into_iter()
    .map(|(f, r)| (f.to_owned(), r))
    .collect()
}

#[test]
fn template_events_are_the_routers_paths_and_a_default_route() {
    let expected = router_routes(&[
        "/",
        "/openapi.json",
        "/docs",
        "/docs/{proxy+}",
        "/redoc",
        "/redoc/redoc.standalone.js",
        "/dashboard",
        "/dashboard/dashboard.js",
        "$default",
    ]);
    assert_eq!(template_routes(), expected);
}

/// `{crate: {("ANY", path)}}` of the workspace `Cargo.toml`'s
/// `[workspace.metadata.lambda.watch.router]` table (`"path" = "function"` lines): what
/// `cargo lambda watch` sends where, each path with every method.
fn watch_routes() -> BTreeMap<String, Routes> {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).unwrap();
    let mut out: BTreeMap<String, Routes> = BTreeMap::new();
    for line in manifest
        .lines()
        .skip_while(|l| l.trim() != "[workspace.metadata.lambda.watch.router]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    {
        let (path, function) = line.split_once('=').expect("\"path\" = \"function\"");
        let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
        out.entry(unquote(function))
            .or_default()
            .insert(("ANY".to_owned(), unquote(path)));
    }
    out
}

/// `cargo lambda watch` routes every path of every router to its function, and what no
/// route matches to the docs function (the template's `$default`), as the template does.
#[test]
fn the_watch_router_table_is_the_routers_paths() {
    let expected = router_routes(&[
        "/",
        "/openapi.json",
        "/docs",
        "/docs/",
        "/docs/{*rest}",
        "/redoc",
        "/redoc/redoc.standalone.js",
        "/dashboard",
        "/dashboard/dashboard.js",
        "/{*unmatched}",
    ]);
    assert_eq!(watch_routes(), expected);
}

/// What the `$default` route's function answers for what no route matches, on every door:
/// a problem+json 404, for any method (HEAD included: its answer has no body to read, but
/// the status and type are the problem's); an empty key or user id, which reaches it as
/// well, gets the runner's 400 naming the field.
#[tokio::test]
async fn the_default_route_answers_problem_json() {
    let config = shared::Config::from_lookup(|_| None).unwrap();
    let docs = shared::http::finish(docs::router(), &config);
    for source in SOURCES {
        for (method, path, status, field) in [
            ("GET", "/nope", 404, None),
            ("GET", "/cache/", 400, Some("key")),
            ("DELETE", "/cache/", 400, Some("key")),
            ("GET", "/users/", 400, Some("user_id")),
            ("PATCH", "/users/", 400, Some("user_id")),
            ("DELETE", "/queue/a/b/c", 404, None),
            ("POST", "/stats/reset/now", 404, None),
            ("HEAD", "/nope", 404, None),
        ] {
            let r = invoke(&docs, event(source, &Call::to(method, path))).await;
            assert_eq!(r.status, status, "{method} {path} via {source:?}: {r:?}");
            assert_eq!(
                r.header("content-type"),
                "application/problem+json",
                "{method} {path} via {source:?}"
            );
            if method != "HEAD" {
                assert_eq!(r.body["status"], status);
                assert_eq!(r.body["field"].as_str(), field, "{method} {path}: {r:?}");
            }
        }
    }
}

/// Lines of one top-level entry of `Parameters:` (`name:` up to the next parameter).
fn parameter(name: &str) -> Vec<String> {
    let text = template();
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim_end() != format!("  {name}:"))
        .skip(1);
    let mut out = Vec::new();
    for line in lines.by_ref() {
        if !line.starts_with("    ") {
            break;
        }
        out.push(line.trim().to_owned());
    }
    assert!(!out.is_empty(), "parameter {name} not found");
    out
}

fn allowed_pattern(name: &str) -> regex::Regex {
    let lines = parameter(name);
    let pattern = lines
        .iter()
        .find_map(|l| l.strip_prefix("AllowedPattern: "))
        .unwrap_or_else(|| panic!("{name} has no AllowedPattern"));
    regex::Regex::new(pattern).unwrap()
}

#[test]
fn a_deploy_with_the_defaults_is_not_open() {
    let key = parameter("ApiKey");
    assert!(
        !key.iter().any(|l| l.starts_with("Default:")),
        "ApiKey must have no default: {key:?}"
    );
    assert!(key.contains(&"MinLength: 16".to_owned()), "{key:?}");
    assert!(key.contains(&"NoEcho: true".to_owned()), "{key:?}");
    let pattern = allowed_pattern("ApiKey");
    assert!(!pattern.is_match(&"k".repeat(15)));
    assert!(pattern.is_match(&"0123456789abcdef".repeat(4)));
    assert!(!pattern.is_match(&format!("{} ", "k".repeat(16))));
    // Every key the template accepts, the functions accept (and the other way round for
    // what a header can carry).
    assert!(shared::Config::from_lookup(|n| (n == "API_KEY").then(|| "k".repeat(16))).is_ok());

    // No secret in an environment variable: REDIS_URL and API_KEY live in the secret.
    for line in template().lines() {
        let t = line.trim();
        assert!(
            !t.starts_with("REDIS_URL:") && !t.starts_with("API_KEY:"),
            "a secret in an environment variable: {t}"
        );
    }
    assert!(template().contains("SECRETS_ARN: !Ref ApiSecret"));
    // Throttled, by default.
    assert!(template().contains("ThrottlingRateLimit: !Ref ThrottlingRateLimit"));
}

#[test]
fn parameter_patterns_refuse_what_would_fail_at_init() {
    let url = allowed_pattern("RedisUrl");
    for ok in [
        "redis://127.0.0.1:6379/0",
        "rediss://:token@master.my-cache.xxxxxx.euw1.cache.amazonaws.com:6379/0",
        "rediss://app:secret@cfg.my-cache.xxxxxx.euw1.cache.amazonaws.com:6379",
        "redis://[::1]:6379",
    ] {
        assert!(url.is_match(ok), "{ok}");
        assert!(
            shared::Config::from_lookup(|n| (n == "REDIS_URL").then(|| ok.into())).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        "",
        "127.0.0.1:6379",
        "http://host:6379",
        "redis://host:6379/0 ",
        "redis://pa\"ss@host",
    ] {
        assert!(!url.is_match(bad), "{bad}");
    }
    let prefix = allowed_pattern("KeyPrefix");
    assert!(prefix.is_match("demo_api:") && !prefix.is_match("a b") && !prefix.is_match(""));
    let cors = allowed_pattern("CorsAllowOrigins");
    for ok in [
        "",
        "*",
        "https://app.example.com",
        "https://a.b,http://localhost:3000",
    ] {
        assert!(cors.is_match(ok), "{ok}");
        let parsed =
            shared::Config::from_lookup(|n| (n == "CORS_ALLOW_ORIGINS").then(|| ok.into()));
        assert!(parsed.is_ok(), "{ok}");
    }
    for bad in ["app.example.com", "https://a.b/", "*,https://a.b"] {
        assert!(!cors.is_match(bad), "{bad}");
    }
}

/// The HTTP API's `CorsConfiguration` is the runner's CORS layer, list for list.
#[test]
fn cors_configuration_is_the_runners() {
    let text = template();
    let list = |key: &str| -> Vec<String> {
        let line = text
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(&format!("{key}: [")))
            .unwrap_or_else(|| panic!("{key} not in the template"));
        line.trim_end_matches(']')
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect()
    };
    assert_eq!(list("AllowMethods"), shared::http::CORS_METHODS);
    assert_eq!(list("AllowHeaders"), shared::http::CORS_ALLOW_HEADERS);
    assert_eq!(list("ExposeHeaders"), shared::http::CORS_EXPOSE_HEADERS);
    assert!(text.contains(&format!("MaxAge: {}", shared::http::CORS_MAX_AGE_SECS)));
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
        "/dashboard",
        "/dashboard/dashboard.js",
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
