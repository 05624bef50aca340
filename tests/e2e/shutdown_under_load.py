"""SIGTERM while clients are busy: the server must exit 0 within its drain
time, and every request that got an answer must have got a whole, correct
one. A request on a connection that the server closed before answering is
counted apart: that is the keep-alive race every HTTP client retries.

    python3 shutdown_under_load.py API_BINARY
"""

import asyncio
import json
import re
import signal
import sys
import time

from harness import free_port, start_api

CONNECTIONS = 32
LOAD_BEFORE_SIGTERM = 3.0  # seconds
DRAIN_LIMIT = 5.0  # the default --shutdown-timeout


async def client(port, stop, counts):
    request = b"GET /current_time?name=load HTTP/1.1\r\nHost: e2e\r\n\r\n"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["refused"] += 1
            await asyncio.sleep(0.01)
            continue
        try:
            while not stop.is_set():
                writer.write(request)
                await writer.drain()
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError) as error:
                    partial = getattr(error, "partial", b"")
                    counts["truncated" if partial else "closed before answering"] += 1
                    break
                length = int(re.search(rb"(?i)\r\ncontent-length: (\d+)", head).group(1))
                try:
                    body = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    counts["truncated"] += 1
                    break
                good = head.startswith(b"HTTP/1.1 200 ") and json.loads(body)["message"] == "Hello load"
                counts["answered 200" if good else "bad answer"] += 1
                if re.search(rb"(?i)\r\nconnection: close", head):
                    break
        except ConnectionError:
            counts["closed before answering"] += 1
        finally:
            writer.close()


async def main(binary):
    port = free_port()
    server = start_api(binary, port)
    counts = {"answered 200": 0, "bad answer": 0, "truncated": 0, "closed before answering": 0, "refused": 0}
    stop = asyncio.Event()
    clients = [asyncio.create_task(client(port, stop, counts)) for _ in range(CONNECTIONS)]
    await asyncio.sleep(LOAD_BEFORE_SIGTERM)
    answered_before = counts["answered 200"]
    server.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    while server.poll() is None and time.monotonic() - sent < DRAIN_LIMIT + 5:
        await asyncio.sleep(0.005)
    took = time.monotonic() - sent
    await asyncio.sleep(0.2)  # clients meet the closed port too
    stop.set()
    await asyncio.gather(*clients)
    if server.poll() is None:
        server.kill()
    print(f"answered before SIGTERM: {answered_before}; totals: {counts}")
    print(f"exit code {server.returncode} after {took:.3f} s")
    failures = []
    if server.returncode != 0:
        failures.append(f"exit code {server.returncode}")
    if took > DRAIN_LIMIT:
        failures.append(f"took {took:.1f} s, over the {DRAIN_LIMIT} s drain limit")
    if counts["bad answer"] or counts["truncated"]:
        failures.append("an answer was wrong or truncated")
    if answered_before < 100:
        failures.append("too little load to mean anything")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
