"""Measures the api against the FastAPI original and a bare hyper server, on
one machine, in one run. bench/run.sh builds and installs what this needs
and calls it; see docs/benchmarks.md for what it wrote last.

Servers run pinned to CPU 0, wrk to CPU 1. Throughput rounds are
interleaved (A B C ... A B C ...) so that the machine's drift hits every
server alike, and each server's figure is compared to the floor's *in the
same round*; the report gives the median of those paired ratios. A second
copy of the floor is measured as a control: its ratio to the floor shows how
far apart two identical servers come out here.
"""

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests/e2e"))
from harness import (allow_many_open_files, close_all, free_port, hold_connections, rss_kb, wait_healthy,  # noqa: E402
                     wrk_figures)
SERVER_CPU, LOAD_CPU = "0", "1"
# docs/benchmarks.md is rewritten above this line and kept below it, where
# the profiling notes are written by hand.
KEEP_BELOW = "<!-- Written by hand below this line; bench/bench.py keeps it. -->\n"


class Server:
    def __init__(self, name, command, current_time=True, many_connections=True):
        self.name, self.command = name, command
        self.current_time = current_time
        # Whether it can hold 10,000 idle connections long enough to measure
        # (uvicorn closes idle ones after 5 s, before the last are open).
        self.many_connections = many_connections
        self.process = None

    def argv(self, port):
        return ["taskset", "-c", SERVER_CPU] + [part.format(port=port, port2=free_port()) for part in self.command]

    def start(self):
        self.port = free_port()
        self.process = subprocess.Popen(self.argv(self.port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.port)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_mb(self):
        return rss_kb(self.process.pid) / 1024

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


def wait_ready(port, timeout=30):
    # /hello_world: the one route every server here has.
    if not wait_healthy(port, timeout, "/hello_world"):
        raise SystemExit(f"no server answered on port {port} within {timeout} s")


def wrk(url, seconds, connections):
    """(requests/s, p50 ms, p99 ms, errors) from one wrk run."""
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout
    figures = wrk_figures(out)
    errors = ", ".join(f"{figures[kind]} {kind}" for kind in ("non-2xx", "socket errors") if figures[kind])
    return figures["rps"], figures["p50 ms"], figures["p99 ms"], errors


def rss_with_connections(server, count):
    """RSS with `count` keep-alive connections open, each having made one
    request; None where the server cannot hold that many."""
    if count > 1000 and not server.many_connections:
        return None

    async def measure():
        held = await hold_connections(server.port, count)
        await asyncio.sleep(0.5)
        rss = server.rss_mb()
        close_all(held)
        await asyncio.sleep(0.5)  # let the server see them close
        return rss

    os.sched_setaffinity(0, {int(LOAD_CPU)})
    try:
        return asyncio.run(measure())
    finally:
        os.sched_setaffinity(0, {0, 1})


def startup_ms(server, starts):
    times = []
    for _ in range(starts):
        port = free_port()
        began = time.perf_counter()
        process = subprocess.Popen(server.argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(port)
        times.append((time.perf_counter() - began) * 1000)
        process.terminate()
        process.wait(10)
    return statistics.median(times)


def version(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "n/a"


def image_size():
    try:
        size = subprocess.run(["/usr/bin/docker", "image", "inspect", "-f", "{{.Size}}", "api:production"],
                              capture_output=True, text=True, timeout=20)
        return f"{int(size.stdout) / 1e6:.1f} MB" if size.returncode == 0 else "not built"
    except (OSError, ValueError, subprocess.SubprocessError):
        return "no Docker"


def svg_chart(rows):
    """A horizontal bar chart of /hello_world throughput, as SVG."""
    width, bar_height, left = 720, 28, 250
    most = max(row["hello_rps"] for row in rows)
    bars = []
    for i, row in enumerate(rows):
        y = 40 + i * (bar_height + 10)
        length = (width - left - 120) * row["hello_rps"] / most
        bars.append(
            f'<text x="{left - 10}" y="{y + 19}" text-anchor="end">{row["name"]}</text>'
            f'<rect x="{left}" y="{y}" width="{length:.0f}" height="{bar_height}" fill="{row["color"]}"/>'
            f'<text x="{left + length + 8:.0f}" y="{y + 19}">{row["hello_rps"]:,.0f} req/s</text>'
        )
    height = 60 + len(rows) * (bar_height + 10)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="14">'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<text x="10" y="22" font-weight="bold">GET /hello_world, 64 keep-alive connections, one core (median of rounds)</text>'
        + "".join(bars) + "</svg>\n"
    )


def metrics_sentence(ours, without_metrics, control):
    """What metrics cost, said so that noise is not read as a result: a ratio
    closer to 1 than the control row's distance from 1 is no measured cost."""
    ratio = without_metrics["rps_ratio"] / ours["rps_ratio"]
    noise = abs(1 - control["rps_ratio"])
    if abs(1 - ratio) <= noise:
        verdict = f"within this run's noise (the control row is {noise:.2f}× off), so no measurable cost"
    elif ratio > 1:
        verdict = f"metrics cost {(1 - 1 / ratio) * 100:.1f} % of the throughput"
    else:
        # Less work cannot be slower: the machine changed between rounds.
        verdict = "slower without metrics, beyond the control row's noise: a noisy run, measure again"
    return ("Metrics cost: `api, metrics off` served {:.2f}× the throughput of `api`, paired in the same "
            "rounds: {}.".format(ratio, verdict))


def main():
    allow_many_open_files()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--starts", type=int, default=20, help="starts timed per server")
    parser.add_argument("--fastapi-venv", required=True)
    parser.add_argument("--output", default=str(ROOT / "docs"))
    args = parser.parse_args()

    api = str(ROOT / "target/release/api")
    api_static = str(ROOT / "target/api-static")
    floor = str(ROOT / "target/release/examples/floor")
    peers = ROOT / "target/peers"
    uvicorn = str(Path(args.fastapi_venv) / "bin/uvicorn")
    # --max-connections above the default 2048, for the 10,000-connection figure.
    api_args = ["--host", "127.0.0.1", "--port", "{port}", "--metrics-port", "{port2}", "--max-connections", "10100"]
    servers = [
        Server("floor (bare hyper)", [floor, "{port}"], current_time=False),
        Server("floor, second copy", [floor, "{port}"], current_time=False),
        Server("api", [api] + api_args),
        Server("api, metrics off", [api, "--disable-metrics"] + api_args),
        Server("api, static (as in the image)", [api_static] + api_args),
        Server("axum, plain", [str(peers / "release/peer-axum"), "{port}"], current_time=False),
        Server("actix-web, 1 worker", [str(peers / "release/peer-actix"), "{port}"], current_time=False),
        Server("Go net/http", [str(peers / "peer-go"), "{port}"], current_time=False),
        Server("FastAPI original", [uvicorn, "app:app", "--app-dir", str(ROOT / "bench/fastapi"),
                                    "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"],
               many_connections=False),
    ]
    floor_server, control, ours, ours_no_metrics, ours_static, axum, actix, go, fastapi = servers
    colors = {floor_server: "#888", control: "#bbb", ours: "#c0392b", ours_no_metrics: "#e6a09a",
              ours_static: "#d35400", axum: "#6c5b7b", actix: "#355c7d", go: "#00a8b5", fastapi: "#2c7fb8"}

    print("starting servers", file=sys.stderr)
    for server in servers:
        server.start()
    idle = {server: server.rss_mb() for server in servers}

    print(f"warm-up, then {args.rounds} interleaved rounds of {args.seconds} s per server and path", file=sys.stderr)
    for server in servers:
        wrk(server.url("/hello_world"), 2, args.connections)
    results = {server: {"hello": [], "time": []} for server in servers}
    for round_number in range(args.rounds):
        for server in servers:
            results[server]["hello"].append(wrk(server.url("/hello_world"), args.seconds, args.connections))
            if server.current_time:
                results[server]["time"].append(wrk(server.url("/current_time?name=bench"), args.seconds, args.connections))
        print(f"  round {round_number + 1}: " + ", ".join(
            f"{s.name} {results[s]['hello'][-1][0]:,.0f}" for s in servers), file=sys.stderr)

    print("RSS with 1,000 and 10,000 open connections", file=sys.stderr)
    loaded = {server: rss_with_connections(server, 1000) for server in servers}
    crowded = {server: rss_with_connections(server, 10_000) for server in servers}
    for server in servers:
        server.stop()
    print(f"startup time, median of {args.starts}", file=sys.stderr)
    startup = {server: startup_ms(server, args.starts) for server in servers if server is not control}

    def median_of(server, path, field):
        return statistics.median(run[field] for run in results[server][path])

    def paired_ratio(server, field):
        pairs = zip(results[server]["hello"], results[floor_server]["hello"])
        return statistics.median(mine[field] / floors[field] for mine, floors in pairs)

    rows = []
    for server in servers:
        hello = results[server]["hello"]
        rows.append({
            "name": server.name, "color": colors[server],
            "hello_rps": median_of(server, "hello", 0),
            "hello_p50": median_of(server, "hello", 1), "hello_p99": median_of(server, "hello", 2),
            "rps_ratio": paired_ratio(server, 0), "p99_ratio": paired_ratio(server, 2),
            "time_rps": median_of(server, "time", 0) if server.current_time else None,
            "time_p50": median_of(server, "time", 1) if server.current_time else None,
            "time_p99": median_of(server, "time", 2) if server.current_time else None,
            "idle": idle[server], "loaded": loaded[server], "crowded": crowded[server],
            "per_connection": None if crowded[server] is None else (crowded[server] - loaded[server]) * 1024 / 9000,
            "startup": startup.get(server),
            "errors": sorted({run[3] for run in hello + results[server]["time"] if run[3]}),
        })

    fmt = lambda value, pattern: "n/a" if value is None else pattern.format(value)
    table = ["| server | /hello_world req/s | ratio to floor (paired median) | p50 | p99 | p99 ratio | /current_time req/s | p50 | p99 | idle RSS | RSS, 1,000 conns | RSS, 10,000 conns | per connection | startup |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        table.append(
            f"| {row['name']} | {row['hello_rps']:,.0f} | {row['rps_ratio']:.2f}× | {row['hello_p50']:.2f} ms | {row['hello_p99']:.2f} ms"
            f" | {row['p99_ratio']:.2f}× | {fmt(row['time_rps'], '{:,.0f}')} | {fmt(row['time_p50'], '{:.2f} ms')}"
            f" | {fmt(row['time_p99'], '{:.2f} ms')} | {row['idle']:.1f} MB | {row['loaded']:.1f} MB"
            f" | {fmt(row['crowded'], '{:.1f} MB')} | {fmt(row['per_connection'], '{:.1f} KB')}"
            f" | {fmt(row['startup'], '{:.1f} ms')} |")
    errors = [f"- {row['name']}: {', '.join(row['errors'])}" for row in rows if row["errors"]]
    by_name = {row["name"]: row for row in rows}
    ours_row, fastapi_row, control_row = by_name["api"], by_name["FastAPI original"], by_name["floor, second copy"]
    peer_rows = [by_name[name] for name in ("axum, plain", "actix-web, 1 worker", "Go net/http")]

    output = Path(args.output)
    (output / "benchmarks.svg").write_text(svg_chart(rows))
    command = f"bench/run.sh --rounds {args.rounds} --seconds {args.seconds}"
    report = f"""# Benchmarks

Written by `{command}` on {datetime.date.today().isoformat()}; run it again to replace this page.

![/hello_world throughput](benchmarks.svg)

**Headline:** the api, with access logging, request ids and metrics all on,
serves /hello_world at **{ours_row['rps_ratio']:.2f}×** the bare hyper floor
(paired median; p99 at {ours_row['p99_ratio']:.2f}× the floor's) and
**{ours_row['hello_rps'] / fastapi_row['hello_rps']:.0f}×** the FastAPI
original, in {ours_row['idle']:.1f} MB of RSS idle,
{ours_row['loaded']:.1f} MB with 1,000 connections open and {ours_row['crowded']:.1f} MB with
10,000 ({ours_row['per_connection']:.1f} KB per connection). The control row, a
second copy of the floor, came out at {control_row['rps_ratio']:.2f}×: that
is how far apart two identical servers measure on this machine.

{chr(10).join(table)}

Against what users would pick instead, on the same core: {", ".join(
    f"{row['name']} {row['rps_ratio']:.2f}×" for row in peer_rows)} the floor (the api: {ours_row['rps_ratio']:.2f}×).
The peers carry nothing but their route: no access log, request ids,
metrics, timeouts, connection limit or FastAPI-shaped errors, all of which
the api does on every request. The axum peer is a `Router` with one JSON
route served by `axum::serve`; actix-web runs one worker (one core, like
the others); Go is `net/http` with `encoding/json`, GOMAXPROCS following the
one-core affinity. The static api is the binary of the production image
(glibc linked in), the plain one what `cargo run --release` builds.

{metrics_sentence(ours_row, by_name['api, metrics off'], control_row)}
{"Errors reported by wrk:" + chr(10) + chr(10).join(errors) if errors else "wrk reported no errors and no non-2xx answers."}

## How

- Machine: {platform.machine()}, {os.cpu_count()} cores ({version(['sh', '-c', 'lscpu | sed -n "s/^Model name: *//p"'])}),
  Linux {platform.release()}; shared and noisy, hence the pairing and the control row.
- Servers pinned to CPU 0 (`taskset -c 0`), wrk to CPU 1: `wrk -t1 -c{args.connections} -d{args.seconds}s --latency`.
  2 s of warm-up each, then {args.rounds} interleaved rounds; every figure is the median over rounds.
  Ratios are medians of per-round ratios to the floor measured in the same round.
- api: `target/release/api` with its defaults (text access log to a pipe, request ids, metrics;
  "metrics off" adds `--disable-metrics`). Floor: `examples/floor.rs`, hyper 1.x with no framework,
  middleware or logging; it answers every path, so it has no /current_time row.
  FastAPI: `bench/fastapi/app.py`, `def` handlers, `uvicorn --workers 1`, its default access log.
- RSS: VmRSS after start (idle), and with 1,000 and 10,000 keep-alive connections open, each having made
  one request; per connection = the difference between the two, over 9,000. The api runs with
  `--max-connections 10100` (its default, 2048, would keep the rest waiting in the backlog).
  FastAPI is measured at 1,000 only: uvicorn closes idle connections after 5 s, before 10,000 are open.
- Startup: from exec to the first 200 on /hello_world, median of {args.starts} starts.
- Sizes: api binary {os.path.getsize(api) / 1e6:.1f} MB (static: {os.path.getsize(api_static) / 1e6:.1f} MB), floor {os.path.getsize(floor) / 1e6:.1f} MB;
  production image {image_size()}.
- Versions: {version(['rustc', '--version'])}; {version(['go', 'version'])}; {version([str(Path(args.fastapi_venv) / 'bin/python'), '-c', 'import fastapi, uvicorn, sys; print(f"fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, Python {sys.version.split()[0]}")'])}; {version(['sh', '-c', 'wrk --version 2>&1'])}.
"""
    page = output / "benchmarks.md"
    kept = page.read_text().partition(KEEP_BELOW)[2] if page.exists() else ""
    page.write_text(report + "\n" + KEEP_BELOW + kept)
    print(report)


if __name__ == "__main__":
    main()
