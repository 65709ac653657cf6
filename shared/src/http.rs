//! What every router gets around its routes, in a function and in the local runner alike:
//! problem+json for unknown paths (404) and methods (405), the optional API key, the
//! request time limit, the body size limit, and a panic guard that turns a bug into a 500
//! problem instead of a dropped connection.

use std::{any::Any, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderMap, Method, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;
use tower_http::catch_panic::CatchPanicLayer;

use crate::{config::Config, error::ApiError};

/// Header that may carry the API key, besides `Authorization: Bearer`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Adds the fallbacks and layers shared by every deployment of a router. Call it once, on
/// the final (merged) router.
pub fn finish(router: Router, config: &Config) -> Router {
    let key: Option<Arc<str>> = config.api_key.as_deref().map(Arc::from);
    let limit = config.request_timeout;
    let body_limit = config.max_body_bytes;
    let mut router = router
        .fallback(no_route)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            crate::idempotency::fingerprint(body_limit, request, next)
        }));
    // Only when a key is configured: an open API pays nothing per request for it.
    if let Some(key) = key {
        router = router.layer(middleware::from_fn(move |request: Request, next: Next| {
            let key = key.clone();
            async move { require_api_key(&key, request, next).await }
        }));
    }
    router
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            within(limit, request, next)
        }))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
}

/// Routes anyone may call even when `API_KEY` is set: the health check (for load balancers)
/// and the documentation.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/" | "/health" | "/openapi.json" | "/docs" | "/redoc")
        || path.starts_with("/docs/")
        || path.starts_with("/redoc/")
}

async fn require_api_key(key: &str, request: Request, next: Next) -> Response {
    if is_public(request.uri().path()) || carries(request.headers(), key) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Whether the headers carry `key`, compared in constant time so that response times do not
/// reveal how much of a guess was right.
fn carries(headers: &HeaderMap, key: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let header = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    [bearer, header]
        .into_iter()
        .flatten()
        .any(|given| bool::from(given.trim().as_bytes().ct_eq(key.as_bytes())))
}

/// Answers 503 when the handler takes longer than `REQUEST_TIMEOUT_MS`.
async fn within(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(format!(
            "the request took longer than {} ms (REQUEST_TIMEOUT_MS); try again",
            limit.as_millis()
        ))
        .into_response(),
    }
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
