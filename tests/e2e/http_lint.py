"""Every kind of answer the api gives, as sent on the wire, through httplint
(the message linter behind REDbot), each with the request that asked for it:
200s of every route (gzipped and not), 304, 307, 404, 405, 422, HEAD, the
431 hyper sends itself, and the metrics port's answers. Fails on any WARN
or BAD note. (hyper's empty 400 is left out: httplint warns about any 400,
"the server didn't understand the request", which is what a 400 says.)

    python3 http_lint.py API_PORT METRICS_PORT
"""

import socket
import sys
import time

from httplint import HttpRequestLinter, HttpResponseLinter, levels

GZIP = [("Accept-Encoding", "gzip, deflate, br")]


def exchange(port, method, target, headers=()):
    """Sends one request on a new connection; returns (request bytes,
    status line, header tuples, body) of the answer."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: http_lint", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    fields = [tuple(part.strip() for part in line.split(b":", 1)) for line in header_lines]
    return request, status_line, fields, body


def lint(port, method, target, headers=(), expected_status=None):
    """The WARN and BAD notes httplint has on the answer, as strings."""
    request, status_line, fields, body = exchange(port, method, target, headers)
    now = time.time()
    request_linter = HttpRequestLinter(start_time=now)
    topline = request.split(b"\r\n", 1)[0].split(b" ")
    request_linter.process_request_topline(*topline)
    request_linter.process_headers(
        [tuple(line.split(b": ", 1)) for line in request.split(b"\r\n")[1:] if line]
    )
    request_linter.finish_content(True)

    response = HttpResponseLinter(start_time=now, _related=request_linter)
    response.is_head_response = method == "HEAD"
    version, status, phrase = status_line.split(b" ", 2)
    response.process_response_topline(version.split(b"/")[1], status, phrase)
    response.process_headers(fields)
    response.feed_content(body)
    response.finish_content(True)

    problems = [
        f"{note.level.name} {note.subject}: {note.summary}"
        for note in response.notes
        if note.level in (levels.WARN, levels.BAD)
    ]
    if expected_status is not None and int(status) != expected_status:
        problems.append(f"status {int(status)}, expected {expected_status}")
    shown = f"{method} {target} {' '.join(f'{n}: {v}' for n, v in headers)}".strip()
    shown = shown if len(shown) < 100 else shown[:97] + "..."
    print(f"     {'ok  ' if not problems else 'FAIL'} {int(status)} {shown}")
    for problem in problems:
        print(f"          {problem}")
    return problems


def etag_of(port, target, headers=()):
    _, _, fields, _ = exchange(port, "GET", target, headers)
    return next(value.decode() for name, value in fields if name.lower() == b"etag")


def main():
    api, metrics = int(sys.argv[1]), int(sys.argv[2])
    cases = [
        ("GET", "/hello_world", (), 200),
        ("GET", "/current_time?name=Ada+Lovelace", (), 200),
        ("GET", "/current_time", (), 422),
        ("GET", "/healthcheck", (), 200),
        ("HEAD", "/healthcheck", (), 200),
        ("HEAD", "/hello_world", (), 200),
        ("GET", "/openapi.json", (), 200),
        ("GET", "/docs", (), 200),
        ("GET", "/docs/", (), 200),
        ("GET", "/docs/swagger-initializer.js", (), 200),
        ("GET", "/docs/swagger-ui-bundle.js", (), 200),
        ("GET", "/docs/swagger-ui-bundle.js", GZIP, 200),
        ("HEAD", "/docs/swagger-ui-bundle.js", GZIP, 200),
        ("GET", "/redoc", (), 200),
        ("GET", "/redoc", GZIP, 200),
        ("GET", "/docs", [("If-None-Match", etag_of(api, "/docs"))], 304),
        ("GET", "/redoc", GZIP + [("If-None-Match", etag_of(api, "/redoc", GZIP))], 304),
        ("GET", "/openapi.json", [("If-None-Match", etag_of(api, "/openapi.json"))], 304),
        ("GET", "/hello_world/", (), 307),
        ("GET", "/current_time/?name=x", (), 307),
        ("GET", "/nope", (), 404),
        ("GET", "/docs/nope.js", (), 404),
        ("POST", "/hello_world", (), 405),
        ("DELETE", "/docs", (), 405),
        ("GET", "/current_time?name=%ZZ", (), 200),
        ("GET", "/hello_world", [("X-Big", "b" * 20_000)], 431),
    ]
    problems = []
    for method, target, headers, status in cases:
        problems += lint(api, method, target, headers, status)
    for target in ("/metrics", "/livez"):
        problems += lint(metrics, "GET", target, (), 200)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
