"""In the action, inputs may not reach outside the workspace, nor echo files into annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from portpy_action.bundle.install import check_requirements
from portpy_action.errors import InputError
from portpy_action.spec import BuildSpec, tag_name_problem


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    return root


def action_spec(values: dict[str, str], workspace: Path, env: dict[str, str]) -> BuildSpec:
    return BuildSpec.from_inputs(
        {"project-dir": "src"} | values, workspace=workspace, env={"HOME": "/github/home"} | env
    )


# --------------------------------------------------------------------------
# cache-dir


@pytest.mark.parametrize(
    "cache", ["cache", ".cache/portpy", "/github/home/.cache/pp", "/runner/temp/c"]
)
def test_the_cache_may_be_in_the_workspace_runner_temp_or_home(cache: str, workspace: Path) -> None:
    spec = action_spec({"cache-dir": cache}, workspace, {"RUNNER_TEMP": "/runner/temp"})
    assert spec.runtime.cache_dir.is_absolute()


@pytest.mark.parametrize(
    "cache", ["/etc/portpy", "../elsewhere", "/runner/tempfoo", "cache/../../x"]
)
def test_a_cache_outside_them_is_refused(cache: str, workspace: Path) -> None:
    with pytest.raises(InputError) as caught:
        action_spec({"cache-dir": cache}, workspace, {"RUNNER_TEMP": "/runner/temp"})
    assert caught.value.input == "cache-dir"
    assert "outside the workspace" in str(caught.value)


def test_the_cli_keeps_any_cache_dir(workspace: Path) -> None:
    spec = BuildSpec.from_inputs({"cache-dir": "/var/cache/pp"}, base_dir=workspace, env={})
    assert spec.runtime.cache_dir == Path("/var/cache/pp")


# --------------------------------------------------------------------------
# requirements files that include others


@pytest.mark.parametrize(
    "line",
    ["-r /etc/passwd", "--requirement=/etc/passwd", "-c ../outside.txt", "-r/etc/passwd"],
)
def test_an_include_leaving_the_workspace_is_refused_without_echoing_it(
    line: str, workspace: Path
) -> None:
    (workspace.parent / "outside.txt").write_text("secret-index-password\n")
    requirements = workspace / "requirements.txt"
    requirements.write_text(f"rich\n{line}\n")
    check_requirements(requirements)  # the CLI may read any file it is given
    with pytest.raises(InputError) as caught:
        check_requirements(requirements, inside=workspace)
    assert (caught.value.file, caught.value.line) == (str(requirements), 2)
    assert "outside the workspace" in str(caught.value)
    assert line not in str(caught.value)


def test_includes_inside_the_workspace_pass(workspace: Path) -> None:
    (workspace / "req").mkdir()
    (workspace / "req" / "base.txt").write_text("rich\n")
    (workspace / "req" / "pins.txt").write_text("rich==13.7.1\n")
    requirements = workspace / "requirements.txt"
    requirements.write_text("-r req/base.txt\n--constraint req/pins.txt\n")
    check_requirements(requirements, inside=workspace)


def test_errors_name_the_line_not_its_text(workspace: Path) -> None:
    requirements = workspace / "requirements.txt"
    secret = "--index-url https://user:hunter2@pypi.example/simple"
    for text in (f'{secret} "unclosed\n', f"{secret}\n-e hunter2-pkg\n"):
        requirements.write_text(text)
        with pytest.raises(InputError) as caught:
            check_requirements(requirements)
        assert "hunter2" not in str(caught.value)
        assert caught.value.line is not None


# --------------------------------------------------------------------------
# attach-to-release


@pytest.mark.parametrize(
    "tag",
    [
        "v1..2",
        "v1?",
        "v1#frag",
        "v 1",
        "v1\x07",
        "-v1",
        "v1.lock",
        ".v1",
        "v1/",
        "v1.",
        "a@{b",
        "x:y",
        "a//b",
    ],
)
def test_a_tag_git_would_refuse_is_refused(tag: str, workspace: Path) -> None:
    assert tag_name_problem(tag)
    with pytest.raises(InputError) as caught:
        action_spec({"attach-to-release": tag}, workspace, {})
    assert caught.value.input == "attach-to-release"
    assert "\x07" not in str(caught.value)  # control characters are shown escaped


@pytest.mark.parametrize("tag", ["v1.2.0", "release/2026-01", "nightly", "v1.2.0-rc.1+build.5"])
def test_ordinary_tags_pass(tag: str, workspace: Path) -> None:
    assert tag_name_problem(tag) is None
    assert action_spec({"attach-to-release": tag}, workspace, {}).attach_to_release == tag
