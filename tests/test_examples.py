"""The scheduled-rebuild example and CI's action job: what they promise, checked on their YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "scheduled-rebuild.yml"
# The architecture each GitHub-hosted runner label builds for (the action's default target).
RUNNER_TARGETS = {
    "ubuntu-latest": "x86_64-unknown-linux-gnu",
    "ubuntu-24.04": "x86_64-unknown-linux-gnu",
    "ubuntu-24.04-arm": "aarch64-unknown-linux-gnu",
}


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def action_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s for s in job["steps"] if str(s.get("uses", "")).startswith("portable-python/portable-")
    ]


def test_the_check_covers_every_pair_the_matrix_builds() -> None:
    jobs = load(EXAMPLE)["jobs"]
    matrix = jobs["build"]["strategy"]["matrix"]
    built = {
        (version, RUNNER_TARGETS[runner])
        for version in matrix["python-version"]
        for runner in matrix["runner"]
    }
    checked = {
        (step["with"]["python-version"], step["with"]["target"])
        for step in action_steps(jobs["check"])
        if step["with"].get("mode") == "check" and "attach-to-release" in step["with"]
    }
    assert len(built) == 4
    assert checked == built
    # ...and each check's answer counts.
    combined = next(s for s in jobs["check"]["steps"] if s.get("id") == "any")
    for step in action_steps(jobs["check"]):
        if "attach-to-release" in step["with"]:
            assert f"steps.{step['id']}.outputs.needs-build" in combined["env"]["NEEDS"]


def test_one_job_drafts_the_matrix_attaches_a_last_job_publishes() -> None:
    jobs = load(EXAMPLE)["jobs"]
    assert jobs["release"]["needs"] == "check"
    assert "release" in jobs["build"]["needs"]
    assert "build" in jobs["publish"]["needs"]
    create = jobs["release"]["steps"][0]["run"]
    assert "gh release create" in create and "--draft" in create
    assert "draft=false" in jobs["publish"]["steps"][0]["run"]
    # Only `release` creates and only `publish` publishes: the matrix just attaches.
    for name, job in jobs.items():
        runs = " ".join(str(s.get("run", "")) for s in job["steps"])
        assert ("gh release create" in runs) == (name == "release"), name
        assert ("draft=false" in runs) == (name == "publish"), name
    [bundle] = action_steps(jobs["build"])
    assert bundle["with"]["attach-to-release"].startswith("pbs-")
    assert bundle["with"].get("mode", "build") == "build"


def test_the_archive_gets_a_provenance_attestation() -> None:
    build = load(EXAMPLE)["jobs"]["build"]
    attest = next(
        s
        for s in build["steps"]
        if str(s.get("uses", "")).startswith("actions/attest-build-provenance@")
    )
    assert attest["with"]["subject-path"] == "${{ steps.bundle.outputs.archive-path }}"
    assert build["permissions"]["id-token"] == "write"
    assert build["permissions"]["attestations"] == "write"
    assert "gh attestation verify" in EXAMPLE.read_text()


def test_runs_are_cancelled_only_for_pull_requests() -> None:
    for path in (EXAMPLE, REPO / ".github" / "workflows" / "ci.yml"):
        concurrency = load(path)["concurrency"]
        assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


def test_ci_runs_the_action_on_both_architectures() -> None:
    action = load(REPO / ".github" / "workflows" / "ci.yml")["jobs"]["action"]
    assert set(action["strategy"]["matrix"]["runner"]) == {"ubuntu-latest", "ubuntu-24.04-arm"}
    assert action["runs-on"] == "${{ matrix.runner }}"
