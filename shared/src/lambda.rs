//! Running a router on AWS Lambda (`lambda_http`), the same way in every function.
//!
//! [`serve`] is the whole of a Redis-backed function's `main`: JSON logs, the settings
//! (environment, or the secret named by `SECRETS_ARN`), the Redis handle built once in the
//! init phase and reused by every warm invocation, then the runtime loop with each
//! invocation's figures written as EMF lines ([`run_with_metrics`]). [`handler`] is the
//! router exactly as the runtime calls it, so tests can drive it with API Gateway and
//! Function URL events.

use std::convert::Infallible;

/// The most a synchronous invocation may answer: "For synchronous invocations, the maximum
/// payload size is 6 MB" (<https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html>).
/// A bigger answer fails the invocation and API Gateway answers 500 instead, after the
/// handler has done its work (a pop has already removed the tasks).
pub const RESPONSE_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// What the variable part of one answer (the tasks of a pop or a page) may add up to. The
/// body travels as a JSON string inside the response payload, where every `"` and `\` is
/// escaped, so a body can grow to twice its size there (base64, for binary bodies, only
/// to 4/3): half the limit, less room for the envelope, headers and the body's other fields.
/// A task that can grow on the way out (control bytes escaped, bytes that are not UTF-8
/// answered as U+FFFD) counts four times its length (`queue_requeue_expired.lua`).
/// Applied by the runner too, so no answer works locally that would fail on Lambda.
pub const RESPONSE_BODY_BUDGET: usize = RESPONSE_PAYLOAD_LIMIT / 2 - 64 * 1024;

/// What one item of a list answer costs on top of its own bytes (separator, framing), in
/// [`RESPONSE_BODY_BUDGET`] accounting.
pub const PER_ITEM_BYTES: usize = 16;

use axum::{Router, http::Uri, response::Response};
use lambda_http::{Request, RequestExt, request::RequestContext};
use tower::{Service, ServiceExt};

/// Builds the state and runs the router that `router` makes of it: a function's whole `main`.
pub async fn serve(router: fn(crate::AppState) -> Router) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = crate::AppState::new(crate::secrets::config().await?)?;
    let app = crate::http::finish(router(state.clone()), &state.config);
    if state.config.metrics {
        run_with_metrics(app).await
    } else {
        run(app).await
    }
}

/// Runs `router` under the Lambda runtime until the process is stopped, each invocation
/// timed and counted ([`crate::metrics::HttpMetricsLayer`]) and its figures written as
/// EMF lines ([`crate::metrics::emf`]) with the function's name, which Lambda gives in
/// `AWS_LAMBDA_FUNCTION_NAME` (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html>).
pub async fn run_with_metrics(router: Router) -> Result<(), lambda_http::Error> {
    let function: std::sync::Arc<str> = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .unwrap_or_default()
        .into();
    let service =
        handler(router.layer(crate::metrics::HttpMetricsLayer)).map_future(move |invocation| {
            let function = function.clone();
            async move { crate::metrics::emf::scoped(&function, invocation).await }
        });
    lambda_http::run(service).await
}

/// Runs `router` under the Lambda runtime until the process is stopped. Never returns an
/// `Err` for a request: every failure is already an HTTP problem response.
pub async fn run(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(handler(router)).await
}

/// The router as the runtime calls it: a REST API (v1) stage prefix (`/prod/cache/x`) is
/// removed before routing, so the same routes serve HTTP APIs, REST APIs with a stage, and
/// Function URLs. (`AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH=true` has the same effect at the
/// parsing step; this makes the function correct without it.)
pub fn handler(
    router: Router,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone {
    router.map_request(|request| sized(with_deadline(strip_stage(request))))
}

/// The event's body as the router's body type, of exact size: the Lambda body type gives
/// an empty body no size (`SizeHint::default()`), which the admission checks would have to
/// read to find empty; an empty axum body says so.
fn sized(request: Request) -> axum::extract::Request {
    let (parts, body) = request.into_parts();
    let body = match body {
        lambda_http::Body::Empty => axum::body::Body::empty(),
        lambda_http::Body::Text(text) => axum::body::Body::from(text),
        lambda_http::Body::Binary(bytes) => axum::body::Body::from(bytes),
        other => axum::body::Body::from(other.to_vec()),
    };
    axum::extract::Request::from_parts(parts, body)
}

/// Puts the invocation's deadline into the request, for work that must end before it (the
/// lock demo caps its hold by it: a frozen environment would otherwise keep the lock).
///
/// A deadline already past when the invocation starts is no deadline: Lambda gives
/// milliseconds since the epoch, in the future, but `cargo lambda watch` sends a fixed
/// `Lambda-Runtime-Deadline-Ms: 600000` (1970), which would cut every hold to nothing
/// (cargo-lambda, crates/cargo-lambda-watch/src/runtime/functions_router.rs).
fn with_deadline(mut request: Request) -> Request {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let deadline = request.lambda_context_ref().map(|ctx| ctx.deadline);
    if let Some(deadline) = deadline.filter(|d| *d > now_ms) {
        request
            .extensions_mut()
            .insert(crate::lifecycle::InvocationDeadline::from_epoch_ms(
                deadline,
            ));
    }
    request
}

fn strip_stage(mut request: Request) -> Request {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.clone(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else {
        return request;
    };
    let prefix = format!("/{stage}");
    let path = request.uri().path();
    let rest = match path.strip_prefix(&prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return request,
    };
    let mut uri = rest.to_owned();
    if let Some(query) = request.uri().query() {
        uri.push('?');
        uri.push_str(query);
    }
    if let Ok(uri) = uri.parse::<Uri>() {
        *request.uri_mut() = uri;
    }
    request
}

#[cfg(test)]
mod tests {
    use axum::body::HttpBody as _;

    use super::*;

    /// Every event body reaches the router with its exact size, the empty one included (the
    /// admission checks then know at once that there is nothing to read).
    #[test]
    fn event_bodies_have_their_exact_size() {
        for (body, size) in [
            (lambda_http::Body::Empty, 0),
            (lambda_http::Body::Text("abc".to_owned()), 3),
            (lambda_http::Body::Binary(vec![1, 2]), 2),
        ] {
            let request = sized(Request::new(body));
            assert_eq!(request.body().size_hint().exact(), Some(size));
        }
    }
}
