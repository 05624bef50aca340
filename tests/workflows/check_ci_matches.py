"""GitHub's CI runs what .ci/run runs, and a release ships only what passed it.

    python3 tests/workflows/check_ci_matches.py [REPO_ROOT]

Checks, on .ci/run, .github/workflows/ci.yml and release.yml (and the
scripts they run for the supply chain):
  - every command of .ci/run (each suite) is a `run:` step of a ci.yml job
    that nothing can skip (no `if:` on the job or the step, no
    continue-on-error);
  - the advisory gate runs in full on GitHub: tests/e2e/run.sh runs
    tests/supply_chain/run.sh, which runs `cargo deny check` with no subset,
    and the ci.yml job that runs tests/e2e/run.sh sets ADVISORY_DB=live (the
    live RustSec database, never a fallback);
  - the image builds of ci.yml's images job use BuildKit's GitHub Actions
    cache: API_BUILDX_CACHE=type=gha..., a buildx builder
    (docker/setup-buildx-action) and the runtime token
    (crazy-max/ghaction-github-runtime) before the build; release.yml's
    build job uses no cache and gets no cache token (the suites hold one,
    and a cache key is only a name: whatever they write a release would
    build from);
  - release.yml builds through release_build (scripts/lib.sh: the build
    arguments every suite uses), never with build arguments of its own, and
    deploy/aws/release.sh deploys by digest;
  - release.yml calls ci.yml, and every job that receives AWS credentials
    (id-token: write) or an environment needs that call, directly or not;
  - each environment's job attests the production image it pushed, pushed
    to the registry: build provenance and an SBOM (actions/attest), with
    attestations: write;
  - every action is pinned to a full commit SHA, its version in a comment,
    and that commit is one verified as the tag of a Node 24 release;
  - the variable RELEASE_TO_AWS = false skips every job that gets AWS
    credentials (a release that only builds), through the build job's
    to-aws output, which refuses any other value than true or false;
  - both environments push and deploy through deploy/aws/release.sh, and
    release.yml itself asks AWS nothing (no tag-exists guess);
  - the push job runs scripts/test-push.sh as root (sudo: it installs and
    starts its own registry, and trusts its CA in /etc/docker/certs.d) with
    no API_TEST_REGISTRY, so that registry is the one tested; the images job
    lets its DNS server bind port 53 (sudo, or the unprivileged-port sysctl
    before the suite runs).
Then it breaks each of these in a copy and requires the check to notice
(a check that cannot fail proves nothing). Needs PyYAML. Prints one line
per check and "N passed, M failed"; exits 1 on a failure.
"""

import copy
import pathlib
import re
import shlex
import sys

import yaml

# Lines of .ci/run that set things up rather than run a suite.
SETUP = re.compile(r"^(echo|source|apt_tool|cd|set|#|$)")


def suites(ci_run):
    """The commands .ci/run runs, in order."""
    return [line.strip() for line in ci_run.splitlines() if not SETUP.match(line.strip())]


def workflow_on(workflow):
    return workflow.get("on", workflow.get(True)) or {}  # YAML 1.1 reads `on` as true


def unskippable_runs(ci):
    """The `run:` text of every step that always runs, by job."""
    for name, job in ci["jobs"].items():
        if "if" in job:
            continue
        for step in job.get("steps", []):
            if "run" in step and "if" not in step and not step.get("continue-on-error"):
                yield name, step["run"]


def runs_command(run, command):
    """`command` is in `run` as a command of its own (possibly behind sudo
    or env), not merely mentioned."""
    wanted = shlex.split(command)
    for line in run.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        for start in range(len(words)):
            if words[start : start + len(wanted)] == wanted and (
                start + len(wanted) == len(words) or words[start + len(wanted)] in ("&&", "||", ";", "|")):
                return True
    return False


