//! The guards every request is answered behind, whatever its endpoint:
//!
//! - **request timeout**: a request that takes longer than
//!   `--request-timeout` answers 408 with FastAPI's error shape;
//! - **panic guard**: a handler that panics answers 500
//!   `{"detail":"Internal Server Error"}`, and the server keeps serving.
//!
//! Both in one future around the router's, rather than as two tower layers
//! around every route: each layer nested another future inside each
//! route's, and moving those around cost more than the guards themselves
//! (docs/benchmarks.md). The timer is created only when the answer is not
//! ready at the first poll, which ours always are: no clock read and no
//! timer per request. The deadline therefore runs from that first poll, a
//! few microseconds after the request arrived.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;

use crate::api::error::ApiError;

/// `answer`, guarded.
pub struct Guarded<F> {
    answer: F,
    timeout: Duration,
    // Armed when `answer` first returns Pending; boxed so that the future
    // stays `Unpin`, one allocation for a slow request, none for others.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<F> Guarded<F> {
    pub fn new(answer: F, timeout: Duration) -> Self {
        Self {
            answer,
            timeout,
            timer: None,
        }
    }
}

impl<F, E> Future for Guarded<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Past the deadline the request has timed out, even if its answer
        // happens to be ready by the time the task runs again.
        if let Some(timer) = &mut this.timer
            && timer.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Ok(ApiError::RequestTimeout.into_response()));
        }
        // A panicking handler leaves its future half-done: it is never
        // polled again, only dropped with the request.
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.answer).poll(cx))) {
            Ok(Poll::Ready(answered)) => return Poll::Ready(answered),
            Ok(Poll::Pending) => {}
            Err(_panic) => return Poll::Ready(Ok(ApiError::Internal.into_response())),
        }
        let timeout = this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Ok(ApiError::RequestTimeout.into_response()))
    }
}
