"""Capacity under the limits containers really get.

    python3 capacity.py API_BINARY many-connections
        Started under `prlimit --nofile=1024:<hard>` (the soft limit Docker 29
        and containerd 2 give a container), the api holds 10,000 keep-alive
        connections, each having made one request, every one answered, while
        /healthcheck answers within a second. Reports RSS per connection.

    python3 capacity.py API_BINARY over-the-limit
        With --max-connections 1000, 1,000 connections are held and 500 more
        clients send a request: those wait in the kernel's backlog, unanswered
        and costing the process no memory, until the first 1,000 close; then
        every one of them is answered.

    python3 capacity.py crowd PORT CLIENTS SECONDS
        Against a server already running (say, in a container with a memory
        limit): CLIENTS clients connect and send a request each, and keep
        their connections open for SECONDS. Prints how many were answered;
        the caller checks what happened to the server.
"""

import asyncio
import sys
import time

from harness import (REQUEST, allow_many_open_files, close_all, free_port, hold_connections, http_status, read_answer,
                     rss_kb, start_api)

MANY = 10_000
PROBE_EVERY, PROBE_LIMIT = 0.2, 1.0
CAP, EXCESS = 1_000, 500
WAIT_UNANSWERED = 2.0  # seconds the excess must wait, unanswered


async def probe_health(port, stop, latencies):
    """GET /healthcheck on a new connection every PROBE_EVERY until stopped."""
    while not stop.is_set():
        began = time.monotonic()
        status = await asyncio.to_thread(http_status, port, "/healthcheck", 5.0)
        latencies.append(time.monotonic() - began if status == 200 else float("inf"))
        await asyncio.sleep(PROBE_EVERY)


async def many_connections(binary):
    hard = allow_many_open_files()
    port = free_port()
    # The server gets room for the crowd plus the probes.
    server = start_api(binary, port, "--max-connections", str(MANY + 100), wrapper=("prlimit", f"--nofile=1024:{hard}"))
    failures = []
    try:
        idle = rss_kb(server.pid)
        stop, latencies = asyncio.Event(), []
        prober = asyncio.create_task(probe_health(port, stop, latencies))
        began = time.monotonic()
        try:
            held = await hold_connections(port, MANY)
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as error:
            held = []
            failures.append(f"a connection failed: {error!r}")
        opened = time.monotonic() - began
        await asyncio.sleep(1.0)  # probes while all of them are open
        loaded = rss_kb(server.pid)
        stop.set()
        await prober
        close_all(held)
        slowest = max(latencies)
        print(f"{len(held):,} keep-alive connections opened and answered in {opened:.1f} s "
              f"(server soft limit 1024 at start, hard {hard:,})")
        print(f"{len(latencies)} health probes meanwhile: slowest {slowest * 1000:.0f} ms")
        print(f"RSS idle {idle:,} kB, with {len(held):,} connections {loaded:,} kB: "
              f"{(loaded - idle) / max(len(held), 1) * 1024 / 1000:.1f} KB per connection")
        if len(held) != MANY:
            failures.append(f"{len(held)} of {MANY} connections answered")
        if slowest > PROBE_LIMIT:
            failures.append(f"a health probe took {slowest:.1f} s (limit {PROBE_LIMIT} s)")
    finally:
        server.terminate()
        server.wait(10)
    return failures


async def send_and_wait(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    await writer.drain()
    return asyncio.create_task(read_answer(reader)), writer


async def over_the_limit(binary):
    allow_many_open_files()
    port = free_port()
    # Idle connections must not time out while the excess waits.
    server = start_api(binary, port, "--max-connections", str(CAP), "--header-read-timeout", "60s")
    failures = []
    try:
        held = await hold_connections(port, CAP)
        at_cap = rss_kb(server.pid)
        waiting = await asyncio.gather(*(send_and_wait(port) for _ in range(EXCESS)))
        await asyncio.sleep(WAIT_UNANSWERED)
        answered_early = sum(answer.done() for answer, _ in waiting)
        with_excess = rss_kb(server.pid)
        close_all(held)
        began = time.monotonic()
        done, pending = await asyncio.wait([answer for answer, _ in waiting], timeout=10)
        served_after = time.monotonic() - began
        statuses = [answer.result() for answer in done if not answer.exception()]
        close_all([(None, writer) for _, writer in waiting])
        print(f"{CAP} connections held at --max-connections {CAP}; {EXCESS} more clients sent a request")
        print(f"after {WAIT_UNANSWERED:.0f} s: {answered_early} of them answered; RSS {at_cap:,} kB at the limit, "
              f"{with_excess:,} kB with them waiting")
        print(f"once the first {CAP} closed: {statuses.count(200)} of {EXCESS} answered 200 within {served_after:.1f} s")
        if answered_early:
            failures.append(f"{answered_early} clients were answered past the limit")
        if with_excess > at_cap * 1.05:
            failures.append("memory grew while clients waited past the limit")
        if statuses.count(200) != EXCESS or pending:
            failures.append("not every waiting client was served once connections closed")
    finally:
        server.terminate()
        server.wait(10)
    return failures


async def crowd(port, clients, seconds):
    allow_many_open_files()
    waiting = await asyncio.gather(*(send_and_wait(port) for _ in range(clients)), return_exceptions=True)
    connected = [client for client in waiting if not isinstance(client, BaseException)]
    await asyncio.sleep(seconds)
    answered = sum(answer.done() and not answer.exception() for answer, _ in connected)
    print(f"{clients:,} clients: {len(connected):,} connected, {answered:,} answered within {seconds} s")
    close_all([(None, writer) for _, writer in connected])
    return []


def main():
    if sys.argv[1] == "crowd":
        failures = asyncio.run(crowd(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
    else:
        binary, scenario = sys.argv[1], sys.argv[2]
        failures = asyncio.run({"many-connections": many_connections, "over-the-limit": over_the_limit}[scenario](binary))
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
