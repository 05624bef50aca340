"""A slowloris crowd: CONNECTIONS clients that send a request's headers one
byte at a time and never finish them. Meanwhile /healthcheck must keep
answering within a second, and the header-read timeout must cut the slow
clients off.

    python3 slowloris.py PORT [SECONDS]
"""

import asyncio
import sys
import time

CONNECTIONS = 300
BYTE_EVERY = 1.0  # seconds
PROBE_EVERY = 0.5
PROBE_LIMIT = 1.0


async def slow_client(port, deadline, closed_by_server):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    headers = b"GET /healthcheck HTTP/1.1\r\nHost: e2e\r\nX-Slow: " + b"a" * 10_000
    try:
        for byte in headers:
            if time.monotonic() > deadline:
                return
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                # Anything but a timeout means the server answered or hung up.
                await asyncio.wait_for(reader.read(1024), BYTE_EVERY)
                closed_by_server.append(time.monotonic())
                return
            except asyncio.TimeoutError:
                pass
    except ConnectionError:
        closed_by_server.append(time.monotonic())
    finally:
        writer.close()


async def probe(port):
    began = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    writer.write(b"GET /healthcheck HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer.startswith(b"HTTP/1.1 200 "), time.monotonic() - began


async def main(port, seconds):
    began = time.monotonic()
    deadline = began + seconds
    closed = []
    crowd = [asyncio.create_task(slow_client(port, deadline, closed)) for _ in range(CONNECTIONS)]
    probes = []
    while time.monotonic() < deadline:
        try:
            probes.append(await probe(port))
        except (OSError, asyncio.TimeoutError):
            probes.append((False, 5.0))
        await asyncio.sleep(PROBE_EVERY)
    await asyncio.gather(*crowd)

    slowest = max(latency for _, latency in probes)
    failed = sum(1 for ok, _ in probes if not ok)
    cut_after = sorted(moment - began for moment in closed)
    print(f"{len(probes)} health probes during {seconds} s: {failed} failed, slowest {slowest * 1000:.0f} ms")
    print(f"{len(closed)} of {CONNECTIONS} slow connections cut off by the server"
          + (f", after {cut_after[0]:.1f} to {cut_after[-1]:.1f} s" if closed else ""))
    failures = []
    if failed or slowest > PROBE_LIMIT:
        failures.append("/healthcheck did not always answer within a second")
    if len(closed) < 0.95 * CONNECTIONS:
        failures.append("fewer than 95% of the slow connections were cut off")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 40)))
