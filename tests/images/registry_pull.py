"""Downloads an image from a registry by digest, with no Docker: the manifest
and every blob, each checked against its digest, then extracts
usr/local/bin/api from the layers into OUT. Proves that the registry holds
the whole image, whatever layers the local Docker store already has.

    python3 tests/images/registry_pull.py HOST REPOSITORY DIGEST USER PASSWORD OUT
"""

import base64
import hashlib
import io
import json
import os
import ssl
import sys
import tarfile
import urllib.error
import urllib.request

ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def main():
    host, repository, digest, user, password, out = sys.argv[1:7]
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def get(path):
        # Loopback registries: TLS without verification (as dockerd), else plain HTTP.
        for scheme, context in (("https", ssl._create_unverified_context()), ("http", None)):
            request = urllib.request.Request(f"{scheme}://{host}/v2/{repository}/{path}",
                                             headers={"Accept": ACCEPT, "Authorization": auth})
            try:
                with urllib.request.urlopen(request, context=context, timeout=30) as response:
                    return response.read()
            except urllib.error.URLError as error:
                if scheme == "http" or not isinstance(error.reason, (ssl.SSLError, ConnectionResetError)):
                    raise
        raise AssertionError("unreachable")

    def checked(kind, path, want):
        body = get(path)
        got = "sha256:" + hashlib.sha256(body).hexdigest()
        if got != want:
            sys.exit(f"     {kind} {want}: the registry sent bytes whose digest is {got}")
        return body

    manifest = json.loads(checked("manifest", f"manifests/{digest}", digest))
    blobs = [manifest["config"]] + manifest["layers"]
    total, binary = 0, None
    for blob in blobs:
        body = checked("blob", f"blobs/{blob['digest']}", blob["digest"])
        total += len(body)
        if blob is manifest["config"]:
            continue
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as layer:
            for member in layer.getmembers():
                if member.name.lstrip("./") == "usr/local/bin/api" and member.isfile():
                    binary = layer.extractfile(member).read()
    print(f"     downloaded the manifest and {len(blobs)} blobs ({total} bytes), each matching its digest")
    if binary is None:
        sys.exit("     no usr/local/bin/api in the layers")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "api"), "wb") as file:
        file.write(binary)
    os.chmod(os.path.join(out, "api"), 0o755)


if __name__ == "__main__":
    main()