def needs_of(jobs, name, seen=None):
    seen = set() if seen is None else seen
    for needed in [jobs[name].get("needs", [])] if isinstance(jobs[name].get("needs"), str) else jobs[name].get("needs", []):
        if needed not in seen:
            seen.add(needed)
            needs_of(jobs, needed, seen)
    return seen


USES = re.compile(r"^\s*-?\s*uses:\s*(\S+)(.*)$", re.M)

# The commits the workflows may use, each read on 2026-12-01 from the
# action's own repository (the tag's commit, and `runs.using: node24` in its
# action.yml at that commit). A new pin is verified the same way, then added.
VERIFIED = {
    "actions/attest@1e69f48acb82d1966a394da916b4c1698aa569d6": "v4.2.2",
    "docker/setup-buildx-action@37fe631027851001ddb9b187196cc803df7f5f0e": "v4.3.0",
    "crazy-max/ghaction-github-runtime@04d248b84655b509d8c44dc1d6f990c879747487": "v4.0.0",
    "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1": "v7.0.1",
    "actions/cache/restore@27d5ce7f107fe9357f9df03efb73ab90386fccae": "v5.0.5",
    "actions/cache/save@27d5ce7f107fe9357f9df03efb73ab90386fccae": "v5.0.5",
    "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f": "v7.0.0",
    "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c": "v8.0.1",
    "aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c": "v6.2.3",
    "hashicorp/setup-terraform@dfe3c3f87815947d99a8997f908cb6525fc44e9e": "v4.0.1",
}


GATE = "tests/supply_chain/run.sh"
HARDENING = "tests/e2e/run.sh"


def uncommented(text):
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def gate_problems(ci, runs, e2e_text, gate_text):
    """The advisory gate, in full, live on GitHub."""
    called = re.search(r"^check .*\s" + re.escape(GATE) + r"\s*$", uncommented(e2e_text), re.M)
    yield f"{HARDENING} runs {GATE}", None if called else f"no check of {HARDENING} runs {GATE}"
    # cargo-deny's `check` subcommand with nothing after it but redirections.
    deny = re.findall(r'"\$CARGO_DENY"[^\n]*\scheck(\s[^\n]*)?$', uncommented(gate_text), re.M)
    full = bool(deny) and all(re.fullmatch(r"(\s+(>|2>|>>)\S*)*\s*", rest or "") for rest in deny)
    yield f"{GATE} runs `cargo deny check` in full", None if full else (
        f"its cargo deny runs {['check' + r for r in deny]}, not `check` alone" if deny else "it runs no cargo deny check")
    jobs = [name for name, run in runs if runs_command(run, HARDENING)]
    live = [name for name in jobs if (ci["jobs"][name].get("env") or {}).get("ADVISORY_DB") == "live"]
    yield f"ci.yml runs the gate against the live database (ADVISORY_DB=live on the {HARDENING} job)", \
        None if live else f"the jobs running {HARDENING} ({', '.join(jobs) or 'none'}) do not set ADVISORY_DB: live"


def cached_build_problems(file, name, job, script):
    """A job whose run step builds images through the buildx GitHub Actions cache."""
    steps = job.get("steps", [])
    build = next((i for i, step in enumerate(steps) if script in step.get("run", "")), None)
    if build is None:
        yield f"{file}: {name} builds through the GitHub Actions cache", f"no step runs {script}"
        return
    before = [step.get("uses", "").split("@")[0] for step in steps[:build]]
    cache = (steps[build].get("env") or {}).get("API_BUILDX_CACHE", "")
    missing = [a for a in ("docker/setup-buildx-action", "crazy-max/ghaction-github-runtime") if a not in before]
    yield f"{file}: {name} builds through the GitHub Actions cache", None if cache.startswith("type=gha") and not missing \
        else f"API_BUILDX_CACHE is {cache!r}" + (f", no {' or '.join(missing)} before it" if missing else "")


