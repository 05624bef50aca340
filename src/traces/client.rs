//! The HTTP client the OTLP exporter sends through: HTTP/1.1 over plain
//! TCP, one connection per export (`Connection: close`), written by hand.
//! Not hyper's client: hyper's HTTP/1 code is shared by client and server
//! and has `cfg(feature = "client")` parts, and with that feature on every
//! request cost ≈220 instructions more, tracing off (docs/benchmarks.md). An export is one POST every few seconds, or
//! every 512 spans under load: a connection each is cheap next to it. No
//! TLS: the collector is expected beside the service (a sidecar, a node
//! agent, a cluster service), which is where OpenTelemetry's deployment
//! guides put it and what keeps a TLS stack and its licences out of the
//! binary (docs/tracing.md).
//!
//! The SDK's export thread has no tokio runtime, so each request runs as
//! a task on the server's runtime, cut off at the exporter's timeout and
//! cancelled if the export is abandoned.

use std::future::Future;
use std::io::ErrorKind;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use axum::http::{HeaderValue, StatusCode};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::task::{JoinError, JoinHandle};

use super::export::Throttled;

/// A collector's answer is a few bytes (a partial-success message at
/// most); more is not a collector.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Headers in a collector's answer, at most.
const MAX_RESPONSE_HEADERS: usize = 64;

#[derive(Debug, Clone)]
pub struct PlainHttp {
    runtime: Handle,
    /// Per request, connecting included: `OTEL_EXPORTER_OTLP_TIMEOUT`.
    timeout: Duration,
}

impl PlainHttp {
    pub fn new(runtime: Handle, timeout: Duration) -> Self {
        Self { runtime, timeout }
    }
}

#[async_trait::async_trait]
impl HttpClient for PlainHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let timeout = self.timeout;
        let sent = AbortOnDrop(
            self.runtime
                .spawn(async move { tokio::time::timeout(timeout, send(request)).await }),
        );
        let answer = match sent.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_elapsed)) => Err(format!("no answer within {timeout:?}").into()),
            Err(error) => Err(error.into()),
        };
        // The exporter reports every failure here as "network error" and
        // drops the reason; without it an operator cannot tell a wrong
        // name from a refused connection or a hung collector.
        if let Err(error) = &answer
            && let Some(failed) = SEND_FAILURES.happened()
        {
            tracing::warn!(%error, failed_sends = failed, "trace export: no answer from the collector");
        }
        answer
    }
}

/// Failed sends, logged at most every `export::LOG_INTERVAL`.
static SEND_FAILURES: Throttled = Throttled::new();

async fn send(request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    let uri = request.uri();
    if uri.scheme_str() != Some("http") {
        return Err(format!("{uri}: only http:// is supported").into());
    }
    let authority = uri.authority().ok_or("no host in the endpoint")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let target = uri.path_and_query().map_or("/", |target| target.as_str());
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(request.method().as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    head.extend_from_slice(authority.as_str().as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in request.headers() {
        if [HOST, CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING].contains(name) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let body = request.body();
    head.extend_from_slice(b"content-length: ");
    head.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    head.extend_from_slice(b"\r\nconnection: close\r\n\r\n");

    // An IPv6 literal comes bracketed (`http://[::1]:4318`); the socket
    // address wants it bare.
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host);
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    write_all(&stream, &head).await?;
    write_all(&stream, body).await?;
    parse(&read_to_end(&stream).await?)
}

// By hand, not with tokio's `io-util` (one feature more in what serves).
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> Result<(), HttpError> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// The whole answer, until the collector closes, as asked.
async fn read_to_end(stream: &TcpStream) -> Result<Vec<u8>, HttpError> {
    let mut answer = Vec::with_capacity(1024);
    let mut chunk = [0; 4096];
    loop {
        stream.readable().await?;
        match stream.try_read(&mut chunk) {
            Ok(0) => return Ok(answer),
            Ok(read) => {
                answer.extend_from_slice(&chunk[..read]);
                if answer.len() > MAX_RESPONSE_BYTES {
                    return Err("the collector's answer is too long".into());
                }
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(error) => return Err(error.into()),
        }
    }
}

/// A complete HTTP/1.1 answer: its status, headers and body (by
/// `Content-Length`, chunked, or up to the end).
fn parse(answer: &[u8]) -> Result<Response<Bytes>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = parsed.parse(answer)? else {
        return Err("the collector's answer ended within its headers".into());
    };
    let status = StatusCode::from_u16(parsed.code.unwrap_or_default())?;
    let mut response = Response::builder().status(status);
    let mut chunked = false;
    let mut length = None;
    for header in parsed.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header.value.eq_ignore_ascii_case(b"chunked");
        } else if header.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|value| value.trim().parse::<usize>().ok());
        }
        response = response.header(header.name, HeaderValue::from_bytes(header.value)?);
    }
    let rest = &answer[head_len..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        match length {
            Some(length) => rest
                .get(..length)
                .ok_or("the collector's answer is cut short")?,
            None => rest,
        }
        .to_vec()
    };
    Ok(response.body(Bytes::from(body))?)
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let httparse::Status::Complete((used, size)) = httparse::parse_chunk_size(rest)
            .map_err(|_| "the collector's answer has a bad chunk size")?
        else {
            return Err("the collector's answer ended within a chunk size".into());
        };
        let size = usize::try_from(size).map_err(|_| "chunk too large")?;
        rest = &rest[used..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest
            .get(..size)
            .ok_or("the collector's answer is cut short")?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(size + 2..)
            .ok_or("the collector's answer is cut short")?;
    }
}

/// A task that is cancelled when whoever waits for it stops waiting.
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_ipv6_literal_endpoint_connects() {
        let listener = tokio::net::TcpListener::bind("[::1]:0")
            .await
            .expect("IPv6 loopback (the test needs it)");
        let port = listener.local_addr().expect("bound").port();
        let collector = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("a connection");
            let mut request = [0; 4096];
            stream.readable().await.expect("readable");
            let _ = stream.try_read(&mut request);
            write_all(&stream, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .expect("answered");
        });
        let request = Request::post(format!("http://[::1]:{port}/v1/traces"))
            .body(Bytes::from_static(b"spans"))
            .expect("a request");
        let answer = send(request).await.expect("an answer");
        assert_eq!(answer.status(), StatusCode::OK);
        collector.await.expect("the collector ran");
    }

    #[test]
    fn answers_by_length_chunked_or_to_the_end() {
        let by_length = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").expect("parsed");
        assert_eq!(
            (by_length.status(), &by_length.body()[..]),
            (StatusCode::OK, &b"ok"[..])
        );
        let chunked = parse(
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n3\r\nbad\r\n2\r\n!!\r\n0\r\n\r\n",
        )
        .expect("parsed");
        assert_eq!(
            (chunked.status(), &chunked.body()[..]),
            (StatusCode::BAD_REQUEST, &b"bad!!"[..])
        );
        let to_the_end = parse(b"HTTP/1.1 200 OK\r\n\r\n{}").expect("parsed");
        assert_eq!(&to_the_end.body()[..], b"{}");
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-le").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nok").is_err());
    }
}
