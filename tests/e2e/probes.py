"""The probe design, tested for real: liveness stays green while the API is
saturated; readiness does go red.

The release binary runs with `--max-connections 20` and the ALB-style
`--header-read-timeout 65s`, in a PID namespace of its own (as in a
container, so that a plain `api healthcheck` finds its one server). Twenty
clients take every connection and hold them, half idle and half sending a
header byte every few seconds, for SECONDS (default 60). Meanwhile, once a
second each, five probers ask:

- kubelet's liveness probe: GET /livez on the metrics port, new connection,
  1 s timeout (kubelet's default);
- kubelet's readiness probe: GET /healthcheck on the API port, 1 s timeout;
- `api healthcheck --url http://127.0.0.1:<metrics>/livez --timeout 1s`;
- `api healthcheck`, plain, inside the namespace: the Docker HEALTHCHECK's
  and the ECS container health check's command (liveness by default);
- `api healthcheck --readiness`, inside the namespace;
- an ALB target-group health check as deploy/aws has it (GET /livez on the
  metrics port, 3 s timeout, unhealthy after 2 failures 10 s apart; ECS
  replaces a task its load balancer finds unhealthy), and the same check on
  /healthcheck of the API port, as deploy/aws had it before.

It requires every liveness answer to be a 200 (so kubelet and ECS would
never restart the saturated process), readiness to fail meanwhile (so new
traffic goes elsewhere: that is the point of having two probes), the
connections still held at the end, and readiness back within seconds of
their release. It also says what the old design (liveness = readiness on
the API port, failureThreshold 3) would have done, and what ECS would do
with a target group checked on /healthcheck: replace the saturated task.

Then the drain: slow clients hold requests open, SIGTERM comes, and until
the process exits (at the shutdown timeout, 5 s) liveness and /metrics must
answer every time while the API takes no one: a stopping pod is not
restarted, and its last seconds are scraped. 127.0.0.1 only; every loop is
bounded in time.

    python3 tests/e2e/probes.py API_BINARY [SECONDS]

Prints the numbers and "N passed, N failed"; exits 1 on a failure.
"""

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import free_port  # noqa: E402

MAX_CONNECTIONS = 20
HEADER_READ_TIMEOUT = "65s"
PROBE_TIMEOUT = 1.0
PROBE_EVERY = 1.0
# kubelet restarts a container after this many liveness failures in a row
# (the Deployment's livenessProbe.failureThreshold).
FAILURE_THRESHOLD = 3
LIVENESS_PERIOD = 10
# The server's --shutdown-timeout default: how long its drain may last.
SHUTDOWN_TIMEOUT = 5.0
# The ALB target group's health check (deploy/aws/modules/service/alb.tf:
# /livez on the metrics port; tests/aws/check_plan.py pins it).
ALB_TIMEOUT = 3.0
ALB_INTERVAL = 10
ALB_UNHEALTHY_THRESHOLD = 2


@dataclass
class Prober:
    name: str
    probe: object  # () -> (ok, detail)
    results: list = field(default_factory=list)  # (ok, seconds, detail)

    def run(self, stop):
        while not stop.is_set():
            began = time.monotonic()
            ok, detail = self.probe()
            self.results.append((ok, time.monotonic() - began, detail))
            stop.wait(max(0.0, PROBE_EVERY - (time.monotonic() - began)))

    def longest_failure_run(self):
        longest = run = 0
        for ok, _, _ in self.results:
            run = 0 if ok else run + 1
            longest = max(longest, run)
        return longest

    def summary(self):
        times = sorted(seconds for _, seconds, _ in self.results)
        good = sum(ok for ok, _, _ in self.results)
        failures = {detail for ok, _, detail in self.results if not ok}
        return (f"{self.name}: {good}/{len(self.results)} green, p50 {statistics.median(times) * 1000:.1f} ms, "
                f"max {times[-1] * 1000:.1f} ms, longest red run {self.longest_failure_run()}; "
                + (f"red: {'; '.join(sorted(failures))[:160]}" if failures else f"last: {self.results[-1][2]}"))


