"""The repository's workflows and the workflow example: policy, shape and lint.

tests/lint-repo runs the linters over the real files; the tests here read the YAML
for the rules the linters do not know (what each workflow must do), show that the
linters as configured still catch what they are there for, and lint the README's
workflow snippets.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
EXAMPLES = sorted((REPO / "examples").glob("*.yml"))
ZIZMOR_CONFIG = REPO / ".github" / "zizmor.yml"
THIS_ACTION = "portable-python/portable-python-action"

# `owner/repo[/path]@<40 hex> # vX.Y.Z`: a commit pin, with the release it is.
PINNED_USES_RE = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT_RE = re.compile(r"#\s*v\d+\.\d+\.\d+\s*$")
# A ```yaml block of the README; a complete workflow has a top-level `jobs:` key.
README_YAML_RE = re.compile(r"^```ya?ml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def tool(name: str) -> str:
    """A linter from the `test` extra: beside the running interpreter, in ./.venv, or on PATH."""
    for folder in (Path(sys.executable).parent, REPO / ".venv" / "bin"):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[test]'"
    return found


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = workflow["jobs"]
    assert isinstance(found, dict)
    return found


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def uses_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(reference, whole line) for every `uses:` in a file, comments kept."""
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)", line)
        if match:
            yield match[1], line


def find_step(workflow: dict[str, Any], uses_prefix: str) -> dict[str, Any]:
    for job in jobs(workflow).values():
        for step in steps(job):
            if str(step.get("uses", "")).startswith(uses_prefix):
                return step
    raise AssertionError(f"no step uses {uses_prefix}")


# --------------------------------------------------------------------------
# policy for every workflow file


@pytest.mark.parametrize("path", WORKFLOWS + EXAMPLES, ids=lambda p: p.name)
def test_third_party_actions_are_pinned_to_a_commit(path: Path) -> None:
    for reference, line in uses_lines(path):
        if reference.startswith("./") or reference.startswith(THIS_ACTION + "@"):
            continue  # this checkout, or this action by its moving major tag (examples)
        assert PINNED_USES_RE.match(reference), f"{path.name}: not pinned by sha: {line.strip()}"
        assert VERSION_COMMENT_RE.search(line), f"{path.name}: say which release: {line.strip()}"


def test_each_action_is_pinned_to_one_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS + EXAMPLES:
        for reference, line in uses_lines(path):
            name, _, sha = reference.partition("@")
            if PINNED_USES_RE.match(reference):
                pins.setdefault(name, set()).add(f"{sha} {line.partition('#')[2].strip()}")
    assert pins
    assert {name: shas for name, shas in pins.items() if len(shas) > 1} == {}


@pytest.mark.parametrize("path", WORKFLOWS + EXAMPLES, ids=lambda p: p.name)
def test_permissions_are_empty_by_default_and_granted_per_job(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}
    for name, job in jobs(workflow).items():
        assert "permissions" in job, f"{path.name}: job {name} must say what it needs"
        granted = job["permissions"]
        assert isinstance(granted, dict)
        assert "write-all" not in granted.values()


@pytest.mark.parametrize("path", WORKFLOWS + EXAMPLES, ids=lambda p: p.name)
def test_run_scripts_expand_no_expressions(path: Path) -> None:
    # Values reach scripts through `env:`, where the shell cannot mistake them for code.
    for name, job in jobs(load(path)).items():
        for step in steps(job):
            assert "${{" not in str(step.get("run", "")), f"{path.name}: {name}: {step}"


@pytest.mark.parametrize("path", WORKFLOWS + EXAMPLES, ids=lambda p: p.name)
def test_checkouts_keep_no_credentials(path: Path) -> None:
    for job in jobs(load(path)).values():
        for step in steps(job):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


# --------------------------------------------------------------------------
# what each workflow is for


