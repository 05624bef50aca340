"""A rolling restart under load, behind a real load balancer.

Three replicas of the api run behind HAProxy, which checks /healthcheck on
each every 200 ms. While wrk sends requests through HAProxy, the replicas
are restarted one at a time: SIGTERM, wait for the exit, start a new one
on the same port, wait until HAProxy marks it up. No request may fail.

    python3 rolling_restart.py API_BINARY retries
        HAProxy retries a failed connection and an empty answer on a reused
        keep-alive connection (what nginx and Envoy also retry); the api
        runs with its defaults.

    python3 rolling_restart.py API_BINARY no-retries [SHUTDOWN_DELAY]
        HAProxy retries nothing, like an AWS ALB, and the replica gets its
        SIGTERM while the balancer still sends to it. The api runs with
        --shutdown-delay SHUTDOWN_DELAY (default 2s): it stays up, answering
        503 to the health checks, until HAProxy has taken it out. With
        SHUTDOWN_DELAY 0s this shows what is lost without it (and fails).
"""

import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port, start_api, wait_healthy, wrk_figures

REPLICAS = 3
LOAD_SECONDS = 25
CONNECTIONS = 32
CHECK_EVERY_MS, FALL, RISE = 200, 2, 2

RETRY_POLICIES = {
    "retries": "retries 3\n    retry-on conn-failure empty-response\n    option redispatch 1",
    "no-retries": "retries 0",
}


def haproxy_config(port, replicas, policy, stats_socket):
    servers = "\n".join(f"    server api{i} 127.0.0.1:{replica} check" for i, replica in enumerate(replicas))
    return f"""global
    maxconn 4096
    stats socket {stats_socket} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    {RETRY_POLICIES[policy]}

frontend api
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthcheck
    http-check expect status 200
    default-server inter {CHECK_EVERY_MS}ms fall {FALL} rise {RISE}
{servers}
"""


def stats(stats_socket):
    """HAProxy's `show stat`, as one dict per proxy/server line."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(stats_socket))
        s.sendall(b"show stat\n")
        text = b""
        while chunk := s.recv(65536):
            text += chunk
    lines = text.decode().strip().splitlines()
    header = lines[0].lstrip("# ").split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


def server_status(stats_socket, name):
    return next(row["status"] for row in stats(stats_socket) if row["svname"] == name)


def wait_for_status(stats_socket, name, wanted, timeout=15.0):
    deadline = time.monotonic() + timeout
    while server_status(stats_socket, name) != wanted:
        if time.monotonic() > deadline:
            raise SystemExit(f"HAProxy never marked {name} {wanted}")
        time.sleep(0.05)
    return True


def main(binary, policy, shutdown_delay):
    replica_args = ("--shutdown-delay", shutdown_delay) if policy == "no-retries" else ()
    work = Path(tempfile.mkdtemp(prefix="rolling-"))
    stats_socket = work / "haproxy.sock"
    ports = [free_port() for _ in range(REPLICAS)]
    replicas = [start_api(binary, port, *replica_args) for port in ports]
    front = free_port()
    (work / "haproxy.cfg").write_text(haproxy_config(front, ports, policy, stats_socket))
    haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(work / "haproxy.cfg")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    failures = []
    try:
        deadline = time.monotonic() + 10
        while not stats_socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(REPLICAS):
            wait_for_status(stats_socket, f"api{i}", "UP")
        wrk = subprocess.Popen(
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{LOAD_SECONDS}s", "--latency",
             f"http://127.0.0.1:{front}/current_time?name=roll"],
            stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        began = time.monotonic()
        for i, port in enumerate(ports):
            replicas[i].send_signal(signal.SIGTERM)
            code = replicas[i].wait(15)
            if code != 0:
                failures.append(f"replica {i} exited {code}")
            replicas[i] = start_api(binary, port, *replica_args)
            wait_for_status(stats_socket, f"api{i}", "UP")
            time.sleep(1)
        rolled = time.monotonic() - began
        output, _ = wrk.communicate(timeout=LOAD_SECONDS + 30)
        figures = wrk_figures(output)
        backend = next(row for row in stats(stats_socket) if row["svname"] == "BACKEND")
        print(f"policy {policy}" + (f", --shutdown-delay {shutdown_delay}" if replica_args else ""))
        print(f"{REPLICAS} replicas restarted one at a time in {rolled:.1f} s, under {LOAD_SECONDS} s of load")
        print(f"requests {figures['requests']:,}; non-2xx {figures['non-2xx']}; socket errors {figures['socket errors']}; "
              f"p99 {figures['p99 ms']:.2f} ms; HAProxy retries {backend['wretr']}, redispatches {backend['wredis']}")
        if rolled > LOAD_SECONDS - 4:
            failures.append("the roll did not finish while the load ran")
        if figures["non-2xx"] or figures["socket errors"]:
            failures.append("requests failed during the roll")
        if not all(wait_healthy(port, 1) for port in ports):
            failures.append("a replica is not healthy after the roll")
    finally:
        haproxy.terminate()
        haproxy.wait(10)
        for replica in replicas:
            replica.terminate()
            replica.wait(10)
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "2s"))
