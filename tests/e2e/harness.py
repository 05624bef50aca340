"""What the e2e scripts (and bench/bench.py) share: a free port, the api
binary started on it, its memory, and crowds of keep-alive connections."""

import asyncio
import re
import resource
import socket
import subprocess
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path="/healthcheck", timeout=1.0):
    """The status of GET path on a new connection, or None if nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
            return int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.") else None
    except OSError:
        return None


def wait_healthy(port, timeout=10.0, path="/healthcheck"):
    """Waits until GET `path` answers 200; polls every 0.5 ms, so that
    startup times can be measured with it."""
    deadline = time.monotonic() + timeout
    while http_status(port, path) != 200:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def start_api(binary, port, *args, wrapper=(), stdout=subprocess.DEVNULL, metrics_port=0):
    """Starts the api on 127.0.0.1:port (behind `wrapper`, e.g. prlimit) and
    waits until /healthcheck answers."""
    server = subprocess.Popen(
        [*wrapper, binary, "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port), *args],
        stdout=stdout,
    )
    if not wait_healthy(port):
        server.kill()
        raise SystemExit("the api did not start")
    return server


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_figures(output):
    """The figures of one `wrk --latency` run's output."""
    percentile = lambda p: float((m := re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)$", output, re.M)).group(1)) * UNITS_MS[m.group(2)]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50 ms": percentile(50),
        "p99 ms": percentile(99),
        "non-2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
    }


def rss_kb(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


def allow_many_open_files():
    """Raises this process's soft open-files limit to its hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


REQUEST = b"GET /hello_world HTTP/1.1\r\nHost: e2e\r\n\r\n"


async def read_answer(reader):
    """Reads one whole answer; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)\r\ncontent-length: (\d+)", head).group(1))
    await reader.readexactly(length)
    return int(head.split(b" ")[1])


async def keepalive_connection(port):
    """A connection that has made one request, been answered, and stays open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    await writer.drain()
    status = await read_answer(reader)
    if status != 200:
        raise RuntimeError(f"answered {status}")
    return reader, writer


async def hold_connections(port, count, batch=500):
    """Opens `count` keep-alive connections, one request each, and keeps
    them open. In batches: the listen backlog is finite."""
    held = []
    for start in range(0, count, batch):
        held += await asyncio.gather(*(keepalive_connection(port) for _ in range(min(batch, count - start))))
    return held


def close_all(held):
    for _, writer in held:
        writer.close()


def metric(port, series):
    """The value of one series on the metrics port, or None."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n")
        text = b""
        while chunk := s.recv(65536):
            text += chunk
    for line in text.decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[1])
    return None
