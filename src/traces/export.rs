//! Where finished spans go: a bounded queue, then the SDK's batch
//! processor, whose own thread exports them in batches (every
//! `OTEL_BSP_SCHEDULE_DELAY`, or as soon as `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`
//! are waiting), each export cut off after `OTEL_BSP_EXPORT_TIMEOUT`.
//!
//! The SDK's processor has a bounded queue too, but it neither says how
//! many spans it dropped nor limits an export's time; [`Queue`] in front
//! of it admits at most `OTEL_BSP_MAX_QUEUE_SIZE` spans between a
//! request's end and their export, so the SDK's queue never fills, and
//! counts what it turns away. A collector that is down, slow or refusing
//! therefore costs memory up to the queue's size and nothing else: a
//! request's span goes in, or is dropped and counted, without waiting.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus::IntCounter;
use tokio::runtime::Handle;

use crate::traces::client::AbortOnDrop;

/// At most one log line per this long for drops, and one for failures:
/// a collector that is down must not flood the logs too.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What happens to spans, counted (`metrics/mod.rs` registers them as
/// `api_trace_spans_total{outcome}`).
#[derive(Clone)]
pub struct SpanCounts {
    /// The collector took them.
    pub exported: IntCounter,
    /// Their export failed or timed out.
    pub failed: IntCounter,
    /// The queue was full: the collector is down, slow or refusing.
    pub dropped: IntCounter,
}

/// The spans between a request's end and their export.
pub struct Queue {
    queued: AtomicUsize,
    capacity: usize,
    counts: Option<SpanCounts>,
    drops: Throttled,
}

/// The exporter, time-limited and counting; and the queue that feeds it.
pub fn bounded<E: SpanExporter>(
    exporter: E,
    capacity: usize,
    timeout: Duration,
    runtime: Handle,
    counts: Option<SpanCounts>,
) -> (TimedExporter<E>, Arc<Queue>) {
    let queue = Arc::new(Queue {
        queued: AtomicUsize::new(0),
        capacity,
        counts,
        drops: Throttled::default(),
    });
    let exporter = TimedExporter {
        exporter,
        queue: queue.clone(),
        timeout,
        runtime,
        failures: Throttled::default(),
    };
    (exporter, queue)
}

impl Queue {
    /// The queue, in front of `processor` (the SDK's batch processor).
    pub fn in_front_of<P: SpanProcessor>(self: Arc<Self>, processor: P) -> Bounded<P> {
        Bounded {
            processor,
            queue: self,
        }
    }

    /// Whether one more span fits; if not, it is counted as dropped.
    fn admit(&self) -> bool {
        if self.queued.fetch_add(1, Ordering::Relaxed) < self.capacity {
            return true;
        }
        self.queued.fetch_sub(1, Ordering::Relaxed);
        if let Some(counts) = &self.counts {
            counts.dropped.inc();
        }
        if let Some(dropped) = self.drops.happened() {
            tracing::warn!(
                dropped,
                queue = self.capacity,
                "trace spans dropped: the export queue is full (the collector is down, slow or refusing; OTEL_BSP_MAX_QUEUE_SIZE)"
            );
        }
        false
    }

    /// `count` spans left the queue for an export.
    fn left(&self, count: usize) {
        self.queued.fetch_sub(count, Ordering::Relaxed);
    }
}

/// A span processor with the queue in front.
pub struct Bounded<P> {
    processor: P,
    queue: Arc<Queue>,
}

impl<P: fmt::Debug> fmt::Debug for Bounded<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("processor", &self.processor)
            .field("capacity", &self.queue.capacity)
            .finish()
    }
}

impl<P: SpanProcessor> SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.processor.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queue.admit() {
            self.processor.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.processor.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.processor.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.processor.set_resource(resource);
    }
}

/// The exporter, each export cut off at `timeout` (retries included), its
/// spans counted as exported or failed, failures logged at most every
/// [`LOG_INTERVAL`].
pub struct TimedExporter<E> {
    exporter: E,
    queue: Arc<Queue>,
    timeout: Duration,
    /// Where the timer runs: the SDK's export thread has no runtime.
    runtime: Handle,
    failures: Throttled,
}

impl<E> fmt::Debug for TimedExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedExporter")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<E: SpanExporter> SpanExporter for TimedExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len();
        self.queue.left(count);
        let timeout = self.timeout;
        // Made on the runtime: a timer needs one.
        let timer = AbortOnDrop(
            self.runtime
                .spawn(async move { tokio::time::sleep(timeout).await }),
        );
        let outcome = first_of(self.exporter.export(batch), timer)
            .await
            .unwrap_or(Err(OTelSdkError::Timeout(self.timeout)));
        let counter = |counts: &SpanCounts| match outcome {
            Ok(()) => counts.exported.clone(),
            Err(_) => counts.failed.clone(),
        };
        if let Some(counts) = &self.queue.counts {
            counter(counts).inc_by(count as u64);
        }
        if let Err(error) = &outcome
            && let Some(failed) = self.failures.happened()
        {
            tracing::warn!(
                %error,
                spans = count,
                failed_exports = failed,
                "trace export failed; its spans are lost"
            );
        }
        outcome
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.exporter.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.exporter.set_resource(resource);
    }
}

/// `work`'s output, or `None` if `timer` ends first. Polls both on
/// whichever executor runs it (the SDK's `block_on`).
async fn first_of<T>(work: impl Future<Output = T>, timer: impl Future) -> Option<T> {
    let mut work = pin!(work);
    let mut timer = pin!(timer);
    poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        timer.as_mut().poll(cx).map(|_| None)
    })
    .await
}

