//! `api healthcheck`: the probe behind the images' HEALTHCHECK and the ECS
//! container health check. Distroless images have no shell and no curl, so
//! the binary asks itself. It speaks just enough HTTP/1.1 over a blocking
//! socket: no runtime to start, so it answers in a few milliseconds.
//!
//! By default it probes *liveness* (`/livez` on the metrics port), not the
//! API's `/healthcheck`: a health check that fails gets the container
//! restarted, and the API port is the one that is busy exactly when the
//! service is under load (clients wait behind `--max-connections`) or
//! draining (503). A restart helps in neither case; it moves the load onto
//! the other replicas. `--readiness` probes `/healthcheck` for whoever does
//! want to know whether the API takes requests.

use std::ffi::OsString;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::Uri;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use crate::config::{Cli, HealthcheckConfig, ServerConfig};
use crate::metrics::LIVENESS_PATH;

/// `Ok` with the status line on a 200, `Err` with the reason otherwise.
pub fn probe(config: &HealthcheckConfig) -> Result<String, String> {
    let url = match (&config.url, config.port) {
        (Some(url), _) => url.clone(),
        (None, Some(port)) => {
            eprintln!(
                "api healthcheck: --port is deprecated; this probes readiness, as before: \
                 use --readiness (or no option, for liveness)"
            );
            format!("http://127.0.0.1:{port}/healthcheck")
        }
        (None, None) => url_of(&server_config()?, config.readiness),
    };
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

/// What to probe on a server with these settings: its liveness endpoint,
/// or its `/healthcheck` for readiness (also when it has no metrics port).
fn url_of(server: &ServerConfig, readiness: bool) -> String {
    let host = loopback_for(server.host);
    if readiness || server.disable_metrics {
        format!("http://{}/healthcheck", SocketAddr::new(host, server.port))
    } else {
        let address = SocketAddr::new(host, server.metrics_port);
        format!("http://{address}{LIVENESS_PATH}")
    }
}

/// A server listening on every interface is reached on loopback.
fn loopback_for(host: IpAddr) -> IpAddr {
    match host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// The settings of the server beside us: the one `api` server in this PID
/// namespace, as its command line sets them (its environment is ours, in a
/// container), else our own environment's.
fn server_config() -> Result<ServerConfig, String> {
    let mut servers = sibling_servers();
    match servers.len() {
        0 => Cli::try_parse_from(["api"])
            .map(|cli| cli.server)
            .map_err(|error| format!("invalid settings in the environment: {error}")),
        1 => Ok(servers.remove(0).1),
        _ => {
            let pids: Vec<String> = servers.iter().map(|(pid, _)| pid.to_string()).collect();
            Err(format!(
                "several api servers run here (pids {}): say which to probe with --url",
                pids.join(", ")
            ))
        }
    }
}

/// Every other process running this same executable as a server (not as
/// `api healthcheck`) in our network namespace, with the settings its
/// command line gives it.
fn sibling_servers() -> Vec<(u32, ServerConfig)> {
    let (Ok(own_exe), Ok(processes)) = (fs::read_link("/proc/self/exe"), fs::read_dir("/proc"))
    else {
        return Vec::new();
    };
    let own_network = fs::read_link("/proc/self/ns/net").ok();
    processes
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let process = Path::new("/proc").join(pid.to_string());
            if pid == std::process::id() || fs::read_link(process.join("exe")).ok()? != own_exe {
                return None;
            }
            // The probe dials loopback, so only servers that share our
            // network namespace can answer it: under `--pid=host` the other
            // containers' servers are visible but unreachable.
            let network = fs::read_link(process.join("ns/net")).ok();
            if network.is_some() && own_network.is_some() && network != own_network {
                return None;
            }
            let command_line = fs::read(process.join("cmdline")).ok()?;
            let matches = Cli::command()
                .try_get_matches_from(null_separated(&command_line))
                .ok()?;
            let mut cli = Cli::from_arg_matches(&matches).ok()?;
            if cli.command.is_some() {
                return None;
            }
            // Its environment usually is ours (a container's), but a
            // wrapper may have set a variable before starting it.
            let environment = fs::read(process.join("environ")).unwrap_or_default();
            take_listen_settings(&mut cli.server, &matches, &environment);
            Some((pid, cli.server))
        })
        .collect()
}

/// The strings of a `/proc/<pid>/cmdline` or `environ` file.
fn null_separated(bytes: &[u8]) -> impl Iterator<Item = OsString> + '_ {
    bytes
        .split(|&byte| byte == 0)
        .filter(|item| !item.is_empty())
        .map(|item| OsString::from_vec(item.to_vec()))
}

