"""A slow-read crowd: as many clients as --max-connections, each pipelining
requests for the largest answer (Swagger UI's bundle, uncompressed, 1.4 MB)
with a tiny receive window, and never reading. Without a bound on writes
they hold every place forever and /healthcheck times out; with
--write-timeout (default 10 s) every place must be free again within that
time plus a few seconds, each counted as a write timeout, /livez answering
throughout (while /healthcheck, on the saturated port, does not: the crowd
really holds every place), memory flat while they hang, and no socket left
holding an unsent answer in the kernel (they are reset, not closed).

    python3 slow_read.py API_BINARY
"""

import socket
import subprocess
import sys
import time

from harness import free_port, http_status, metric, rss_kb, start_api

CLIENTS = 40
PIPELINED = 20
WRITE_TIMEOUT = 10.0  # the default
GRACE = 5.0
REQUEST = b"GET /docs/swagger-ui-bundle.js HTTP/1.1\r\nHost: e2e\r\nAccept-Encoding: identity\r\n\r\n"


def slow_reader(port):
    s = socket.socket()
    # Set before connecting, so that the window offered is small from the start.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.connect(("127.0.0.1", port))
    s.sendall(REQUEST * PIPELINED)
    return s


def lingering_sockets(port):
    """Sockets of the server's port that were closed with data unsent: a
    close (rather than a reset) leaves them in FIN-WAIT-1 while the client
    keeps its window shut."""
    listing = subprocess.run(
        ["ss", "-tnH", "state", "fin-wait-1", f"( sport = :{port} )"],
        capture_output=True, text=True, check=True,
    ).stdout
    return sum(1 for line in listing.splitlines() if line.split() and line.split()[1] != "0")


def main():
    binary = sys.argv[1]
    port, metrics_port = free_port(), free_port()
    server = start_api(binary, port, "--max-connections", str(CLIENTS), metrics_port=metrics_port)
    failures = []
    try:
        # Everything the process will ever make for these answers exists
        # before the crowd: the decoded bundle is made by the first request
        # that wants it.
        if http_status(port, "/docs/swagger-ui-bundle.js") != 200:
            failures.append("the bundle is not served")
        rss_before = rss_kb(server.pid)
        started = time.monotonic()
        crowd = [slow_reader(port) for _ in range(CLIENTS)]
        while metric(metrics_port, "http_connections_open") != CLIENTS and time.monotonic() - started < 5:
            time.sleep(0.05)
        print(f"     {CLIENTS} slow readers hold {metric(metrics_port, 'http_connections_open'):.0f} of {CLIENTS} places")

        rss_peak, live_failures, freed_at = rss_before, 0, None
        # While the crowd holds every place, readiness waits in the backlog.
        health_during = http_status(port, "/healthcheck", timeout=1.0)
        deadline = started + WRITE_TIMEOUT + GRACE
        while time.monotonic() < deadline:
            rss_peak = max(rss_peak, rss_kb(server.pid))
            live_failures += http_status(metrics_port, "/livez", timeout=1.0) != 200
            if metric(metrics_port, "http_connections_open") == 0:
                freed_at = time.monotonic() - started
                break
            time.sleep(0.25)
        timeouts = metric(metrics_port, 'http_connection_errors_total{listener="api",reason="write_timeout"}')
        healthy = http_status(port, "/healthcheck", timeout=1.0) == 200
        print(f"     every place free again after {freed_at and round(freed_at, 1)} s "
              f"(write timeout {WRITE_TIMEOUT:.0f} s); write timeouts counted: {timeouts:.0f}; /healthcheck: {healthy}")
        print(f"     RSS: {rss_before} kB before, at most {rss_peak} kB while they hung "
              f"(+{(rss_peak - rss_before) / CLIENTS:.0f} kB per slow reader); /livez failures: {live_failures}")
        lingering = lingering_sockets(port)
        print(f"     /healthcheck while they hung: {health_during}; "
              f"server sockets left in FIN-WAIT-1 with unsent data: {lingering}")
        if health_during is not None:
            failures.append(f"/healthcheck answered {health_during} while every place was held")
        if lingering:
            failures.append(f"{lingering} closed sockets still hold unsent answers")
        if freed_at is None:
            failures.append(f"places still held {WRITE_TIMEOUT + GRACE:.0f} s later")
        if not healthy:
            failures.append("/healthcheck does not answer")
        if timeouts != CLIENTS:
            failures.append(f"{timeouts} write timeouts counted, not {CLIENTS}")
        if live_failures:
            failures.append(f"/livez failed {live_failures} times")
        # Each slow reader may hold hyper's buffers, never a copy of the
        # 1.4 MB answer: 40 copies would be 56 MB.
        if rss_peak - rss_before > 8 * 1024:
            failures.append(f"RSS grew by {rss_peak - rss_before} kB")
        for s in crowd:
            s.close()
    finally:
        server.kill()
    for failure in failures:
        print(f"     {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
