"""Checks an image's org.opencontainers.image.licenses label against what the
binary links: every crate in the release build (normal dependencies, without
proc-macros, which only the compiler loads) must be available under a licence
the label names, and the statically linked glibc (LGPL) and libgcc unwinder
(GPL with the runtime exception) must be named too.

    python3 tests/images/licenses.py CARGO_METADATA.json "LABEL"
"""

import json
import re
import sys

STATIC_LIBRARIES = {"LGPL-2.1-or-later": "glibc", "GCC-exception-3.1": "libgcc's unwinder"}


def parse(tokens, named):
    """SPDX expression -> whether it can be satisfied by the licences `named`."""

    def expression():
        value = term()
        while tokens and tokens[0] == "OR":
            tokens.pop(0)
            value = term() or value
        return value

    def term():
        value = factor()
        while tokens and tokens[0] == "AND":
            tokens.pop(0)
            value = factor() and value
        return value

    def factor():
        token = tokens.pop(0)
        if token == "(":
            value = expression()
            tokens.pop(0)  # ")"
            return value
        if tokens and tokens[0] == "WITH":
            tokens.pop(0)
            return token in named and tokens.pop(0) in named
        return token in named

    return expression()


def tokens_of(expression):
    return re.findall(r"\(|\)|[^\s()]+", expression.replace("/", " OR "))


def main():
    metadata, label = json.load(open(sys.argv[1])), sys.argv[2]
    named = set(tokens_of(label)) - {"AND", "OR", "WITH", "(", ")"}
    packages = {package["id"]: package for package in metadata["packages"]}
    nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
    linked, todo = set(), [metadata["resolve"]["root"]]
    while todo:
        package_id = todo.pop()
        package = packages[package_id]
        if package_id in linked or any("proc-macro" in t["kind"] for t in package["targets"]):
            continue
        linked.add(package_id)
        todo += [
            dependency["pkg"]
            for dependency in nodes[package_id]["deps"]
            if any(kind["kind"] is None for kind in dependency["dep_kinds"])
        ]
    uncovered = [
        f"{packages[p]['name']} ({packages[p]['license']})"
        for p in sorted(linked)
        if not parse(tokens_of(packages[p]["license"] or "NONE"), named)
    ]
    uncovered += [f"{what} ({licence})" for licence, what in STATIC_LIBRARIES.items() if licence not in named]
    print(f"     {len(linked)} crates linked; licences named: {' '.join(sorted(named))}")
    for item in uncovered:
        print(f"     not covered: {item}")
    return 1 if uncovered else 0


if __name__ == "__main__":
    sys.exit(main())