def uncached_build_problems(job):
    """release.yml's build reads no cache the test suites could have written."""
    tokens = [step.get("uses", "").split("@")[0] for step in job.get("steps", [])
              if "ghaction-github-runtime" in step.get("uses", "")]
    cached = [step.get("name", "a step") for step in job.get("steps", [])
              if "API_BUILDX_CACHE" in (step.get("env") or {}) or "API_BUILDX_CACHE" in step.get("run", "")]
    yield "release.yml: build uses no build cache", \
        None if not tokens and not cached else f"the cache token ({', '.join(tokens) or 'no'}), API_BUILDX_CACHE in {cached or 'no step'}"


def attest_problems(name, job):
    """An environment's job attests the production image it pushed."""
    attests = [step.get("with") or {} for step in job.get("steps", []) if step.get("uses", "").startswith("actions/attest@")]
    production = [w for w in attests if "production-digest" in str(w.get("subject-digest", ""))
                  and str(w.get("push-to-registry")).lower() == "true"]
    kinds = {"SBOM" if w.get("sbom-path") else "provenance" for w in production}
    yield f"release.yml: {name} attests the production image, in the registry (provenance and SBOM)", \
        None if kinds == {"SBOM", "provenance"} else f"its pushed production attestations are {sorted(kinds) or 'none'}"
    permission = (job.get("permissions") or {}).get("attestations")
    yield f"release.yml: {name} may write attestations", None if permission == "write" else f"attestations: {permission}"


def privilege_problems(ci):
    """The push and images jobs get the privileges their suites need."""
    push = ci["jobs"].get("push", {})
    runs = [step.get("run", "") for step in push.get("steps", [])]
    as_root = any(runs_command(run, "scripts/test-push.sh") and re.search(r"(^|\s)sudo\s", run) for run in runs)
    yield "ci.yml: push runs scripts/test-push.sh as root (its own registry)", \
        None if as_root else "test-push.sh runs without sudo: it cannot install and start its registry"
    given = [name for name, value in [*(push.get("env") or {}).items(),
                                       *((k, v) for s in push.get("steps", []) for k, v in (s.get("env") or {}).items())]
             if name == "API_TEST_REGISTRY"]
    yield "ci.yml: push tests the registry test-push.sh starts", \
        None if not given else "API_TEST_REGISTRY is set: a registry nothing in the workflow starts"
    steps = ci["jobs"].get("images", {}).get("steps", [])
    at = next((i for i, step in enumerate(steps) if runs_command(step.get("run", ""), "scripts/test-images.sh")), None)
    before = " ".join(step.get("run", "") for step in steps[:at or 0])
    own = steps[at].get("run", "") if at is not None else ""
    port53 = re.search(r"ip_unprivileged_port_start=(\d+)", before)
    allowed = bool(re.search(r"(^|\s)sudo\s", own)) or (port53 is not None and int(port53[1]) <= 53)
    yield "ci.yml: images lets its DNS server bind port 53", \
        None if allowed else "test-images.sh runs unprivileged and nothing before it lowers ip_unprivileged_port_start"