def test_ci_runs_the_readme_test_command_and_the_linters() -> None:
    ci = load(REPO / ".github" / "workflows" / "ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    readme = (REPO / "README.md").read_text()
    assert "./tests/run" in readme
    scripts = [str(step.get("run", "")) for job in jobs(ci).values() for step in steps(job)]
    assert any("./tests/run" in script for script in scripts)
    for command in ("ruff check", "ruff format --check", "mypy", "tests/lint-repo"):
        assert any(command in script for script in scripts), command
    linted = (REPO / "tests" / "lint-repo").read_text()
    for linter in ("actionlint", "zizmor", "hadolint"):
        assert re.search(rf"^{linter} ", linted, re.MULTILINE), linter


def test_ci_runs_this_checkouts_action_on_the_example_and_starts_the_result() -> None:
    ci = load(REPO / ".github" / "workflows" / "ci.yml")
    job = jobs(ci)["action"]
    action = next(step for step in steps(job) if step.get("uses") == "./")
    project = REPO / action["with"]["project-dir"]
    assert (project / "app" / "main.py").is_file()
    assert (REPO / action["with"]["requirements"]).is_file()
    start = steps(job)[steps(job).index(action) + 1]
    assert start["env"]["ARCHIVE"] == "${{ steps.bundle.outputs.archive-path }}"
    assert "/run" in start["run"] and "curl" in start["run"]


def test_release_publishes_a_multi_arch_image_with_provenance_and_moves_the_major_tag() -> None:
    release = load(REPO / ".github" / "workflows" / "release.yml")
    assert release["on"] == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}}
    image_job = jobs(release)["image"]
    matrix = image_job["strategy"]["matrix"]
    assert set(matrix["platform"]) == {"linux/amd64", "linux/arm64"}
    build = find_step(release, "docker/build-push-action@")["with"]
    assert build["platforms"] == "${{ matrix.platform }}"  # one per native runner
    assert "push-by-digest=true" in build["outputs"]
    assert image_job["permissions"] == {"contents": "read", "packages": "write"}
    merge = jobs(release)["merge"]
    assert "docker buildx imagetools create" in steps(merge)[-3]["run"]
    attests = [
        s
        for s in steps(merge)
        if str(s.get("uses", "")).startswith("actions/attest-build-provenance@")
    ]
    assert {a["with"]["subject-digest"] for a in attests} == {
        "${{ steps.merge.outputs.default }}",
        "${{ steps.merge.outputs.manylinux2014 }}",
    }
    assert all(a["with"]["push-to-registry"] is True for a in attests)
    assert merge["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
        "attestations": "write",
    }
    major = jobs(release)["release-commit"]
    assert set(major["needs"]) >= {"merge", "python-package"}
    assert major["permissions"] == {"contents": "read"}  # tags move with the App's token
    assert 'major="${GITHUB_REF_NAME%%.*}"' in steps(major)[-1]["run"]


def test_scheduled_rebuild_checks_first_then_builds_the_matrix_into_the_pbs_release() -> None:
    rebuild = load(REPO / "examples" / "scheduled-rebuild.yml")
    assert set(rebuild["on"]) == {"schedule", "workflow_dispatch"}
    all_jobs = jobs(rebuild)
    check = all_jobs["check"]
    modes = [step["with"].get("mode") for step in steps(check) if "with" in step]
    assert "check" in modes
    assert check["outputs"]["needs-build"] == "${{ steps.any.outputs.needs-build }}"
    build = all_jobs["build"]
    assert "check" in build["needs"]
    gated = {name for name, job in all_jobs.items() if "needs-build == 'true'" in job.get("if", "")}
    assert gated and set(build["needs"]) & gated
    matrix = build["strategy"]["matrix"]
    assert set(matrix["runner"]) == {"ubuntu-latest", "ubuntu-24.04-arm"}
    assert len(matrix["python-version"]) >= 2
    assert build["runs-on"] == "${{ matrix.runner }}"
    action = next(s for s in steps(build) if str(s.get("uses", "")).startswith(THIS_ACTION))
    release_tag = "pbs-${{ needs.check.outputs.python-build-tag }}"
    assert action["with"]["attach-to-release"] == release_tag
    assert action["with"]["python-build-tag"] == "${{ needs.check.outputs.python-build-tag }}"
    assert build["permissions"] == {
        "contents": "write",
        "id-token": "write",
        "attestations": "write",
    }


# --------------------------------------------------------------------------
# the linters, as configured, still bite


BAD_WORKFLOW = """\
name: bad
on: pull_request_target
permissions: {}
jobs:
  greet:
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - uses: docker/login-action@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def test_zizmor_as_configured_reports_injection_and_unpinned_actions(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    done = subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", "--config", str(ZIZMOR_CONFIG), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "template-injection" in done.stdout
    assert "unpinned-uses" in done.stdout


def test_hadolint_reports_an_unpinned_install(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm\nRUN apt-get update && apt-get install -y curl\n")
    done = subprocess.run([tool("hadolint"), str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "DL3008" in done.stdout  # apt-get install without versions


# --------------------------------------------------------------------------
# the README's workflow snippets


def readme_workflows() -> list[str]:
    """Every ```yaml block of the README that is a whole workflow (has `jobs:`)."""
    blocks = README_YAML_RE.findall((REPO / "README.md").read_text())
    return [block for block in blocks if re.search(r"^jobs:", block, re.MULTILINE)]


def test_the_readme_shows_a_workflow() -> None:
    workflows = readme_workflows()
    assert workflows
    assert any(f"uses: {THIS_ACTION}@" in block for block in workflows)


def test_readme_workflow_snippets_pass_actionlint(tmp_path: Path) -> None:
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    paths = []
    for number, block in enumerate(readme_workflows(), 1):
        assert isinstance(yaml.safe_load(block), dict), f"README workflow {number} is not a mapping"
        path = folder / f"readme-{number}.yml"
        path.write_text(block)
        paths.append(str(path))
    done = subprocess.run(
        [tool("actionlint"), "-no-color", *paths],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_reports_a_broken_snippet(tmp_path: Path) -> None:
    # The same call as above on a workflow with an unknown output and a typo'd key.
    path = tmp_path / "broken.yml"
    path.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stpes:\n      - run: echo\n"
    )
    done = subprocess.run(
        [tool("actionlint"), "-no-color", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "stpes" in done.stdout
