"""What a query of many parameters costs the server: the time to answer
GET /current_time with N distinct parameters, names plain and
percent-encoded (which the extractor decodes before comparing them). Prints
the median of a few requests per size; no pass or fail. A cost that grows
with the square of N is a denial of service (issue 22 review: 2,000
encoded parameters took 630 ms each before the extractor made one pass).

    python3 bench/query_cost.py target/release/api
"""

import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests/e2e"))
from harness import free_port, start_api  # noqa: E402

REQUESTS_PER_SIZE = 5


def answer_ms(port, query):
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /current_time?{query} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        while s.recv(65536):
            pass
    return (time.perf_counter() - started) * 1000


def main():
    port = free_port()
    server = start_api(sys.argv[1], port)
    try:
        print(f"{'parameters':>10} {'query bytes':>12} {'plain ms':>9} {'encoded ms':>11}")
        for count in (10, 100, 1_000, 1_500):  # 1,500 encoded: 14 kB, under the 16 kB head limit
            plain = "&".join(f"p{i}=x" for i in range(count)) + "&name=n"
            encoded = "&".join(f"%70{i}=x" for i in range(count)) + "&name=n"
            medians = [statistics.median(answer_ms(port, q) for _ in range(REQUESTS_PER_SIZE)) for q in (plain, encoded)]
            print(f"{count:>10} {len(encoded):>12} {medians[0]:>9.2f} {medians[1]:>11.2f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
