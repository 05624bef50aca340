"""Sends exactly N GET requests over one keep-alive connection and checks
each answer's status: a fixed, repeatable load for instruction counting
(`valgrind --tool=callgrind`), where wrk's time-based load would not be.

    python3 bench/requests.py PORT N [PATH]
"""

import re
import socket
import sys


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/hello_world"
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port)) as connection:
        stream = connection.makefile("rb")
        for _ in range(count):
            connection.sendall(request)
            status = stream.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            length = 0
            while (line := stream.readline()) != b"\r\n":
                if match := re.match(rb"(?i)content-length: (\d+)", line):
                    length = int(match.group(1))
            stream.read(length)


if __name__ == "__main__":
    main()
