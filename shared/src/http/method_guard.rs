//! The route layer of [`super::guard`], as a tower service: the method and query rules run
//! before the route is called, and the answers of a state-changing GET are marked
//! `no-store`. Hand-written rather than an axum `from_fn` middleware, which clones the route
//! (a boxed service) and boxes its future on every request; here nothing is allocated.
//!
//! No handler acts on a request that has not fully arrived. An operation with a request
//! body reads it whole in its extractor before the handler runs; for any other operation,
//! a request that carries a body anyway (a `DELETE` or a pop with `Content-Length: 10`) has
//! it read here first, so a client that stalls mid-body gets the time-limit 503 and changes
//! nothing. (The admission checks refuse a body over `MAX_BODY_BYTES` before this, and read
//! one of unknown size: what arrives here is bounded.)

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    body::{Body, HttpBody as _},
    extract::{MatchedPath, Request},
    http::{Method, header},
    response::{IntoResponse, Response},
};
use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;
use tower::{Layer, Service, ServiceExt as _};

use super::{Methods, no_store};
use crate::error::ApiError;

/// Wraps each route in [`MethodGuard`], with the table of every route's rules.
#[derive(Clone)]
pub(super) struct MethodGuardLayer(pub Arc<HashMap<String, Methods>>);

impl<S> Layer<S> for MethodGuardLayer {
    type Service = MethodGuard<S>;

    fn layer(&self, inner: S) -> MethodGuard<S> {
        MethodGuard {
            inner,
            table: self.0.clone(),
        }
    }
}

/// See the module header.
#[derive(Clone)]
pub(super) struct MethodGuard<S> {
    inner: S,
    table: Arc<HashMap<String, Methods>>,
}

impl<S> Service<Request> for MethodGuard<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Guarded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .and_then(|path| self.table.get(path.as_str()));
        let Some(route) = route else {
            return Guarded::route(self.inner.call(request), false);
        };
        let method = request.method();
        let uncacheable =
            route.state_changing_get && (method == Method::GET || method == Method::HEAD);
        if !route.allowed.contains(method) {
            let allow = route.allow.to_str().unwrap_or_default();
            // An OPTIONS reaches a route only when CORS is off (the CORS layer answers every
            // one otherwise): a browser's preflight, most likely.
            let hint = if method == Method::OPTIONS {
                "; browsers' CORS preflights are answered once CORS_ALLOW_ORIGINS lists the \
                 page's origin"
            } else {
                ""
            };
            let mut refused = ApiError::MethodNotAllowed(format!(
                "{method} is not allowed on this route; it takes {allow}{hint}"
            ))
            .into_response();
            refused
                .headers_mut()
                .insert(header::ALLOW, route.allow.clone());
            return Guarded::answer(refused, uncacheable);
        }
        if let Some(refused) = crate::query_guard::refusal(&route.queries, &request) {
            return Guarded::answer(refused, uncacheable);
        }
        let unread = request.body().size_hint().exact() != Some(0);
        if unread && !route.reads_body.contains(request.method()) {
            // The route that was made ready is the one called later; a clone takes its place.
            let clone = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, clone);
            return Guarded::boxed(Box::pin(whole_first(inner, request)), uncacheable);
        }
        Guarded::route(self.inner.call(request), uncacheable)
    }
}

/// Reads `request`'s body whole, then calls `route` with it (see the module header).
async fn whole_first<S>(route: S, request: Request) -> Result<Response, Infallible>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let (parts, body) = request.into_parts();
    // Bounded: the admission checks refused a larger declared body, and read any other.
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            route
                .oneshot(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => Ok(ApiError::BadRequest {
            detail: format!("the body could not be read: {e}"),
            field: None,
        }
        .into_response()),
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Answered { response: Option<Response> },
        Route { #[pin] future: F },
        Boxed { future: BoxFuture<'static, Result<Response, Infallible>> },
    }
}

pin_project! {
    /// The answer of [`MethodGuard`]: a refusal given at once, or the route's.
    pub(super) struct Guarded<F> {
        #[pin]
        state: State<F>,
        uncacheable: bool,
    }
}

impl<F> Guarded<F> {
    fn answer(response: Response, uncacheable: bool) -> Self {
        Self {
            state: State::Answered {
                response: Some(response),
            },
            uncacheable,
        }
    }

    fn route(future: F, uncacheable: bool) -> Self {
        Self {
            state: State::Route { future },
            uncacheable,
        }
    }

    fn boxed(future: BoxFuture<'static, Result<Response, Infallible>>, uncacheable: bool) -> Self {
        Self {
            state: State::Boxed { future },
            uncacheable,
        }
    }
}

impl<F> Future for Guarded<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.state.project() {
            StateProj::Answered { response } => response.take().unwrap_or_else(|| {
                ApiError::Internal("answer polled twice".to_owned()).into_response()
            }),
            StateProj::Route { future } => match future.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(response)) => response,
                Poll::Ready(Err(never)) => match never {},
            },
            StateProj::Boxed { future } => match future.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(response)) => response,
                Poll::Ready(Err(never)) => match never {},
            },
        };
        if *this.uncacheable {
            no_store(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}
