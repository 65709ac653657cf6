//! The `docs` function: the API's documentation, served with no internet access.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the endpoint list  |
//! | `GET /openapi.json` | OpenAPI 3.1, generated from every function's handlers |
//! | `GET /docs/` | Swagger UI (Swagger UI's release files, from `utoipa-swagger-ui-vendored`) |
//! | `GET /redoc` | ReDoc (standalone bundle vendored in `assets/`) |
//! | `GET /dashboard` | live charts of the API and Redis (`dashboard.html` + `dashboard.js`, plain SVG) |
//!
//! Each function contributes its own paths (`<function>::api()`); this crate only merges
//! them and adds the document's header. It needs no Redis and reads no environment.
//!
//! The merged document is committed as `openapi.json` (a test keeps it current:
//! `UPDATE_OPENAPI=1 cargo test -p docs` rewrites it). The Lambda function serves that file,
//! so its binary links no handler code; the local runner serves the live document. The
//! Swagger UI and ReDoc files are embedded gzip-compressed (`build.rs`).

mod assets;

use std::sync::{Arc, OnceLock};

use axum::{
    Json, Router,
    http::header,
    response::{Html, IntoResponse, Redirect},
    routing::get,
};
use bytes::Bytes;
use serde_json::{Value, json};
use shared::{
    ApiError,
    models::ids::{Key, UserId, refuse_empty},
};
use utoipa::openapi::{ContactBuilder, InfoBuilder, LicenseBuilder, OpenApi, Tag, tag::TagBuilder};
use utoipa_axum::router::OpenApiRouter;

/// The OpenAPI document of every function, merged, with the API's header and tags.
pub fn openapi() -> OpenApi {
    let mut api = OpenApiRouter::<shared::AppState>::new()
        .merge(cache::api())
        .merge(users::api())
        .merge(rate_limit::api())
        .merge(lock::api())
        .merge(queue::api())
        .merge(stats::api())
        .into_openapi();
    api.info = InfoBuilder::new()
        .title("Redis Cache API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The core Redis patterns over HTTP: cache with TTL, hash-backed profiles, Lua rate \
             limiting, distributed locks, list queues and monitoring. Every error is an RFC 9457 \
             problem (`application/problem+json`); Redis unavailable is a 503 with `Retry-After`.",
        ))
        .license(Some(LicenseBuilder::new().name("MIT").build()))
        .contact(Some(
            ContactBuilder::new().name(Some("Redis Cache API")).build(),
        ))
        .build();
    shared::docs::add_problem_responses(&mut api);
    secure(&mut api);
    api.tags = Some(vec![
        tag(
            "cache",
            "Key-value entries with a TTL, entity tags and conditional writes, XFetch (SCAN listing)",
        ),
        tag(
            "users",
            "Hash operations for structured data, with hit/miss tracking",
        ),
        tag(
            "rate-limit",
            "Lua scripts for atomic operations: four rate-limit algorithms, several policies at once",
        ),
        tag(
            "lock",
            "Distributed locking with tokens and fencing, a fencing-token store, counting semaphores",
        ),
        tag(
            "queue",
            "List operations for queues: reliable claim/ack, delivery counts, dead letters, delayed tasks",
        ),
        tag("stats", "Monitoring and health checks"),
    ]);
    api
}

/// Declares the optional API key (`API_KEY`): both ways of sending it as security schemes,
/// so Swagger UI's "Authorize" button works, and a 401 problem on every operation that needs
/// it (all but the health check).
fn secure(api: &mut OpenApi) {
    use utoipa::openapi::{
        Content, RefOr, ResponseBuilder,
        security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        },
    };
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("Authorization: Bearer <API_KEY>"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "api_key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            shared::http::API_KEY_HEADER,
            "X-API-Key: <API_KEY>",
        ))),
    );
    let problem = Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
        "Problem",
    ))));
    let unauthorized = ResponseBuilder::new()
        .description("API_KEY is set and the request did not carry it")
        .content("application/problem+json", problem)
        .build();
    for (path, item) in api.paths.paths.iter_mut() {
        let public = shared::http::is_public(path);
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.put,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            if public {
                // Open even when API_KEY is set: an empty requirement.
                op.security = Some(vec![SecurityRequirement::default()]);
            } else {
                op.security = Some(vec![
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                    SecurityRequirement::new("api_key", Vec::<String>::new()),
                ]);
                op.responses
                    .responses
                    .insert("401".to_owned(), RefOr::T(unauthorized.clone()));
            }
        }
    }
}

fn tag(name: &str, description: &str) -> Tag {
    TagBuilder::new()
        .name(name)
        .description(Some(description))
        .build()
}

/// The committed document, `functions/docs/openapi.json`: what the `docs` function serves.
/// A test keeps it equal to [`openapi()`]; serving it instead of generating it keeps every
/// handler's code out of the docs binary.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// [`openapi()`] as the committed file holds it (pretty-printed, newline at the end).
pub fn openapi_json() -> String {
    let mut json = serde_json::to_string_pretty(&openapi()).unwrap_or_default();
    json.push('\n');
    json
}

