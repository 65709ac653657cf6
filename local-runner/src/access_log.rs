//! The runner's request log, at two levels, so that logging every request does not cost
//! what the request does.
//!
//! - `info` (the default): one line for each request that failed on the server's side (a
//!   `5xx`), took [`SLOW`] or longer, or was abandoned by its client before the answer
//!   (its handler cut short), with method, path, status, latency and request id.
//! - `debug` for the target `access` (`RUST_LOG=info,access=debug`): one line for every
//!   request, and a `request` span around its handling that every line logged inside it
//!   carries.
//!
//! Why not a line per request at `info`: formatting and writing one costs about as much CPU
//! as serving a cached `GET` (measured with `bench/run.sh`: a third more CPU per request,
//! each line its own `write(2)`); the lines that matter to an operator — failures and slow
//! requests — are still there by default. When the `access` target is off, a request pays
//! for a clock read and a level check, nothing is formatted.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::{Level, Span};

/// A request that takes this long or longer is logged at `info`.
pub const SLOW: Duration = Duration::from_millis(100);

/// The `tracing` target of the request lines.
pub const TARGET: &str = "access";

/// Logs requests as the module header says; `request_id` names the header holding the id
/// (set by an outer layer).
#[derive(Clone)]
pub struct AccessLogLayer {
    request_id: HeaderName,
}

impl AccessLogLayer {
    pub fn new(request_id: HeaderName) -> Self {
        Self { request_id }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            request_id: self.request_id.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    request_id: HeaderName,
}

/// What a request line says about the request, kept until its response.
struct Seen {
    start: Instant,
    method: Method,
    uri: Uri,
    request_id: Option<HeaderValue>,
}

impl<S, B, R> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let seen = Seen {
            start: Instant::now(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            request_id: request.headers().get(&self.request_id).cloned(),
        };
        let span = if tracing::enabled!(target: TARGET, Level::DEBUG) {
            let id = seen
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::debug_span!(target: TARGET, "request", method = %seen.method, path = %seen.uri.path(), request_id = %id)
        } else {
            Span::none()
        };
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        AccessLogFuture {
            inner,
            seen,
            span,
            answered: false,
        }
    }
}

pin_project! {
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        seen: Seen,
        span: Span,
        answered: bool,
    }

    impl<F> PinnedDrop for AccessLogFuture<F> {
        // Dropped before its answer: the client went away (hyper drops the request's future
        // when the connection closes), and the handler was cut short.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.answered {
                log(this.seen, None);
            }
        }
    }
}

impl<F, R, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            std::task::ready!(this.inner.poll(cx))
        };
        *this.answered = true;
        if let Ok(response) = &result {
            log(this.seen, Some(response.status().as_u16()));
        }
        Poll::Ready(result)
    }
}

/// The line of one request; `status` is `None` when the client left before the answer.
fn log(seen: &Seen, status: Option<u16>) {
    let latency = seen.start.elapsed();
    let notable = status.is_none_or(|s| s >= 500) || latency >= SLOW;
    if !notable && !tracing::enabled!(target: TARGET, Level::DEBUG) {
        return;
    }
    let id = seen
        .request_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let latency_us = latency.as_micros() as u64;
    let (method, path) = (&seen.method, seen.uri.path());
    let Some(status) = status else {
        tracing::info!(target: TARGET, %method, %path, latency_us, request_id = %id, "abandoned: the client closed the connection before the answer");
        return;
    };
    if notable {
        tracing::info!(target: TARGET, %method, %path, status, latency_us, request_id = %id, "served");
    } else {
        tracing::debug!(target: TARGET, %method, %path, status, latency_us, request_id = %id, "served");
    }
}
