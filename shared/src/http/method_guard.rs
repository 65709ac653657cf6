//! The route layer of [`super::guard`], as a tower service: the method and query rules run
//! before the route is called, and the answers of a state-changing GET are marked
//! `no-store`. Hand-written rather than an axum `from_fn` middleware, which clones the route
//! (a boxed service) and boxes its future on every request; here nothing is allocated.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::{MatchedPath, Request},
    http::{Method, header},
    response::{IntoResponse, Response},
};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

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
    S: Service<Request, Response = Response, Error = Infallible>,
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
            let mut refused = ApiError::MethodNotAllowed.into_response();
            refused
                .headers_mut()
                .insert(header::ALLOW, route.allow.clone());
            return Guarded::answer(refused, uncacheable);
        }
        match crate::query_guard::refusal(&route.queries, &request) {
            Some(refused) => Guarded::answer(refused, uncacheable),
            None => Guarded::route(self.inner.call(request), uncacheable),
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Answered { response: Option<Response> },
        Route { #[pin] future: F },
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
        };
        if *this.uncacheable {
            no_store(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}
