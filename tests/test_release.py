"""Delivery: release.yml's trigger, the manylinux2014 variant, the release commit, the package."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.metadata import Metadata

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import release_commit  # noqa: E402
import variants  # noqa: E402

DIGEST = "sha256:" + "1" * 64
DIGEST_2014 = "sha256:" + "2" * 64
IMAGE = "ghcr.io/portable-python/portable-python-action"


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# ----------------------------------------------------------------------------
# release.yml's tag filter


def filter_pattern_regex(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern syntax, the part tag filters use, as a regular expression.

    `*` is any run of characters but `/`, `**` any run at all, `?` makes the
    character before it optional, `+` repeats it one or more times, `[...]` is a
    character class with ranges; everything else (`.` included) is literal, and
    the pattern must match the whole name.
    """
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char in "?+":
            out.append(char)  # applies to the preceding character or class, as in a regex
        elif char == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


def tag_matches(patterns: list[str], tag: str) -> bool:
    """Any pattern matches and no later `!pattern` excludes it (GitHub: last match wins)."""
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if filter_pattern_regex(pattern.removeprefix("!")).fullmatch(tag):
            matched = not negated
    return matched


def test_the_matcher_follows_githubs_syntax() -> None:
    assert tag_matches(["v*"], "v1") and not tag_matches(["v*"], "v1/x")
    assert tag_matches(["v**"], "v1/x")
    assert tag_matches(["v1?"], "v") and tag_matches(["v1?"], "v1")
    assert tag_matches(["v*", "!v*-rc*"], "v1.0") and not tag_matches(["v*", "!v*-rc*"], "v1-rc1")


def test_release_runs_for_strict_version_tags_only() -> None:
    workflow = load(REPO / ".github" / "workflows" / "release.yml")
    trigger = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(trigger) == {"push"}
    assert set(trigger["push"]) == {"tags"}, "no branch pushes, no other events"
    patterns = trigger["push"]["tags"]
    for tag in ["v1.2.3", "v0.1.0", "v10.20.30"]:
        assert tag_matches(patterns, tag), tag
    for tag in ["v1", "v1.2", "v1.2.3-rc.1", "v1.2.3rc1", "1.2.3", "v1.2.3.4", "vx.y.z"]:
        assert not tag_matches(patterns, tag), tag


def test_the_major_tag_moves_with_the_app_token_and_never_to_a_prerelease() -> None:
    workflow = load(REPO / ".github" / "workflows" / "release.yml")
    steps = workflow["jobs"]["release-commit"]["steps"]
    token = next(
        s for s in steps if str(s.get("uses", "")).startswith("actions/create-github-app-token@")
    )
    assert token["with"]["permission-workflows"] == "write"
    check = steps[0]["run"]
    assert "RELEASE_APP_PRIVATE_KEY" in check and "exit 1" in check
    move = steps[-1]
    assert move["env"]["GH_TOKEN"] == "${{ steps.app-token.outputs.token }}"
    assert "isPrerelease" in move["run"]
    pypi = workflow["jobs"]["pypi"]
    assert pypi["permissions"] == {"id-token": "write"}
    assert str(pypi["steps"][-1]["uses"]).startswith("pypa/gh-action-pypi-publish@")
    runners = {
        e["runner"]
        for e in workflow["jobs"]["image"]["strategy"]["matrix"]["include"]
        if "runner" in e
    }
    assert runners == {"ubuntu-24.04", "ubuntu-24.04-arm"}, "each architecture on its own runner"


# ----------------------------------------------------------------------------
# the manylinux2014 variant


