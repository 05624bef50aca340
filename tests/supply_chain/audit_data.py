"""The crate list cargo-auditable put in the binary equals Cargo.lock's
dependency graph for the features and target it was built with.

    python3 audit_data.py AUDIT_JSON METADATA_JSON

AUDIT_JSON is what `rust-audit-info BINARY` (the reference reader of the
format, crates.io) prints. METADATA_JSON is `cargo metadata --locked
--filter-platform <target>` with the same features: its resolve graph is
Cargo.lock's, resolved for those features on that target. From the root,
normal and build edges (never dev), every package reachable is expected,
with its exact version and source and its dependency edges; the root is
ours. Kinds: a crate that normal edges reach without passing through a
proc-macro is linked into the binary, and the binary must say "runtime" for
it (a scanner skips "build" crates). The other way round is a note, not a
failure: cargo-auditable 0.7 recognises a proc-macro only when it is the
package's one target, so proc-macros that ship tests (tracing-attributes)
and what only they use are recorded as "runtime", which errs towards
reporting more.
Prints the differences and "N crates, M edges"; exits 1 on any.
"""

import json
import sys


def expected(metadata):
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    root = metadata["resolve"]["root"]

    def edges(node_id, kinds):
        for dep in nodes[node_id]["deps"]:
            if any(k["kind"] in kinds for k in dep["dep_kinds"]):
                yield dep["pkg"]

    def proc_macro(pid):
        return any("proc-macro" in target["kind"] for target in packages[pid]["targets"])

    def reachable(kinds, through=lambda pid: True):
        seen, todo = {root}, [root]
        while todo:
            for dep in edges(todo.pop(), kinds):
                if dep not in seen and through(dep):
                    seen.add(dep)
                    todo.append(dep)
        return seen

    everything = reachable({None, "build"})
    # The compiler runs proc-macros; only what normal edges reach without
    # passing through one is linked into the binary.
    runtime = reachable({None}, through=lambda pid: not proc_macro(pid))
    key = lambda pid: (packages[pid]["name"], packages[pid]["version"])
    source = lambda pid: "crates.io" if (packages[pid].get("source") or "").startswith(
        ("registry+https://github.com/rust-lang/crates.io-index", "sparse+https://index.crates.io")) else "local"
    crates = {key(p): {"source": source(p), "kind": "runtime" if p in runtime else "build", "root": p == root}
              for p in everything}
    graph = {(key(p), key(d)) for p in everything for d in edges(p, {None, "build"}) if d in everything}
    return crates, graph


def recorded(audit):
    packages = audit["packages"]
    key = lambda p: (p["name"], p["version"])
    crates = {key(p): {"source": p["source"], "kind": p.get("kind", "runtime"), "root": bool(p.get("root"))}
              for p in packages}
    graph = {(key(p), key(packages[d])) for p in packages for d in p.get("dependencies", [])}
    return crates, graph


def main(audit_path, metadata_path):
    try:
        with open(audit_path) as file:
            in_binary, binary_graph = recorded(json.load(file))
    except (OSError, ValueError, KeyError) as error:
        print(f"     no crate list from the binary ({audit_path}: {error})")
        return 1
    with open(metadata_path) as file:
        in_lock, lock_graph = expected(json.load(file))
    problems = []
    for crate in sorted(in_lock.keys() - in_binary.keys()):
        problems.append(f"in Cargo.lock's graph, not in the binary: {crate[0]} {crate[1]}")
    for crate in sorted(in_binary.keys() - in_lock.keys()):
        problems.append(f"in the binary, not in Cargo.lock's graph: {crate[0]} {crate[1]}")
    notes = []
    for crate in sorted(in_binary.keys() & in_lock.keys()):
        binary, lock = in_binary[crate], in_lock[crate]
        if (binary["source"], binary["root"]) != (lock["source"], lock["root"]):
            problems.append(f"{crate[0]} {crate[1]}: binary says {binary}, Cargo.lock {lock}")
        elif lock["kind"] == "runtime" and binary["kind"] != "runtime":
            problems.append(f"{crate[0]} {crate[1]} is linked in, but the binary calls it {binary['kind']}")
        elif lock["kind"] != binary["kind"]:
            notes.append(f"{crate[0]} {crate[1]}")
    for edge in sorted(lock_graph ^ binary_graph):
        where = "Cargo.lock only" if edge in lock_graph else "binary only"
        problems.append(f"edge {edge[0][0]} {edge[0][1]} -> {edge[1][0]} {edge[1][1]}: {where}")
    for problem in problems[:40]:
        print(f"     {problem}")
    if notes:
        print(f"     note: recorded as runtime, compile-time only by Cargo.lock's graph: {', '.join(notes)}")
    runtime = sum(1 for c in in_binary.values() if c["kind"] == "runtime")
    print(f"     {len(in_binary)} crates ({runtime} linked in, {len(in_binary) - runtime} build-time), "
          f"{len(binary_graph)} edges in the binary; {len(in_lock)} crates, {len(lock_graph)} edges in Cargo.lock's graph")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
