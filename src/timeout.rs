//! The request timeout: a request that takes longer than `--request-timeout`
//! answers 408 with FastAPI's error shape. Written out rather than built from
//! `tower::timeout` + `HandleErrorLayer`, whose error conversion boxes a
//! future per request (docs/benchmarks.md); a timer is only registered if
//! the handler does not finish at its first poll.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::ApiError;

#[derive(Clone, Copy)]
pub struct RequestTimeoutLayer(pub Duration);

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            timeout: self.0,
        }
    }
}

#[derive(Clone)]
pub struct RequestTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Service<Request> for RequestTimeout<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RequestTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        RequestTimeoutFuture {
            inner: tokio::time::timeout(self.timeout, self.inner.call(request)),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct RequestTimeoutFuture<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
    }
}

impl<F, E> Future for RequestTimeoutFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match ready!(self.project().inner.poll(cx)) {
            Ok(answered) => Poll::Ready(answered),
            Err(_elapsed) => Poll::Ready(Ok(ApiError::RequestTimeout.into_response())),
        }
    }
}
