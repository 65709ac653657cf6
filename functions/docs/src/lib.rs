//! The `docs` function: the API's documentation, served with no internet access.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the endpoint list (as the original's root did) |
//! | `GET /openapi.json` | OpenAPI 3.1, generated from every function's handlers |
//! | `GET /docs` | Swagger UI (assets vendored by `utoipa-swagger-ui`) |
//! | `GET /redoc` | ReDoc (standalone bundle vendored in `assets/`) |
//!
//! Each function contributes its own paths (`<function>::api()`); this crate only merges
//! them and adds the document's header. It needs no Redis and reads no environment.

use std::sync::LazyLock;

use axum::{
    Json, Router,
    http::header,
    response::{Html, IntoResponse},
    routing::get,
};
use serde_json::{Value, json};
use utoipa::openapi::{ContactBuilder, InfoBuilder, LicenseBuilder, OpenApi, Tag, tag::TagBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

/// ReDoc's standalone bundle, embedded so `/redoc` works offline.
static REDOC_JS: &[u8] = include_bytes!("../assets/redoc.standalone.js");

/// The merged document, built once per process.
static OPENAPI: LazyLock<OpenApi> = LazyLock::new(build_openapi);

/// The OpenAPI document of every function, merged, with the API's header and tags.
pub fn openapi() -> OpenApi {
    OPENAPI.clone()
}

fn build_openapi() -> OpenApi {
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
            "Basic key-value operations with a TTL (strings, SCAN listing)",
        ),
        tag(
            "users",
            "Hash operations for structured data, with hit/miss tracking",
        ),
        tag(
            "rate-limit",
            "Lua scripts for atomic operations: three rate-limit algorithms",
        ),
        tag("lock", "Distributed locking with tokens and fencing"),
        tag(
            "queue",
            "List operations for queues, with reliable claim/ack",
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

/// The documentation routes (no state: nothing here touches Redis).
pub fn router() -> Router {
    Router::new()
        .route("/", get(root))
        .route("/redoc", get(redoc_page))
        .route("/redoc/redoc.standalone.js", get(redoc_js))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
}

/// `GET /`: what the API offers, from the OpenAPI document (never out of date).
async fn root() -> Json<Value> {
    let mut endpoints = Vec::new();
    for (path, item) in &OPENAPI.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PATCH", &item.patch),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
        ];
        for (method, op) in operations {
            if let Some(op) = op {
                endpoints.push(json!({
                    "method": method,
                    "path": path,
                    "summary": op.summary,
                    "tag": op.tags.as_ref().and_then(|t| t.first()),
                }));
            }
        }
    }
    Json(json!({
        "name": "Redis Cache API",
        "version": env!("CARGO_PKG_VERSION"),
        "docs": "/docs",
        "redoc": "/redoc",
        "openapi": "/openapi.json",
        "endpoints": endpoints,
    }))
}

/// The ReDoc page. Its Content-Security-Policy keeps it on this origin: the bundle's only
/// outside reference (the "API docs by Redocly" logo, from a CDN) is never requested.
async fn redoc_page() -> impl IntoResponse {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; \
             style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
             connect-src 'self'",
        )],
        Html(include_str!("redoc.html")),
    )
}

async fn redoc_js() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC_JS,
    )
}
