//! What every router gets around its routes, in a function and in the local runner alike:
//! problem+json for unknown paths (404) and methods (405), the body size limit, and a
//! panic guard that turns a bug into a 500 problem instead of a dropped connection.

use std::any::Any;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{Method, Uri},
    response::{IntoResponse, Response},
};
use tower_http::catch_panic::CatchPanicLayer;

use crate::{config::Config, error::ApiError};

/// Adds the fallbacks and layers shared by every deployment of a router. Call it once, on
/// the final (merged) router.
pub fn finish(router: Router, config: &Config) -> Router {
    router
        .fallback(no_route)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
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
