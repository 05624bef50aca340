"""Checks an SBOM made by the Dockerfile's `sbom` target.

    python3 check_sbom.py SBOM AUDIT_JSON DPKG_DIR --image production --platform linux/amd64 \
        --revision SHA --source URL --binary-sha256 HEX --rust 1.95

  - valid CycloneDX 1.5 JSON, by the schema (cyclonedx-python-lib's strict
    validator, the CycloneDX project's own library);
  - every crate the binary's audit data names (AUDIT_JSON, from
    rust-audit-info) is a component with that exact version and its
    pkg:cargo purl, and no crate is listed that the binary does not name;
  - the binary itself, with its SHA-256; the image as the SBOM's subject
    (image, platform, revision);
  - every Debian package of the image's dpkg database (DPKG_DIR: the
    image's status file or status.d records) with its exact version, as a
    pkg:deb purl; glibc and libgcc's static libraries and Rust's standard
    library (--rust: the toolchain's version), what the static link copied in;
  - its serial number the documented UUIDv5, so that it names what it
    describes and a rebuild gives the same one.
Prints one line per check and "N passed, M failed"; exits 1 on a failure.
"""

import argparse
import json
import os
import re
import sys
import uuid

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def dpkg_packages(directory):
    found = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".md5sums"):
            continue
        with open(os.path.join(directory, name)) as file:
            for record in file.read().split("\n\n"):
                fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", record, re.M))
                if "Package" in fields and fields.get("Status", "install ok installed").endswith(" installed"):
                    found[(fields["Package"], fields["Architecture"])] = fields["Version"]
    return found


def main():
    parser = argparse.ArgumentParser()
    for positional in ("sbom", "audit", "dpkg"):
        parser.add_argument(positional)
    for option in ("--image", "--platform", "--revision", "--source", "--binary-sha256", "--rust"):
        parser.add_argument(option, required=True)
    args = parser.parse_args()
    with open(args.sbom) as file:
        text = file.read()
    bom = json.loads(text)
    with open(args.audit) as file:
        audit = json.load(file)
    passed = failed = 0

    def check(ok, line, detail=""):
        nonlocal passed, failed
        passed, failed = passed + bool(ok), failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {line}" + (f": {detail}" if detail and not ok else ""))

    errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    check(errors is None, "valid CycloneDX 1.5 JSON (cyclonedx-python-lib's strict schema validator)", errors)

    components = bom.get("components", [])
    cargo = {(c["name"], c["version"]) for c in components if c.get("purl", "").startswith("pkg:cargo/")}
    purls = {c.get("purl", "").split("?")[0] for c in components}
    crates = {(p["name"], p["version"]) for p in audit["packages"]}
    missing = sorted(crates - cargo)
    check(not missing, f"every crate of the binary's audit data ({len(crates)}) is listed with its exact version",
          ", ".join(f"{n} {v}" for n, v in missing))
    extra = sorted(cargo - crates)
    check(not extra, "... and no crate the binary does not name", ", ".join(f"{n} {v}" for n, v in extra))
    no_purl = sorted(f"{n} {v}" for n, v in crates if (n, v) != ("api", audit_root(audit)[1])
                     and f"pkg:cargo/{n}@{v}" not in purls)
    check(not no_purl, "... each with its pkg:cargo purl (what scanners match advisories on)", ", ".join(no_purl))

    binaries = [c for c in components if {"name": "api:path", "value": "/usr/local/bin/api"} in c.get("properties", [])]
    hashes = [h["content"] for c in binaries for h in c.get("hashes", []) if h["alg"] == "SHA-256"]
    check(hashes == [args.binary_sha256], f"the binary /usr/local/bin/api with its SHA-256 ({args.binary_sha256[:12]}…)",
          f"listed: {hashes}")
    subject = bom["metadata"]["component"]
    said = {p["name"]: p["value"] for p in subject.get("properties", [])}
    want = {"api:image": args.image, "api:platform": args.platform, "api:revision": args.revision,
            "api:source": args.source}
    check(subject.get("type") == "container" and all(said.get(k) == v for k, v in want.items()),
          f"its subject is the {args.image} image, {args.platform}, {args.revision[:12]}…", said)

    debs = {}
    for c in components:
        match = re.match(r"pkg:deb/debian/([^@]+)@([^?]+)\?arch=([^&]+)", c.get("purl", ""))
        if match:
            debs[(match[1], match[3])] = (match[2], c)
    image = dpkg_packages(args.dpkg)
    wrong = sorted(f"{n}:{a} {v}" for (n, a), v in image.items() if debs.get((n, a), (None,))[0] != v)
    check(image and not wrong, f"every Debian package of the image ({len(image)}: "
          f"{', '.join(sorted(n for n, _ in image))[:120]}) with its exact version", ", ".join(wrong))
    static = sorted(n for (n, _), (_, c) in debs.items()
                    if {"name": "api:package-of", "value": "linked statically into /usr/local/bin/api"} in c["properties"])
    check(len(static) == 2 and static[0].startswith("libc6-dev") and static[1].startswith("libgcc-"),
          f"glibc and libgcc, linked in statically: {', '.join(static)}")
    upstream = [c["purl"] for (n, _), (_, c) in debs.items() if n.startswith("libc6-dev")]
    check(all("upstream=glibc" in p for p in upstream), "... glibc's purl names its source package (upstream=glibc)",
          upstream)

    std = [c.get("version", "") for c in components if c.get("name") == "rust-std"
           and {"name": "api:package-of", "value": "linked statically into /usr/local/bin/api"} in c.get("properties", [])]
    check(len(std) == 1 and std[0].startswith(args.rust + "."),
          f"Rust's standard library, linked in statically: rust-std {', '.join(std)} (the Dockerfile's Rust {args.rust})")

    name = f"{args.source or 'api'}/sbom/{args.revision or 'unknown'}/{args.image}/{args.platform}/{args.binary_sha256}"
    serial = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"
    check(bom.get("serialNumber") == serial, f"serialNumber is UUIDv5(URL, {name[:50]}…)", bom.get("serialNumber"))
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


def audit_root(audit):
    root = next(p for p in audit["packages"] if p.get("root"))
    return root["name"], root["version"]


if __name__ == "__main__":
    sys.exit(main())
