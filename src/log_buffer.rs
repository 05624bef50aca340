//! Where log lines go: an in-memory buffer that a background thread writes
//! to stdout every 100 ms (sooner once 64 KiB have piled up).
//!
//! Writing each line as it comes, even from another thread, costs a
//! `write(2)` per request, plus a wake-up of the writing thread; on a busy
//! core that is a large share of a request's cost (docs/benchmarks.md).
//! Batching makes it a handful of writes a second. The price: a line shows
//! up at most 100 ms late. If stdout stalls and 8 MiB of lines pile up, new
//! lines are dropped, and the next write says how many: the service must
//! not slow down or run out of memory because its log reader did.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
const FLUSH_EARLY_AT: usize = 64 * 1024;
const MAX_PENDING: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    dropped: u64,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    flush_now: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only bytes behind: keep going.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The `MakeWriter` for tracing's fmt layer, and where the access log
/// writes; clones write to the same buffer.
#[derive(Clone)]
pub struct LogBuffer(Arc<Shared>);

/// Writes what is left and stops the writing thread when dropped: keep it
/// alive until the process exits.
pub struct LogFlusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A buffer whose lines end up on `output`, and the guard of its thread.
pub fn log_buffer(output: impl Write + Send + 'static) -> (LogBuffer, LogFlusher) {
    let shared = Arc::new(Shared::default());
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || write_until_stopped(&shared, output)
        })
        .expect("the log writer thread starts");
    (
        LogBuffer(shared.clone()),
        LogFlusher {
            shared,
            thread: Some(thread),
        },
    )
}

fn write_until_stopped(shared: &Shared, mut output: impl Write) {
    let mut batch = Vec::new();
    loop {
        let (dropped, stopping) = {
            let pending = shared.lock();
            let (mut pending, _) = shared
                .flush_now
                .wait_timeout_while(pending, FLUSH_INTERVAL, |pending| {
                    !pending.stopping && pending.lines.len() < FLUSH_EARLY_AT
                })
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::swap(&mut pending.lines, &mut batch);
            (std::mem::take(&mut pending.dropped), pending.stopping)
        };
        if dropped > 0 {
            let _ = writeln!(
                output,
                "{dropped} log lines were dropped: the log output was too slow"
            );
        }
        // Nowhere to report a failing stdout: the lines are lost either way.
        let _ = output.write_all(&batch).and_then(|()| output.flush());
        batch.clear();
        if stopping {
            return;
        }
    }
}

impl Drop for LogFlusher {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.flush_now.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// Written through a shared reference, so that handing tracing a writer per
// line costs nothing (no `Arc` clone on the request path).
impl Write for &LogBuffer {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.0.lock();
        if pending.lines.len() + line.len() > MAX_PENDING {
            pending.dropped += 1;
        } else {
            pending.lines.extend_from_slice(line);
            if pending.lines.len() >= FLUSH_EARLY_AT {
                self.0.flush_now.notify_one();
            }
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = &'a LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// An output that tests can read while the writer thread owns it.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Output(Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Write for Output {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl Output {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("not poisoned").clone()).expect("UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn lines_reach_the_output_within_the_flush_interval() {
        let output = Output::default();
        let (buffer, _flusher) = log_buffer(output.clone());
        buffer.make_writer().write_all(b"one\n").expect("buffered");
        let written = Instant::now();
        while output.text().is_empty() {
            assert!(written.elapsed() < Duration::from_secs(2), "not flushed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(output.text(), "one\n");
    }

    #[test]
    fn dropping_the_flusher_writes_everything_left() {
        let output = Output::default();
        let (buffer, flusher) = log_buffer(output.clone());
        for n in 0..1000 {
            writeln!(buffer.make_writer(), "line {n}").expect("buffered");
        }
        drop(flusher);
        let text = output.text();
        assert_eq!(text.lines().count(), 1000);
        assert!(text.ends_with("line 999\n"));
    }

    /// An output that blocks while its gate is held, like a stalled pipe.
    #[derive(Clone, Default)]
    struct Gated {
        gate: Arc<Mutex<()>>,
        output: Output,
    }

    impl Write for Gated {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _open = self.gate.lock().expect("not poisoned");
            self.output.write(bytes)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn while_the_output_stalls_lines_beyond_the_limit_are_dropped_and_counted() {
        let gated = Gated::default();
        let stalled = gated.gate.lock().expect("not poisoned");
        let (buffer, flusher) = log_buffer(gated.clone());
        let mut line = vec![b'x'; 1024 * 1024 - 1];
        line.push(b'\n');
        // 20 MiB offered: the writer takes at most one batch (at most
        // MAX_PENDING) before it blocks, and MAX_PENDING more can wait.
        for _ in 0..20 {
            buffer
                .make_writer()
                .write_all(&line)
                .expect("accepted, kept or not");
        }
        drop(stalled);
        drop(flusher);
        let text = gated.output.text();
        let kept = text.lines().filter(|line| line.starts_with('x')).count();
        assert!((8..=16).contains(&kept), "{kept} lines kept");
        assert!(
            text.contains(&format!("{} log lines were dropped", 20 - kept)),
            "the loss is reported"
        );
    }
}
