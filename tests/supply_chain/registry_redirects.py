#!/usr/bin/env python3
"""scripts/registry_api.py against a registry that sends clients to another
host, as real ones do and the kit's registry does not: blob HEADs
redirected to storage (ECR and ghcr.io redirect blob requests to S3, Docker
Hub to a CDN), and upload Locations on the storage host (the distribution
spec allows it). The SBOM must be attached, the registry's token must never
reach the storage host (urllib would re-send it with every redirect), and
a redirect must not pass for "the registry has this blob" (the spec: only a
200 does). Exits 1, saying what went wrong, otherwise.

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

    def handle_any(self):
        """Every method: the body read, then `serve(path without query, body)`."""
        self.serve(self.path.split("?")[0], self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = handle_any


class Storage(Quiet):
    """Where the blobs go: takes uploads without credentials, refuses any
    request that carries some (as S3 refuses a presigned URL signed twice),
    and refuses reads (as S3 does a HEAD on a URL presigned for GET)."""

    def serve(self, path, _body):
        seen["storage"].append((self.command, path, self.headers.get("Authorization")))
        if self.headers.get("Authorization"):
            return self.answer(400)
        self.answer(201 if self.command == "PUT" and path.startswith("/upload/") else 403)


class Registry(Quiet):
    def serve(self, path, body):
        seen["registry"].append((self.command, self.path))
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
        if self.command == "POST" and path == "/v2/repo/blobs/uploads/":
            location = f"http://127.0.0.1:{storage.server_port}/upload/{len(seen['registry'])}?X-Amz-Signature=x"
            return self.answer(202, [("Location", location)])
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
    failures.append(f"the registry's credentials reached the storage host: {seen['storage']}")
if any(method != "PUT" for method, _, _ in seen["storage"]):
    failures.append(f"a redirect was followed to the storage host: {seen['storage']}")
if sum(method == "PUT" for method, _, _ in seen["storage"]) != 2:
    failures.append(f"the SBOM and the empty config were not both uploaded (a redirect taken for 'present'?): {seen}")
for failure in failures:
    print(failure)
sys.exit(1 if failures else 0)
