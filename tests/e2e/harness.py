"""What the e2e scripts share: a free port, and the api binary started on it."""

import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(binary, port, *args):
    """Starts the api on 127.0.0.1:port and waits until /healthcheck answers."""
    server = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0", *args],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            time.sleep(0.01)
    server.kill()
    raise SystemExit("the api did not start")
