"""Every command the docs show works as written, and every link resolves.

Reads README.md, CONTRIBUTING.md, CHANGELOG.md, SECURITY.md and docs/*.md:

- **Links**: every relative link names a file that exists, and every
  `#anchor` a heading of that file (GitHub's slugs). Links to other sites
  are listed, not fetched (CI may have no internet).
- **Commands**: every ```sh, ```bash and ```console block runs, from the
  repository's root, with target/release on PATH (so `api` is the built
  binary), and must exit 0. In a console block, the lines after `$ ` are
  the commands (a trailing `\\` continues one). A comment on the line
  before a block says what it needs:

    <!-- docs-check: with server -->        the api serves on 8000/9000 meanwhile,
                                            started as the README says (cargo run --release)
    <!-- docs-check: starts a server -->    the block runs in the background; it
                                            must be serving (port from --port, else
                                            8000) within a minute, then is stopped
    <!-- docs-check: needs docker -->       run where a Docker engine answers
    <!-- docs-check: exit 0 0 1 -->         the exit code of each command, in order
    <!-- docs-check: skip (why) -->         not run (an AWS account, a cluster...):
                                            listed with its reason

Options may be combined: `<!-- docs-check: with server; exit 0 1 -->`.

    python3 tests/docs/check_docs.py            check links and run every command
    python3 tests/docs/check_docs.py --links    links only
    python3 tests/docs/check_docs.py --list     say what would run, run nothing
    python3 tests/docs/check_docs.py --page README.md    one page's commands
"""

import argparse
import os
import re
import shlex
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "CONTRIBUTING.md", "CHANGELOG.md", "SECURITY.md", *sorted(
    str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md"))]
RUNNABLE = {"sh", "bash", "console"}
MARKER = re.compile(r"<!--\s*docs-check:\s*(.*?)\s*-->")
FENCE = re.compile(r"^(\s*)(```+)\s*([\w-]*)")
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)|\!\[[^\]]*\]\(([^)\s]+)\)")


@dataclass
class Block:
    page: str
    line: int
    language: str
    text: str
    options: dict = field(default_factory=dict)

    def commands(self):
        """The commands to run, one string each."""
        if self.language != "console":
            return [self.text]
        commands, current = [], None
        for line in self.text.splitlines():
            if current is not None:
                current += "\n" + line
            elif line.startswith("$ "):
                current = line[2:]
            else:
                continue
            if not current.endswith("\\"):
                commands.append(current)
                current = None
        return commands

    def where(self):
        return f"{self.page}:{self.line}"


def parse_options(text):
    options = {}
    # `;` separates options, except inside a skip's parenthesised reason.
    for part in filter(None, (part.strip() for part in re.split(r";(?![^(]*\))", text))):
        if part.startswith("skip"):
            options["skip"] = part[len("skip"):].strip(" ()") or "no reason given"
        elif part.startswith("exit"):
            options["exit"] = [int(code) for code in part.split()[1:]]
        elif part in ("with server", "starts a server", "needs docker"):
            options[part] = True
        else:
            raise SystemExit(f"unknown docs-check option: {part!r}")
    return options


def blocks_of(page):
    lines = (ROOT / page).read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, ticks, language = fence.groups()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        if language not in RUNNABLE:
            continue
        before = next((line for line in reversed(lines[:start]) if line.strip()), "")
        marker = MARKER.search(before)
        blocks.append(Block(page, start + 1, language, "\n".join(body),
                            parse_options(marker.group(1)) if marker else {}))
    return blocks


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path):
    seen, anchors = {}, set()
    in_fence = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        anchors.add(base if count == 0 else f"{base}-{count}")
    return anchors


