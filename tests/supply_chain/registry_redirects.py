#!/usr/bin/env python3
"""scripts/registry_api.py against a registry that redirects blob requests to
its storage, as ECR, ghcr.io and Docker Hub do (to S3 or a CDN), which the
kit's registry does not: the SBOM is attached, the bearer token never
reaches the storage host, and a blob behind a redirect is not uploaded
again. Exits 1, saying what went wrong, otherwise.

    python3 tests/supply_chain/registry_redirects.py scripts/registry_api.py
"""
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

TOKEN = "token-for-the-registry-only"
SUBJECT = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}).encode()
SUBJECT_DIGEST = "sha256:" + hashlib.sha256(SUBJECT).hexdigest()
seen = {"storage": [], "registry": []}


class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *_):
        pass

    def answer(self, status, headers=(), body=b""):
        self.send_response(status)
        for name, value in [*headers, ("Content-Length", str(len(body)))]:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class Storage(Quiet):
    """Where the blobs are: refuses every request, as S3 refuses a presigned
    URL that also carries an Authorization header."""

    def handle_one_request(self):
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or not self.parse_request():
            return
        seen["storage"].append((self.command, self.path, self.headers.get("Authorization")))
        self.answer(403)


class Registry(Quiet):
    def handle_one_request(self):
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or not self.parse_request():
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen["registry"].append((self.command, self.path))
        path = self.path.split("?")[0]
        if path == "/token":
            return self.answer(200, [("Content-Type", "application/json")], json.dumps({"token": TOKEN}).encode())
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            realm = f'Bearer realm="http://{self.headers["Host"]}/token",service="fake"'
            return self.answer(401, [("WWW-Authenticate", realm)])
        if self.command == "GET" and path == f"/v2/repo/manifests/{SUBJECT_DIGEST}":
            return self.answer(200, [("Content-Type", "application/vnd.oci.image.manifest.v1+json")], SUBJECT)
        if self.command == "HEAD" and path.startswith("/v2/repo/blobs/"):
            location = f"http://127.0.0.1:{storage.server_port}/blobs/{path.rsplit('/', 1)[1]}?X-Amz-Signature=x"
            return self.answer(307, [("Location", location)])
        if self.command == "PUT" and path.startswith("/v2/repo/manifests/"):
            referrer = "sha256:" + hashlib.sha256(body).hexdigest()
            return self.answer(201, [("OCI-Subject", SUBJECT_DIGEST), ("Docker-Content-Digest", referrer)])
        self.answer(404)


def serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


storage, registry = serve(Storage), serve(Registry)
with tempfile.TemporaryDirectory() as work:
    sbom = os.path.join(work, "sbom.cdx.json")
    with open(sbom, "w") as file:
        file.write('{"bomFormat": "CycloneDX"}')
    done = subprocess.run(
        [sys.executable, sys.argv[1], "attach", f"127.0.0.1:{registry.server_port}", "repo", SUBJECT_DIGEST, sbom,
         "application/vnd.cyclonedx+json", "2026-12-02T00:00:00Z", "test"],
        env={**os.environ, "DOCKER_CONFIG": work}, capture_output=True, text=True, timeout=60)

failures = []
if not done.stdout.startswith("attached sha256:") or not done.stdout.strip().endswith(" referrers-api"):
    failures.append(f"not attached: {done.stdout.strip() or done.stderr.strip()}")
if any(auth for _, _, auth in seen["storage"]):
    failures.append(f"the registry's token reached the storage host: {seen['storage']}")
if any(method == "POST" for method, _ in seen["registry"]):
    failures.append("a blob the registry redirected to (it has it) was uploaded again")
for failure in failures:
    print(failure)
sys.exit(1 if failures else 0)
