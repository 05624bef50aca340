"""Finds an image's SBOM in a registry from the image digest alone, as a
user would: with ORAS (PyPI `oras`, not our push code), through the OCI 1.1
referrers API, or where the registry has none (CNCF distribution 2.8), the
spec's fallback tag sha256-<hex digest>.

    python3 find_sbom.py REGISTRY REPOSITORY DIGEST USER PASSWORD CA_FILE OUT_DIR [COUNT]

Prints how it found the SBOMs, and writes each to OUT_DIR/sbom-<n>.cdx.json
once its blob matches its digest and its referrer names DIGEST as the
subject. Exits 1 unless there are exactly COUNT (default 1).
"""

import hashlib
import os
import sys

import oras.provider

SBOM = "application/vnd.cyclonedx+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def main(registry, repository, digest, user, password, ca, out, count="1"):
    client = oras.provider.Registry(hostname=registry, tls_verify=ca, auth_backend="basic")
    client.auth.set_basic_auth(user, password)
    base = f"https://{registry}/v2/{repository}"

    answer = client.do_request(f"{base}/referrers/{digest}?artifactType={SBOM}", headers={"Accept": INDEX})
    if answer.status_code == 200:
        how, referrers = "the referrers API", answer.json().get("manifests", [])
    else:
        tag = digest.replace(":", "-")
        print(f"no referrers API (GET /v2/{repository}/referrers/... answered {answer.status_code});"
              f" the fallback tag {tag}")
        answer = client.do_request(f"{base}/manifests/{tag}", headers={"Accept": INDEX})
        if answer.status_code != 200:
            print(f"FAIL: no referrers tag {tag} (HTTP {answer.status_code})")
            return 1
        how, referrers = f"the tag {tag}", answer.json().get("manifests", [])

    sboms = [entry for entry in referrers if entry.get("artifactType") == SBOM]
    print(f"{len(referrers)} referrers of {digest} through {how}, {len(sboms)} of them {SBOM}")
    if len(sboms) != int(count):
        print(f"FAIL: {count} wanted")
        return 1
    for number, descriptor in enumerate(sboms, 1):
        manifest = client.do_request(f"{base}/manifests/{descriptor['digest']}",
                                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        if "sha256:" + hashlib.sha256(manifest.content).hexdigest() != descriptor["digest"]:
            print("FAIL: the referrer's manifest does not match its digest")
            return 1
        referrer = manifest.json()
        if referrer.get("subject", {}).get("digest") != digest or referrer.get("artifactType") != SBOM:
            print(f"FAIL: the referrer's subject is {referrer.get('subject')}, its type {referrer.get('artifactType')}")
            return 1
        layer = referrer["layers"][0]
        blob = client.get_blob(f"{registry}/{repository}", layer["digest"]).content
        if "sha256:" + hashlib.sha256(blob).hexdigest() != layer["digest"] or len(blob) != layer["size"]:
            print("FAIL: the SBOM blob does not match its descriptor")
            return 1
        with open(os.path.join(out, f"sbom-{number}.cdx.json"), "wb") as file:
            file.write(blob)
        print(f"found {descriptor['digest']}: {len(blob)} bytes, "
              f"{referrer.get('annotations', {}).get('org.opencontainers.image.description')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
