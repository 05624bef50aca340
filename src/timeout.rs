//! The request timeout: a request that takes longer than `--request-timeout`
//! answers 408 with FastAPI's error shape. Written out rather than built from
//! `tower::timeout` + `HandleErrorLayer`, whose error conversion boxes a
//! future per request (docs/benchmarks.md). The timer is only created when
//! the handler does not finish at its first poll, which ours always do: no
//! clock read and no timer handle per request. The deadline therefore runs
//! from that first poll, a few microseconds after the request arrived.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;
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
            inner: self.inner.call(request),
            timeout: self.timeout,
            sleep: None,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct RequestTimeoutFuture<F> {
        #[pin]
        inner: F,
        timeout: Duration,
        // Armed when `inner` first returns Pending.
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<F, E> Future for RequestTimeoutFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(answered) = this.inner.poll(cx) {
            return Poll::Ready(answered);
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep(*this.timeout)));
        }
        let sleep = this.sleep.as_pin_mut().expect("armed above");
        ready!(sleep.poll(cx));
        Poll::Ready(Ok(ApiError::RequestTimeout.into_response()))
    }
}
