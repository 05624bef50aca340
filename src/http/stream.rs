//! A client connection's socket, as the HTTP server sees it, with the two
//! things hyper cannot tell us:
//!
//! - **Write progress.** hyper bounds the time to read a request head, but
//!   nothing bounds a write the client never reads: a client that pipelines
//!   requests for large answers and never reads holds its connection (and
//!   its place under `--max-connections`) forever. Here a write that makes
//!   no progress (the socket accepts no byte) for `--write-timeout` fails,
//!   and hyper drops the connection. Progress resets the clock, so a slow
//!   but honest client is never cut off. Linux wakes a blocked writer only
//!   once a third or more of the send buffer has drained, so a client that
//!   reads a byte now and then makes no progress either. The connection is
//!   then reset, not closed: a close would leave the kernel holding the
//!   unsent answer for as long as the client keeps its window shut
//!   (FIN-WAIT-1), memory a reconnecting crowd would pile up (nginx's
//!   `reset_timedout_connection` does the same).
//! - **Whether a request head was pending** when hyper's header-read
//!   timeout fired: for a keep-alive connection idle between requests that
//!   is a normal close, for a client that started a request (or never sent
//!   anything) it is a slow or silent client worth counting.
//!
//! Nothing here runs unless a write blocks: a timer is armed only then.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub struct ClientStream<T> {
    io: T,
    write_timeout: Duration,
    // Armed when a write is refused for lack of room, disarmed by the next
    // write that makes progress. Boxed, so that the stream stays `Unpin`
    // as hyper wants it: one allocation per stall, none per request.
    stalled: Option<Pin<Box<Sleep>>>,
    head_pending: HeadPending,
}

impl<T> ClientStream<T> {
    /// The stream, and what it will tell of the request head once hyper,
    /// which owns the stream, is done with it.
    pub fn new(io: T, write_timeout: Duration) -> (Self, HeadPending) {
        // A connection is opened to send a request.
        let head_pending = HeadPending(Arc::new(AtomicBool::new(true)));
        let stream = Self {
            io,
            write_timeout,
            stalled: None,
            head_pending: head_pending.clone(),
        };
        (stream, head_pending)
    }
}

/// Whether the client had sent bytes of a request (or nothing yet, on a new
/// connection) that no response has followed: true for a slowloris or a
/// silent client, false for a keep-alive connection between requests.
#[derive(Clone)]
pub struct HeadPending(Arc<AtomicBool>);

impl HeadPending {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, pending: bool) {
        self.0.store(pending, Ordering::Relaxed);
    }
}

/// The error a write fails with when it made no progress in time; hyper
/// passes it on, so that the connection's end can be counted as such.
#[derive(Debug)]
pub struct WriteStalled(pub Duration);

impl fmt::Display for WriteStalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the client read nothing for {:?}", self.0)
    }
}

impl std::error::Error for WriteStalled {}

impl<T: AsyncRead + Unpin> AsyncRead for ClientStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.head_pending.set(true);
        }
        read
    }
}

/// A socket that can be made to reset, rather than close gracefully, when
/// it is dropped.
pub trait Reset {
    fn reset_when_closed(&self);
}

impl Reset for tokio::net::TcpStream {
    fn reset_when_closed(&self) {
        // SO_LINGER with a zero timeout: close(2) sends RST and frees the
        // send buffer at once (it never blocks).
        let _ = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO));
    }
}

impl<T: AsyncWrite + Reset + Unpin> ClientStream<T> {
    /// A write's outcome, with the stall clock run: armed on the first
    /// refusal, failing the write once it expires, reset by progress.
    fn progress(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match write(Pin::new(&mut self.io), cx) {
            Poll::Pending => {
                let timeout = self.write_timeout;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stalled.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.io.reset_when_closed();
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            WriteStalled(timeout),
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            written => {
                self.stalled = None;
                if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
                    self.head_pending.set(false);
                }
                written
            }
        }
    }
}

impl<T: AsyncWrite + Reset + Unpin> AsyncWrite for ClientStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().progress(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .progress(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    impl Reset for DuplexStream {
        fn reset_when_closed(&self) {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_write_timeout() {
        let (client, server) = tokio::io::duplex(1024);
        let (mut stream, _) = ClientStream::new(server, Duration::from_secs(10));
        let started = tokio::time::Instant::now();
        let error = stream
            .write_all(&[0; 64 * 1024])
            .await
            .expect_err("nobody reads");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(
            error
                .get_ref()
                .is_some_and(|inner| inner.is::<WriteStalled>())
        );
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_never_cut_off() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut stream, _) = ClientStream::new(server, Duration::from_secs(10));
        let reader = tokio::spawn(async move {
            let mut buffer = [0; 1024];
            let mut total = 0;
            while total < 64 * 1024 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                total += client.read(&mut buffer).await.expect("reads");
            }
            total
        });
        stream
            .write_all(&[0; 64 * 1024])
            .await
            .expect("progress every 5 s keeps the write alive for 5 minutes");
        assert_eq!(reader.await.expect("joins"), 64 * 1024);
    }

    #[tokio::test]
    async fn a_head_is_pending_until_an_answer_is_written() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut stream, head) = ClientStream::new(server, Duration::from_secs(10));
        assert!(head.get(), "a new connection owes a request");
        client.write_all(b"GET / HTTP/1.1\r\n").await.expect("sent");
        let mut buffer = [0; 16];
        stream.read_exact(&mut buffer).await.expect("reads");
        assert!(head.get());
        stream
            .write_all(b"HTTP/1.1 200 OK\r\n")
            .await
            .expect("written");
        assert!(!head.get(), "between requests");
        client.write_all(b"G").await.expect("sent");
        stream.read_exact(&mut buffer[..1]).await.expect("reads");
        assert!(head.get(), "the next request has begun");
    }
}