def problems(ci_run, ci_text, release_text, e2e_text="", gate_text="", release_sh=""):
    """(check, problem or None) pairs."""
    ci, release = yaml.safe_load(ci_text), yaml.safe_load(release_text)
    runs = list(unskippable_runs(ci))
    for command in suites(ci_run):
        jobs = [job for job, run in runs if runs_command(run, command)]
        yield f"ci.yml runs `{command}`", None if jobs else "no job of ci.yml runs it (or only behind an if:)"
    yield from gate_problems(ci, runs, e2e_text, gate_text)
    yield from privilege_problems(ci)
    yield from cached_build_problems("ci.yml", "images", ci["jobs"].get("images", {}), "scripts/test-images.sh")
    build = release["jobs"].get("build", {})
    yield from uncached_build_problems(build)
    ungated = [name for name, job in release["jobs"].items()
               if (job.get("permissions") or {}).get("id-token") == "write"
               and str(job.get("if", "")).strip() != "needs.build.outputs.to-aws == 'true'"]
    checked = [step for step in build.get("steps", []) if "RELEASE_TO_AWS" in str(step.get("env", ""))
               and "exit 1" in step.get("run", "") and step.get("id") == "target"]
    outputs = build.get("outputs") or {}
    yield "release.yml: build reads RELEASE_TO_AWS, refuses any value but true or false, and says where the release goes", \
        None if checked and "steps.target.outputs.to-aws" in str(outputs.get("to-aws", "")) else \
        "no step `target` in build that reads RELEASE_TO_AWS and exits 1 on another value, or no to-aws output"
    yield "release.yml: RELEASE_TO_AWS = false skips every job with AWS credentials", \
        None if not ungated else f"not gated by it: {', '.join(ungated)}"
    build_runs = " ".join(step.get("run", "") for step in build.get("steps", []))
    own = re.findall(r"--build-arg\b|git rev-parse --short", build_runs)
    yield "release.yml builds with release_build's arguments, none of its own", \
        None if "release_build" in build_runs and not own else f"its build step has {own or 'no release_build'}"
    by_digest = re.search(r'--image "\$registry/api@', uncommented(release_sh))
    yield "deploy/aws/release.sh deploys by the digest push.sh reported", None if by_digest else "it deploys by tag"

    calls = [name for name, job in release["jobs"].items() if job.get("uses") == "./.github/workflows/ci.yml"]
    yield "release.yml calls ci.yml", None if calls else "no job uses ./.github/workflows/ci.yml"
    yield "ci.yml can be called", None if "workflow_call" in workflow_on(ci) else "ci.yml has no on: workflow_call"
    for name, job in release["jobs"].items():
        privileged = job.get("environment") or (job.get("permissions") or {}).get("id-token") == "write"
        if privileged:
            gated = bool(calls) and calls[0] in needs_of(release["jobs"], name)
            yield f"release.yml: {name} runs only after the tests passed", \
                None if gated else f"{name} gets an environment or AWS credentials without needing {calls or 'ci'}"

    for file, text in (("ci.yml", ci_text), ("release.yml", release_text)):
        for action, rest in USES.findall(text):
            if action.startswith("./"):
                continue
            version = re.search(r"#\s*(v\d+\.\d+\.\d+)", rest)
            pinned = re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action) and version
            yield f"{file}: {action.split('@')[0]} pinned by SHA, version named", \
                None if pinned else f"{action}{rest}: not a full SHA with '# vX.Y.Z'"
            if pinned:
                known = VERIFIED.get(action)
                yield f"{file}: {action.split('@')[0]} {version[1]} is a verified Node 24 release", \
                    None if known == version[1] else (
                        f"{action} is {known} in the table, not {version[1]}" if known else
                        f"{action} is not in VERIFIED: check the tag's commit and its runs.using, then add it")

    # Both environments push and deploy the same way, through push.sh (which
    # tells an identical tag from another image): no tag-exists guesswork here.
    for name, job in release["jobs"].items():
        if job.get("environment"):
            yield from attest_problems(name, job)
            runs = " ".join(step.get("run", "") for step in job.get("steps", []))
            yield f"release.yml: {name} pushes and deploys through deploy/aws/release.sh", \
                None if "deploy/aws/release.sh" in runs else f"{name} does not run deploy/aws/release.sh"
            yield f"release.yml: {name} asks AWS nothing itself", \
                None if not re.search(r"\baws\s+[a-z]", runs) else f"{name} calls the AWS CLI in the workflow"


def without_steps(workflow, drop, in_job=lambda name, job: True):
    """A copy of `workflow` without the steps `drop(step)` picks, in the jobs
    `in_job(name, job)` picks (every job by default)."""
    copied = copy.deepcopy(workflow)
    for name, job in copied["jobs"].items():
        if in_job(name, job):
            job["steps"] = [step for step in job.get("steps", []) if not drop(step)]
    return copied