/// The documentation routes, serving the committed document (no state: nothing here touches
/// Redis).
pub fn router() -> Router {
    router_with(Bytes::from_static(OPENAPI_JSON.as_bytes()))
        // An empty key or user id (`/cache/`, `/users/`) matches no `{key}` route of API
        // Gateway, so it reaches this function, the `$default` route: the same 400 the cache
        // and users functions (and the runner) answer, with the same methods.
        .route(
            "/cache/",
            get(refuse_empty::<Key>).delete(refuse_empty::<Key>),
        )
        .route(
            "/users/",
            get(refuse_empty::<UserId>)
                .patch(refuse_empty::<UserId>)
                .delete(refuse_empty::<UserId>),
        )
}

/// The documentation routes, serving the document generated from the handlers now: the
/// local runner's, so a change to a handler shows in `/docs` at the next start.
pub fn live_router() -> Router {
    router_with(Bytes::from(openapi_json()))
}

fn router_with(document: Bytes) -> Router {
    let index = Arc::new(OnceLock::new());
    let json = document.clone();
    Router::new()
        .route(
            "/",
            get(move || async move { root(&document, &index).map(Json) }),
        )
        .route(
            "/openapi.json",
            get(
                move || async move { ([(header::CONTENT_TYPE, "application/json")], json.clone()) },
            ),
        )
        .route("/docs", get(|| async { Redirect::permanent("docs/") }))
        .route("/docs/", get(swagger_page))
        .route("/docs/swagger-initializer.js", get(swagger_initializer))
        .route("/redoc", get(redoc_page))
        .route("/dashboard", get(dashboard_page))
        .route("/dashboard/dashboard.js", get(dashboard_script))
        .merge(assets::router())
}

/// `GET /`: what the API offers, from the OpenAPI document (never out of date). Built at the
/// first call, so a cold start does not parse the document.
fn root(document: &[u8], index: &OnceLock<Value>) -> Result<Value, ApiError> {
    if let Some(index) = index.get() {
        return Ok(index.clone());
    }
    let doc: Value = serde_json::from_slice(document)
        .map_err(|e| ApiError::Internal(format!("the OpenAPI document does not parse: {e}")))?;
    let mut endpoints = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in ["get", "post", "patch", "put", "delete"] {
            let op = &item[method];
            if op.is_object() {
                endpoints.push(json!({
                    "method": method.to_ascii_uppercase(),
                    "path": path,
                    "summary": op["summary"],
                    "tag": op["tags"][0],
                }));
            }
        }
    }
    Ok(index
        .get_or_init(|| {
            json!({
                "name": "Redis Cache API",
                "version": env!("CARGO_PKG_VERSION"),
                "docs": "/docs",
                "redoc": "/redoc",
                "dashboard": "/dashboard",
                "openapi": "/openapi.json",
                "endpoints": endpoints,
            })
        })
        .clone())
}

/// The pages load only what this API serves; nothing from elsewhere.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; \
     worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     font-src 'self' data:; connect-src 'self'; base-uri 'self'; frame-ancestors 'none'";

/// Swagger UI (`/docs/`): Swagger UI's own page, with its files and the document referred
/// to relatively, so it also works under an API Gateway stage path.
async fn swagger_page() -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, PAGE_CSP)],
        Html(include_str!("swagger.html")),
    )
}

async fn swagger_initializer() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("swagger-initializer.js"),
    )
}

/// The ReDoc page. The bundle's only outside reference (the "API docs by Redocly" logo, from
/// a CDN) is never requested: the Content-Security-Policy keeps the page on this origin.
async fn redoc_page() -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, PAGE_CSP)],
        Html(include_str!("redoc.html")),
    )
}

/// The dashboard: one page and one script, both in this binary, drawing with plain SVG, so
/// it works offline like the docs. It polls `/metrics`, `/stats`, `/stats/patterns` and
/// `/rate-limit/status` relative to itself; the CSP keeps every request on this origin.
async fn dashboard_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(include_str!("dashboard.html")),
    )
}

/// Stricter than [`PAGE_CSP`]: the dashboard runs no inline script, no worker, no font.
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

async fn dashboard_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("dashboard.js"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    /// The committed `openapi.json` is the document the handlers describe. With
    /// `UPDATE_OPENAPI=1` the test rewrites it instead of failing.
    #[test]
    fn committed_document_is_current() {
        let live = super::openapi_json();
        if live == super::OPENAPI_JSON {
            return;
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, live).unwrap();
            return;
        }
        panic!(
            "{path} is not the document the handlers describe: run \
             `UPDATE_OPENAPI=1 cargo test -p docs` and commit the file"
        );
    }
}
