"""GitHub's CI runs what .ci/run runs, and a release ships only what passed it.

    python3 tests/workflows/check_ci_matches.py [REPO_ROOT]

Checks, on .ci/run, .github/workflows/ci.yml and release.yml:
  - every command of .ci/run (each suite) is a `run:` step of a ci.yml job
    that nothing can skip (no `if:` on the job or the step, no
    continue-on-error);
  - ci.yml runs `cargo deny check` in full (advisories too: GitHub reaches
    the live RustSec database, which .ci/run's machines do not);
  - release.yml calls ci.yml, and every job that receives AWS credentials
    (id-token: write) or an environment needs that call, directly or not;
  - every action is pinned to a full commit SHA, its version in a comment,
    and that commit is one verified as the tag of a Node 24 release;
  - both environments push and deploy through deploy/aws/release.sh, and
    release.yml itself asks AWS nothing (no tag-exists guess).
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
    "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1": "v7.0.1",
    "actions/cache/restore@27d5ce7f107fe9357f9df03efb73ab90386fccae": "v5.0.5",
    "actions/cache/save@27d5ce7f107fe9357f9df03efb73ab90386fccae": "v5.0.5",
    "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f": "v7.0.0",
    "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c": "v8.0.1",
    "aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c": "v6.2.3",
    "hashicorp/setup-terraform@dfe3c3f87815947d99a8997f908cb6525fc44e9e": "v4.0.1",
}


def problems(ci_run, ci_text, release_text):
    """(check, problem or None) pairs."""
    ci, release = yaml.safe_load(ci_text), yaml.safe_load(release_text)
    runs = list(unskippable_runs(ci))
    for command in suites(ci_run):
        jobs = [job for job, run in runs if runs_command(run, command)]
        yield f"ci.yml runs `{command}`", None if jobs else "no job of ci.yml runs it (or only behind an if:)"
    full_deny = any(runs_command(run, "cargo deny check") for _, run in runs)
    yield "ci.yml runs `cargo deny check` in full", None if full_deny else "no step runs it without arguments"

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
            runs = " ".join(step.get("run", "") for step in job.get("steps", []))
            yield f"release.yml: {name} pushes and deploys through deploy/aws/release.sh", \
                None if "deploy/aws/release.sh" in runs else f"{name} does not run deploy/aws/release.sh"
            yield f"release.yml: {name} asks AWS nothing itself", \
                None if not re.search(r"\baws\s+[a-z]", runs) else f"{name} calls the AWS CLI in the workflow"


def breaks(ci_run, ci_text, release_text):
    """(what is broken, .ci/run, ci.yml, release.yml): each must fail a check."""
    ci, release = yaml.safe_load(ci_text), yaml.safe_load(release_text)
    dump = lambda data: yaml.safe_dump(data, sort_keys=False)

    without_aws = copy.deepcopy(ci)
    for job in without_aws["jobs"].values():
        job["steps"] = [s for s in job.get("steps", []) if "scripts/test-aws.sh" not in s.get("run", "")]
    yield "ci.yml without the AWS suite", ci_run, dump(without_aws), release_text

    skipped = copy.deepcopy(ci)
    next(j for j in skipped["jobs"].values() if any("tests/e2e/run.sh" in s.get("run", "") for s in j["steps"]))["if"] = \
        "github.event_name == 'push'"
    yield "the hardening suite behind an if:", ci_run, dump(skipped), release_text

    yield "a new suite in .ci/run that ci.yml lacks", ci_run + "\nscripts/test-new.sh\n", ci_text, release_text

    partial_deny = ci_text.replace("run: cargo deny check\n", "run: cargo deny check licenses bans sources\n")
    yield "cargo deny check with some checks only", ci_run, partial_deny, release_text

    ungated = copy.deepcopy(release)
    for job in ungated["jobs"].values():
        if job.get("needs") == "ci" or job.get("needs") == ["ci"]:
            del job["needs"]
    yield "release.yml building without waiting for the tests", ci_run, ci_text, dump(ungated)

    unpinned = re.sub(r"(uses: actions/checkout@)[0-9a-f]{40}", r"\1v7", release_text, count=1)
    yield "an action pinned by tag", ci_run, ci_text, unpinned

    node20 = release_text.replace("actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1",
                                  "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", 1)
    yield "checkout back on v4.2.2 (Node 20)", ci_run, ci_text, node20

    guessing = release_text.replace("run: deploy/aws/release.sh production", (
        "run: |\n          aws ecr describe-images --repository-name api >/dev/null 2>&1 || deploy/aws/release.sh production"), 1)
    yield "a tag-exists guess in the production job", ci_run, ci_text, guessing


def main(root):
    root = pathlib.Path(root)
    texts = [(root / path).read_text() for path in (".ci/run", ".github/workflows/ci.yml", ".github/workflows/release.yml")]
    passed = failed = 0

    def outcome(ok, line):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {line}")

    for check, problem in problems(*texts):
        outcome(problem is None, check + (f": {problem}" if problem else ""))
    for what, *broken in breaks(*texts):
        found = [f"{check}: {problem}" for check, problem in problems(*broken) if problem]
        outcome(bool(found), f"the checks catch {what}" + (f" ({found[0]})" if found else ": NOT CAUGHT"))
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
