//! Where log lines go: an in-memory buffer that a background thread writes
//! to stdout every 100 ms (sooner once 64 KiB have piled up).
//!
//! Writing each line as it comes, even from another thread, costs a
//! `write(2)` per request, plus a wake-up of the writing thread; on a busy
//! core that is a large share of a request's cost (docs/benchmarks.md).
//! Batching makes it a handful of writes a second. The price: a line shows
//! up at most 100 ms late.
//!
//! The service must not slow down or run out of memory because its log
//! reader did, nor hang at exit because stdout never drains:
//! - at most 8 MiB of lines wait, counting the batch being written; past
//!   that new lines are dropped, and the next write says how many;
//! - after a burst, the buffers give their memory back (down to 128 KiB);
//! - at exit, the last lines get until a deadline to be written, and are
//!   abandoned after it (`LogFlusher::stop_by`).

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
const FLUSH_EARLY_AT: usize = 64 * 1024;
/// Everything queued at once: the lines waiting plus the batch being written.
const MAX_QUEUED: usize = 8 * 1024 * 1024;
/// What a buffer keeps of its memory once written out.
const RETAINED_CAPACITY: usize = 2 * FLUSH_EARLY_AT;
/// How long dropping a [`LogFlusher`] waits for the last lines.
const DROP_WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// Bytes of the batch the writer is writing now, outside the lock.
    writing: usize,
    dropped: u64,
    stopping: bool,
    /// Set by the writer thread when it has written everything and ended.
    stopped: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer (a full buffer, or stop) and whoever waits for it to end.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only bytes behind: keep going.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where every line is written (`&LogBuffer` implements `Write`, so that
/// writing costs no `Arc` clone); clones write to the same buffer.
#[derive(Clone)]
pub struct LogBuffer(Arc<Shared>);

/// Stops the writing thread once it has written what is left: keep it
/// alive until the process exits, then [`stop_by`](Self::stop_by) a deadline.
pub struct LogFlusher {
    shared: Arc<Shared>,
    stopped: bool,
}

/// A buffer whose lines end up on `output`, and the guard of its thread.
pub fn log_buffer(output: impl Write + Send + 'static) -> (LogBuffer, LogFlusher) {
    let shared = Arc::new(Shared::default());
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || {
                write_until_stopped(&shared, output);
                shared.lock().stopped = true;
                shared.changed.notify_all();
            }
        })
        .expect("the log writer thread starts");
    (
        LogBuffer(shared.clone()),
        LogFlusher {
            shared,
            stopped: false,
        },
    )
}

fn write_until_stopped(shared: &Shared, mut output: impl Write) {
    let mut batch = Vec::new();
    loop {
        let (dropped, stopping) = {
            let pending = shared.lock();
            let (mut pending, _) = shared
                .changed
                .wait_timeout_while(pending, FLUSH_INTERVAL, |pending| {
                    !pending.stopping && pending.lines.len() < FLUSH_EARLY_AT
                })
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::swap(&mut pending.lines, &mut batch);
            pending.writing = batch.len();
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
        // After a burst, give the memory back; the two buffers take turns,
        // so both shrink within two rounds.
        batch.shrink_to(RETAINED_CAPACITY);
        shared.lock().writing = 0;
        if stopping {
            return;
        }
    }
}

impl LogFlusher {
    /// Tells the writer to write what is left and end, and waits for it
    /// until `deadline` at the latest: a stdout that never drains (a full
    /// pipe nobody reads) must not keep the process from exiting.
    pub fn stop_by(mut self, deadline: Instant) {
        self.stop(deadline);
    }

    fn stop(&mut self, deadline: Instant) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let mut pending = self.shared.lock();
        pending.stopping = true;
        self.shared.changed.notify_all();
        while !pending.stopped {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            pending = self
                .shared
                .changed
                .wait_timeout(pending, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

impl Drop for LogFlusher {
    fn drop(&mut self) {
        self.stop(Instant::now() + DROP_WAIT);
    }
}

// Written through a shared reference: no `Arc` clone on the request path.
impl Write for &LogBuffer {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.0.lock();
        let needed = pending.lines.len() + line.len();
        if needed + pending.writing > MAX_QUEUED {
            pending.dropped += 1;
        } else {
            if needed > pending.lines.capacity() {
                // Grow as a `Vec` does, by doubling, but never past what may
                // wait beside the batch being written: the bound is on
                // memory, not only on the lines kept.
                let room = MAX_QUEUED - pending.writing;
                let target = (pending.lines.capacity() * 2).clamp(needed, room);
                let len = pending.lines.len();
                pending.lines.reserve_exact(target - len);
            }
            pending.lines.extend_from_slice(line);
            if pending.lines.len() >= FLUSH_EARLY_AT {
                self.0.changed.notify_all();
            }
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
        (&buffer).write_all(b"one\n").expect("buffered");
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
            writeln!(&buffer, "line {n}").expect("buffered");
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
    fn while_the_output_stalls_at_most_8_mib_wait_counting_the_batch_being_written() {
        let gated = Gated::default();
        let stalled = gated.gate.lock().expect("not poisoned");
        let (buffer, flusher) = log_buffer(gated.clone());
        let mut line = vec![b'x'; 1024 * 1024 - 1];
        line.push(b'\n');
        // 20 MiB offered while the output is stalled: whether the writer has
        // taken a batch yet or not, 8 lines of 1 MiB fit, and no more.
        for _ in 0..20 {
            (&buffer).write_all(&line).expect("accepted, kept or not");
        }
        drop(stalled);
        drop(flusher);
        let text = gated.output.text();
        let kept = text.lines().filter(|line| line.starts_with('x')).count();
        assert_eq!(kept, 8, "{kept} lines kept");
        // In one report or more, depending on when the writer took its batch.
        let reported: u64 = text
            .lines()
            .filter_map(|line| {
                line.strip_suffix(" log lines were dropped: the log output was too slow")
            })
            .map(|count| count.parse::<u64>().expect("a count"))
            .sum();
        assert_eq!(reported, 12, "the loss is reported");
    }

    #[test]
    fn after_a_burst_the_buffers_give_their_memory_back() {
        let output = Output::default();
        let (buffer, _flusher) = log_buffer(output.clone());
        let line = [b'y'; 1023];
        for _ in 0..4096 {
            let mut writer = &buffer;
            writer
                .write_all(&line)
                .and_then(|()| writer.write_all(b"\n"))
                .expect("buffered");
        }
        let burst = Instant::now();
        // Two more rounds of small lines: each buffer is written out once more.
        while output.text().lines().count() < 4096 + 2 {
            assert!(burst.elapsed() < Duration::from_secs(10), "not flushed");
            writeln!(&buffer, "small").expect("buffered");
            std::thread::sleep(FLUSH_INTERVAL * 2);
        }
        std::thread::sleep(FLUSH_INTERVAL * 2);
        let capacity = buffer.0.lock().lines.capacity();
        assert!(
            capacity <= RETAINED_CAPACITY,
            "{capacity} bytes kept after the burst"
        );
    }

    #[test]
    fn stopping_gives_up_at_the_deadline_when_the_output_never_drains() {
        let gated = Gated::default();
        let _stalled_forever = gated.gate.lock().expect("not poisoned");
        let (buffer, flusher) = log_buffer(gated.clone());
        writeln!(&buffer, "never written").expect("buffered");
        let started = Instant::now();
        flusher.stop_by(started + Duration::from_millis(300));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "waited {waited:?}"
        );
    }
}
