//! What every router gets around its routes, in a function and in the local runner alike:
//! problem+json for unknown paths (404) and methods (405), the optional API key, the
//! request time limit, the body size limit, a panic guard that turns a bug into a 500
//! problem instead of a dropped connection, and CORS when `CORS_ALLOW_ORIGINS` is set.
//!
//! [`guard`] is applied by each function to its own routes: it answers every method
//! a route does not declare in its OpenAPI description with a 405 problem carrying `Allow`,
//! before any handler runs. axum would otherwise answer HEAD by running the GET handler and
//! dropping the body, which for a GET that pops, counts or requeues means `curl -I` changes
//! state. So a GET that changes state gets no HEAD, and its answers carry
//! `Cache-Control: no-store`: a cache that kept one would replay a pop or a rate-limit
//! verdict instead of asking again.

use std::{any::Any, collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, Method, Uri, header},
    response::{IntoResponse, Response},
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
};
use utoipa::openapi::{OpenApi, PathItem};

use crate::{config::Config, error::ApiError};

mod admit;
mod method_guard;

/// Header that may carry the API key, besides `Authorization: Bearer`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Adds the fallbacks and layers shared by every deployment of a router. Call it once, on
/// the final (merged) router.
pub fn finish(router: Router, config: &Config) -> Router {
    layered(router, config, cors(&config.cors_allow_origins))
}

/// [`finish`] without its outermost layer, CORS, for a server that puts layers of its own
/// between the two (the runner's in-flight cap, whose `503`s a browser must be able to read
/// too): it then adds [`cors`] itself, outside them.
pub fn finish_inside_cors(router: Router, config: &Config) -> Router {
    layered(router, config, None)
}

fn layered(router: Router, config: &Config, cors: Option<CorsLayer>) -> Router {
    let admission = Arc::new(admit::Admission {
        key: config.api_key.clone(),
        time_limit: config.request_timeout,
        body_limit: config.max_body_bytes,
    });
    // The layers in one `Router::layer` call: each call wraps every route in one more boxed
    // service, cloned and allocated per request; a `ServiceBuilder` composes them without.
    // Outermost (in `finish`) CORS, so a preflight is answered before the API key, routing
    // and the method guard (a browser sends no credentials with it), and every answer, errors
    // included, carries the headers a browser needs to read it. Then the panic catcher, the
    // body limit and the four checks every request passes (`admit`).
    router
        .fallback(no_route)
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::MethodNotAllowed(format!("{method} is not allowed here (see Allow)"))
        })
        .layer(
            ServiceBuilder::new()
                .option_layer(cors)
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(DefaultBodyLimit::max(config.max_body_bytes))
                .layer(admit::AdmitLayer(admission)),
        )
}

/// The CORS layer for `CORS_ALLOW_ORIGINS`, `None` when it is empty. The same rules as the
/// template's `CorsConfiguration` on the HTTP API (API Gateway answers preflights itself
/// there): these methods and request headers, the response headers a client reads.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let header = |name: &'static str| http::HeaderName::from_static(name);
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods(
                CORS_METHODS
                    .iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect::<Vec<_>>(),
            )
            .allow_headers(
                CORS_ALLOW_HEADERS
                    .iter()
                    .map(|h| header(h))
                    .collect::<Vec<_>>(),
            )
            .expose_headers(
                CORS_EXPOSE_HEADERS
                    .iter()
                    .map(|h| header(h))
                    .collect::<Vec<_>>(),
            )
            .max_age(Duration::from_secs(CORS_MAX_AGE_SECS)),
    )
}

/// Methods a browser may use cross-origin (`AllowMethods` in the template).
pub const CORS_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Request headers a browser may send cross-origin (`AllowHeaders` in the template).
pub const CORS_ALLOW_HEADERS: &[&str] = &[
    "content-type",
    "authorization",
    "x-api-key",
    "idempotency-key",
    "if-match",
    "if-none-match",
];
/// Response headers browser code may read (`ExposeHeaders` in the template).
pub const CORS_EXPOSE_HEADERS: &[&str] = &[
    "etag",
    "idempotent-replayed",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
    "ratelimit",
    "x-request-id",
];
/// How long a browser may cache a preflight answer (`MaxAge` in the template).
pub const CORS_MAX_AGE_SECS: u64 = 600;

/// Routes anyone may call even when `API_KEY` is set: the health check (for load balancers)
/// and the documentation, and the dashboard page (it holds no data: its requests carry the
/// key typed into it).
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/" | "/health" | "/openapi.json" | "/docs" | "/redoc" | "/dashboard"
    ) || path.starts_with("/docs/")
        || path.starts_with("/dashboard/")
        || path.starts_with("/redoc/")
}

