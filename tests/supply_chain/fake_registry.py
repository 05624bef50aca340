"""A registry that answers what real ones answer when things go wrong, for
scripts/test-push.sh: plain HTTP on 127.0.0.1, Basic authentication, and per
repository one answer to every manifest request:

  missing/...    404 NAME_UNKNOWN   (ECR: the repository does not exist)
  forbidden/...  403 DENIED         (credentials accepted, no permission)
  garbage/...    200 with a body that is not JSON

Every request is logged, one line each ("METHOD PATH USER"), to LOG, so the
test can see that nothing was written (no PUT, no POST).

    python3 fake_registry.py PORT USER PASSWORD LOG
"""
import base64
import http.server
import json
import sys

port, user, password, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json", headers=()):
        body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def handle_one(self):
        given = self.headers.get("Authorization", "")
        who = "-"
        if given.startswith("Basic "):
            who = base64.b64decode(given[6:]).decode(errors="replace")
        with open(log, "a") as file:
            print(self.command, self.path, who.split(":")[0], file=file)
        if who != f"{user}:{password}":
            return self.answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                               headers=[("WWW-Authenticate", 'Basic realm="fake"')])
        parts = self.path.split("/")
        if self.path == "/v2/":
            return self.answer(200, {})
        repository = parts[2] if len(parts) > 2 else ""
        if repository == "missing":
            return self.answer(404, {"errors": [{"code": "NAME_UNKNOWN", "message":
                                                 "The repository with name 'missing' does not exist"}]})
        if repository == "forbidden":
            return self.answer(403, {"errors": [{"code": "DENIED", "message": "not allowed"}]})
        if repository == "garbage":
            return self.answer(200, b"<html>a proxy's page</html>", "application/vnd.oci.image.manifest.v1+json")
        return self.answer(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_one


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