def http_get(port, path, timeout=PROBE_TIMEOUT, agent="kube-probe/1.31"):
    """Like kubelet's httpGet probe: a new connection, a 1 s timeout, a
    2xx or 3xx answer (an ALB's health check is the same, with its own
    timeout and agent)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {agent}\r\n"
                      "Connection: close\r\n\r\n".encode())
            head = s.recv(64)
    except OSError as error:
        return False, type(error).__name__
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    status = int(match.group(1)) if match else None
    return status is not None and 200 <= status < 400, f"status {status}"


def command(*args):
    def probe():
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            return False, "hung"
        return done.returncode == 0, done.stdout.strip()[:120] or f"exit {done.returncode}"
    return probe


def start_server(binary, port, metrics_port):
    """The server, in a PID namespace of its own if this machine allows one:
    (process to stop, host pid of the server or None)."""
    args = [binary, "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port),
            "--max-connections", str(MAX_CONNECTIONS), "--header-read-timeout", HEADER_READ_TIMEOUT]
    if shutil.which("unshare") and shutil.which("nsenter") and os.geteuid() == 0:
        process = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", *args],
                                   stdout=subprocess.DEVNULL, start_new_session=True)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if children.exists() and children.read_text().split():
                return process, int(children.read_text().split()[0])
            time.sleep(0.01)
        return process, None
    print("SKIPPED the plain `api healthcheck`: no PID namespace here (needs root, unshare, nsenter)")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True), None


def metric(metrics_port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def hold(port, count, stop):
    """`count` connections that never finish a request: half idle, half
    sending a header byte every 5 s (a slow client)."""
    held = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.append(s)
        if i % 2:
            s.sendall(b"GET /hello_world HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")

    def trickle():
        while not stop.wait(5):
            for s in held[1::2]:
                try:
                    s.sendall(b"a")
                except OSError:
                    pass
    threading.Thread(target=trickle, daemon=True).start()
    return held


def wait_for(probe, seconds):
    deadline = time.monotonic() + seconds
    began = time.monotonic()
    while time.monotonic() < deadline:
        if probe()[0]:
            return time.monotonic() - began
        time.sleep(0.1)
    return None


def drain(check, server, pid, port, metrics_port):
    """SIGTERM with requests in flight: the metrics port must answer until
    the process has exited."""
    slow = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /hello_world HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        slow.append(s)
    time.sleep(0.2)
    began = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    polls = []
    while server.poll() is None and time.monotonic() - began < SHUTDOWN_TIMEOUT + 5:
        polls.append((http_get(metrics_port, "/livez")[0], http_get(metrics_port, "/metrics")[0],
                      http_get(port, "/healthcheck")[0]))
        time.sleep(0.25)
    if server.poll() is None:
        polls.pop()  # the process did not exit: the check below says so
    lasted = time.monotonic() - began
    for s in slow:
        s.close()
    # The very last poll may race the exit itself.
    during = polls[:-1]
    print(f"     drain: exited {lasted:.1f} s after SIGTERM (code {server.poll()}); {len(during)} polls meanwhile: "
          f"liveness {sum(p[0] for p in during)}, /metrics {sum(p[1] for p in during)}, "
          f"readiness {sum(p[2] for p in during)} green")
    check(f"the drain held the in-flight requests for most of the shutdown timeout ({lasted:.1f} s), then exited 0",
          SHUTDOWN_TIMEOUT - 1 <= lasted <= SHUTDOWN_TIMEOUT + 2 and server.poll() == 0)
    check("liveness and /metrics answered throughout the drain", bool(during) and all(p[0] and p[1] for p in during))
    check("the API took no request meanwhile (readiness red)", not any(p[2] for p in during))


def main(binary, seconds):
    passed = failed = 0

    def check(what, ok, detail=""):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""))

    binary = str(Path(binary).resolve())
    port, metrics_port = free_port(), free_port()
    server, pid = start_server(binary, port, metrics_port)
    stop = threading.Event()
    held = []
    try:
        check("the server starts: liveness and readiness green", wait_for(lambda: http_get(metrics_port, "/livez"), 10)
              is not None and wait_for(lambda: http_get(port, "/healthcheck"), 10) is not None)
        inside = ["nsenter", "--target", str(pid), "--pid", "--mount", binary, "healthcheck"] if pid else None
        liveness = [
            Prober("kubelet liveness (GET /livez, metrics port, 1 s)", lambda: http_get(metrics_port, "/livez")),
            Prober("api healthcheck --url .../livez --timeout 1s",
                   command(binary, "healthcheck", "--url", f"http://127.0.0.1:{metrics_port}/livez", "--timeout", "1s")),
        ]
        if inside:
            liveness.append(Prober("api healthcheck (plain: Docker HEALTHCHECK, ECS health check)", command(*inside)))
        alb = {"timeout": ALB_TIMEOUT, "agent": "ELB-HealthChecker/2.0"}
        liveness.append(Prober(f"the ALB check of alb.tf (GET /livez, metrics port, {ALB_TIMEOUT:g} s)",
                               lambda: http_get(metrics_port, "/livez", **alb)))
        readiness = [Prober("kubelet readiness (GET /healthcheck, API port, 1 s)", lambda: http_get(port, "/healthcheck"))]
        if inside:
            readiness.append(Prober("api healthcheck --readiness", command(*inside, "--readiness", "--timeout", "1s")))
        alb_before = Prober(f"the ALB check alb.tf had before (GET /healthcheck, API port, {ALB_TIMEOUT:g} s)",
                           lambda: http_get(port, "/healthcheck", **alb))
        readiness.append(alb_before)

        held = hold(port, MAX_CONNECTIONS, stop)
        time.sleep(0.5)
        open_now, limit = metric(metrics_port, "http_connections_open"), metric(metrics_port, "http_connections_limit")
        check(f"{MAX_CONNECTIONS} clients hold every connection ({open_now:.0f} open of {limit:.0f})",
              open_now == limit == MAX_CONNECTIONS)

        threads = [threading.Thread(target=p.run, args=(stop,), daemon=True) for p in liveness + readiness]
        began = time.monotonic()
        for t in threads:
            t.start()
        deadline = began + seconds
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        stop.set()
        for t in threads:
            t.join(15)
        print(f"     {time.monotonic() - began:.0f} s at the connection limit, probing once a second:")
        for prober in liveness + readiness:
            print(f"     {prober.summary()}")

        for prober in liveness:
            check(f"{prober.name}: green the whole time", bool(prober.results) and all(ok for ok, _, _ in prober.results))
        kubelet_readiness = readiness[0]
        red = sum(not ok for ok, _, _ in kubelet_readiness.results)
        check(f"readiness went red meanwhile ({red} of {len(kubelet_readiness.results)} probes)",
              red >= len(kubelet_readiness.results) * 0.9)
        if inside:
            check("api healthcheck --readiness went red too", not any(ok for ok, _, _ in readiness[1].results))
        open_end = metric(metrics_port, "http_connections_open")
        reached = metric(metrics_port, "http_connections_limit_reached_total")
        check(f"the clients still held every connection at the end ({open_end:.0f} open; "
              f"the limit was reached {reached:.0f} times)", open_end == MAX_CONNECTIONS and reached and reached > 0)

        # The old design: liveness was the readiness probe, restarting after
        # FAILURE_THRESHOLD failures in a row, one every LIVENESS_PERIOD.
        run = kubelet_readiness.longest_failure_run()
        restart_after = FAILURE_THRESHOLD * LIVENESS_PERIOD
        print(f"     the old design (liveness = GET /healthcheck on the API port): {run} failures in a row "
              f"at one a second, so kubelet would have restarted the pod after about {restart_after} s "
              f"({FAILURE_THRESHOLD} failures, {LIVENESS_PERIOD} s apart)"
              if run >= FAILURE_THRESHOLD else f"     the old design would not have restarted it ({run} in a row)")
        # ECS replaces a task that fails its target group's check: probed
        # every ALB_INTERVAL, ALB_UNHEALTHY_THRESHOLD failures in a row.
        red_alb = alb_before.longest_failure_run()
        check(f"an ALB checking /healthcheck finds the saturated task unhealthy ({red_alb} failures in a row), "
              f"so ECS would replace it after about {ALB_INTERVAL * ALB_UNHEALTHY_THRESHOLD} s: why the target "
              "group checks /livez (deploy/aws)", red_alb >= ALB_UNHEALTHY_THRESHOLD)

        for s in held:
            s.close()
        held = []
        back = wait_for(lambda: http_get(port, "/healthcheck"), 10)
        check(f"readiness green again once the clients leave ({back:.1f} s)" if back is not None
              else "readiness green again once the clients leave", back is not None)

        if pid:
            drain(check, server, pid, port, metrics_port)
    finally:
        stop.set()
        for s in held:
            s.close()
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait(10)
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 60.0))
