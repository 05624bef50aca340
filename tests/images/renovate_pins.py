"""Checks that Renovate, run with renovate.json (`renovate --platform=local
--dry-run=extract`, LOG_FORMAT=json, its log on stdin), finds every base
image the Dockerfile pins and nothing else: for each FROM built from an
`ARG <X>_IMAGE=<name>:<tag>` and `ARG <X>_DIGEST=<digest>` pair, one
dependency with that depName, currentValue (the tag) and currentDigest, from
the docker datasource. Renovate then proposes a new digest for the same tag.

    renovate ... | python3 tests/images/renovate_pins.py Dockerfile
"""

import json
import re
import sys


def main():
    dockerfile = open(sys.argv[1]).read()
    found, extracted = [], False
    for line in sys.stdin:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") != "Extracted dependencies":
            continue
        extracted = True
        for manager, files in record["packageFiles"].items():
            for package_file in files:
                for dep in package_file["deps"]:
                    found.append((manager, package_file["packageFile"], dep.get("depName"),
                                  dep.get("currentValue"), dep.get("currentDigest"), dep.get("datasource")))
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.M))
    expected = []
    for image, digest in re.findall(r"^FROM \$\{(\w+)\}\$\{(\w+):\+@\$\{\w+\}\}", dockerfile, re.M):
        name, tag = args[image].rsplit(":", 1)
        expected.append(("regex", "Dockerfile", name, tag, args[digest], "docker"))
    # Given as the global config (the local platform reads no repository
    # config), the custom manager is merged in twice: each match comes twice.
    found = sorted(set(found))
    print(f"     pinned in the Dockerfile: {expected}")
    print(f"     extracted by Renovate:    {found if extracted else 'no extraction in the log'}")
    return 0 if expected and sorted(found) == sorted(expected) else 1


if __name__ == "__main__":
    sys.exit(main())