/// What a route accepts, from its OpenAPI path item.
#[derive(Debug)]
struct Methods {
    /// The declared methods, plus HEAD when the route has a GET that changes nothing.
    allowed: Vec<Method>,
    /// The `Allow` header naming them.
    allow: HeaderValue,
    /// Whether its GET changes state (no HEAD, answers never cached).
    state_changing_get: bool,
    /// The query parameters each of its operations declares.
    queries: Vec<(Method, std::collections::HashSet<String>)>,
    /// The methods whose operation declares a request body: its handler's extractor reads
    /// the whole body before the handler runs. Any other request's body, if it has one, is
    /// read by the guard first (see [`method_guard`]).
    reads_body: Vec<Method>,
}

/// A function's router from its documented routes (`api().split_for_parts()`): [`guard`]
/// from the document, then the state.
pub fn guarded(
    (routes, openapi): (Router<crate::AppState>, OpenApi),
    state_changing_gets: &[&str],
    state: crate::AppState,
) -> Router {
    guard(routes, &openapi, state_changing_gets).with_state(state)
}

/// Restricts every route of `router` to the methods `openapi` declares for its path: any
/// other method (OPTIONS, HEAD where not allowed, `PURGE`, ...) is a 405 problem with
/// `Allow`, and no handler runs. HEAD is allowed on a GET route unless the path is in
/// `state_changing_gets` (OpenAPI templates, `/queue/{name}`); those routes' GET and HEAD
/// answers, problems included, carry `Cache-Control: no-store` (those made before routing,
/// a 401 or the time-limit 503, are not cacheable by default anyway). Then the query rule
/// of [`crate::query_guard`]: a parameter the operation does not declare is a 422. Routes
/// absent from `openapi` are left as they are. One route layer for both rules (each layer
/// of this kind costs a clone and an allocation per request).
pub fn guard<S>(router: Router<S>, openapi: &OpenApi, state_changing_gets: &[&str]) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut queries = crate::query_guard::declared(openapi);
    let table: HashMap<String, Methods> = openapi
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let state_changing_get = state_changing_gets.contains(&path.as_str());
            let mut methods = methods_of(item, state_changing_get);
            methods.queries = queries.remove(path).unwrap_or_default();
            (path.clone(), methods)
        })
        .collect();
    for path in state_changing_gets {
        if table
            .get(*path)
            .is_none_or(|m| !m.allowed.contains(&Method::GET))
        {
            // A misspelt path would leave HEAD running its handler: say so at start.
            tracing::warn!(path, "state-changing GET not found among the OpenAPI paths");
        }
    }
    let table = Arc::new(table);
    // A route layer runs after routing, on a matched path only, so `MatchedPath` names the
    // template. It also wraps each route's method fallback, but [`finish`] would later swap a
    // default fallback for its own, unwrapped: set it first, so it stays wrapped.
    router
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::MethodNotAllowed(format!("{method} is not allowed here (see Allow)"))
        })
        .route_layer(method_guard::MethodGuardLayer(table))
}

fn methods_of(item: &PathItem, state_changing_get: bool) -> Methods {
    let declared = [
        (Method::GET, item.get.is_some()),
        (Method::HEAD, item.get.is_some() && !state_changing_get),
        (Method::POST, item.post.is_some()),
        (Method::PUT, item.put.is_some()),
        (Method::PATCH, item.patch.is_some()),
        (Method::DELETE, item.delete.is_some()),
        (Method::OPTIONS, item.options.is_some()),
        (Method::TRACE, item.trace.is_some()),
    ];
    let allowed: Vec<Method> = declared
        .into_iter()
        .filter_map(|(method, present)| present.then_some(method))
        .collect();
    let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let allow = HeaderValue::from_str(&names.join(", ")).unwrap_or(HeaderValue::from_static(""));
    let reads_body = crate::query_guard::operations(item)
        .into_iter()
        .filter_map(|(method, op)| {
            op.as_ref()
                .is_some_and(|op| op.request_body.is_some())
                .then_some(method)
        })
        .collect();
    Methods {
        allowed,
        allow,
        state_changing_get,
        queries: Vec::new(),
        reads_body,
    }
}

/// Marks `response` `Cache-Control: no-store`: it is about a moment or a change, and a
/// cache that kept it would answer it again instead of asking.
pub fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint at {method} {}", uri.path()))
}

fn panic_response(cause: Box<dyn Any + Send + 'static>) -> Response {
    let cause = cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::Internal(format!("handler panicked: {cause}")).into_response()
}
