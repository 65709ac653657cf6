//! [`HttpMetricsLayer`]: times each request and counts its answer, by route template.
//!
//! Applied with `Router::layer`, which wraps each route (and the fallback) on its own, so it
//! runs after routing and reads the template from axum's [`MatchedPath`], never the raw
//! path. A plain service and future rather than `middleware::from_fn`, which boxes a future
//! per request: this adds an `Instant` and a few atomic adds, and allocates nothing.

use std::{
    future::Future,
    pin::Pin,
    sync::atomic::Ordering,
    task::{Context, Poll},
    time::Instant,
};

use axum::extract::{MatchedPath, Request};
use http::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{METHODS, METRICS, RouteStats, UNMATCHED_ROUTE, emf, method_index, record_request};

/// Adds [`HttpMetrics`] to each route.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpMetricsLayer;

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetrics { inner }
    }
}

/// See [`HttpMetricsLayer`].
#[derive(Clone, Debug)]
pub struct HttpMetrics<S> {
    inner: S,
}

impl<S, B> Service<Request> for HttpMetrics<S>
where
    S: Service<Request, Response = Response<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Timed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
        let stats = METRICS.routes.get(route);
        let method = method_index(request.method());
        METRICS.active.fetch_add(1, Ordering::Relaxed);
        Timed {
            inner: self.inner.call(request),
            stats,
            method,
            started: Instant::now(),
            active: Active,
        }
    }
}

/// One request in flight: counted in `http_server_active_requests` until dropped, whether
/// the request was answered or abandoned (a client gone mid-request).
struct Active;

impl Drop for Active {
    fn drop(&mut self) {
        METRICS.active.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// The inner future, timed.
    pub struct Timed<F> {
        #[pin]
        inner: F,
        stats: Option<(&'static str, &'static RouteStats)>,
        method: usize,
        started: Instant,
        active: Active,
    }
}

impl<F, B, E> Future for Timed<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &output {
            let elapsed = this.started.elapsed();
            let status = response.status().as_u16();
            if let Some((route, stats)) = *this.stats {
                record_request(stats, *this.method, status, elapsed);
                emf::note_request(route, METHODS[*this.method], status, elapsed);
            }
        }
        Poll::Ready(output)
    }
}
