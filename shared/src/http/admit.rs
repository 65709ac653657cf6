//! The checks every request passes before routing, as a tower service: within
//! `REQUEST_TIMEOUT_MS` (else a 503), the API key when one is configured (else a 401; public
//! routes aside), the body within `MAX_BODY_BYTES` (else a 413), and the `Idempotency-Key`
//! fingerprint of a state-changing request.
//!
//! A hand-written service rather than an axum `from_fn` middleware: `from_fn` clones the
//! wrapped route (a boxed service) and boxes its future on every request. Here a request
//! whose checks need no I/O (no key to hash, a body of known size within the limit: nearly
//! every request) goes on at once, under a timer, with nothing allocated; only a body of
//! unknown size (chunked) and a keyed write take the boxed path that reads the body first.
//! A body that goes on unread is read whole before any handler acts: by the extractor of an
//! operation that takes one, by the method guard for the others
//! (`shared/src/http/method_guard.rs`).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::Request,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use futures_util::future::{BoxFuture, Either};
use pin_project_lite::pin_project;
use subtle::ConstantTimeEq;
use tower::{Layer, Service, ServiceExt as _};

use super::{API_KEY_HEADER, is_public};
use crate::error::ApiError;

/// What [`Admit`] checks, from the configuration.
#[derive(Debug)]
pub(super) struct Admission {
    /// `API_KEY`.
    pub key: Option<String>,
    /// `REQUEST_TIMEOUT_MS`.
    pub time_limit: Duration,
    /// `MAX_BODY_BYTES`.
    pub body_limit: usize,
}

/// Wraps a service in [`Admit`].
#[derive(Clone)]
pub(super) struct AdmitLayer(pub Arc<Admission>);

impl<S> Layer<S> for AdmitLayer {
    type Service = Admit<S>;

    fn layer(&self, inner: S) -> Admit<S> {
        Admit {
            inner,
            admission: self.0.clone(),
        }
    }
}

/// See the module header.
#[derive(Clone)]
pub(super) struct Admit<S> {
    inner: S,
    admission: Arc<Admission>,
}

impl<S> Service<Request> for Admit<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Admitted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let admission = &self.admission;
        if let Some(key) = &admission.key
            && !is_public(request.uri().path())
            && !carries(request.headers(), key)
        {
            return Admitted::answer(ApiError::Unauthorized.into_response());
        }
        let limit = admission.body_limit;
        let declared = declared_length(request.headers());
        if declared.is_some_and(|n| n > limit as u64) {
            return Admitted::answer(ApiError::PayloadTooLarge { limit }.into_response());
        }
        let time_limit = admission.time_limit;
        // A body whose size is known within the limit (hyper's for a `Content-Length`, of
        // which it delivers exactly that many bytes; a Lambda event's, held in memory; an
        // empty one) needs no reading here: the extractor that wants it reads it.
        use axum::body::HttpBody as _;
        let sized = request
            .body()
            .size_hint()
            .upper()
            .is_some_and(|n| n <= limit as u64);
        if sized && !crate::idempotency::is_keyed(&request) {
            return Admitted::timed(Either::Left(self.inner.call(request)), time_limit);
        }
        // The route that was made ready is the one called later; a clone takes its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let checked = async move {
            let request = match within_body_limit(limit, request).await {
                Ok(request) => request,
                Err(refused) => return Ok(refused),
            };
            match crate::idempotency::fingerprint(limit, request).await {
                Ok(request) => inner.oneshot(request).await,
                Err(refused) => Ok(refused),
            }
        };
        Admitted::timed(Either::Right(Box::pin(checked)), time_limit)
    }
}

type Checked<F> = Either<F, BoxFuture<'static, Result<Response, Infallible>>>;

pin_project! {
    /// The answer of [`Admit`]: given at once, or the route's under the time limit.
    #[project = AdmittedProj]
    pub(super) enum Admitted<F> {
        Answered { response: Option<Response> },
        Timed {
            #[pin]
            future: tokio::time::Timeout<Checked<F>>,
            limit: Duration,
        },
    }
}

impl<F> Admitted<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    fn answer(response: Response) -> Self {
        Self::Answered {
            response: Some(response),
        }
    }

    fn timed(future: Checked<F>, limit: Duration) -> Self {
        Self::Timed {
            future: tokio::time::timeout(limit, future),
            limit,
        }
    }
}

impl<F> Future for Admitted<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AdmittedProj::Answered { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                    ApiError::Internal("answer polled twice".to_owned()).into_response()
                })))
            }
            AdmittedProj::Timed { future, limit } => match future.poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(answer)) => Poll::Ready(answer),
                Poll::Ready(Err(_elapsed)) => Poll::Ready(Ok(ApiError::RequestTimeout {
                    limit_ms: limit.as_millis() as u64,
                }
                .into_response())),
            },
        }
    }
}

/// The declared `Content-Length`, if it is a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Whether the headers carry `key`, compared in constant time so that response times do not
/// reveal how much of a guess was right.
fn carries(headers: &HeaderMap, key: &str) -> bool {
    // The scheme is case-insensitive ("It uses a case-insensitive token to identify the
    // authentication scheme", RFC 9110 §11.1): `bearer` and `BEARER` are `Bearer`.
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token);
    let header = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    [bearer, header]
        .into_iter()
        .flatten()
        .any(|given| bool::from(given.trim().as_bytes().ct_eq(key.as_bytes())))
}

/// `MAX_BODY_BYTES` on every route, whether it reads a body or not: a body past the limit
/// is a 413 problem and no handler runs (a route that takes no body would otherwise run with
/// whatever arrived, and `DefaultBodyLimit` only binds the extractors that read one). A
/// declared `Content-Length` over the limit is refused before a byte is read ([`Admit`]);
/// a body of undeclared size (chunked) is read up to the limit here and handed on in memory,
/// which the JSON routes do anyway.
///
/// On Lambda the effective limit is the smaller of this and what reaches the function: a
/// synchronous invocation's payload is at most 6 MB ("For synchronous invocations, the
/// maximum payload size is 6 MB", <https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html>),
/// and that payload is the JSON event around the body; an HTTP API takes at most 10 MB
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html>).
async fn within_body_limit(limit: usize, request: Request) -> Result<Request, Response> {
    use axum::body::HttpBody as _;
    use futures_util::StreamExt as _;
    if request.body().size_hint().exact() == Some(0) {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let mut chunks = body.into_data_stream();
    // A body that arrives in one chunk (most do) is handed on as it is, without a copy.
    let mut first: Option<bytes::Bytes> = None;
    let mut bytes = bytes::BytesMut::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                return Err(ApiError::BadRequest {
                    detail: format!("the body could not be read: {e}"),
                    field: None,
                }
                .into_response());
            }
        };
        let held = first.as_ref().map_or(0, bytes::Bytes::len) + bytes.len();
        if held + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit }.into_response());
        }
        match first.take() {
            None if bytes.is_empty() => first = Some(chunk),
            earlier => {
                if let Some(earlier) = earlier {
                    bytes.extend_from_slice(&earlier);
                }
                bytes.extend_from_slice(&chunk);
            }
        }
    }
    let body = axum::body::Body::from(first.unwrap_or_else(|| bytes.freeze()));
    Ok(Request::from_parts(parts, body))
}
