"""Traces against a real OpenTelemetry collector: rotel (PyPI `rotel`, a
collector written in Rust), which receives OTLP/HTTP and prints every span
it decodes (`--debug-log traces --debug-log-verbosity detailed`). The
release binary exports to it as a deployment would: configured by
OpenTelemetry's own variables only.

1. A request with a `traceparent` arrives as a server span of that trace,
   child of the caller's span, named after the route, with the HTTP
   semantic conventions' attributes; one without starts a new trace, and
   so does a malformed one (answered 200 all the same). The access line
   names the trace and span the collector printed.
2. Sampling at 0 sends nothing.
3. Under load (wrk, bounded in time), the collector up, then stopped, then
   replaced by one that accepts and never answers: every answer is a 2xx,
   spans are counted as failed and dropped (api_trace_spans_total), and
   the memory held for the queue stays bounded. The request rates of the
   three are printed (a shared machine's timings are figures to read, not
   to assert).
4. SIGTERM: the spans of every answered request reach the collector
   before the process exits, within the shutdown timeout.

    python3 tests/e2e/traces.py API_BINARY ROTEL_AGENT

Prints what it saw and "N passed, N failed"; exits 1 on a failure.
127.0.0.1 only.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import free_port, metric, rss_kb, wait_healthy, wrk_figures  # noqa: E402

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
LOAD_SECONDS = 5
SHUTDOWN_TIMEOUT = 5

WORK = Path(tempfile.mkdtemp(prefix="traces-e2e-"))
PASSED = FAILED = 0


def check(description, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok   {description}")
    else:
        FAILED += 1
        print(f"FAIL {description}" + (f"\n     {detail}" if detail else ""))


class Rotel:
    """The collector, on free ports; `spans()` parses what it printed."""

    def __init__(self, agent, name, prints_spans=True):
        self.port = free_port()
        self.output = WORK / f"rotel-{name}.out"
        debug = ["--debug-log", "traces", "--debug-log-verbosity", "detailed"] if prints_spans else []
        self.process = subprocess.Popen(
            [agent, "start", "--otlp-http-endpoint", f"127.0.0.1:{self.port}",
             "--otlp-grpc-endpoint", f"127.0.0.1:{free_port()}", "--exporter", "blackhole",
             "--pid-file", str(WORK / f"rotel-{name}.pid"), "--log-file", str(WORK / f"rotel-{name}.log"),
             *debug],
            stdout=self.output.open("w"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"rotel did not start: {self.output.read_text()[-2000:]}")
            time.sleep(0.05)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def spans(self):
        """Each printed span: its ids, name, kind, status and attributes."""
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.output.read_text())
        spans = []
        for block in re.split(r"^Span #\d+$", text, flags=re.M)[1:]:
            field = lambda name: (m.group(1).strip() if (m := re.search(rf"^\s+{name}\s*: ?(.*)$", block, re.M)) else None)
            attributes = dict(re.findall(r"^\s+-> ([\w.]+): \w+\((.*)\)$", block.split("Attributes:", 1)[-1], re.M))
            spans.append({"trace_id": field("Trace ID"), "parent_id": field("Parent ID"), "span_id": field("ID"),
                          "name": field("Name"), "kind": field("Kind"), "status": field("Status code"),
                          "attributes": attributes})
        return spans

    def wait_for(self, wanted, timeout=10):
        """The printed spans once `wanted(spans)` holds (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while not wanted(spans := self.spans()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return spans

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class HungCollector:
    """Accepts connections and reads them, and never answers: a collector
    wedged behind a full pipeline."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            threading.Thread(target=self.drain, args=(connection,), daemon=True).start()

    @staticmethod
    def drain(connection):
        try:
            while connection.recv(65536):
                pass
        except OSError:
            pass

    def stop(self):
        self.listener.close()
        for connection in self.connections:
            connection.close()


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Api:
    """The release binary, exporting to `endpoint`, JSON logs to a file."""

    def __init__(self, binary, name, endpoint, **otel):
        self.port, self.metrics_port = free_port(), free_port()
        self.log = WORK / f"api-{name}.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **otel, "RUST_LOG": "info"})
        self.process = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(self.port), "--metrics-port", str(self.metrics_port),
             "--log-format", "json", "--shutdown-timeout", f"{SHUTDOWN_TIMEOUT}s"],
            stdout=self.log.open("w"), env=env,
        )
        if not wait_healthy(self.port):
            self.process.kill()
            raise SystemExit("the api did not start")

    def get(self, path, headers=()):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=dict(headers))
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status

    def lines(self):
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def access_line(self, wanted, timeout=3):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines() if line.get("target") == "api::access" and wanted(line)]
            if found:
                return found[0]
            time.sleep(0.05)
        return None

    def spans_counted(self, outcome):
        return metric(self.metrics_port, f'api_trace_spans_total{{outcome="{outcome}"}}') or 0

    def terminate(self):
        """SIGTERM; the exit status and the seconds it took."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(SHUTDOWN_TIMEOUT + 5), time.monotonic() - began
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None, time.monotonic() - began


def wrk(port, seconds):
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/hello_world"],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout
    return wrk_figures(out)


def continuity(binary, agent):
    rotel = Rotel(agent, "continuity")
    api = Api(binary, "continuity", rotel.endpoint, OTEL_BSP_SCHEDULE_DELAY="100")
    try:
        statuses = [
            api.get("/hello_world", [("traceparent", TRACEPARENT)]),
            api.get("/current_time?name=e2e"),
            api.get("/healthcheck", [("traceparent", "00-not-a-trace-01")]),
        ]
        check("answers 200 with, without and with a malformed traceparent", statuses == [200] * 3, statuses)
        spans = rotel.wait_for(lambda spans: len(spans) >= 3)
        by_path = {span["attributes"].get("url.path"): span for span in spans}
        continued = by_path.get("/hello_world", {})
        print(f"     the collector printed: {json.dumps(continued)[:600]}")
        attributes = continued.get("attributes", {})
        check("the span continues the caller's trace, child of its span",
              continued.get("trace_id") == TRACE_ID and continued.get("parent_id") == PARENT_ID, continued)
        check("named after the route, kind server, status unset",
              (continued.get("name"), continued.get("kind"), continued.get("status"))
              == ("GET /hello_world", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET"), continued)
        expected = {"http.request.method": "GET", "http.route": "/hello_world", "http.response.status_code": "200",
                    "url.path": "/hello_world", "url.scheme": "http", "server.address": "127.0.0.1",
                    "server.port": str(api.port), "network.protocol.version": "1.1"}
        check("the HTTP semantic conventions' attributes",
              all(attributes.get(key) == value for key, value in expected.items()), attributes)
        root = by_path.get("/current_time", {})
        check("without a traceparent: a new root",
              root.get("parent_id") == "" and root.get("trace_id") not in (None, TRACE_ID), root)
        malformed = by_path.get("/healthcheck", {})
        check("with a malformed traceparent: a new root",
              malformed.get("parent_id") == "" and malformed.get("trace_id") not in (None, TRACE_ID), malformed)
        line = api.access_line(lambda line: line.get("path") == "/hello_world") or {}
        check("the access line names the span the collector printed",
              (line.get("trace_id"), line.get("span_id")) == (TRACE_ID, continued.get("span_id")), line)
    finally:
        api.terminate()
        rotel.stop()


def sampled_out(binary, agent):
    rotel = Rotel(agent, "sampled-out")
    api = Api(binary, "sampled-out", rotel.endpoint, OTEL_BSP_SCHEDULE_DELAY="100",
              OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    statuses = {api.get("/hello_world") for _ in range(50)}
    status, _ = api.terminate()
    time.sleep(0.5)
    spans = rotel.spans()
    rotel.stop()
    check("sampling at 0: 50 requests answered, none sent", statuses == {200} and status == 0 and not spans,
          f"statuses {statuses}, exit {status}, {len(spans)} spans")


def under_load(binary, agent):
    rotel = Rotel(agent, "load", prints_spans=False)
    api = Api(binary, "load-down", rotel.endpoint, OTEL_BSP_SCHEDULE_DELAY="200", OTEL_EXPORTER_OTLP_TIMEOUT="1000")
    up = wrk(api.port, LOAD_SECONDS)
    exported = api.spans_counted("exported")
    rotel.stop()
    down = wrk(api.port, LOAD_SECONDS)
    time.sleep(1)
    failed = api.spans_counted("failed") + api.spans_counted("dropped")
    api.terminate()

    hung = HungCollector()
    api = Api(binary, "load-hung", hung.endpoint, OTEL_BSP_SCHEDULE_DELAY="200", OTEL_EXPORTER_OTLP_TIMEOUT="1000")
    samples = []

    def sample_rss():
        for _ in range(2 * 2 * LOAD_SECONDS):
            samples.append(rss_kb(api.process.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample_rss)
    sampler.start()
    stuck = wrk(api.port, 2 * LOAD_SECONDS)
    sampler.join()
    dropped = api.spans_counted("dropped")
    status, seconds = api.terminate()
    hung.stop()

    for name, figures in (("collector up", up), ("collector stopped", down), ("collector hung", stuck)):
        print(f"     {name}: {figures['rps']:.0f} requests/s, p99 {figures['p99 ms']:.2f} ms, "
              f"{figures['non-2xx']} non-2xx, {figures['socket errors']} socket errors")
    print(f"     exported {exported:.0f} while up; {failed:.0f} failed or dropped while stopped; "
          f"{dropped:.0f} dropped while hung")
    clean = all(figures["non-2xx"] == 0 and figures["socket errors"] == 0 and figures["requests"] > 0
                for figures in (up, down, stuck))
    check("every answer a 2xx whether the collector is up, stopped or hung", clean)
    check("spans exported while it is up, failed while it is stopped, dropped while it hangs",
          exported > 0 and failed > 0 and dropped > 0)
    half = len(samples) // 2
    early, late = max(samples[:half]), max(samples[half:])
    print(f"     RSS while hung: {early} kB in the first half, {late} kB in the second")
    check("memory stays bounded while the collector hangs (second half within 10% of the first)",
          late <= early * 1.10)
    check(f"SIGTERM with the collector hung: exit 0 within the shutdown timeout ({seconds:.1f} s)",
          status == 0 and seconds < SHUTDOWN_TIMEOUT + 1)


def flushed_on_sigterm(binary, agent):
    rotel = Rotel(agent, "flush")
    # A minute between exports: only the shutdown can send these.
    api = Api(binary, "flush", rotel.endpoint, OTEL_BSP_SCHEDULE_DELAY="60000")
    trace_ids = [f"{n:032x}" for n in range(1, 26)]
    statuses = {api.get("/hello_world", [("traceparent", f"00-{trace_id}-{PARENT_ID}-01")]) for trace_id in trace_ids}
    before = len(rotel.spans())
    status, seconds = api.terminate()
    # The start's own /healthcheck polls have spans too (new roots): only
    # the 25 traces are looked for.
    spans = rotel.wait_for(lambda spans: set(trace_ids) <= {span["trace_id"] for span in spans}, timeout=3)
    rotel.stop()
    received = {span["trace_id"] for span in spans}
    check(f"SIGTERM: the 25 answered requests' spans reach the collector before the exit ({seconds:.2f} s, exit {status})",
          statuses == {200} and before == 0 and status == 0 and set(trace_ids) <= received,
          f"{before} before; missing {sorted(set(trace_ids) - received)[:5]}")


def main():
    binary, agent = sys.argv[1], sys.argv[2]
    continuity(binary, agent)
    sampled_out(binary, agent)
    under_load(binary, agent)
    flushed_on_sigterm(binary, agent)
    print(f"\n{PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