def interface(action: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return action["inputs"], action["outputs"]


def test_the_variant_files_are_generated_from_the_top_ones() -> None:
    for relative, text in variants.expected_files().items():
        assert (REPO / relative).read_text(encoding="utf-8") == text, (
            f"{relative} is stale; regenerate it with `python scripts/variants.py`"
        )


def test_both_actions_declare_the_same_inputs_and_outputs() -> None:
    top = load(REPO / "action.yml")
    variant = load(REPO / "manylinux2014" / "action.yml")
    assert interface(variant) == interface(top)
    assert top["runs"]["image"] == "Dockerfile"
    assert variant["runs"]["image"] == "../manylinux2014.Dockerfile"
    dockerfile = (REPO / "manylinux2014.Dockerfile").read_text()
    assert "ARG BASE_IMAGE=quay.io/pypa/manylinux2014:" in dockerfile


# ----------------------------------------------------------------------------
# the release commit, on a temporary clone


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clone of this repository with the checkout's current action files committed."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    for relative in [*release_commit.ACTIONS.values(), Path("scripts/release_commit.py")]:
        (clone / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, clone / relative)
    git(clone, "add", "-A")
    git(clone, "commit", "--quiet", "--allow-empty", "-m", "the checkout as it is")
    return clone


def run_script(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "release",
        "GIT_AUTHOR_EMAIL": "release@example.com",
        "GIT_COMMITTER_NAME": "release",
        "GIT_COMMITTER_EMAIL": "release@example.com",
    }
    return subprocess.run(
        [sys.executable, str(clone / "scripts" / "release_commit.py"), "--repo", str(clone), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_the_release_commit_pins_only_the_images(clone: Path) -> None:
    before = {p: load(clone / p) for p in release_commit.ACTIONS.values()}
    parent = git(clone, "rev-parse", "HEAD").strip()
    done = run_script(
        clone, "--tag", "v1.2.3", "--image", IMAGE, "--digest", DIGEST,
        "--digest", f"manylinux2014={DIGEST_2014}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    commit = done.stdout.strip()
    assert git(clone, "rev-parse", "HEAD").strip() == commit
    assert git(clone, "rev-parse", "HEAD^").strip() == parent
    assert git(clone, "rev-parse", "v1.2.3^{commit}").strip() == commit

    changed = git(clone, "diff", "--name-only", "HEAD^", "HEAD").split()
    assert sorted(changed) == ["action.yml", "manylinux2014/action.yml"]
    diff = git(clone, "diff", "--unified=0", "HEAD^", "HEAD")
    edits = [
        line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert sorted(edits) == sorted(
        [
            "-  image: Dockerfile",
            "-  image: ../manylinux2014.Dockerfile",
            f"+  image: docker://{IMAGE}@{DIGEST}",
            f"+  image: docker://{IMAGE}@{DIGEST_2014}",
        ]
    )
    for relative, old in before.items():
        new = load(clone / relative)
        assert interface(new) == interface(old), relative
        assert {k: v for k, v in new.items() if k != "runs"} == {
            k: v for k, v in old.items() if k != "runs"
        }
    assert interface(load(clone / "manylinux2014/action.yml")) == interface(
        load(clone / "action.yml")
    )

    # actionlint reads a local action's metadata when a workflow uses it.
    workflow = clone / ".github" / "workflows" / "uses-release.yml"
    workflow.write_text(
        "on: push\npermissions: {}\njobs:\n"
        + "".join(
            f"  {name}:\n    runs-on: ubuntu-latest\n    steps:\n"
            f"      - uses: {path}\n        with:\n          python-version: '3.12'\n"
            f"          attach-to-release: v1\n"
            for name, path in [("top", "./"), ("m2014", "./manylinux2014")]
        )
    )
    actionlint = shutil.which("actionlint", path=str(REPO / ".venv" / "bin")) or "actionlint"
    linted = subprocess.run(
        [actionlint, "-no-color", str(workflow)], cwd=clone, capture_output=True, text=True
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_actionlint_would_notice_an_unknown_input(clone: Path) -> None:
    """The check above can fail: actionlint does read the local actions' inputs."""
    workflow = clone / ".github" / "workflows" / "bad.yml"
    workflow.write_text(
        "on: push\npermissions: {}\njobs:\n  top:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: ./manylinux2014\n        with:\n          no-such-input: x\n"
    )
    actionlint = shutil.which("actionlint", path=str(REPO / ".venv" / "bin")) or "actionlint"
    linted = subprocess.run(
        [actionlint, "-no-color", str(workflow)], cwd=clone, capture_output=True, text=True
    )
    assert linted.returncode != 0
    assert "no-such-input" in linted.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tag", "v1.2.3-rc.1", "--digest", DIGEST, "--digest", f"manylinux2014={DIGEST_2014}"], "not a release tag"),
        (["--tag", "v1", "--digest", DIGEST, "--digest", f"manylinux2014={DIGEST_2014}"], "not a release tag"),
        (["--tag", "v1.2.3", "--digest", DIGEST], "no --digest for: manylinux2014"),
        (["--tag", "v1.2.3", "--digest", "sha256:abc", "--digest", f"manylinux2014={DIGEST_2014}"], "not a sha256"),
    ],
)  # fmt: skip
def test_the_release_commit_refuses_bad_arguments(
    clone: Path, args: list[str], message: str
) -> None:
    head = git(clone, "rev-parse", "HEAD")
    done = run_script(clone, "--image", IMAGE, *args)
    assert done.returncode == 1
    assert message in done.stderr
    assert git(clone, "rev-parse", "HEAD") == head
    assert git(clone, "status", "--porcelain") == ""


# ----------------------------------------------------------------------------
# the Python package PyPI gets


@pytest.mark.slow
def test_the_sdist_and_wheel_build_with_valid_metadata(tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    done = subprocess.run(
        [uv, "build", "--out-dir", str(tmp_path), str(REPO)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    [wheel] = tmp_path.glob("*.whl")
    [sdist] = tmp_path.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as opened:
        [name] = [n for n in opened.namelist() if n.endswith(".dist-info/METADATA")]
        wheel_metadata = opened.read(name)
        assert "portpy_action/action.yml" in opened.namelist()
    with tarfile.open(sdist) as opened:
        [member] = [
            m
            for m in opened.getmembers()
            if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
        ]
        extracted = opened.extractfile(member)
        assert extracted is not None
        sdist_metadata = extracted.read()
    for raw in (wheel_metadata, sdist_metadata):
        metadata = Metadata.from_email(raw, validate=True)  # raises on invalid fields
        assert metadata.name == "portable-python-action"
        assert metadata.license_expression == "MIT"
        assert metadata.description_content_type == "text/markdown"
        assert "portpy" in (metadata.description or "")
        headers = email.message_from_bytes(raw)
        assert headers["Requires-Python"] == ">=3.10"


def test_no_file_points_at_notes_outside_the_repository() -> None:
    needle = "REFER" + "ENCE §"  # spelled in two parts so this file does not match itself
    places = [REPO / "entrypoint", REPO / "README.md", REPO / "Dockerfile"]
    for folder in ("portpy_action", "tests", "scripts", "docs", "examples"):
        places.extend(
            p for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    offenders = [
        str(p.relative_to(REPO)) for p in places if needle in p.read_text(errors="replace")
    ]
    assert offenders == []


def test_the_readme_starts_with_the_users_quick_start() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick, setup = readme.index("## Quick start\n"), readme.index("## Set up\n")
    assert quick < setup
    users = readme[quick:setup]
    for shown in (
        "uses: portable-python/portable-python-action@v1",
        "uvx --from portable-python-action portpy build",
        "pipx install portable-python-action",
        "project-dir:",
        "exclude:",
        "actions/download-artifact",
        "ubuntu-24.04-arm",
        "Docker",
        "uses: portable-python/portable-python-action/manylinux2014@v1",
        "subject-path: ${{ steps.bundle.outputs.archive-path }}",
        "gh attestation verify",
    ):
        assert shown in users, shown
