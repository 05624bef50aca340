//! `api healthcheck`: the probe behind the production image's HEALTHCHECK.
//! That image has no shell and no curl, so the binary asks itself. It speaks
//! just enough HTTP/1.1 over a blocking socket: no runtime to start, so it
//! answers in a few milliseconds.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use axum::http::Uri;

use crate::config::HealthcheckConfig;

/// `Ok` with the status line on a 200, `Err` with the reason otherwise.
pub fn probe(config: &HealthcheckConfig) -> Result<String, String> {
    let url = config
        .url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}/healthcheck", config.port));
    let deadline = Instant::now() + config.timeout;
    let status_line =
        get_status_line(&url, deadline).map_err(|reason| format!("{url}: {reason}"))?;
    let status = status_line.split(' ').nth(1).unwrap_or_default();
    if status == "200" {
        Ok(format!("{url}: {status_line}"))
    } else {
        Err(format!("{url}: {status_line}"))
    }
}

fn get_status_line(url: &str, deadline: Instant) -> Result<String, String> {
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("not a URL ({error})"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs can be probed".to_owned());
    }
    let authority = uri.authority().ok_or("the URL has no host")?;
    let port = authority.port_u16().unwrap_or(80);
    let address = (authority.host().trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve the host ({error})"))?
        .next()
        .ok_or("the host has no address")?;
    let path = uri.path_and_query().map_or("/", |path| path.as_str());

    let mut stream = TcpStream::connect_timeout(&address, remaining(deadline)?)
        .map_err(|error| format!("cannot connect ({error})"))?;
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .and_then(|()| {
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: api-healthcheck\r\nConnection: close\r\n\r\n"
            )
        })
        .map_err(|error| format!("cannot send the request ({error})"))?;

    // Read until the status line is complete; the rest does not matter.
    let mut received = Vec::new();
    let mut buffer = [0; 256];
    while !received.contains(&b'\n') {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(|error| format!("cannot read ({error})"))?;
        match stream.read(&mut buffer) {
            Ok(0) => return Err("the server closed the connection without answering".to_owned()),
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) => return Err(format!("no answer ({error})")),
        }
    }
    let line = received.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(line).trim_end().to_owned())
}

/// Time left before `deadline`, or the error that reports it passed.
fn remaining(deadline: Instant) -> Result<Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| "timed out".to_owned())
}