def check_links():
    problems, external = [], 0
    for page in PAGES:
        text = (ROOT / page).read_text()
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for match in LINK.finditer(text):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):
                external += 1
                continue
            path_part, _, anchor = target.partition("#")
            path = (ROOT / page).parent / path_part if path_part else ROOT / page
            if not path.exists():
                problems.append(f"{page}: {target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in anchors_of(path):
                problems.append(f"{page}: {target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    print(f"     links: {sum(1 for _ in PAGES)} pages, {external} links to other sites not fetched")
    return problems


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(port, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if listening(port):
            return True
        time.sleep(0.2)
    return False


def start_in_background(command, environment):
    return subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def docker_answers(environment):
    return subprocess.run(["docker", "info"], capture_output=True, env=environment).returncode == 0


def docker_first(path, work):
    """PATH with the docker client scripts/lib.sh would pick first: these
    machines have Debian's 20.10 in /usr/bin, with BuildKit built in, and a
    newer one earlier on PATH that needs a buildx plugin they lack."""
    given = os.environ.get("DOCKER")
    chosen = shutil.which(given) if given else shutil.which("/usr/bin/docker")
    if given and not chosen:
        sys.exit(f"DOCKER={given}: no such program")
    if not chosen:
        return path
    os.symlink(chosen, os.path.join(work, "docker"))
    return f"{work}:{path}"


def run_block(block, environment):
    """Problems found running `block` (an empty list when it works)."""
    commands = block.commands()
    expected = block.options.get("exit", [0] * len(commands))
    if len(expected) != len(commands):
        return [f"{block.where()}: {len(commands)} commands, {len(expected)} exit codes given"]
    if block.options.get("starts a server"):
        port_given = re.search(r"--port[ =](\d+)", block.text)
        port = int(port_given.group(1)) if port_given else 8000
        if listening(port):
            return [f"{block.where()}: port {port} is taken before the block runs"]
        server = start_in_background(block.text, environment)
        try:
            if not wait_for(port, 600):
                return [f"{block.where()}: nothing served on {port}"]
        finally:
            stop(server)
        return []
    problems = []
    for command, code in zip(commands, expected):
        script = command if block.language == "console" else f"set -euo pipefail\n{command}"
        done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=environment,
                              capture_output=True, text=True, timeout=1800)
        if done.returncode != code:
            output = (done.stdout + done.stderr).strip()[-600:]
            problems.append(f"{block.where()}: exit {done.returncode}, not {code}: {command}\n{output}")
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--links", action="store_true")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--page", action="append", help="only the commands of this page (repeatable)")
    args = parser.parse_args()
    problems = check_links()
    blocks = [block for page in args.page or PAGES for block in blocks_of(page)]
    if args.links:
        blocks = []
    shims = tempfile.mkdtemp(prefix="check-docs-")
    environment = dict(os.environ, PATH=f"{ROOT / 'target/release'}:{docker_first(os.environ['PATH'], shims)}")
    server = None
    ran = skipped = 0
    try:
        for block in blocks:
            why_not = block.options.get("skip")
            if why_not is None and block.options.get("needs docker") and not docker_answers(environment):
                why_not = "no Docker engine answers here"
            if why_not is not None or args.list:
                skipped += why_not is not None
                print(f"     {'not run' if why_not else 'would run'} {block.where()}"
                      f"{': ' + why_not if why_not else ''}")
                continue
            if server is not None and not block.options.get("with server"):
                stop(server)
                server = None
            if block.options.get("with server") and server is None:
                if listening(8000) or listening(9000):
                    problems.append(f"{block.where()}: ports 8000/9000 are taken")
                    continue
                server = start_in_background("cargo run --release --quiet", environment)
                if not wait_for(8000, 900):
                    problems.append(f"{block.where()}: `cargo run --release` served nothing on 8000")
                    continue
            found = run_block(block, environment)
            ran += 1
            print(f"     {'FAIL' if found else 'ok  '} {block.where()} ({block.language})")
            problems += found
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(shims)
    print(f"     {ran} blocks run, {skipped} not run (their reasons above)")
    for problem in problems:
        print(f"     {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