/// Where the server listens, from its own environment (`environ`) for each
/// setting that its command line does not give.
fn take_listen_settings(server: &mut ServerConfig, matches: &ArgMatches, environ: &[u8]) {
    let variable = |id: &str, name: &str| {
        if matches.value_source(id) == Some(ValueSource::CommandLine) {
            return None;
        }
        null_separated(environ).find_map(|entry| {
            let entry = entry.into_string().ok()?;
            entry
                .strip_prefix(name)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
    };
    if let Some(host) = variable("host", "API_HOST").and_then(|value| value.parse().ok()) {
        server.host = host;
    }
    if let Some(port) = variable("port", "PORT").and_then(|value| value.parse().ok()) {
        server.port = port;
    }
    if let Some(port) =
        variable("metrics_port", "API_METRICS_PORT").and_then(|value| value.parse().ok())
    {
        server.metrics_port = port;
    }
    if let Some(value) = variable("disable_metrics", "API_DISABLE_METRICS") {
        // As clap reads a flag's variable: anything but a "no" turns it on.
        let no = ["", "0", "f", "false", "n", "no", "off"];
        server.disable_metrics = !no.contains(&value.to_ascii_lowercase().as_str());
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
    let addresses: Vec<SocketAddr> = (authority.host().trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve the host ({error})"))?
        .collect();
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let mut stream = connect_any(&addresses, deadline)?;
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
            // What a read timeout looks like on Linux (EAGAIN).
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("timed out waiting for the answer".to_owned());
            }
            Err(error) => return Err(format!("no answer ({error})")),
        }
    }
    let line = received.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(line).trim_end().to_owned())
}

/// Connects to the first of `addresses` that accepts, in the resolver's
/// order, within the one deadline: `localhost` is often `::1` first while
/// the server listens on IPv4 only. The error names every failure.
fn connect_any(addresses: &[SocketAddr], deadline: Instant) -> Result<TcpStream, String> {
    let mut failures = Vec::new();
    for (tried, address) in addresses.iter().enumerate() {
        // A share of the time left each, so that an address that drops
        // packets cannot use up the time of those after it.
        let share = remaining(deadline)? / (addresses.len() - tried) as u32;
        match TcpStream::connect_timeout(address, share) {
            Ok(stream) => return Ok(stream),
            Err(error) => failures.push(format!("{address}: {error}")),
        }
    }
    if failures.is_empty() {
        return Err("the host has no address".to_owned());
    }
    Err(format!("cannot connect ({})", failures.join("; ")))
}

/// Time left before `deadline`, or the error that reports it passed.
fn remaining(deadline: Instant) -> Result<Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| "timed out".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(args: &[&str]) -> ServerConfig {
        Cli::try_parse_from(std::iter::once("api").chain(args.iter().copied()))
            .expect("valid options")
            .server
    }

    #[test]
    fn liveness_is_probed_on_the_metrics_port_and_readiness_on_the_api_port() {
        let config = server(&[
            "--host",
            "0.0.0.0",
            "--port",
            "9090",
            "--metrics-port",
            "9091",
        ]);
        assert_eq!(url_of(&config, false), "http://127.0.0.1:9091/livez");
        assert_eq!(url_of(&config, true), "http://127.0.0.1:9090/healthcheck");
        let no_metrics = server(&["--host", "0.0.0.0", "--port", "9090", "--disable-metrics"]);
        assert_eq!(
            url_of(&no_metrics, false),
            "http://127.0.0.1:9090/healthcheck",
            "without a metrics port, liveness falls back to the API"
        );
        let v6 = server(&["--host", "::", "--port", "8000", "--metrics-port", "9000"]);
        assert_eq!(url_of(&v6, false), "http://[::1]:9000/livez");
        let one_address = server(&["--host", "10.0.0.7", "--metrics-port", "9000"]);
        assert_eq!(url_of(&one_address, false), "http://10.0.0.7:9000/livez");
    }

    #[test]
    fn the_servers_environment_fills_in_what_its_command_line_does_not_say() {
        let args = ["api", "--metrics-port", "9191"];
        let matches = Cli::command().try_get_matches_from(args).expect("valid");
        let mut server = Cli::from_arg_matches(&matches).expect("valid").server;
        let environ = b"HOME=/\0PORT=8181\0API_METRICS_PORT=7777\0API_DISABLE_METRICS=false\0";
        take_listen_settings(&mut server, &matches, environ);
        assert_eq!(server.port, 8181, "from its environment");
        assert_eq!(server.metrics_port, 9191, "its command line wins");
        assert!(!server.disable_metrics);
        take_listen_settings(&mut server, &matches, b"API_DISABLE_METRICS=1\0");
        assert!(server.disable_metrics);
    }

    #[test]
    fn every_address_is_tried_in_turn() {
        let listening = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let dead_address = dead.local_addr().expect("bound");
        drop(dead);
        let deadline = Instant::now() + Duration::from_secs(2);
        let addresses = [dead_address, listening.local_addr().expect("bound")];
        assert!(connect_any(&addresses, deadline).is_ok());
        let error = connect_any(&addresses[..1], deadline).expect_err("nothing listens");
        assert!(error.contains(&dead_address.to_string()), "{error}");
    }
}