/// Events logged at most once per [`LOG_INTERVAL`], with how many
/// happened since the last line.
#[derive(Default)]
pub(super) struct Throttled {
    since_logged: AtomicU64,
    logged: Mutex<Option<Instant>>,
}

impl Throttled {
    /// For a `static`: what the client logs is one per process.
    pub(super) const fn new() -> Self {
        Self {
            since_logged: AtomicU64::new(0),
            logged: Mutex::new(None),
        }
    }

    /// Counts one event; `Some(events since the last line)` when it is
    /// time for a line. Never waits: on a request's path, a lock held by
    /// another thread means that thread is logging.
    pub(super) fn happened(&self) -> Option<u64> {
        self.since_logged.fetch_add(1, Ordering::Relaxed);
        let mut logged = self.logged.try_lock().ok()?;
        let now = Instant::now();
        if logged.is_some_and(|at| now.duration_since(at) < LOG_INTERVAL) {
            return None;
        }
        *logged = Some(now);
        Some(self.since_logged.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    fn counts() -> SpanCounts {
        let counter = |name| IntCounter::new(name, "test").expect("a counter");
        SpanCounts {
            exported: counter("exported"),
            failed: counter("failed"),
            dropped: counter("dropped"),
        }
    }

    /// An exporter that answers `Ok` at once, or never.
    struct Stub {
        hangs: bool,
        exported: Arc<AtomicUsize>,
    }

    impl SpanExporter for Stub {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if self.hangs {
                std::future::pending::<()>().await;
            }
            self.exported.fetch_add(batch.len(), Ordering::Relaxed);
            Ok(())
        }
    }

    impl fmt::Debug for Stub {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Stub")
        }
    }

    /// A processor that keeps what reaches it.
    #[derive(Debug, Default)]
    struct Kept(Mutex<Vec<SpanData>>, AtomicBool);

    impl SpanProcessor for Kept {
        fn on_start(&self, _span: &mut Span, _cx: &Context) {}
        fn on_end(&self, span: SpanData) {
            self.0.lock().expect("unpoisoned").push(span);
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
            self.1.store(true, Ordering::Relaxed);
            Ok(())
        }
    }

    fn span() -> SpanData {
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
        use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "GET".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_full_queue_drops_and_counts_until_an_export_makes_room() {
        let counts = counts();
        let exported = Arc::new(AtomicUsize::new(0));
        let stub = Stub {
            hangs: false,
            exported: exported.clone(),
        };
        let (exporter, queue) = bounded(
            stub,
            2,
            Duration::from_secs(5),
            Handle::current(),
            Some(counts.clone()),
        );
        let processor = queue.in_front_of(Kept::default());
        for _ in 0..5 {
            processor.on_end(span());
        }
        let kept = std::mem::take(&mut *processor.processor.0.lock().expect("unpoisoned"));
        assert_eq!(kept.len(), 2);
        assert_eq!(counts.dropped.get(), 3);
        // An export takes them out of the queue: two more fit.
        let outcome =
            tokio::task::spawn_blocking(move || futures_executor_free_block_on(exporter, kept))
                .await
                .expect("no panic");
        assert!(outcome.is_ok());
        assert_eq!(exported.load(Ordering::Relaxed), 2);
        assert_eq!(counts.exported.get(), 2);
        for _ in 0..3 {
            processor.on_end(span());
        }
        assert_eq!(processor.processor.0.lock().expect("unpoisoned").len(), 2);
        assert_eq!(counts.dropped.get(), 4);
        processor.shutdown().expect("shuts down");
        assert!(processor.processor.1.load(Ordering::Relaxed));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_export_that_hangs_is_cut_off_and_counted_failed() {
        let counts = counts();
        let stub = Stub {
            hangs: true,
            exported: Arc::default(),
        };
        let (exporter, _queue) = bounded(
            stub,
            8,
            Duration::from_millis(200),
            Handle::current(),
            Some(counts.clone()),
        );
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            futures_executor_free_block_on(exporter, vec![span(), span()])
        })
        .await
        .expect("no panic");
        assert!(
            matches!(outcome, Err(OTelSdkError::Timeout(_))),
            "{outcome:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(counts.failed.get(), 2);
        assert_eq!(counts.exported.get(), 0);
    }

    /// Runs an export on this (non-runtime) thread, as the SDK's export
    /// thread does, with a parked-thread waker.
    fn futures_executor_free_block_on<E: SpanExporter>(
        exporter: TimedExporter<E>,
        batch: Vec<SpanData>,
    ) -> OTelSdkResult {
        use std::task::{Context as TaskContext, Wake, Waker};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = TaskContext::from_waker(&waker);
        let mut export = pin!(exporter.export(batch));
        loop {
            if let Poll::Ready(outcome) = export.as_mut().poll(&mut cx) {
                return outcome;
            }
            std::thread::park();
        }
    }

    #[test]
    fn throttled_events_are_logged_once_an_interval_with_their_count() {
        let throttled = Throttled::default();
        assert_eq!(throttled.happened(), Some(1));
        assert_eq!(throttled.happened(), None);
        assert_eq!(throttled.happened(), None);
        *throttled.logged.lock().expect("unpoisoned") =
            Some(Instant::now() - LOG_INTERVAL - Duration::from_millis(1));
        assert_eq!(throttled.happened(), Some(3));
    }
}