def breaks(ci_run, ci_text, release_text, e2e_text, gate_text, release_sh):
    """(what is broken, the check that must notice, texts...)."""
    ci, release = yaml.safe_load(ci_text), yaml.safe_load(release_text)
    dump = lambda data: yaml.safe_dump(data, sort_keys=False)
    rest = (e2e_text, gate_text, release_sh)

    yield ("the gate with some checks only", f"{GATE} runs `cargo deny check` in full", ci_run, ci_text, release_text, e2e_text,
           re.sub(r'(\$CARGO_DENY"[^\n]*\scheck)(\s)', r"\1 licenses bans sources\2", gate_text, count=1), release_sh)
    yield ("the hardening suite without the gate", f"{HARDENING} runs {GATE}", ci_run, ci_text, release_text,
           "\n".join(line for line in e2e_text.splitlines() if GATE not in line), gate_text, release_sh)
    not_live = copy.deepcopy(ci)
    for job in not_live["jobs"].values():
        (job.get("env") or {}).pop("ADVISORY_DB", None)
    yield ("the gate free to use a snapshot on GitHub", "ci.yml runs the gate against the live database", ci_run, dump(not_live), release_text, *rest)
    uncached = without_steps(ci, lambda s: "ghaction-github-runtime" in s.get("uses", ""), lambda name, _: name == "images")
    yield ("the images job without the runtime token", "ci.yml: images builds through the GitHub Actions cache", ci_run, dump(uncached), release_text, *rest)
    ungated = copy.deepcopy(release)
    ungated["jobs"]["production"]["if"] = "vars.RELEASE_TO_AWS != 'false'"
    yield ("a production job that runs whatever RELEASE_TO_AWS says",
           "release.yml: RELEASE_TO_AWS = false skips every job with AWS credentials", ci_run, ci_text, dump(ungated), *rest)
    lenient = copy.deepcopy(release)
    for step in lenient["jobs"]["build"]["steps"]:
        if step.get("id") == "target":
            step["run"] = step["run"].replace("exit 1", "true")
    yield ("a RELEASE_TO_AWS of 'no' read as true", "release.yml: build reads RELEASE_TO_AWS, refuses any value",
           ci_run, ci_text, dump(lenient), *rest)
    cached_release = copy.deepcopy(release)
    cached_release["jobs"]["build"]["steps"] = [
        {**s, "env": {**(s.get("env") or {}), "API_BUILDX_CACHE": "type=gha,scope=release"}}
        if "release_build" in s.get("run", "") else s for s in cached_release["jobs"]["build"]["steps"]]
    yield ("a release build through the cache main's suites write", "release.yml: build uses no build cache",
           ci_run, ci_text, dump(cached_release), *rest)
    hand_made = release_text.replace("release_build \"$RUNNER_TEMP/release\"",
                                     'release_build "$RUNNER_TEMP/release" --build-arg "GIT_REVISION=$(git rev-parse --short=7 HEAD)"', 1)
    yield ("a release build with a short GIT_REVISION of its own", "release.yml builds with release_build's arguments", ci_run, ci_text, hand_made, *rest)
    yield ("a deployment by tag", "deploy/aws/release.sh deploys by the digest", ci_run, ci_text, release_text, e2e_text, gate_text,
           release_sh.replace('--image "$registry/api@', '--image "$registry/api:production-$VERSION #', 1))
    unattested = without_steps(release, lambda s: s.get("uses", "").startswith("actions/attest@")
                               and not (s.get("with") or {}).get("sbom-path"), lambda _, job: bool(job.get("environment")))
    yield ("environments that push no provenance", "release.yml: staging attests the production image", ci_run, ci_text, dump(unattested), *rest)
    no_permission = copy.deepcopy(release)
    for job in no_permission["jobs"].values():
        (job.get("permissions") or {}).pop("attestations", None)
    yield ("attestations without the permission to write them", "release.yml: staging may write attestations", ci_run, ci_text, dump(no_permission), *rest)

    unprivileged = copy.deepcopy(ci)
    for step in unprivileged["jobs"]["push"]["steps"]:
        if "run" in step:
            step["run"] = re.sub(r"sudo\s+(--preserve-env=\S+\s+)?", "", step["run"])
    yield ("the push suite without sudo", "ci.yml: push runs scripts/test-push.sh as root", ci_run, dump(unprivileged), release_text, *rest)
    elsewhere = copy.deepcopy(ci)
    elsewhere["jobs"]["push"].setdefault("env", {})["API_TEST_REGISTRY"] = "localhost:5000"
    yield ("the push suite pointed at a registry nobody starts", "ci.yml: push tests the registry", ci_run, dump(elsewhere), release_text, *rest)
    no_port = without_steps(ci, lambda s: "ip_unprivileged_port_start" in s.get("run", ""), lambda name, _: name == "images")
    yield ("the images job without port 53", "ci.yml: images lets its DNS server bind port 53", ci_run, dump(no_port), release_text, *rest)

    without_aws = without_steps(ci, lambda s: "scripts/test-aws.sh" in s.get("run", ""))
    yield "ci.yml without the AWS suite", "ci.yml runs `scripts/test-aws.sh`", ci_run, dump(without_aws), release_text, *rest

    skipped = copy.deepcopy(ci)
    next(j for j in skipped["jobs"].values() if any("tests/e2e/run.sh" in s.get("run", "") for s in j["steps"]))["if"] = \
        "github.event_name == 'push'"
    yield "the hardening suite behind an if:", "ci.yml runs `tests/e2e/run.sh`", ci_run, dump(skipped), release_text, *rest

    yield "a new suite in .ci/run that ci.yml lacks", "ci.yml runs `scripts/test-new.sh`", ci_run + "\nscripts/test-new.sh\n", ci_text, release_text, *rest


    ungated = copy.deepcopy(release)
    for job in ungated["jobs"].values():
        if job.get("needs") == "ci" or job.get("needs") == ["ci"]:
            del job["needs"]
    yield "release.yml building without waiting for the tests", "release.yml: staging runs only after the tests passed", ci_run, ci_text, dump(ungated), *rest

    unpinned = re.sub(r"(uses: actions/checkout@)[0-9a-f]{40}", r"\1v7", release_text, count=1)
    yield "an action pinned by tag", "release.yml: actions/checkout pinned by SHA", ci_run, ci_text, unpinned, *rest

    node20 = release_text.replace("actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1",
                                  "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", 1)
    yield "checkout back on v4.2.2 (Node 20)", "release.yml: actions/checkout v4.2.2 is a verified", ci_run, ci_text, node20, *rest

    guessing = release_text.replace("run: deploy/aws/release.sh production", (
        "run: |\n          aws ecr describe-images --repository-name api >/dev/null 2>&1 || deploy/aws/release.sh production"), 1)
    yield "a tag-exists guess in the production job", "release.yml: production asks AWS nothing itself", ci_run, ci_text, guessing, *rest


def main(root):
    root = pathlib.Path(root)
    texts = [(root / path).read_text() for path in (".ci/run", ".github/workflows/ci.yml", ".github/workflows/release.yml",
                                                    HARDENING, GATE, "deploy/aws/release.sh")]
    passed = failed = 0

    def outcome(ok, line):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {line}")

    for check, problem in problems(*texts):
        outcome(problem is None, check + (f": {problem}" if problem else ""))
    for what, expected, *broken in breaks(*texts):
        found = [f"{check}: {problem}" for check, problem in problems(*broken) if problem and check.startswith(expected)]
        outcome(bool(found), f"the checks catch {what}" + (f" ({found[0]})" if found else f": NOT CAUGHT by '{expected}'"))
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
